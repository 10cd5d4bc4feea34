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
3. **Refit** (:func:`refit_sources`): the whitened sensor data are fitted by least squares with
   the gain columns of the events' vertices and their mesh neighbours, each event's source on
   its own samples, overlapping events together.  Candidates enter greedily, the one that
   explains most of the remaining data first (an orthogonal matching pursuit restricted to
   the network's candidates); then the weakest is dropped while one explains less than an
   information criterion asks of noise (:data:`PENALTY`): a candidate that does not explain
   data is a ghost.  The fit gives moments (A m) and the share of the data it explains.

The same pursuit over *every* vertex of the source space is the greedy sparse solver the
network is compared with (:func:`matching_pursuit`): the network's job in this path is to say
where and when to look, which makes the fit cheaper and, where the network is right, harder to
fool by noise (``docs/sources.md`` has the measurements).

Whitening
    :func:`inverse_gain` reads the whitened gain matrix back out of the inverse operator that
    the network's inputs were computed with (its noise covariance, projectors and bad
    channels), so that the noise of whitened data has unit variance per row and the
    information criterion can estimate it (the criterion takes the noise level from the
    residual: real and simulated recordings are often noisier than their covariance says).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "EVENT_COLUMNS",
    "PENALTY",
    "PURSUIT_PENALTY",
    "SourceFit",
    "WhitenedGain",
    "events_table",
    "extract_sources",
    "join_events",
    "match_sources",
    "matching_pursuit",
    "mesh_peaks",
    "read_events",
    "refit_sources",
    "sparse_estimate",
    "write_events",
    "inverse_gain",
]

#: Columns of the table of events (:func:`extract_sources`, ``<split>-events.tsv``).
EVENT_COLUMNS = (
    "row", "vertex", "hemi", "x_mm", "y_mm", "z_mm", "onset_s", "offset_s", "peak_s",
    "amplitude_nam", "probability", "explained_variance",
)

#: Default price of a source in the refit of :func:`extract_sources` (:func:`refit_sources`),
#: in multiples of the BIC's per moment, and in the matching pursuit over every vertex.  Each
#: was chosen on the quick profile's validation splits (one source per window, and 2-5) as the
#: best mean F1 of the two, the refit on whole splits as predict.py runs it, the pursuit on the
#: activation windows it is given (``docs/sources.md``).  A lower price keeps ghosts next to
#: single sources, a higher one loses sources among several.
PENALTY = 24.0
PURSUIT_PENALTY = 16.0

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
# Whitened forward model
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WhitenedGain:
    """The forward model of the map's rows, whitened by the noise covariance.

    Attributes
    ----------
    gain : ndarray, shape (n_whitened, n_rows * n_orient)
        Whitened gain; row ``r``'s columns are ``r * n_orient : (r + 1) * n_orient`` (for
        ``n_orient = 3``: two tangential orientations, then the cortical normal).
    whitener : ndarray, shape (n_whitened, n_channels)
        Whitens the data of ``ch_names``.
    ch_names : list of str
        The channels the whitener takes, in its order (good data channels of the forward).
    n_orient : int
        1 (fixed, normal to the cortex) or 3 (free orientation).
    """

    gain: np.ndarray
    whitener: np.ndarray
    ch_names: list
    n_orient: int

    def whiten(self, data, info_ch_names):
        """Whiten sensor data whose rows are ``info_ch_names``."""
        index = {name: i for i, name in enumerate(info_ch_names)}
        return self.whitener @ np.asarray(data)[[index[name] for name in self.ch_names]]


