"""Sources out of the U-Net's probability map: peaks on the mesh, events over time, and a refit.

The network says, per vertex and sample, how likely a source is active there.  A researcher
wants a short answer instead: which sources, where, when and how strong.  This module turns the
(calibrated) probability map into that answer in three steps, on plain arrays:

1. **Peaks** (:func:`mesh_peaks`): in each sample, the vertices whose probability reaches the
   detection threshold and is the highest among their mesh neighbours (non-maximum suppression
   on the cortical mesh, ``rings`` steps of it).  Two maxima on neighbouring vertices merge
   into one; distant ones stay apart.
2. **Events** (:func:`join_events`): peaks that follow one another in time on the same vertex
   or on mesh neighbours, with at most ``max_gap`` samples between them, form one event
   (vertex of its highest probability, onset, offset, peak sample, probability).
3. **Refit** (:func:`meg_unet.refit.refit_sources`): the whitened sensor data are fitted by
   least squares with the gain columns of the events' vertices and their mesh neighbours, each
   event's source on its own samples, overlapping events together.  Candidates enter greedily,
   the one that explains most of the remaining data first (an orthogonal matching pursuit
   restricted to the network's candidates); then the weakest is dropped while one explains less
   than an information criterion asks of noise (:data:`meg_unet.refit.PENALTY`): a candidate
   that does not explain data is a ghost.  The fit gives moments (A m) and the share of the
   data it explains.

The same pursuit over *every* vertex of the source space is the greedy sparse solver the
network is compared with (:func:`meg_unet.refit.matching_pursuit`): the network's job in this
path is to say where and when to look, which makes the fit cheaper and, where the network is
right, harder to fool by noise (``docs/sources.md`` has the measurements).

Whitening
    :func:`meg_unet.refit.inverse_gain` reads the whitened gain matrix back out of the inverse
    operator that the network's inputs were computed with (its noise covariance, projectors and
    bad channels), so that the noise of whitened data has unit variance per row and the
    information criterion can estimate it (the criterion takes the noise level from the
    residual: real and simulated recordings are often noisier than their covariance says).
"""

from __future__ import annotations

import numpy as np

from .refit import PENALTY, refit_sources

__all__ = [
    "EVENT_COLUMNS",
    "events_table",
    "extract_sources",
    "join_events",
    "match_sources",
    "mesh_peaks",
    "read_events",
    "sparse_estimate",
    "write_events",
]

#: Columns of the table of events (:func:`extract_sources`, ``<split>-events.tsv``).
EVENT_COLUMNS = (
    "row", "vertex", "hemi", "x_mm", "y_mm", "z_mm", "onset_s", "offset_s", "peak_s",
    "amplitude_nam", "probability", "explained_variance",
)


_TIME_CHUNK = 4096  # samples per block of the peak search: bounds the edge x sample array


# --------------------------------------------------------------------------------------------
# Peaks and events
# --------------------------------------------------------------------------------------------


def _check_map(probability):
    probability = np.asarray(probability, dtype=np.float64)
    if probability.ndim != 2:
        raise ValueError(
            f"probability must be 2-D (n_vertices, n_times), but got shape {probability.shape}"
        )
    return probability


def _adjacency_csr(adjacency, n_vertices, rings=1):
    """Boolean adjacency without self-loops, widened to ``rings`` steps on the mesh."""
    from scipy import sparse

    adjacency = sparse.csr_array(adjacency, dtype=bool)
    if adjacency.shape != (n_vertices, n_vertices):
        raise ValueError(
            f"adjacency has shape {adjacency.shape}, but the map has {n_vertices} vertices"
        )
    if isinstance(rings, bool) or not isinstance(rings, (int, np.integer)) or rings < 1:
        raise ValueError(f"rings must be an integer >= 1, but got {rings!r}")
    widened = adjacency
    for _ in range(int(rings) - 1):
        widened = (widened + (widened @ adjacency).astype(bool)).astype(bool)
    widened = sparse.csr_array(widened)
    widened.setdiag(False)
    widened.eliminate_zeros()
    return widened


