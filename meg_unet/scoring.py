"""Scoring estimates sample by sample: the rows of ``metrics.csv``.

:func:`metrics_table` cuts each estimate (the L2 methods', a baseline's or the U-Net's) into
the tiles the network predicted and scores every sample with
:func:`meg_unet.metrics.localization_metrics`: DLE, SD, OA, the thesis's SD, recall and ghost
peaks where a true source is active and, with detection thresholds, what each method detected
in every sample, noise-only ones included (:mod:`meg_unet.detection`).  The U-Net's
predictions (:mod:`meg_unet.prediction`) and the baselines (:mod:`meg_unet.baselines`) are
scored by the same code.
"""

from __future__ import annotations

import numpy as np

from .detection import samples_to_source
from .tiles import tile_window

#: The columns of metrics.csv, in order (``hemi`` follows when HEMISPHERE = "both").  This
#: schema is read by :mod:`meg_unet.tables`, :mod:`meg_unet.visualization` and
#: ``analyze_results.r``.
METRICS_COLUMNS = (
    "split",
    "sample",
    "n_sources",
    "true_vertices",
    "method",
    "peak_vertices",
    "dle_cm",
    "sd_cm",
    "oa",
    "sd_thesis_sqrtcm",
    "recall",
    "ghosts",
)