def inverse_gain(inv, vertices, n_orient=None, nave=1):
    """The whitened gain of the map's rows, read back out of an inverse operator.

    An MNE inverse operator holds the singular value decomposition of the whitened gain
    weighted by the source covariance, ``U S V^T = W G R^(1/2)`` (:func:`mne.minimum_norm.
    make_inverse_operator`), with the whitener ``W`` and the projector.  Undoing the weights
    gives back the whitened gain ``W G`` exactly, so the refit needs nothing beyond the
    operator that the network's inputs were computed with, for simulated splits and for
    recordings alike.

    Parameters
    ----------
    inv : mne.minimum_norm.InverseOperator
        The inverse operator (as read from ``-inv.fif``; it is prepared here for one average).
    vertices : list of array of int
        ``[lh_vertno, rh_vertno]`` of the map's rows, in their order (one may be empty).
    n_orient : 1 | 3 | None
        1: the orientation normal to the cortex only; 3: free orientation (a loose or free
        inverse only); None: the inverse's own (3 for loose or free, 1 for fixed).
    nave : int
        Trials averaged in the data (an evoked response's ``nave``): their noise is that much
        smaller, and the whitening says so.

    Returns
    -------
    whitened : WhitenedGain
    """
    import mne

    own = 3 if inv["source_ori"] == mne.io.constants.FIFF.FIFFV_MNE_FREE_ORI else 1
    n_orient = own if n_orient is None else n_orient
    if n_orient not in (1, 3) or n_orient > own:
        raise ValueError(
            f"n_orient must be 1 or, for a loose or free inverse, 3; but got {n_orient!r} "
            f"for an inverse with {own} orientation(s) per source"
        )
    prepared = mne.minimum_norm.prepare_inverse_operator(
        inv, nave=nave, lambda2=1.0, method="MNE", verbose=False
    )
    fields = prepared["eigen_fields"]["data"].T  # (n_channels, k)
    leads = prepared["eigen_leads"]["data"]  # (n_sources * own, k)
    if prepared["eigen_leads_weighted"]:
        raise ValueError("inverse operators with weighted eigen leads are not supported")
    source_std = np.sqrt(prepared["source_cov"]["data"])
    columns, offset = [], 0
    for hemi_index, hemi_vertno in enumerate(vertices):
        inv_vertno = np.asarray(prepared["src"][hemi_index]["vertno"])
        hemi_vertno = np.asarray(hemi_vertno, dtype=np.int64)
        position = np.searchsorted(inv_vertno, hemi_vertno)
        if len(hemi_vertno) and (
            np.any(position >= len(inv_vertno))
            or not np.array_equal(inv_vertno[position], hemi_vertno)
        ):
            raise ValueError("the inverse operator lacks some of the map's vertices")
        first = (offset + position) * own + (own - n_orient)  # the normal is the last
        columns.append((first[:, np.newaxis] + np.arange(n_orient)).ravel())
        offset += len(inv_vertno)
    columns = np.concatenate(columns)
    gain = (fields * prepared["sing"]) @ leads[columns].T / source_std[columns]
    whitener = prepared["whitener"] @ prepared["proj"]
    return WhitenedGain(gain, whitener, list(prepared["eigen_fields"]["col_names"]), n_orient)


# --------------------------------------------------------------------------------------------
# The refit: a matching pursuit over candidates
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SourceFit:
    """The least-squares fit of whitened data with a few sources, each over its own samples.

    Attributes
    ----------
    rows : ndarray of int, shape (n_sources,)
        Rows of the sources kept, in the order they entered.
    groups : ndarray of int, shape (n_sources,)
        The candidate group each came from.
    moments : ndarray, shape (n_sources, n_orient, n_times)
        Dipole moments (A m) per orientation; zero outside the source's group's span.
    explained_variance : ndarray, shape (n_sources,)
        ``1 - |residual|^2 / |data|^2`` of the whitened data within each source's span.
    total_explained_variance : float
        The same over all samples.
    unique : ndarray, shape (n_sources,)
        What each source alone explains: how much the squared residual would grow without it.
    """

    rows: np.ndarray
    groups: np.ndarray
    moments: np.ndarray
    explained_variance: np.ndarray
    total_explained_variance: float
    unique: np.ndarray

    @property
    def amplitudes(self):
        """Amplitude per source and sample: signed for one orientation, else the norm."""
        if self.moments.shape[1] == 1:
            return self.moments[:, 0]
        return np.linalg.norm(self.moments, axis=1)