def mesh_peaks(probability, adjacency, threshold, rings=1):
    """Local maxima of a map on the cortical mesh, sample by sample.

    Parameters
    ----------
    probability : array-like, shape (n_vertices, n_times)
        The map (e.g. the U-Net's calibrated probability of "active").
    adjacency : scipy sparse array, shape (n_vertices, n_vertices)
        Mesh adjacency of the rows (:func:`mne.spatial_src_adjacency` restricted to the rows,
        or :func:`meg_unet.metrics.mesh_adjacency`).
    threshold : float
        A peak's value must be at least this.
    rings : int
        Suppression radius in mesh steps: a peak is the maximum of all vertices within
        ``rings`` edges of it.

    Returns
    -------
    peaks : ndarray of bool, shape (n_vertices, n_times)
        True where a vertex is a peak.  Ties between neighbours go to the lower row, so a
        plateau gives one peak.
    """
    from scipy import sparse

    probability = _check_map(probability)
    n_vertices, n_times = probability.shape
    near = _adjacency_csr(adjacency, n_vertices, rings).tocoo()
    centre, neighbour = near.row, near.col
    # incidence: which edges start at each vertex, to count the neighbours that beat it
    incidence = sparse.csr_array(
        (np.ones(len(centre)), (centre, np.arange(len(centre)))),
        shape=(n_vertices, max(len(centre), 1)),
    )
    lower = (neighbour < centre)[:, np.newaxis]
    peaks = probability >= threshold
    for start in range(0, n_times, _TIME_CHUNK):
        block = probability[:, start : start + _TIME_CHUNK]
        mine, theirs = block[centre], block[neighbour]
        beaten = (theirs > mine) | ((theirs == mine) & lower)
        if len(centre):
            peaks[:, start : start + _TIME_CHUNK] &= (incidence @ beaten.astype(np.float64)) == 0
    return peaks


def join_events(peaks, probability, adjacency, max_gap=2):
    """Join peaks over time into events.

    A peak continues an event when the event had a peak on the same vertex or a mesh neighbour
    at most ``max_gap`` samples before it (the nearest such event in time, then the most
    probable, when several qualify).

    Parameters
    ----------
    peaks : array-like of bool, shape (n_vertices, n_times)
        Peaks (:func:`mesh_peaks`).
    probability : array-like, shape (n_vertices, n_times)
        The map the peaks come from.
    adjacency : scipy sparse array, shape (n_vertices, n_vertices)
        Mesh adjacency of the rows.
    max_gap : int
        Samples without a peak that an event may bridge.

    Returns
    -------
    events : list of dict
        In order of onset, each with ``row`` (the row of the event's highest probability),
        ``rows`` (every row it peaked on), ``onset`` and ``offset`` (samples; the event covers
        ``onset:offset``), ``peak`` (sample of the highest probability) and ``probability``
        (that probability).
    """
    probability = _check_map(probability)
    peaks = np.asarray(peaks, dtype=bool)
    if peaks.shape != probability.shape:
        raise ValueError(
            f"peaks have shape {peaks.shape} but the probability map {probability.shape}"
        )
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise ValueError(f"max_gap must be an integer >= 0, but got {max_gap!r}")
    near = _adjacency_csr(adjacency, probability.shape[0])
    neighbours = np.split(near.indices, near.indptr[1:-1])
    events, open_at = [], {}  # open_at: row -> indices of the events that peaked there
    times, rows = np.nonzero(peaks.T)  # sorted by time, then row
    for time, row in zip(times, rows):
        value = probability[row, time]
        best = None
        for candidate in (row, *neighbours[row]):
            recent = open_at.get(candidate)
            if not recent:
                continue
            # forget the events that ended too long ago: the lookups stay short
            recent.intersection_update(
                [i for i in recent if time - events[i]["last"] <= max_gap + 1])
            for index in recent:
                event = events[index]
                if event["last"] == time:  # already holds another peak of this very sample
                    continue
                key = (-(time - event["last"]), event["probability"])
                if best is None or key > best[0]:
                    best = (key, index)
        if best is None:
            events.append({"row": int(row), "rows": {int(row)}, "onset": int(time),
                           "last": int(time), "peak": int(time), "probability": float(value)})
            index = len(events) - 1
        else:
            index = best[1]
        event = events[index]
        event["last"] = int(time)
        event["rows"].add(int(row))
        open_at.setdefault(int(row), set()).add(index)
        if value > event["probability"]:
            event.update(row=int(row), peak=int(time), probability=float(value))
    return [
        {"row": e["row"], "rows": sorted(e["rows"]), "onset": e["onset"],
         "offset": e["last"] + 1, "peak": e["peak"], "probability": e["probability"]}
        for e in events
    ]


