"""benchmarks/scale.py: the study on paper and the arguments it refuses."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

import scale  # noqa: E402


def test_the_study_scales_samples_by_vertices_and_the_inverse_by_their_square():
    study = scale.paper_study(
        {"sensors": 1.0, "inverse": 2.0}, windows_per_pass=642, samples_per_pass=1000,
        measured_spacing="ico3", study_spacing="ico4", subjects=2,
        passes={"train": 2, "valid": 1, "test": 1}, tile_bytes=10, activations=20,
        n_channels=100)
    factor = 2562 / 642
    assert study["factor"] == pytest.approx(factor)
    assert study["samples"] == pytest.approx(1000 * factor)
    assert study["windows"] == pytest.approx(2562)
    assert study["seconds_per_pass"] == pytest.approx(1.0 * factor + 2.0 * factor ** 2)
    assert study["total_passes"] == 8
    # three estimates and the truth, float32, every vertex at every sample
    assert study["estimate_bytes"] == pytest.approx(16 * 2562 * 1000 * factor)
    assert study["raw_bytes"] == pytest.approx(8 * 100 * 1000 * factor)
    assert study["total_seconds"] == pytest.approx(8 * study["seconds_per_pass"])


@pytest.mark.parametrize("arguments", [["--repeats", "0"], ["--batch", "3"], ["--batch", "0"],
                                       ["--subjects", "0"]])
def test_bad_arguments_are_refused(arguments, capsys):
    with pytest.raises(SystemExit):
        scale.main(arguments)
    assert "must be" in capsys.readouterr().err