def _explained(data, fitted_columns):
    """Squared norm of ``data`` explained by the span of each candidate's columns.

    ``fitted_columns`` is (n_whitened, n_candidates, n_orient), already orthogonal to the
    sources kept so far; ``data`` is the residual.
    """
    n_whitened, n_candidates, n_orient = fitted_columns.shape
    if n_orient == 1:
        columns = fitted_columns[:, :, 0]
        norms = np.linalg.norm(columns, axis=0)
        # a candidate whose column the kept sources already span explains nothing new
        usable = norms > 1e-9 * max(float(norms.max(initial=0.0)), 1e-300)
        projections = (columns[:, usable] / norms[usable]).T @ data
        explained = np.zeros(n_candidates)
        explained[usable] = np.einsum("kt,kt->k", projections, projections)
        return explained
    q, r = np.linalg.qr(fitted_columns.transpose(1, 0, 2))  # batched over candidates
    scale = np.abs(np.diagonal(r, axis1=1, axis2=2))
    usable = scale > 1e-9 * max(float(scale.max(initial=0.0)), 1e-300)
    projections = np.matmul(q.transpose(0, 2, 1), data) * usable[:, :, np.newaxis]
    return np.einsum("kot,kot->k", projections, projections)


def _orthonormal(basis, new):
    """Extend an orthonormal basis by the part of ``new`` (n_whitened, m) outside it."""
    new = new - basis @ (basis.T @ new)
    q, r = np.linalg.qr(new)
    keep = np.abs(np.diag(r)) > 1e-12 * max(float(np.abs(r).max(initial=0.0)), 1e-300)
    return np.hstack([basis, q[:, keep]])


def _check_spans(spans, n_groups, n_times):
    if spans is None:
        return np.zeros(n_groups, dtype=np.int64), np.full(n_groups, n_times, dtype=np.int64)
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if len(spans) != n_groups:
        raise ValueError(f"{len(spans)} spans for {n_groups} groups")
    if np.any(spans[:, 0] < 0) or np.any(spans[:, 1] > n_times) or np.any(
            spans[:, 1] <= spans[:, 0]):
        raise ValueError(f"spans must lie within 0:{n_times} and not be empty")
    return spans[:, 0], spans[:, 1]