def metrics_table(
    estimates,
    amplitudes,
    positions,
    layout,
    vertno,
    *,
    adjacency=None,
    border=2,
    active_threshold=1e-20,
    split="test",
    hemis=None,
    thresholds=None,
    window_snr=None,
):
    """Compute the rows of metrics.csv: one per (sample, method).

    Without ``thresholds`` only the samples with an active true source get rows (the
    thesis's evaluation); with them every sample does, noise-only ones included, and each
    row says what the method detected there (see :mod:`meg_unet.detection`).  The
    localization metrics (DLE, SD, OA, the thesis's SD, recall, ghosts) are NaN on samples
    without a true source.

    Each estimate is cut into the tiles of ``layout``, and
    :func:`meg_unet.metrics.localization_metrics` runs on each tile with ``border`` (see the
    module docstring): the first and last ``border`` rows (vertices) of the hemisphere are
    never evaluated, and each sample is evaluated in its owner tile unless it lies in that
    tile's ``border`` columns.

    Parameters
    ----------
    estimates : dict of str to ndarray, shape (n_vertices, n_times)
        The estimates by method name (e.g. ``"mne"``, ``"dspm"``, ``"sloreta"``, ``"unet"``),
        rows in source-space order; signs are ignored.  Rows of the table come in this order.
    amplitudes : ndarray, shape (n_vertices, n_times)
        The true source amplitudes (A m).
    positions : ndarray, shape (n_vertices, 3)
        Vertex positions in meters (:func:`meg_unet.metrics.hemisphere_positions`).
    layout : meg_unet.tiles.TileLayout
        The tiles the U-Net predicted (:func:`meg_unet.tiles.tile_layout`).
    vertno : ndarray of int, shape (n_vertices,)
        Vertex number of each row (written to ``true_vertices`` and ``peak_vertices``).
    adjacency : scipy sparse array | None
        Mesh adjacency of the rows (:func:`meg_unet.metrics.mesh_adjacency`); needed for
        samples with several true sources and for ``ghosts``.
    border : int
        Rows and columns left out at each edge of a tile.
    active_threshold : float
        A source is active where ``|amplitude| > active_threshold``.
    split : str
        Written to the ``split`` column.
    hemis : ndarray of str, shape (n_vertices,) | None
        Hemisphere of each row; given (HEMISPHERE = "both"), a ``hemi`` column holds the
        hemisphere of each true vertex, joined by ``";"``.
    thresholds : dict of str to float | None
        Detection threshold per method (every method of ``estimates``), chosen on the
        validation split; adds the columns :data:`meg_unet.detection.DETECTION_COLUMNS`: the
        map's maximum (``score``), the detections, those within 2 cm of a true source, the
        true sources detected, ``snr``, the SNR of the weakest true source in that very
        sample (:func:`sample_snr`; NaN without a source or without ``window_snr``), and
        ``samples_to_source``, the distance to the nearest sample with an active source.
        Needs ``adjacency``.
    window_snr : ndarray, shape (n_times,) | None
        The target SNR of the activation window each sample lies in (:func:`window_snr`),
        for the ``snr`` column.

    Returns
    -------
    table : pandas.DataFrame
        The columns :data:`METRICS_COLUMNS` (+ ``hemi``, + the detection columns), sorted by
        sample, then method in the order of ``estimates``.  Metrics that cannot be computed
        (an estimate that is zero on every kept vertex) are NaN.
    """
    import pandas as pd

    from .detection import DETECTION_COLUMNS
    from .metrics import localization_metrics

    amplitudes = np.asarray(amplitudes)
    vertno, hemis = _check_table_inputs(estimates, amplitudes.shape, layout, vertno, hemis,
                                        thresholds)
    names = METRICS_COLUMNS + (DETECTION_COLUMNS if thresholds is not None else ())

    active = np.abs(amplitudes) > active_threshold
    snr = None
    if thresholds is not None:
        snr = (np.full(amplitudes.shape, np.nan) if window_snr is None
               else sample_snr(amplitudes, active, window_snr))
    distance = samples_to_source(active.any(axis=0)) if thresholds is not None else None
    evaluated = layout.evaluated(border)
    columns = {name: [] for name in names}
    hemi_column = []
    for tile in range(layout.n_tiles):
        owned = layout.owned(tile)
        start = int(layout.starts[tile])
        samples = np.arange(owned.start, owned.stop)
        samples = samples[evaluated[samples]]
        if thresholds is None:
            samples = samples[active[:, samples].any(axis=0)]
        if not len(samples):
            continue
        window_active = tile_window(active, start, layout.t_steps)
        true_rows = [np.flatnonzero(column) for column in window_active.T]
        # localization_metrics returns the kept columns border .. t_steps - border - 1
        picks = samples - start - border
        true_text = [";".join(str(v) for v in vertno[true_rows[s - start]]) for s in samples]
        if hemis is not None:
            hemi_text = [";".join(hemis[true_rows[s - start]]) for s in samples]
        for method, estimate in estimates.items():
            result = localization_metrics(
                tile_window(np.asarray(estimate), start, layout.t_steps), true_rows,
                positions, adjacency, border=border,
                detection_threshold=None if thresholds is None else thresholds[method])
            silent = result["n_sources"] == 0
            for name in ("oa", "sd_thesis_sqrtcm", "ghosts"):  # localization: active samples
                result[name] = np.where(silent, np.nan, result[name])
            columns["split"].extend([split] * len(samples))
            columns["sample"].extend(samples.tolist())
            columns["n_sources"].extend(result["n_sources"][picks].tolist())
            columns["true_vertices"].extend(true_text)
            columns["method"].extend([method] * len(samples))
            columns["peak_vertices"].extend(
                ";".join(str(v) for v in vertno[result["peak_rows"][p]]) for p in picks
            )
            for name in ("dle_cm", "sd_cm", "oa", "sd_thesis_sqrtcm", "recall", "ghosts"):
                columns[name].extend(np.asarray(result[name], dtype=np.float64)[picks].tolist())
            if thresholds is not None:
                for name in ("score", "detections", "true_detections", "detected_sources"):
                    columns[name].extend(np.asarray(result[name])[picks].tolist())
                columns["samples_to_source"].extend(distance[samples].tolist())
                columns["snr"].extend(
                    float(snr[true_rows[s - start], s].min()) if len(true_rows[s - start])
                    else np.nan for s in samples
                )
            if hemis is not None:
                hemi_column.extend(hemi_text)
    table = pd.DataFrame(columns, columns=list(names))
    if hemis is not None:
        table["hemi"] = hemi_column
    order = {method: index for index, method in enumerate(estimates)}
    table["_order"] = table["method"].map(order)
    table = table.sort_values(["sample", "_order"], kind="stable").drop(columns="_order")
    table = table.reset_index(drop=True)
    return table.astype({"sample": np.int64, "n_sources": np.int64})


