"""Fitting whitened sensor data with a few sources: the refit and the matching pursuit.

:func:`inverse_gain` reads the whitened gain matrix back out of the inverse operator that the
network's inputs were computed with (its noise covariance, projectors and bad channels), so
that the noise of whitened data has unit variance per row.  :func:`refit_sources` fits such
data with at most one source per candidate group (the network's events and their mesh
neighbours, in :func:`meg_unet.sources.extract_sources`): candidates enter greedily, the one
that explains most of the remaining data first, and the weakest is then dropped while one
explains less than an information criterion asks of noise (:data:`PENALTY`).
:func:`matching_pursuit` runs the same fit over every vertex: the greedy sparse solver the
network is compared with.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "PENALTY",
    "PURSUIT_PENALTY",
    "SourceFit",
    "WhitenedGain",
    "inverse_gain",
    "matching_pursuit",
    "refit_sources",
]

#: Default price of a source in the refit of :func:`meg_unet.sources.extract_sources`,
#: in multiples of the BIC's per moment, and in the matching pursuit over every vertex.  Each
#: was chosen on the quick profile's validation splits (one source per window, and 2-5) as the
#: best mean F1 of the two, the refit on whole splits as predict.py runs it, the pursuit on the
#: activation windows it is given (``docs/sources.md``).  A lower price keeps ghosts next to
#: single sources, a higher one loses sources among several.
PENALTY = 24.0
PURSUIT_PENALTY = 16.0


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
    than it explains (``penalty``).  Judging in two passes matters with several sources: in the
    forward pass the first one is measured against the others' signal as if it were noise.
    Each group's source is active only within the group's span of samples.

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
    if not penalty >= 0:
        raise ValueError(f"penalty must be >= 0, but got {penalty!r}")
    starts, stops = _check_spans(spans, len(groups), data.shape[1])
    fit = _IntervalFit(data, gain.reshape(data.shape[0], -1, n_orient), starts, stops)
    # the BIC's price of each group's source: log(n) per moment; the backward pass asks
    # ``penalty`` times it, the forward pass at most once it
    bic = np.log(max(data.size, 2)) * n_orient * (stops - starts)
    limit = len(groups) if max_sources is None else int(max_sources)
    kept = _forward_pass(fit, groups, min(float(penalty), 1.0) * bic, limit)
    kept, fits, unique = _backward_pass(fit, kept, float(penalty) * bic, noise_variance)
    return fit.result(kept, fits, unique)


class _IntervalFit:
    """Whitened data cut at the groups' span bounds, and the least squares of each piece.

    Within each elementary interval every group's source is either on or off, so that the
    fit of the data is a set of independent least-squares fits, one per interval.
    """

    def __init__(self, data, columns, starts, stops):
        self.data, self.columns = data, columns  # columns: (n_whitened, n_rows, n_orient)
        self.starts, self.stops = starts, stops
        bounds = np.unique(np.concatenate([[0, data.shape[1]], starts, stops]))
        self.intervals = list(zip(bounds[:-1], bounds[1:]))

    def covers(self, group, i):
        """Whether the source of ``group`` is on in interval ``i``."""
        a, b = self.intervals[i]
        return self.starts[group] <= a and b <= self.stops[group]

    def selected(self, rows):
        """The gain columns of ``rows``, shape (n_whitened, len(rows) * n_orient)."""
        return self.columns[:, rows].reshape(self.data.shape[0], -1)

    def least_squares(self, i, chosen):
        """Least squares of interval ``i`` with the sources ``chosen`` that are on in it.

        Returns each source's unique contribution (what the squared residual would grow by
        without it) and moments, keyed by ``(row, group)``, and the squared residual.
        """
        a, b = self.intervals[i]
        on = [key for key in chosen if self.covers(key[1], i)]
        if not on:
            return {}, {}, float(np.sum(self.data[:, a:b] ** 2))
        selected = self.selected([r for r, _ in on])
        inverse_gram = np.linalg.pinv(selected.T @ selected)
        solution = inverse_gram @ (selected.T @ self.data[:, a:b])
        left = self.data[:, a:b] - selected @ solution
        n_orient = self.columns.shape[2]
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

    def result(self, kept, fits, unique):
        """The :class:`SourceFit` of the sources ``kept`` and their interval fits."""
        data, n_orient = self.data, self.columns.shape[2]
        moments = np.zeros((len(kept), n_orient, data.shape[1]))
        residual = data.copy()
        for i, (a, b) in enumerate(self.intervals):
            if fits[i][1]:
                on = list(fits[i][1])
                for key in on:
                    moments[kept.index(key), :, a:b] = fits[i][1][key]
                residual[:, a:b] -= self.selected([r for r, _ in on]) @ np.concatenate(
                    [fits[i][1][key] for key in on])

        def explained(columns_of):
            total = float(np.sum(data[:, columns_of] ** 2))
            return 1.0 - float(np.sum(residual[:, columns_of] ** 2)) / total if total > 0 else 0.0

        kept_groups = np.asarray([g for _, g in kept], dtype=np.int64)
        per_source = np.array([explained(slice(self.starts[g], self.stops[g]))
                               for g in kept_groups])
        return SourceFit(np.asarray([r for r, _ in kept], dtype=np.int64), kept_groups,
                         moments, per_source, explained(slice(None)),
                         np.array([unique[key] for key in kept]))


def _forward_pass(fit, groups, entry_cost, limit):
    """Add candidates while the plain BIC (variance unknown) says they explain data.

    What each candidate explains is kept per interval and redone only where a source entered.
    Returns the ``(row, group)`` of the sources in the order they entered.
    """
    data, columns = fit.data, fit.columns
    n_whitened, n_orient = data.shape[0], columns.shape[2]
    group_of = np.concatenate(
        [np.full(len(g), k) for k, g in enumerate(groups)] or [np.zeros(0, int)]
    ).astype(np.int64)
    rows = np.concatenate(
        [np.asarray(g, dtype=np.int64) for g in groups] or [np.zeros(0, int)]
    )
    entry_cost = entry_cost[group_of]
    inside = [(fit.starts[group_of] <= a) & (fit.stops[group_of] >= b)
              for a, b in fit.intervals]
    bases = [np.zeros((n_whitened, 0)) for _ in fit.intervals]
    residual = data.copy()
    alive = np.ones(len(rows), dtype=bool)
    interval_gain = np.zeros((len(fit.intervals), len(rows)))

    def refresh(i):
        a, b = fit.intervals[i]
        interval_gain[i] = 0.0
        index = np.flatnonzero(alive & inside[i])
        if len(index):
            block = fit.selected(rows[index])  # (w, k * orient)
            block = block - bases[i] @ (bases[i].T @ block)
            interval_gain[i, index] = _explained(
                residual[:, a:b], block.reshape(n_whitened, len(index), n_orient))

    for i in range(len(fit.intervals)):
        refresh(i)
    kept = []
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
        for i, (a, b) in enumerate(fit.intervals):
            if fit.covers(group, i):
                bases[i] = _orthonormal(bases[i], columns[:, row])
                residual[:, a:b] = data[:, a:b] - bases[i] @ (bases[i].T @ data[:, a:b])
                refresh(i)
    return kept


def _backward_pass(fit, kept, group_cost, noise_variance):
    """Drop the weakest source while one does not pay its way.

    Each source is judged by what the others cannot explain without it, against the noise
    variance (given, or left by the whole fit); only the intervals of a dropped source are
    fitted again.  Returns the sources kept, the fit of each interval and each source's unique
    contribution.
    """
    kept = list(kept)
    n_orient, n_values = fit.columns.shape[2], fit.data.size
    fits = [fit.least_squares(i, kept) for i in range(len(fit.intervals))]
    unique = dict.fromkeys(kept, 0.0)
    for interval_unique, _, _ in fits:
        for key, value in interval_unique.items():
            unique[key] += value
    while kept:
        rss = sum(f[2] for f in fits)
        n_parameters = sum(n_orient * (fit.stops[g] - fit.starts[g]) for _, g in kept)
        variance = noise_variance if noise_variance is not None else max(
            rss / max(n_values - n_parameters, 1), 1e-300)
        nets = [unique[key] / variance - group_cost[key[1]] for key in kept]
        worst = int(np.argmin(nets))
        if nets[worst] > 0:
            break
        dropped = kept.pop(worst)
        del unique[dropped]
        for i in range(len(fit.intervals)):
            if fit.covers(dropped[1], i):
                for key, value in fits[i][0].items():
                    if key != dropped:
                        unique[key] -= value
                fits[i] = fit.least_squares(i, kept)
                for key, value in fits[i][0].items():
                    unique[key] += value
    return kept, fits, unique


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