def refit_sources(data, gain, groups, n_orient=1, penalty=PENALTY, spans=None,
                  max_sources=None, noise_variance=None):
    """Fit whitened data with at most one source per candidate group, greedily.

    Forward, the candidate that explains most of what is left enters first (an orthogonal
    matching pursuit), while the plain Bayesian information criterion says it explains data.
    Backward, each source is judged by what the others cannot explain without it, against the
    noise variance that the whole fit leaves, and the weakest is dropped while one costs more
    than it explains (``penalty``).  Judging in two passes matters with several sources: in the forward pass the
    first one is measured against the others' signal as if it were noise.  Each group's source
    is active only within the group's span of samples.

    Parameters
    ----------
    data : ndarray, shape (n_whitened, n_times)
        Whitened sensor data (unit noise variance per row).
    gain : ndarray, shape (n_whitened, n_rows * n_orient)
        Whitened gain (:func:`inverse_gain`).
    groups : sequence of sequence of int
        Candidate rows, one group per event (its vertices and their mesh neighbours); one group
        per row gives a plain matching pursuit (:func:`matching_pursuit`).
    n_orient : 1 | 3
        Columns of ``gain`` per row.
    penalty : float
        What a source must pay for, in multiples of the Bayesian information criterion's
        ``log(n)`` per parameter it adds (``n_orient`` moments per sample of its span; ``n``
        the number of values in ``data``): 1 is the BIC itself (see :data:`PENALTY`).
    spans : sequence of (start, stop) | None
        Samples ``start:stop`` of each group's source; None: every sample.
    max_sources : int | None
        Stop after this many sources.
    noise_variance : float | None
        Variance of the whitened noise in the backward pass.  None estimates it from the
        residual of the whole fit (and the forward pass always scores a candidate by
        ``n log(RSS before / RSS after)``, the criterion with the variance unknown).  Whitened
        data whose noise is louder than the noise covariance says (on the quick profile's test
        split, a median of 2.3 times: other noise kinds and levels, artifact residues) would
        otherwise let noise pass for sources.

    Returns
    -------
    fit : SourceFit
    """
    data = np.asarray(data, dtype=np.float64)
    gain = np.asarray(gain, dtype=np.float64)
    if data.ndim != 2 or gain.ndim != 2 or gain.shape[0] != data.shape[0]:
        raise ValueError(
            f"data {data.shape} and gain {gain.shape} must be 2-D with the same rows"
        )
    if gain.shape[1] % n_orient:
        raise ValueError(f"gain has {gain.shape[1]} columns, not a multiple of {n_orient}")
    n_whitened, n_times = data.shape
    if not penalty >= 0:
        raise ValueError(f"penalty must be >= 0, but got {penalty!r}")
    starts, stops = _check_spans(spans, len(groups), n_times)
    group_of = np.concatenate(
        [np.full(len(g), k) for k, g in enumerate(groups)] or [np.zeros(0, int)]
    ).astype(np.int64)
    rows = np.concatenate(
        [np.asarray(g, dtype=np.int64) for g in groups] or [np.zeros(0, int)]
    )
    # the BIC's price of each group's source: log(n) per moment; the backward pass asks
    # ``penalty`` times it, the forward pass at most once it
    bic = np.log(max(n_whitened * n_times, 2)) * n_orient * (stops - starts)
    columns = gain.reshape(n_whitened, -1, n_orient)  # (w, rows, orient)
    # elementary intervals: within each, every group's source is either on or off
    bounds = np.unique(np.concatenate([[0, n_times], starts, stops]))
    intervals = list(zip(bounds[:-1], bounds[1:]))
    inside = [(starts[group_of] <= a) & (stops[group_of] >= b) for a, b in intervals]
    bases = [np.zeros((n_whitened, 0)) for _ in intervals]
    residual = data.copy()
    alive = np.ones(len(rows), dtype=bool)
    kept = []  # (row, group)
    limit = len(groups) if max_sources is None else int(max_sources)
    # forward: add candidates while the plain BIC (variance unknown) says they explain data;
    # what each candidate explains is kept per interval and redone only where a source entered
    entry_cost = min(float(penalty), 1.0) * bic[group_of]
    interval_gain = np.zeros((len(intervals), len(rows)))

    def refresh(i):
        a, b = intervals[i]
        interval_gain[i] = 0.0
        index = np.flatnonzero(alive & inside[i])
        if len(index):
            block = columns[:, rows[index]].reshape(n_whitened, -1)  # (w, k * orient)
            block = block - bases[i] @ (bases[i].T @ block)
            interval_gain[i, index] = _explained(
                residual[:, a:b], block.reshape(n_whitened, len(index), n_orient))

    for i in range(len(intervals)):
        refresh(i)
    while alive.any() and len(kept) < limit:
        gained = interval_gain.sum(axis=0)
        rss = max(float(np.sum(residual**2)), 1e-300)
        score = data.size * np.log(rss / np.maximum(rss - gained, 1e-300 * rss))
        net = np.where(alive, score - entry_cost, -np.inf)
        best = int(np.argmax(net))
        if not net[best] > 0:
            break
        row, group = int(rows[best]), int(group_of[best])
        kept.append((row, group))
        # one source per group; a row taken leaves every group it is in
        alive &= (group_of != group) & (rows != row)
        for i, (a, b) in enumerate(intervals):
            if starts[group] <= a and b <= stops[group]:
                bases[i] = _orthonormal(bases[i], columns[:, row])
                residual[:, a:b] = data[:, a:b] - bases[i] @ (bases[i].T @ data[:, a:b])
                refresh(i)

    def fit_interval(i, chosen):
        """Least squares of one interval: each source's moments and unique contribution
        (what the residual would grow by without it), and the squared residual."""
        a, b = intervals[i]
        on = [key for key in chosen if starts[key[1]] <= a and b <= stops[key[1]]]
        if not on:
            return {}, {}, float(np.sum(data[:, a:b] ** 2))
        selected = columns[:, [r for r, _ in on]].reshape(n_whitened, -1)
        inverse_gram = np.linalg.pinv(selected.T @ selected)
        solution = inverse_gram @ (selected.T @ data[:, a:b])
        left = data[:, a:b] - selected @ solution
        unique, moments = {}, {}
        for k, key in enumerate(on):
            # leaving a block of columns out of a least-squares fit raises the residual by
            # beta^T (inverse Gram block)^-1 beta, summed over the samples
            block = slice(k * n_orient, (k + 1) * n_orient)
            beta = solution[block]
            unique[key] = float(np.sum(beta * np.linalg.solve(
                inverse_gram[block, block] + 1e-300 * np.eye(n_orient), beta)))
            moments[key] = beta
        return unique, moments, float(np.sum(left**2))

    # backward: judge each source by what the others cannot explain without it, against the
    # noise left by the whole fit, and drop the weakest while one does not pay its way; only
    # the intervals of a dropped source are fitted again
    group_cost = float(penalty) * bic
    fits = [fit_interval(i, kept) for i in range(len(intervals))]
    unique = dict.fromkeys(kept, 0.0)
    for interval_unique, _, _ in fits:
        for key, value in interval_unique.items():
            unique[key] += value
    while kept:
        rss = sum(f[2] for f in fits)
        n_parameters = sum(n_orient * (stops[g] - starts[g]) for _, g in kept)
        variance = noise_variance if noise_variance is not None else max(
            rss / max(data.size - n_parameters, 1), 1e-300)
        nets = [unique[key] / variance - group_cost[key[1]] for key in kept]
        worst = int(np.argmin(nets))
        if nets[worst] > 0:
            break
        dropped = kept.pop(worst)
        del unique[dropped]
        for i, (a, b) in enumerate(intervals):
            if starts[dropped[1]] <= a and b <= stops[dropped[1]]:
                for key, value in fits[i][0].items():
                    if key != dropped:
                        unique[key] -= value
                fits[i] = fit_interval(i, kept)
                for key, value in fits[i][0].items():
                    unique[key] += value
    moments = np.zeros((len(kept), n_orient, n_times))
    residual = data.copy()
    for i, (a, b) in enumerate(intervals):
        if fits[i][1]:
            on = list(fits[i][1])
            for key in on:
                moments[kept.index(key), :, a:b] = fits[i][1][key]
            selected = columns[:, [r for r, _ in on]].reshape(n_whitened, -1)
            residual[:, a:b] -= selected @ np.concatenate([fits[i][1][key] for key in on])
    unique = np.array([unique[key] for key in kept])
    kept_rows = np.asarray([r for r, _ in kept], dtype=np.int64)
    kept_groups = np.asarray([g for _, g in kept], dtype=np.int64)

    def explained(columns_of):
        total = float(np.sum(data[:, columns_of] ** 2))
        return 1.0 - float(np.sum(residual[:, columns_of] ** 2)) / total if total > 0 else 0.0

    per_source = np.array([explained(slice(starts[g], stops[g])) for g in kept_groups])
    return SourceFit(kept_rows, kept_groups, moments, per_source, explained(slice(None)),
                     unique)


def matching_pursuit(data, gain, n_orient=1, penalty=PURSUIT_PENALTY, max_sources=None,
                     noise_variance=None):
    """Simultaneous orthogonal matching pursuit over every row: the greedy sparse solver.

    :func:`refit_sources` with each row its own candidate group, so that it differs from the
    network's refit only in where it looks.  Parameters and result as there.
    """
    n_rows = np.asarray(gain).shape[1] // n_orient
    return refit_sources(data, gain, [[row] for row in range(n_rows)], n_orient=n_orient,
                         penalty=penalty, max_sources=max_sources,
                         noise_variance=noise_variance)


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
        The same samples' whitened sensor data (:meth:`WhitenedGain.whiten`), or a function
        ``(start, stop) -> ndarray`` that returns them for samples ``start:stop`` (so that a
        long recording is read only where there are events).
    gain : ndarray, shape (n_whitened, n_vertices * n_orient)
        Whitened gain of the map's rows (:func:`inverse_gain`).
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
        The refit's criterion (:func:`refit_sources`).
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
