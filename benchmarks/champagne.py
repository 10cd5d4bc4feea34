"""The Champagne family through invertmeeg, on the sources benchmark's windows: does it run here?

invertmeeg (PyPI ``invertmeeg``) offers FlexChampagne, a sparse Bayesian solver of the
Champagne family.  It is not in ``requirements.txt``: this script checks, on the same seeded
activation windows as ``benchmarks/sources.py`` (its slow solvers' subset), whether it applies
the data's SSP projectors, what it costs per window and what it returns, scored like MxNE and
Gamma-MAP there (every vertex with a non-zero amplitude is a source; matches within 2 cm).

invertmeeg 1.1.0 builds its projector with ``mne.make_projector(..., verbose=0)``, which
mne 1.13 no longer exports (it is private, ``mne._fiff.proj.make_projector``, without
``verbose``): it logs "Failed to build SSP projector" and goes on with the identity, i.e.
without the projectors.  ``--patch-projector`` puts a compatible function in its place.

Run from the repository root, with invertmeeg installed beside the project's packages::

    pip install invertmeeg==1.1.0
    python benchmarks/champagne.py --data data/quick/test --n-windows 20 --patch-projector
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings

import numpy as np

MATCH_RADIUS = 0.02  # m, as benchmarks/sources.py


def patch_projector():
    """Give ``mne.make_projector`` back, as invertmeeg 1.1.0 calls it (with ``verbose``)."""
    import mne
    from mne._fiff.proj import make_projector

    def compatible(projs, ch_names, bads=(), include_active=True, verbose=None):
        return make_projector(projs, ch_names, bads=bads, include_active=include_active)

    mne.make_projector = compatible


def run(data_dir, n_windows, seed=0):
    """Score FlexChampagne per window; returns the rows and whether projectors were applied."""
    import mne
    from invert import Solver
    from invert.solvers import base
    from threadpoolctl import threadpool_limits

    from meg_unet.baselines import _hemisphere_rows, _window_evoked
    from meg_unet.split_data import choose_windows, load_split
    from meg_unet.sources import match_sources

    projectors = []
    original = base.BaseSolver.compute_sensor_projector

    def spy(self, *args, **kwargs):
        projector = original(self, *args, **kwargs)
        projectors.append(not np.allclose(projector, np.eye(len(projector))))
        return projector

    base.BaseSolver.compute_sensor_projector = spy
    data = load_split(data_dir)
    fwd = mne.convert_forward_solution(data.fwd, surf_ori=True, force_fixed=True,
                                       use_cps=True, verbose=False)
    windows = [data.windows[i] for i in choose_windows(len(data.windows), n_windows, seed)]
    rows = []
    with threadpool_limits(limits=1):
        for window in windows:
            evoked = _window_evoked(data, window)
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                solver = Solver("FlexChampagne")
                solver.make_inverse_operator(fwd, evoked, noise_cov=data.cov, alpha="auto")
                stc = solver.apply_inverse_operator(evoked)
            seconds = time.perf_counter() - started
            peak = np.abs(_hemisphere_rows(stc, data, stc.data.shape[1])).max(axis=1)
            found = np.flatnonzero(peak > 0)
            pairs, distances = match_sources(data.positions[found],
                                             data.positions[list(window.rows)], MATCH_RADIUS)
            rows.append(dict(n_true=len(window.rows), n_found=len(found), n_matched=len(pairs),
                             matched_dle_cm=100 * np.mean(distances) if len(pairs) else np.nan,
                             ms=1e3 * seconds))
    base.BaseSolver.compute_sensor_projector = original
    return rows, bool(projectors) and all(projectors), len(data.info["projs"])


def main(argv=None):
    """Run the check and print one line of figures; 1 when invertmeeg is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/quick/test", help="a simulated split folder")
    parser.add_argument("--n-windows", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patch-projector", action="store_true",
                        help="let invertmeeg 1.1.0 build the SSP projector under mne 1.13")
    args = parser.parse_args(argv)
    if args.n_windows < 1:
        parser.error("--n-windows must be at least 1")
    try:
        import invert
    except ImportError:
        print("champagne.py: invertmeeg is not installed (pip install invertmeeg==1.1.0); it "
              "is not one of the project's requirements", file=sys.stderr)
        return 1
    logging.getLogger("invert").setLevel(logging.ERROR)
    if args.patch_projector:
        patch_projector()
    rows, projected, n_projs = run(args.data, args.n_windows, args.seed)
    found, true, matched = (sum(r[k] for r in rows) for k in ("n_found", "n_true", "n_matched"))
    print(f"FlexChampagne (invertmeeg {invert.__version__}) on {len(rows)} windows of "
          f"{args.data}: SSP projectors ({n_projs} in the data) applied: {projected}; "
          f"sources per window {found / len(rows):.1f}, precision {matched / found:.2f}, "
          f"recall {matched / true:.2f}, matched DLE "
          f"{np.nanmean([r['matched_dle_cm'] for r in rows]):.2f} cm, "
          f"{np.median([r['ms'] for r in rows]):.0f} ms per window (median, one BLAS thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
