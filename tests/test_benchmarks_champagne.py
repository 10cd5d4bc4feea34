"""benchmarks/champagne.py: what it says without invertmeeg, and its projector patch."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

import champagne  # noqa: E402


def test_without_invertmeeg_the_check_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "invert", None)  # import invert raises ImportError
    assert champagne.main(["--data", "nowhere"]) == 1
    assert "pip install invertmeeg==1.1.0" in capsys.readouterr().err


def test_the_patched_projector_takes_invertmeegs_call(monkeypatch):
    import mne

    monkeypatch.setattr(mne, "make_projector", None, raising=False)
    champagne.patch_projector()
    names = ["A", "B", "C"]
    vector = np.array([[1.0, 1.0, 0.0]]) / np.sqrt(2)
    proj = mne.Projection(data=dict(nrow=1, ncol=3, row_names=None, col_names=names,
                                    data=vector), active=False, desc="test")
    # invertmeeg 1.1.0 calls it with verbose=0
    projector, n_used, _ = mne.make_projector([proj], names, verbose=0)
    assert n_used == 1
    np.testing.assert_allclose(projector @ vector.T, 0, atol=1e-12)
