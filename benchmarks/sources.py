"""Sources out of the U-Net against the sparse solvers, on the same activation windows.

Each method answers, per activation window of a simulated split, "which sources were active":

``unet_refit``
    The path of :mod:`meg_unet.sources`, run over the whole split as ``predict.py`` does:
    peaks of the U-Net's calibrated probability above its detection threshold (chosen on the
    validation split), joined into events, refitted with the whitened forward model of the
    split's inverse operator; only candidates that explain data are kept.  A window gets the
    sources whose peak lies in it.  The path is never told where the windows are.
``unet_peaks``
    The same events without the refit: every event is a source, at its most probable vertex.
``sloreta_refit``
    The same path on sLORETA's map and threshold instead of the network's: what the network
    adds over a linear map as the source of candidates.
``omp``
    The greedy sparse solver, given each window: a simultaneous orthogonal matching pursuit
    over every vertex of the source space with the same kind of criterion
    (:func:`meg_unet.refit.matching_pursuit`).
``mxne``, ``gamma_map``
    MNE-Python's sparse solvers with the settings of :mod:`meg_unet.baselines`, given each
    window; their sources are the vertices they return with a non-zero amplitude.

Scores per window: the estimated and true source counts, the sources matched one to one within
2 cm (:func:`meg_unet.sources.match_sources`), the matched DLE (mean distance of the matches),
the amplitude error of the matches (relative to the true peak moment; methods without
amplitudes in A m leave it blank) and the time per window.  Noise-only windows (stretches as
long as the median activation window, at least ``DETECTION_GUARD_MS`` from any source) count
the sources each method invents where there is none.

Run from the repository root after ``make demo`` (or for another split predicted with
``predict.py --data``)::

    python benchmarks/sources.py --n-windows 200 --n-slow-windows 20

and read ``benchmarks/results/sources-<run>.md``.

Harder conditions, away from the solvers' best case (dipoles on the vertices they fit, with
the forward model that made the data):

- ``--wrong-forward MM DEG``: every method inverts with the forward model of the MEG device
  moved by MM mm and turned by DEG degrees.
- ``--data`` a split simulated on a finer source space (``--set SPACING=ico4`` for the quick
  model's ico3): every method inverts it on the model's source space, so the true dipoles lie
  between its vertices (only windows whose every source is off the model's grid count).
- the same with ``--set "simulation.PATCH_AREA_CM2=(2.0, 10.0)"`` at simulation: every source
  is a patch of cortex.

In these the benchmark makes the inverse operator itself and runs the U-Net through
``predict_recording``, as a user with a recording would; no ``predict.py --data`` is needed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from machine import machine_line  # benchmarks/machine.py

from meg_unet.baselines import apply_baseline
from meg_unet.split_data import choose_windows, load_split
from meg_unet.config import load_config
from meg_unet.detection import samples_to_source
from meg_unet.io import atomic_path, read_json
from meg_unet.prediction import _read_hemisphere_rows
from meg_unet.refit import PENALTY, PURSUIT_PENALTY, inverse_gain, matching_pursuit
from meg_unet.sources import extract_sources, join_events, match_sources, mesh_peaks

ROOT = Path(__file__).resolve().parent.parent

#: Methods in table order; the slow ones run on a subset of the windows.
METHODS = ("unet_refit", "unet_peaks", "sloreta_refit", "omp", "mxne", "gamma_map")
SLOW_METHODS = ("mxne", "gamma_map")
MATCH_RADIUS = 0.02  # m


def _whitened_window(data, gain, window):
    return gain.whiten(data.raw.get_data(start=window.start, stop=window.stop),
                       data.raw.ch_names)


#: Methods that read the whole split as predict.py does, then are scored per window.
WHOLE_SPLIT_METHODS = ("unet_refit", "unet_peaks", "sloreta_refit")


def _whole_split(method, data, gain, maps, thresholds, n_orient, penalty):
    """(peak sample, row, amplitude or None) of every source a map's path finds in the split,
    and the seconds it took."""
    key = method.split("_")[0]
    values = np.abs(maps[key])
    started = time.perf_counter()
    if method == "unet_peaks":
        events = join_events(mesh_peaks(values, data.adjacency, thresholds[key]), values,
                             data.adjacency)
        found = [(e["peak"], e["row"], None) for e in events]
    else:
        whitened = gain.whiten(data.raw.get_data(), data.raw.ch_names)
        sources = extract_sources(values, whitened, gain.gain, data.adjacency,
                                  thresholds[key], n_orient=n_orient, penalty=penalty)
        found = [(s["peak"], s["row"], s["amplitude"]) for s in sources]
    return found, time.perf_counter() - started


def _in_window(found, window):
    """The sources of a whole-split list whose peak lies in the window, one per row."""
    rows, amplitudes = {}, {}
    for peak, row, amplitude in found:
        if window.start <= peak < window.stop and row not in rows:
            rows[row], amplitudes[row] = True, amplitude
    if any(a is None for a in amplitudes.values()):
        return list(rows), None
    return list(rows), list(amplitudes.values())


def _rows_of(method, data, gain, window, n_orient, pursuit_penalty):
    """The rows (and amplitudes in A m) a solver finds in the window it is given."""
    if method == "omp":
        fit = matching_pursuit(_whitened_window(data, gain, window), gain.gain,
                               n_orient=n_orient, penalty=pursuit_penalty)
        return list(fit.rows), list(np.abs(fit.amplitudes).max(axis=1))
    estimate = apply_baseline(method, data, window)
    peak = np.abs(estimate).max(axis=1)
    rows = np.flatnonzero(peak > 0)
    return list(rows), list(peak[rows])


def noise_windows(data, guard, n, length, seed=0):
    """Stretches of ``length`` samples at least ``guard`` samples from any true source."""
    from meg_unet.split_data import Window

    distance = samples_to_source(np.abs(data.amplitudes).max(axis=0) > data.active_threshold)
    quiet = distance >= guard
    # a window fits where ``length`` quiet samples follow one another
    run = np.convolve(quiet.astype(int), np.ones(length, int), mode="valid") == length
    starts = np.flatnonzero(run)
    if not len(starts):
        return []
    chosen = np.sort(np.random.default_rng(seed).choice(starts, min(n, len(starts)),
                                                        replace=False))
    return [Window(-1 - k, int(s), int(s) + length, ()) for k, s in enumerate(chosen)]


def neighbour_rows(truth, window, guard):
    """Rows of the true sources that carry signal within ``guard`` samples of the window but
    are not the window's own sources (nor, for patches, any row of its own patches).

    Activation windows of recording-like data follow one another closely, and the band-pass
    filter and the damped waveforms carry each source's signal tens of samples past its
    active samples; a method that finds such a source in a window has found real signal, not
    a ghost.  A second source inside one of the window's own patches stays a ghost: the
    patch is one source.
    """
    start, stop = max(0, window.start - guard), window.stop + guard
    carrying = np.flatnonzero(np.any(truth.amplitudes[:, start:stop] != 0, axis=1))
    own = list(window.rows)
    patches = truth.manifest.get("patches") if hasattr(truth, "manifest") else None
    if patches is not None and window.index >= 0:
        own += [row for rows in patches["rows"][window.index] for row in rows]
    return np.setdiff1d(carrying, np.asarray(own, dtype=np.int64))


def evaluate(data, maps, thresholds, windows, methods, n_orient, penalty=PENALTY,
             pursuit_penalty=PURSUIT_PENALTY, truth=None, guard=0):
    """One row per (window, method): counts, matches, matched DLE, amplitude error, ms.

    The map-based methods run over the whole split, as predict.py does, and each window gets
    the sources whose peak lies in it; their ms is the whole run's time over the split's
    activation windows.  The solvers are given each window.  ``truth`` is the split as
    simulated when ``data`` is a view of it on another source space (:func:`invert_with`):
    the true positions and amplitudes are read from it.  A found source that matches none of
    the window's sources but lies within the match radius of a neighbouring source
    (:func:`neighbour_rows`, ``guard`` samples) counts in ``n_neighbour``: the summary leaves
    it out of the precision and the count error.
    """
    truth = data if truth is None else truth
    import pandas as pd
    from scipy.spatial.distance import cdist
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    gain = inverse_gain(data.inv, data.vertices, n_orient=n_orient)
    snrs = data.manifest["activations"].get("snr_target")
    rows = []
    with threadpool_limits(limits=1):
        for method in methods:
            whole = None
            if method in WHOLE_SPLIT_METHODS:
                whole, seconds = _whole_split(method, data, gain, maps, thresholds, n_orient,
                                              penalty)
                seconds /= max(len(data.windows), 1)
            for window in tqdm(windows[method], desc=method, unit="window"):
                if whole is not None:
                    found, amplitudes = _in_window(whole, window)
                else:
                    started = time.perf_counter()
                    found, amplitudes = _rows_of(method, data, gain, window, n_orient,
                                                 pursuit_penalty)
                    seconds = time.perf_counter() - started
                true = list(window.rows)
                pairs, distances = match_sources(data.positions[found], truth.positions[true],
                                                 MATCH_RADIUS)
                unmatched = np.setdiff1d(np.arange(len(found)), pairs[:, 0])
                neighbours = neighbour_rows(truth, window, guard)
                near = np.zeros(len(unmatched), bool)
                if len(unmatched) and len(neighbours):
                    near = cdist(data.positions[np.asarray(found)[unmatched]],
                                 truth.positions[neighbours]).min(axis=1) <= MATCH_RADIUS
                amplitude_error = np.nan
                if amplitudes is not None and len(pairs):
                    peak = true_peaks(truth, window)[pairs[:, 1]]
                    estimate = np.asarray(amplitudes)[pairs[:, 0]]
                    amplitude_error = float(np.mean(np.abs(estimate - peak) / peak))
                rows.append(dict(
                    method=method, window=window.index, n_true=len(true), n_found=len(found),
                    n_matched=len(pairs), n_neighbour=int(near.sum()),
                    matched_dle_cm=100 * float(np.mean(distances)) if len(pairs) else np.nan,
                    amplitude_error=amplitude_error, ms=1e3 * seconds,
                    snr=float(snrs[window.index]) if snrs and window.index >= 0 else np.nan,
                ))
    return pd.DataFrame(rows)


def path_ms(config, data, samples=30, repeats=5):
    """The U-Net path's time for ``samples`` samples, besides the extraction and refit.

    The three L2 inputs are computed as ``predict.py --raw`` computes them (the model's
    hemisphere, chunks of 20 tiles, one application of the MNE kernel scaled for dSPM and
    sLORETA) over the whole split's raw, and the network runs on one tile
    (``predict_on_batch``, batch of 1, median of ``repeats``); both are scaled to ``samples``
    samples.
    """
    from threadpoolctl import threadpool_limits

    from accuracy import tile_seconds
    from meg_unet.recording import _InverseEstimates

    methods = ("mne", "dspm", "sloreta")
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        inverse = _InverseEstimates(data.inv, data.raw, "raw", methods, data.lambda2,
                                    data.hemispheres)
        chunk = 20 * config.tile.T_STEPS
        for start in range(0, data.raw.n_times, chunk):
            for method in methods:
                inverse(method, start, min(start + chunk, data.raw.n_times))
        inputs = (time.perf_counter() - started) / data.raw.n_times * samples
    seconds, tile_samples = tile_seconds(config.run_results_dir / "model", repeats)
    return 1e3 * inputs, 1e3 * seconds / tile_samples * samples


def summary(table):
    """Per method and kind of window: precision, recall, count error, DLE, amplitude, ms.

    Sources found at a neighbouring source (``n_neighbour``) count neither as matches nor as
    ghosts; their share of what was found is ``neighbours``.
    """
    import pandas as pd

    if "n_neighbour" not in table:
        table = table.assign(n_neighbour=0)
    table = table.assign(kind=np.select(
        [table["n_true"] == 0, table["n_true"] == 1, table["n_true"] <= 5],
        ["noise only", "1 source", "2-5 sources"], "6-10 sources"))
    out = []
    for (kind, method), group in table.groupby(["kind", "method"], sort=False):
        found, true, matched, neighbour = (group[c].sum() for c in (
            "n_found", "n_true", "n_matched", "n_neighbour"))
        out.append(dict(
            windows=kind, method=method, n=len(group),
            precision=matched / (found - neighbour) if found > neighbour else np.nan,
            recall=matched / true if true else np.nan,
            count_error=float((group["n_found"] - group["n_neighbour"]
                               - group["n_true"]).mean()),
            neighbours=neighbour / found if found else np.nan,
            matched_dle_cm=float(group["matched_dle_cm"].mean()),
            amplitude_error=float(group["amplitude_error"].mean()),
            ms_median=float(group["ms"].median()),
        ))
    return pd.DataFrame(out)


def markdown(summary_table, header):
    def cell(value, digits=2):
        return "" if value != value else f"{value:.{digits}f}"

    lines = [header, "",
             "| windows | method | n | precision | recall | count error | matched DLE (cm) | "
             "amplitude error | at a neighbour | ms / window |", "|" + "---|" * 10]
    for row in summary_table.itertuples():
        lines.append(
            f"| {row.windows} | {row.method} | {row.n} | {cell(row.precision)} | "
            f"{cell(row.recall)} | {cell(row.count_error)} | {cell(row.matched_dle_cm)} | "
            f"{cell(row.amplitude_error)} | {cell(row.neighbours)} | "
            f"{cell(row.ms_median, 1)} |"
        )
    return "\n".join(lines) + "\n"


def invert_with(config, data, fwd, src, work_dir):
    """The split as every method sees it when it inverts the split's data with ``fwd``.

    ``fwd`` is a free-orientation forward solution on the model's source space: a wrong one
    (the device moved), or the model's own when the split was simulated on another source
    space (off the model's grid).  An inverse operator is made from it with the split's noise
    covariance and settings; the U-Net's map comes from ``predict_recording`` (as a user
    would run it on a recording), sLORETA's from ``apply_inverse_raw``.  ``src`` is the
    source space of ``fwd`` in MRI coordinates, as the split's own (the forward solution's
    copy is in head coordinates).

    Returns
    -------
    view : SplitData
        The split with ``fwd``, its inverse operator and its source geometry (vertices,
        positions, adjacency) in place; the recording, the true amplitudes and the windows
        stay the split's.
    maps : dict
        ``"unet"`` and ``"sloreta"`` maps on the view's rows.
    """
    import dataclasses

    import mne

    from meg_unet.baselines import _hemisphere_rows
    from meg_unet.prediction import _source_geometry
    from meg_unet.recording import predict_recording

    fixed = data.orientation == "fixed"
    inv = mne.minimum_norm.make_inverse_operator(
        data.info, fwd, data.cov, loose=0.0 if fixed else data.loose, depth=data.depth,
        fixed=fixed, verbose=False)
    work_dir.mkdir(parents=True, exist_ok=True)
    inv_fname = work_dir / "model-inv.fif"
    mne.minimum_norm.write_inverse_operator(inv_fname, inv, overwrite=True, verbose=False)
    vertices = [np.asarray(s["vertno"] if hemi in data.hemispheres else [], dtype=np.int64)
                for s, hemi in zip(src, ("lh", "rh"))]
    positions, adjacency, hemis = _source_geometry(src, data.hemisphere)
    view = dataclasses.replace(
        data, fwd=fwd, inv=inv, src=src, vertices=vertices, vertno=np.concatenate(vertices),
        positions=positions, adjacency=adjacency, hemis=hemis, cache={}, setup_seconds={})
    stc_fname = predict_recording(
        config.run_results_dir, inv_fname, raw_fname=data.directory / f"{data.split}_raw.fif",
        out_fname=work_dir / "model-unet-stc.h5", overwrite=True, progress=False)
    sloreta = mne.minimum_norm.apply_inverse_raw(data.raw, inv, data.lambda2, "sLORETA",
                                                 pick_ori=None, verbose=False)
    maps = {"unet": _read_hemisphere_rows(stc_fname, vertices),
            "sloreta": _hemisphere_rows(sloreta, view, data.raw.n_times)}
    return view, maps


def true_peaks(data, window):
    """Peak moment (A m) of each true source of a window, in the order of ``window.rows``.

    A patch's moment is the sum over its rows (``manifest["patches"]``), a dipole's its own.
    """
    block = data.amplitudes[:, window.start : window.stop]
    patches = data.manifest.get("patches")
    if patches is None:
        return np.abs(block[list(window.rows)]).max(axis=1)
    return np.array([np.abs(block[rows].sum(axis=0)).max()
                     for rows in patches["rows"][window.index]])


def run(config, data_dir, predictions, n_windows, n_slow_windows, n_noise, n_orient, seed,
        methods=METHODS, penalty=PENALTY, pursuit_penalty=PURSUIT_PENALTY, perturbation=None,
        work_dir=None, threshold_factor=1.0):
    import pandas as pd

    truth = load_split(data_dir)
    detection = read_json(config.run_results_dir / "model" / "model.json")["detection"]["best"]
    thresholds = {key: value * threshold_factor
                  for key, value in detection["thresholds"].items()}
    notes = []
    other_grid = truth.manifest.get("spacing") != config.spacing
    if perturbation or other_grid:
        from evoked import load_training_head_model, moved_head

        head = load_training_head_model(config, config.head_model_dir, n_jobs=config.n_jobs)
        fwd = head.fwd_free
        if perturbation:
            moved = moved_head(head, *perturbation, n_jobs=config.n_jobs)
            fwd, change = moved["fwd_free"], moved["gain_change"]
            notes.append(
                f"Every method inverts with the forward model of the MEG device moved by "
                f"{perturbation[0]:g} mm and turned by {perturbation[1]:g} degrees (the gain "
                f"matrix changes by {change['frobenius']:.0%}, relative Frobenius norm; per "
                f"source a median {change['per_source_median']:.0%}); the data are the "
                f"split's, simulated with the device in place.")
        data, maps = invert_with(config, truth, fwd, head.src, work_dir)
    else:
        data = truth
        maps = {
            "unet": _read_hemisphere_rows(predictions / f"{data.split}-unet-stc.h5",
                                          data.vertices),
            "sloreta": _read_hemisphere_rows(data.directory / f"{data.split}-sloreta-stc.h5",
                                             data.vertices),
        }
    candidates = truth.windows
    if other_grid:
        notes.append(
            f"The split was simulated on a {truth.manifest.get('spacing')} source space "
            f"({truth.n_vertices} sources) and every method inverts it on the model's "
            f"{config.spacing} ({data.n_vertices} sources); the true positions are the "
            "simulated ones.")
        if "patches" not in truth.manifest:
            from scipy.spatial import cKDTree

            off = cKDTree(data.positions).query(truth.positions)[0] > 1e-3
            candidates = [w for w in truth.windows if off[list(w.rows)].all()]
            notes.append(f"Only windows whose every source lies off the model's grid count "
                         f"({len(candidates)} of {len(truth.windows)}).")
    if "patches" in truth.manifest:
        areas = [a for window in truth.manifest["patches"]["area_cm2"] for a in window]
        notes.append(
            f"Every source is a patch of {np.min(areas):.1f}-{np.max(areas):.1f} cm^2 (median "
            f"{np.median(areas):.1f}; simulation.PATCH_AREA_CM2 "
            f"{truth.manifest['config']['RESOLVED_PARAMETERS']['simulation']['PATCH_AREA_CM2']}"
            "); its true position is the vertex it grew from, its moment the patch's sum.")
    chosen = [candidates[i] for i in choose_windows(len(candidates), n_windows, seed)]
    slow = [candidates[i] for i in choose_windows(len(candidates), n_slow_windows, seed)]
    length = int(np.median([w.stop - w.start for w in chosen]))
    guard = int(round(config.network.DETECTION_GUARD_MS * 1e-3 * data.info["sfreq"]))
    quiet = noise_windows(data, guard, n_noise, length, seed)
    windows = {m: (slow if m in SLOW_METHODS else chosen) + quiet[: len(slow) if m in
               SLOW_METHODS else len(quiet)] for m in METHODS}
    table = evaluate(data, maps, thresholds, windows, methods, n_orient, penalty,
                     pursuit_penalty, truth=truth, guard=guard)
    return data, table, pd.DataFrame(summary(table)), length, len(quiet), notes


def _inputs(config, data_dir, predictions, inverted_here):
    """Refuse, with what to run, when the split, its predictions or the thresholds are missing.

    ``inverted_here``: the benchmark inverts the split itself (another forward model or source
    space), so it needs no predictions of it.
    """
    if not (data_dir / "manifest.json").is_file():
        return f"{data_dir} is not a simulated split (simulate_data.py makes one)"
    model_json = config.run_results_dir / "model" / "model.json"
    if not model_json.is_file():
        return f"no trained model in {config.run_results_dir} (train_network.py trains it)"
    if "best" not in read_json(model_json).get("detection", {}):
        return f"{model_json} has no detection thresholds (predict.py calibrates the model)"
    split = data_dir.name
    if not inverted_here and not (predictions / f"{split}-unet-stc.h5").is_file():
        return (f"no {predictions / f'{split}-unet-stc.h5'}: run predict.py --data {data_dir} "
                "with the same settings first")
    return None


def main(argv=None):
    """Run the benchmark; returns 0, or 1 with a message when an input is missing."""
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config.py"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the configuration, as for the scripts")
    parser.add_argument("--data", default=None, help="split folder (default: the run's test)")
    parser.add_argument("--n-windows", type=int, default=200)
    parser.add_argument("--n-slow-windows", type=int, default=30)
    parser.add_argument("--n-noise", type=int, default=100)
    parser.add_argument("--n-orient", type=int, default=1, choices=(1, 3))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--penalty", type=float, default=PENALTY,
                        help="price of a source in the refit of the maps' candidates")
    parser.add_argument("--pursuit-penalty", type=float, default=PURSUIT_PENALTY,
                        help="price of a source in the matching pursuit")
    parser.add_argument("--wrong-forward", nargs=2, type=float, metavar=("MM", "DEG"),
                        help="invert with the MEG device moved by MM and turned by DEG")
    parser.add_argument("--threshold-factor", type=float, default=1.0,
                        help="scale the maps' detection thresholds for the candidates of the "
                        "refit and the events (default 1: the thresholds of model.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="file stem (default: sources-<run>[-<data run>])")
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    for name in ("n_windows", "n_slow_windows", "n_noise"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.penalty < 0 or args.pursuit_penalty < 0:
        parser.error("--penalty and --pursuit-penalty must be >= 0")
    if not args.threshold_factor > 0:
        parser.error("--threshold-factor must be > 0")

    config = load_config(args.config, overrides=args.set)
    data_dir = Path(args.data) if args.data else config.run_data_dir / "test"
    manifest = data_dir / "manifest.json"
    data_run = read_json(manifest).get("run_name", data_dir.parent.name) if (
        manifest.is_file()) else data_dir.parent.name
    own = data_run == config.run_name and data_dir.name == "test"
    predictions = config.run_results_dir / (
        "predictions" if own else f"predictions-{data_run}-{data_dir.name}")
    spacing = read_json(manifest).get("spacing") if manifest.is_file() else None
    problem = _inputs(config, data_dir, predictions,
                      bool(args.wrong_forward) or spacing != config.spacing)
    if problem:
        print(f"sources.py: {problem}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    results = Path(args.results_dir)
    name = args.out or f"sources-{config.run_name}" + ("" if own else f"-{data_run}") + (
        "-wrong-forward" if args.wrong_forward else "")
    data, table, result, length, n_quiet, notes = run(
        config, data_dir, predictions, args.n_windows, args.n_slow_windows, args.n_noise,
        args.n_orient, args.seed, args.methods, args.penalty, args.pursuit_penalty,
        args.wrong_forward, config.run_results_dir / f"{name}-work", args.threshold_factor)
    results.mkdir(parents=True, exist_ok=True)
    with atomic_path(results / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    header = (
        f"# Sources: U-Net + refit against the sparse solvers ({config.run_name} model on "
        f"{data_run}/{data.split})\n\n"
        f"`python benchmarks/sources.py {command}`: {args.n_windows} activation "
        f"windows ({args.n_slow_windows} for MxNE and Gamma-MAP), {n_quiet} noise-only windows "
        f"of {length} samples; matches within {100 * MATCH_RADIUS:g} cm; refit orientations "
        f"{args.n_orient}, price {args.penalty:g} x BIC (refit) and "
        f"{args.pursuit_penalty:g} x BIC (matching pursuit); candidates above "
        f"{args.threshold_factor:g} x the detection thresholds; one BLAS thread on "
        f"{machine_line()}; "
        f"{time.perf_counter() - started:.0f} s in all."
    )
    header += "".join("  " + note for note in notes)
    inputs_ms, network_ms = path_ms(config, data)
    refit_ms = float(table[(table["method"] == "unet_refit") & (table["n_true"] > 0)]["ms"]
                     .median()) if "unet_refit" in args.methods else float("nan")
    # the refit's ms per window is its whole run over the split's windows: per 30 samples
    refit_ms *= len(data.windows) / data.raw.n_times * 30
    median_samples = int(np.median([w.stop - w.start for w in data.windows]))
    footer = (
        f"\nThe map-based methods ran over the whole split as predict.py does (their ms: the "
        f"whole run over the split's {len(data.windows)} activation windows, of median "
        f"{median_samples} samples); the solvers were given each window.  The U-Net's whole "
        f"path per 30 samples: L2 inputs {inputs_ms:.1f} ms + network {network_ms:.1f} ms "
        f"(one tile of {config.tile.T_STEPS}, scaled) + extraction and refit "
        f"{refit_ms:.1f} ms (the whole split's, scaled) = "
        f"{inputs_ms + network_ms + refit_ms:.1f} ms.\n"
    )
    text = markdown(result, header) + footer
    with atomic_path(results / f"{name}.md") as tmp:
        Path(tmp).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