def _check_table_inputs(estimates, shape, layout, vertno, hemis, thresholds):
    """Refuse inputs of :func:`metrics_table` that do not fit together; return the arrays."""
    if not isinstance(estimates, dict) or not estimates:
        raise ValueError("estimates must be a non-empty dict of method name to array")
    for method, estimate in estimates.items():
        if np.shape(estimate) != shape:
            raise ValueError(f"the {method!r} estimate has shape {np.shape(estimate)}, but the "
                             f"amplitudes have shape {shape}")
    if layout.n_times != shape[1]:
        raise ValueError(
            f"the layout covers {layout.n_times} samples, but the data have {shape[1]}")
    vertno = np.asarray(vertno)
    if vertno.shape != shape[:1]:
        raise ValueError(f"vertno must have shape ({shape[0]},), but got {vertno.shape}")
    if hemis is not None:
        hemis = np.asarray(hemis, dtype=object)
        if hemis.shape != shape[:1]:
            raise ValueError(f"hemis must have shape ({shape[0]},), but got {hemis.shape}")
    missing = [method for method in estimates if method not in (thresholds or {})]
    if thresholds is not None and missing:
        raise ValueError(f"thresholds lacks the method(s) {missing}")
    return vertno, hemis


def window_snr(activations, n_times):
    """The target SNR of the activation window that each sample lies in.

    Parameters
    ----------
    activations : dict
        The ``"activations"`` record of a split's ``manifest.json``: ``onsets`` and
        ``durations`` of the windows in samples, and the ``snr_target`` of each.
    n_times : int
        Samples of the split.

    Returns
    -------
    snr : ndarray of float, shape (n_times,)
        NaN outside the windows.
    """
    snr = np.full(int(n_times), np.nan)
    for onset, duration, target in zip(activations["onsets"], activations["durations"],
                                       activations["snr_target"]):
        snr[int(onset) : int(onset) + int(duration)] = target
    return snr


def sample_snr(amplitudes, active, window_snr):
    """Each active pixel's SNR in that very sample: how far it stands above the noise.

    Each source is scaled so that its whitened RMS over its own activation reaches the
    window's SNR (:func:`meg_unet.activations.dipole_amplitudes`), so in one sample it stands
    at ``window SNR x |amplitude| / RMS of its activation``.  An activation is a run of
    consecutive active samples of one vertex.  Near the zero crossings of its waveform, or in
    the tail of a damped oscillation, a source of an SNR-3 window stands far below SNR 1.

    Parameters
    ----------
    amplitudes : ndarray, shape (n_vertices, n_times)
        True amplitudes.
    active : ndarray of bool, same shape
        Where a source is active.
    window_snr : ndarray, shape (n_times,)
        Target SNR of the window of each sample (:func:`window_snr`).

    Returns
    -------
    snr : ndarray of float, same shape as ``amplitudes``
        0 on silent pixels.
    """
    magnitude = np.abs(np.asarray(amplitudes, dtype=np.float64))
    window_snr = np.asarray(window_snr, dtype=np.float64)
    if window_snr.shape != magnitude.shape[1:]:
        raise ValueError(f"window_snr must have shape ({magnitude.shape[1]},), but got "
                         f"{window_snr.shape}")
    snr = np.zeros(magnitude.shape)
    for row in np.flatnonzero(active.any(axis=1)):
        edges = np.diff(np.concatenate([[0], active[row].astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            run = magnitude[row, start:stop]
            snr[row, start:stop] = window_snr[start:stop] * run / np.sqrt(np.mean(run**2))
    return snr