# --------------------------------------------------------------------------------------------
# The whole path
# --------------------------------------------------------------------------------------------


def _fit_spans(events, pad, min_span, n_times):
    """The samples each event's source is fitted on: its own, ``pad`` more on each side, and
    at least ``min_span`` in all (centred on the event), within the recording."""
    spans = []
    for event in events:
        extra = max(pad, -(-(min_span - (event["offset"] - event["onset"])) // 2))
        spans.append((max(event["onset"] - extra, 0), min(event["offset"] + extra, n_times)))
    return spans


def _segments(spans):
    """Stretches of samples where the events' fit spans overlap, with their members."""
    segments = []
    for start, stop, k in sorted((a, b, k) for k, (a, b) in enumerate(spans)):
        if segments and start < segments[-1][1]:
            segments[-1][1] = max(segments[-1][1], stop)
            segments[-1][2].append(k)
        else:
            segments.append([start, stop, [k]])
    return segments


def extract_sources(probability, whitened_data, gain, adjacency, threshold, n_orient=1,
                    rings=1, max_gap=2, pad=0, min_span=0, penalty=PENALTY,
                    noise_variance=None, fit_over="event", progress=False):
    """From a probability map and the sensor data to sources: peaks, events and a refit.

    Parameters
    ----------
    probability : array-like, shape (n_vertices, n_times)
        The calibrated probability of "active".
    whitened_data : ndarray, shape (n_whitened, n_times) | callable
        The same samples' whitened sensor data (:meth:`meg_unet.refit.WhitenedGain.whiten`),
        or a function ``(start, stop) -> ndarray`` that returns them for samples
        ``start:stop`` (so that a long recording is read only where there are events).
    gain : ndarray, shape (n_whitened, n_vertices * n_orient)
        Whitened gain of the map's rows (:func:`meg_unet.refit.inverse_gain`).
    adjacency : scipy sparse array, shape (n_vertices, n_vertices)
        Mesh adjacency of the rows.
    threshold : float
        Detection threshold of the map (chosen on the validation split).
    n_orient : 1 | 3
        Columns of ``gain`` per row.
    rings : int
        Non-maximum suppression radius, and the candidate neighbourhood of the refit, in mesh
        steps.
    max_gap : int
        Samples without a peak that an event bridges.
    pad : int
        Samples added on each side of an event for its fit.
    min_span : int
        Samples an event's fit covers at least (centred on the event): a ghost event of a few
        samples would otherwise be fitted to a transient of the noise there.
    penalty, noise_variance : float
        The refit's criterion (:func:`meg_unet.refit.refit_sources`).
    fit_over : "event" | "segment"
        The samples each candidate's moment is fitted on: its own event's (with ``pad`` and
        ``min_span``), or the whole stretch of overlapping events it belongs to.  On whole
        validation splits the event's own samples were better (F1 0.74 against 0.61 on single
        sources): the stretches chain many events, and a source active for a tenth of its
        stretch cannot pay for moments over all of it (``docs/sources.md``).

    progress : bool
        Show a progress bar over the stretches of overlapping events.

    Returns
    -------
    sources : list of dict
        One per kept source, in order of onset: ``row``, ``onset``, ``offset``, ``peak``
        (samples), ``probability`` (the event's peak probability), ``amplitude`` (the largest
        fitted moment within the event, A m), ``explained_variance`` (the share of the
        whitened data of the samples it was fitted on that the fit explains), and ``moments`` /
        ``start`` (the fitted amplitude over the samples it was fitted on, from sample
        ``start``).
    """
    from tqdm.auto import tqdm

    probability = _check_map(probability)
    n_vertices, n_times = probability.shape
    if fit_over not in ("segment", "event"):
        raise ValueError(f"fit_over must be 'segment' or 'event', but got {fit_over!r}")
    if callable(whitened_data):
        data_of = whitened_data
    else:
        if whitened_data.shape[1] != n_times:
            raise ValueError(
                f"the data have {whitened_data.shape[1]} samples but the map {n_times}"
            )

        def data_of(start, stop):
            return whitened_data[:, start:stop]
    peaks = mesh_peaks(probability, adjacency, threshold, rings=rings)
    events = join_events(peaks, probability, adjacency, max_gap=max_gap)
    near = _adjacency_csr(adjacency, n_vertices, rings)
    sources = []
    fit_spans = _fit_spans(events, pad, min_span, n_times)
    for start, stop, members in tqdm(_segments(fit_spans), desc="sources", unit="stretch",
                                     disable=not progress):
        groups = [
            sorted({row for r in events[k]["rows"] for row in (r, *near.indices[
                near.indptr[r] : near.indptr[r + 1]])})
            for k in members
        ]
        spans = [(fit_spans[k][0] - start, fit_spans[k][1] - start) for k in members]
        if fit_over == "segment":
            spans = [(0, stop - start)] * len(members)
        fit = refit_sources(data_of(start, stop), gain, groups, n_orient=n_orient,
                            penalty=penalty, spans=spans, noise_variance=noise_variance)
        for row, group, amplitude, explained in zip(fit.rows, fit.groups, fit.amplitudes,
                                                    fit.explained_variance):
            event = events[members[group]]
            first, last = spans[group]
            inside = amplitude[event["onset"] - start : event["offset"] - start]
            sources.append({
                "row": int(row), "onset": event["onset"], "offset": event["offset"],
                "peak": event["peak"], "probability": event["probability"],
                "amplitude": float(np.max(np.abs(inside))) if inside.size else 0.0,
                "explained_variance": float(explained),
                "start": int(start + first), "moments": amplitude[first:last],
            })
    sources.sort(key=lambda s: (s["onset"], s["row"]))
    return sources


# --------------------------------------------------------------------------------------------
# Outputs: the table of events and the sparse source estimate
# --------------------------------------------------------------------------------------------


def events_table(sources, vertices, positions, sfreq, tmin=0.0):
    """The table of events of :func:`extract_sources`' sources.

    Parameters
    ----------
    sources : list of dict
        From :func:`extract_sources`.
    vertices : list of array of int
        ``[lh_vertno, rh_vertno]`` of the map's rows in their order (one may be empty).
    positions : array, shape (n_vertices, 3)
        Vertex positions of the rows (m, MRI coordinates; MNI on fsaverage).
    sfreq : float
        Sampling rate (Hz).
    tmin : float
        Time of sample 0 (s).

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`EVENT_COLUMNS`: ``row`` and ``vertex``, ``hemi``, the position in mm,
        onset, offset (the first sample after the event) and peak time in s, the largest
        refitted moment within the event in nAm, the event's peak probability and the
        explained variance of the fit of its stretch of data.
    """
    import pandas as pd

    vertno = np.concatenate([np.asarray(v, dtype=np.int64) for v in vertices])
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    rows = np.asarray([s["row"] for s in sources], dtype=np.int64)
    table = pd.DataFrame({
        "row": rows,
        "vertex": vertno[rows],
        "hemi": np.where(rows < len(vertices[0]), "lh", "rh"),
        "x_mm": 1e3 * positions[rows, 0],
        "y_mm": 1e3 * positions[rows, 1],
        "z_mm": 1e3 * positions[rows, 2],
        "onset_s": [tmin + s["onset"] / sfreq for s in sources],
        "offset_s": [tmin + s["offset"] / sfreq for s in sources],
        "peak_s": [tmin + s["peak"] / sfreq for s in sources],
        "amplitude_nam": [1e9 * s["amplitude"] for s in sources],
        "probability": [s["probability"] for s in sources],
        "explained_variance": [s["explained_variance"] for s in sources],
    }, columns=list(EVENT_COLUMNS))
    return table.astype({"x_mm": float, "y_mm": float, "z_mm": float, "onset_s": float,
                         "offset_s": float, "peak_s": float, "amplitude_nam": float,
                         "probability": float, "explained_variance": float})


def write_events(table, fname):
    """Write a table of events as tab-separated text (six significant digits)."""
    from .io import atomic_path

    with atomic_path(fname) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return fname


def read_events(fname):
    """Read a table of events written by :func:`write_events`."""
    import pandas as pd

    table = pd.read_csv(fname, sep="\t", dtype={"hemi": str})
    missing = [c for c in EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{fname} is not a table of events: it lacks {', '.join(missing)}")
    return table[list(EVENT_COLUMNS)]


def sparse_estimate(sources, vertices, n_times, tmin, tstep, subject=None):
    """The refitted moments as a sparse :class:`mne.SourceEstimate` (only the sources' vertices).

    Parameters
    ----------
    sources : list of dict
        From :func:`extract_sources`.
    vertices : list of array of int
        ``[lh_vertno, rh_vertno]`` of the map's rows in their order.
    n_times : int
        Samples of the map.
    tmin, tstep : float
        Time of sample 0 and sampling interval (s).
    subject : str | None
        The subject.

    Returns
    -------
    stc : mne.SourceEstimate
        One row per vertex with a source, in A m: the fitted moment over the stretch that was
        fitted, zero elsewhere (like MxNE's output).
    """
    import mne

    n_lh = len(vertices[0])
    by_row = {}
    for source in sources:
        row = by_row.setdefault(source["row"], np.zeros(n_times, dtype=np.float32))
        stop = source["start"] + len(source["moments"])
        row[source["start"] : stop] = source["moments"]
    rows = sorted(by_row)
    lh = [r for r in rows if r < n_lh]
    rh = [r for r in rows if r >= n_lh]
    stc_vertices = [np.asarray(vertices[0])[lh].astype(np.int64),
                    np.asarray(vertices[1])[np.asarray(rh, dtype=np.int64) - n_lh].astype(
                        np.int64)]
    # MNE wants each hemisphere's vertices sorted
    order = [np.argsort(stc_vertices[0]), np.argsort(stc_vertices[1])]
    data = np.concatenate([
        np.asarray([by_row[r] for r in lh], dtype=np.float32).reshape(-1, n_times)[order[0]],
        np.asarray([by_row[r] for r in rh], dtype=np.float32).reshape(-1, n_times)[order[1]],
    ])
    return mne.SourceEstimate(data, [v[o] for v, o in zip(stc_vertices, order)], tmin, tstep,
                              subject=subject)


# --------------------------------------------------------------------------------------------
# Scoring a set of sources
# --------------------------------------------------------------------------------------------


def match_sources(estimated, true, radius=0.02):
    """Match estimated to true source positions one to one, nearest first, within a radius.

    Parameters
    ----------
    estimated, true : array-like, shape (n, 3)
        Positions (m).
    radius : float
        Largest distance of a match (m).

    Returns
    -------
    pairs : ndarray of int, shape (n_matched, 2)
        (estimated index, true index) of each match; the assignment minimizes the summed
        distance among those with the most matches (Hungarian algorithm).
    distances : ndarray, shape (n_matched,)
        Their distances (m).
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    estimated = np.asarray(estimated, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    if not len(estimated) or not len(true):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    distance = cdist(estimated, true)
    # a pair beyond the radius costs more than any set of pairs within it
    big = 1.0 + radius * (len(estimated) + len(true))
    cost = np.where(distance <= radius, distance, big)
    first, second = linear_sum_assignment(cost)
    keep = distance[first, second] <= radius
    pairs = np.stack([first[keep], second[keep]], axis=1).astype(np.int64)
    return pairs, distance[first[keep], second[keep]]
