"""Resolution metrics: DLE, SD and OA (Hauk et al. 2011) and the thesis's variants.

Every metric is computed per *column* of an estimate: one time sample (or one point-spread
function) over all vertices of a source space, with known true source(s). Arrays are
``(n_vertices, n_times)``; vertices are *rows* into a ``positions`` array that holds the source
space's vertex positions, in meters, in source-space order (:func:`hemisphere_positions`). All
distances come out in centimeters.

Metrics
-------
``dle_cm``
    Dipole localization error: distance from the true source to the estimate's peak of ``|F|``.
    With several true sources, the mean distance after matching the strongest local maxima to
    the true sources optimally (see :func:`localization_metrics`).
``sd_cm``
    Spatial dispersion (Hauk et al. 2011; Molins et al. 2008):
    ``sqrt(sum_j d_j**2 F_j**2 / sum_j F_j**2)``, ``d_j`` the distance from vertex ``j`` to the
    true source. Equals ``mne.minimum_norm.resolution_metrics(..., metric="sd_ext")`` on PSFs.
``oa``
    Overall amplitude: ``sum_j |F_j| / max_j |F_j|``, the sum of the estimate normalized to its
    maximum, as in the thesis's tables (relative, no unit).
``sd_thesis_sqrtcm``
    The thesis code's spatial dispersion: ``sqrt(sum_j d_pj F_j**2 / sum_j F_j**2)`` with
    *unsquared* distances ``d_pj`` in cm measured from the estimate's *peak* ``p``, in √cm.
    The thesis's tables print ``THESIS_SD_TABLE_SCALE`` (10) times this value, see below.

The thesis's tables
-------------------
The 2017 code computed distances in meters and its R script multiplied every DLE and SD column
by 100. For DLE that is a conversion to cm; for SD it turns ``sqrt(m)`` into
``100 sqrt(m) = 10 sqrt(cm)``, so the SD values of the thesis's Table 5 (labelled √cm, mean
about 23) are ``THESIS_SD_TABLE_SCALE * sd_thesis_sqrtcm``. OA was reported without scaling.

References
----------
Hauk O, Wakeman DG, Henson R (2011). Comparison of noise-normalized minimum norm estimates for
MEG analysis using multiple resolution metrics. NeuroImage 54(3):1966-1974.

Molins A, Stufflebeam SM, Brown EN, Hämäläinen MS (2008). Quantification of the benefit from
integrating MEG and EEG data in minimum l2-norm estimation. NeuroImage 42(3):1069-1077.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

__all__ = [
    "THESIS_SD_TABLE_SCALE",
    "hemisphere_positions",
    "localization_metrics",
    "mesh_adjacency",
]

#: Factor between ``sd_thesis_sqrtcm`` (√cm) and the SD values printed in the thesis's tables
#: (the 2017 R script multiplied ``sqrt(m)`` by 100, which is ``10 sqrt(cm)``).
THESIS_SD_TABLE_SCALE = 10.0

_M_TO_CM = 100.0
# positions larger than this (in m) are surely not meters (a head is ~0.2 m across)
_MAX_POSITION_M = 1.0
# bound on the temporaries of the chunked distance computations (number of float64 elements)
_MAX_CHUNK_ELEMENTS = 1 << 22
_HEMI_IDS = {"lh": 101, "rh": 102}  # FIFF.FIFFV_MNE_SURF_LEFT_HEMI / _RIGHT_HEMI


# ---------------------------------------------------------------------------------------------
# Source-space helpers


def hemisphere_positions(src, hemi):
    """Return the positions of one hemisphere's source-space vertices.

    Parameters
    ----------
    src : instance of mne.SourceSpaces | list of dict
        A surface source space with both hemispheres (as from a forward or inverse operator).
    hemi : 'lh' | 'rh'
        The hemisphere.

    Returns
    -------
    positions : ndarray, shape (n_vertices, 3)
        Positions in meters, in the coordinate frame of ``src``, of the vertices in use, in
        source-space order: row ``i`` is vertex number ``src[hemi]['vertno'][i]``.
    """
    src_hemi = _pick_hemisphere(src, hemi)
    return np.array(src_hemi["rr"][src_hemi["vertno"]], dtype=float)


def mesh_adjacency(src_hemi):
    """Return the triangle-mesh adjacency of one hemisphere's vertices in use.

    Parameters
    ----------
    src_hemi : dict
        One hemisphere of a surface source space (``src[0]`` or ``src[1]``), with the
        triangulation of its vertices in use (``'use_tris'``, present for ``'ico'`` and
        ``'oct'`` spacings).

    Returns
    -------
    adjacency : scipy.sparse.csr_array of bool, shape (n_vertices, n_vertices)
        Symmetric, no self-loops; rows and columns are source-space rows (row ``i`` is vertex
        number ``src_hemi['vertno'][i]``), like :func:`hemisphere_positions`.

    Notes
    -----
    This is :func:`mne.spatial_src_adjacency` of the one hemisphere without self-loops.
    Vertices that a forward model omitted (e.g. too close to the inner skull) are not in
    ``vertno``; edges to them are dropped, so the mesh may have holes there.
    """
    if not isinstance(src_hemi, dict) or "vertno" not in src_hemi:
        raise TypeError(
            "src_hemi must be one hemisphere of a source space (a dict such as src[0]), "
            f"got {type(src_hemi).__name__} instead."
        )
    use_tris = src_hemi.get("use_tris")
    if use_tris is None:
        raise ValueError(
            "The source space has no triangulation of its vertices in use ('use_tris' is "
            "None); build it with mne.setup_source_space and an 'ico' or 'oct' spacing, or "
            "pass an adjacency computed otherwise."
        )
    import mne

    adjacency = sparse.csr_array(
        mne.spatial_src_adjacency(mne.SourceSpaces([src_hemi]), verbose="error"), dtype=bool
    )
    adjacency.setdiag(False)  # MNE counts every vertex as its own neighbour
    adjacency.eliminate_zeros()
    return adjacency


# ---------------------------------------------------------------------------------------------
# Public metrics


def localization_metrics(
    estimate,
    true_rows,
    positions,
    adjacency=None,
    border=0,
    *,
    match_radius_cm=2.0,
    ghost_threshold=0.5,
    detection_threshold=None,
):
    """Compute DLE, SD, OA, the thesis's SD, recall, ghost peaks and detections per column.

    Parameters
    ----------
    estimate : array-like, shape (n_vertices, n_times) | (n_vertices,)
        The estimate ``F`` (an inverse solution, or the U-Net's class-"active" probability
        map), one column per time sample. Signs are ignored (``|F|`` is used). A 1-D array is
        one column.
    true_rows : array-like of int, shape (n_times,) | (n_times, n_sources) | list of array-like
        The true sources of each column, as rows of ``positions``: one row per column, or one
        sequence of rows per column (its length may differ between columns; an empty one marks
        a column without a true source). The order within a column does not matter.
    positions : array-like, shape (n_vertices, 3)
        Vertex positions in meters, row ``i`` for row ``i`` of ``estimate``
        (:func:`hemisphere_positions`).
    adjacency : scipy sparse array | ndarray, shape (n_vertices, n_vertices) | None
        Mesh adjacency of the vertices (:func:`mesh_adjacency`), needed to find the local
        maxima of columns with several true sources and to count ghost peaks. Self-loops are
        ignored. None allows single-source columns only, and ``ghosts`` is NaN.
    border : int
        Rows and columns to leave out at each edge of a U-Net tile (the thesis used 2, as
        its network is least reliable there); only rows for a 1-D estimate. ``positions``
        and ``true_rows`` stay in uncropped numbering.
    match_radius_cm : float
        A true source counts as recalled when its matched peak is within this distance (cm);
        a peak is a ghost when no true source is within it.
    ghost_threshold : float
        Only local maxima reaching this fraction of the column's maximum can count as ghosts.
    detection_threshold : float | None
        If given (needs ``adjacency``), every local maximum of ``|F|`` that reaches this
        absolute value is a detection (see :mod:`meg_unet.detection`), and the result has the
        detection entries below.

    Returns
    -------
    metrics : dict
        One entry per kept column (``n_kept = n_times - 2 * border``):

        ``'columns'`` : ndarray of int, shape (n_kept,)
            The columns of ``estimate`` the entries refer to.
        ``'n_sources'`` : ndarray of int, shape (n_kept,)
            Number of true sources.
        ``'dle_cm'`` : ndarray, shape (n_kept,)
            Dipole localization error in cm (mean over true sources).
        ``'sd_cm'`` : ndarray, shape (n_kept,)
            Spatial dispersion in cm around the true source (the nearest one, with several).
        ``'oa'`` : ndarray, shape (n_kept,)
            Overall amplitude ``sum|F| / max|F|`` (no unit).
        ``'sd_thesis_sqrtcm'`` : ndarray, shape (n_kept,)
            The thesis code's spatial dispersion in √cm (see the module's notes).
        ``'recall'`` : ndarray, shape (n_kept,)
            Fraction of true sources whose matched peak is within ``match_radius_cm``.
        ``'ghosts'`` : ndarray, shape (n_kept,)
            Number of local maxima of at least ``ghost_threshold * max|F|`` with no true
            source within ``match_radius_cm`` (float, NaN when ``adjacency`` is None).
        ``'peak_rows'`` : list of ndarray of int
            Per column, the peak matched to each true source, in the order of ``true_rows``
            (uncropped numbering).
        ``'global_peak_rows'`` : ndarray of int, shape (n_kept,)
            Row of ``max|F|`` (uncropped numbering; -1 for an all-zero column).
        ``'score'`` : ndarray, shape (n_kept,)
            ``max|F|`` over the kept rows (the evidence that any source is active).
        ``'detections'``, ``'true_detections'``, ``'detected_sources'`` : ndarray of int
            With ``detection_threshold``: the number of detections, of detections within
            ``match_radius_cm`` of a true source, and of true sources with a detection within
            ``match_radius_cm``.

        Metrics that need a true source are NaN for a column without one, and every metric
        is NaN for an all-zero column.

    Notes
    -----
    With one true source, the peak is the global maximum of ``|F|`` (the first row on a tie,
    like :func:`numpy.argmax`). With ``k > 1`` true sources, the peaks are the local maxima of
    ``|F|`` on the mesh (vertices whose value is greater than zero and not below any
    neighbour's); the ``k`` largest are matched to the true sources by the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) on their distances, and DLE is the mean
    matched distance. If there are fewer than ``k`` local maxima, the list is padded with the
    global peak, so each unmatched true source is scored by its distance to the global peak.
    For recall, each local maximum recalls at most one source: the padding adds none.

    For several true sources, SD measures each vertex's distance from its nearest true source,
    so a perfect estimate (one delta per source) still has SD 0.
    """
    prepared = _prepare(estimate, positions, border)
    true_rows = _check_true_rows(true_rows, prepared.n_columns_all, prepared.n_rows_all)
    true_rows = [true_rows[column] for column in prepared.kept_columns]
    edges = _check_adjacency(adjacency, prepared.n_rows_all, prepared.kept_rows)
    match_radius_cm = _check_positive_float(match_radius_cm, "match_radius_cm")
    ghost_threshold = _check_fraction(ghost_threshold, "ghost_threshold")
    n_sources = np.array([len(rows) for rows in true_rows], dtype=int)
    if edges is None and np.any(n_sources > 1):
        first = np.flatnonzero(n_sources > 1)[0]
        raise ValueError(
            f"Column {prepared.kept_columns[first]} has {n_sources[first]} true sources: "
            "matching several sources "
            "needs the mesh adjacency to find local maxima; pass adjacency (see "
            "mesh_adjacency)."
        )

    abs_estimate = prepared.abs_estimate
    n_columns = abs_estimate.shape[1]
    valid = prepared.column_max > 0
    nearest_sq = _nearest_true_squared_distance(prepared, true_rows)  # inf without a source
    has_source = n_sources > 0
    sd_cm = np.full(n_columns, np.nan)
    usable = valid & has_source
    sd_cm[usable] = _weighted_rms(nearest_sq[:, usable], abs_estimate[:, usable])

    local_maxima = None if edges is None else _local_maxima_mask(abs_estimate, edges)
    dle_cm, recall, peak_rows = _matched_peaks(prepared, true_rows, usable, n_sources,
                                               local_maxima, match_radius_cm)
    if local_maxima is None:
        ghosts = np.full(n_columns, np.nan)
    else:
        strong = local_maxima & (abs_estimate >= ghost_threshold * prepared.column_max)
        ghosts = np.sum(strong & (nearest_sq > match_radius_cm**2), axis=0).astype(float)
        ghosts[~valid] = np.nan

    global_peak_rows = np.where(valid, prepared.kept_rows[prepared.peak_local], -1)
    detection = {}
    if detection_threshold is not None:
        if local_maxima is None:
            raise ValueError("detection_threshold needs the mesh adjacency (see mesh_adjacency)")
        detected = local_maxima & (abs_estimate >= float(detection_threshold))
        detection = _detections(prepared, true_rows, detected, nearest_sq, match_radius_cm)
    return dict(
        **detection,
        score=prepared.column_max.astype(np.float64),
        columns=prepared.kept_columns,
        n_sources=n_sources,
        dle_cm=dle_cm,
        sd_cm=sd_cm,
        oa=_overall_amplitude(prepared),
        sd_thesis_sqrtcm=_sd_thesis(prepared),
        recall=recall,
        ghosts=ghosts,
        peak_rows=peak_rows,
        global_peak_rows=global_peak_rows,
    )


# ---------------------------------------------------------------------------------------------
# Computation


class _Prepared:
    """The validated, cropped estimate and what every metric needs from it."""

    def __init__(self, estimate, positions_cm, kept_rows, kept_columns):
        self.n_rows_all, self.n_columns_all = estimate.shape
        self.kept_rows = kept_rows
        self.kept_columns = kept_columns
        self.abs_estimate = np.abs(estimate[np.ix_(kept_rows, kept_columns)])
        self.positions_cm = positions_cm
        self.kept_positions_cm = positions_cm[kept_rows]
        self.column_max = self.abs_estimate.max(axis=0)
        # local row of each column's maximum (first on a tie, like MNE's argmax)
        self.peak_local = self.abs_estimate.argmax(axis=0)


def _prepare(estimate, positions, border):
    one_column = np.ndim(estimate) == 1
    estimate = _check_estimate(estimate)
    if positions is None:  # metrics that need no distances
        positions_cm = np.zeros((estimate.shape[0], 3))
    else:
        positions_cm = _check_positions(positions, estimate.shape[0]) * _M_TO_CM
    # a single column (1-D estimate) has no time border to drop
    border = _check_border(border, estimate.shape[:1] if one_column else estimate.shape)
    kept_rows = np.arange(border, estimate.shape[0] - border)
    column_border = 0 if one_column else border
    kept_columns = np.arange(column_border, estimate.shape[1] - column_border)
    return _Prepared(estimate, positions_cm, kept_rows, kept_columns)


def _column_chunks(n_rows, n_columns):
    """Yield column slices whose (n_rows, chunk, 3) temporaries stay small."""
    step = max(1, _MAX_CHUNK_ELEMENTS // max(1, 3 * n_rows))
    for start in range(0, n_columns, step):
        yield slice(start, min(start + step, n_columns))


def _squared_distances(kept_positions_cm, points_cm):
    """Squared distances (n_rows, n_points) between rows and one point per column."""
    out = np.empty((len(kept_positions_cm), len(points_cm)))
    for chunk in _column_chunks(len(kept_positions_cm), len(points_cm)):
        # explicit differences, not |a|^2 + |b|^2 - 2ab, so a distance of zero stays zero
        difference = kept_positions_cm[:, np.newaxis, :] - points_cm[np.newaxis, chunk, :]
        out[:, chunk] = np.einsum("ijk,ijk->ij", difference, difference)
    return out


def _nearest_true_squared_distance(prepared, true_rows):
    """Squared distance (cm²) of each kept row to the column's nearest true source."""
    n_columns = len(true_rows)
    nearest = np.full((len(prepared.kept_rows), n_columns), np.inf)
    max_sources = max((len(rows) for rows in true_rows), default=0)
    for source in range(max_sources):
        columns = np.array([c for c in range(n_columns) if len(true_rows[c]) > source], int)
        rows = np.array([true_rows[c][source] for c in columns], int)
        squared = _squared_distances(prepared.kept_positions_cm, prepared.positions_cm[rows])
        nearest[:, columns] = np.minimum(nearest[:, columns], squared)
    return nearest


def _weighted_rms(squared_distances, abs_estimate):
    """sqrt(sum d² F² / sum F²) per column."""
    weights = abs_estimate**2
    return np.sqrt(np.sum(squared_distances * weights, axis=0) / np.sum(weights, axis=0))


def _overall_amplitude(prepared):
    oa = np.full(len(prepared.column_max), np.nan)
    valid = prepared.column_max > 0
    oa[valid] = prepared.abs_estimate[:, valid].sum(axis=0) / prepared.column_max[valid]
    return oa


def _sd_thesis(prepared):
    valid = prepared.column_max > 0
    sd = np.full(len(prepared.column_max), np.nan)
    peak_positions = prepared.kept_positions_cm[prepared.peak_local[valid]]
    distances = np.sqrt(_squared_distances(prepared.kept_positions_cm, peak_positions))
    sd[valid] = _weighted_rms(distances, prepared.abs_estimate[:, valid])
    return sd


def _local_maxima_mask(abs_estimate, edges):
    """Vertices greater than zero and not below any mesh neighbour, per column."""
    first, second = edges
    n_rows, n_columns = abs_estimate.shape
    # incidence[i, e] = 1 where directed edge e starts at vertex i
    incidence = sparse.csr_array(
        (np.ones(len(first)), (first, np.arange(len(first)))), shape=(n_rows, len(first))
    )
    is_maximum = np.empty(abs_estimate.shape, dtype=bool)
    step = max(1, _MAX_CHUNK_ELEMENTS // max(1, len(first)))
    for start in range(0, n_columns, step):
        chunk = slice(start, start + step)
        # per directed edge (i, j): F_i < F_j means i is no local maximum
        smaller = (abs_estimate[first, chunk] < abs_estimate[second, chunk]).astype(float)
        is_maximum[:, chunk] = (incidence @ smaller) == 0
    return is_maximum & (abs_estimate > 0)


def _sorted_peaks(abs_column, peak_mask):
    """Local rows of the peaks of one column, largest first (rows in order on a tie)."""
    rows = np.flatnonzero(peak_mask)
    return rows[np.argsort(-abs_column[rows], kind="stable")]


def _match_peaks(prepared, true_rows, peaks, global_peak, match_radius_cm):
    """Hungarian matching of the k largest peaks to k true sources.

    Returns the mean matched distance, the recall and the matched peak (local row) per true
    source, in the order of ``true_rows``.
    """
    n_true = len(true_rows)
    candidates = peaks[:n_true]
    n_real = len(candidates)
    # too few local maxima: unmatched sources are scored against the global peak
    candidates = np.concatenate([candidates, np.full(n_true - n_real, global_peak, dtype=int)])
    difference = (
        prepared.positions_cm[true_rows][:, np.newaxis, :]
        - prepared.kept_positions_cm[candidates][np.newaxis, :, :]
    )
    distances = np.linalg.norm(difference, axis=2)
    source_index, peak_index = linear_sum_assignment(distances)
    matched = np.empty(n_true, dtype=int)
    matched[source_index] = candidates[peak_index]
    matched_distances = np.empty(n_true)
    matched_distances[source_index] = distances[source_index, peak_index]
    # the global peak (and its padding copies) recalls at most one source: the nearest one,
    # whichever copy the assignment gave it (the copies are interchangeable)
    on_global = matched == global_peak
    n_recalled = np.sum(matched_distances[~on_global] <= match_radius_cm)
    if np.any(on_global):
        n_recalled += matched_distances[on_global].min() <= match_radius_cm
    return matched_distances.mean(), n_recalled / n_true, matched


def _matched_peaks(prepared, true_rows, usable, n_sources, local_maxima, match_radius_cm):
    """DLE, recall and the matched peak rows of the ``usable`` columns.

    One true source is matched with the global peak, several with the local maxima (see
    :func:`localization_metrics`).
    """
    n_columns = prepared.abs_estimate.shape[1]
    dle_cm = np.full(n_columns, np.nan)
    recall = np.full(n_columns, np.nan)
    peak_rows = [np.empty(0, dtype=int) for _ in range(n_columns)]
    global_local = prepared.peak_local
    # single source: the global peak, vectorized
    single = usable & (n_sources == 1)
    if np.any(single):
        true_single = np.array(
            [rows[0] for rows, one in zip(true_rows, single, strict=True) if one]
        )
        distances = np.linalg.norm(
            prepared.positions_cm[true_single] - prepared.kept_positions_cm[global_local[single]],
            axis=1,
        )
        dle_cm[single] = distances
        recall[single] = distances <= match_radius_cm
        for column in np.flatnonzero(single):
            peak_rows[column] = prepared.kept_rows[global_local[[column]]]

    for column in np.flatnonzero(usable & (n_sources > 1)):
        peaks = _sorted_peaks(prepared.abs_estimate[:, column], local_maxima[:, column])
        dle_cm[column], recall[column], matched = _match_peaks(
            prepared, true_rows[column], peaks, global_local[column], match_radius_cm
        )
        peak_rows[column] = prepared.kept_rows[matched]
    return dle_cm, recall, peak_rows


def _detections(prepared, true_rows, detected, nearest_sq, match_radius_cm):
    """Count detections, detections near a true source, and true sources detected."""
    radius_sq = match_radius_cm**2
    found = np.zeros(detected.shape[1], dtype=np.int64)
    for column in np.flatnonzero(detected.any(axis=0)):
        rows = true_rows[column]
        if not len(rows):
            continue
        points = prepared.kept_positions_cm[detected[:, column]]
        difference = prepared.positions_cm[np.asarray(rows)][:, np.newaxis] - points[np.newaxis]
        found[column] = np.sum(np.min(np.sum(difference**2, axis=-1), axis=1) <= radius_sq)
    return dict(
        detections=detected.sum(axis=0).astype(np.int64),
        true_detections=np.sum(detected & (nearest_sq <= radius_sq), axis=0).astype(np.int64),
        detected_sources=found,
    )


def _check_estimate(estimate, name="estimate"):
    estimate = np.asarray(estimate)
    if np.iscomplexobj(estimate):
        raise ValueError(f"{name} must be real, got dtype {estimate.dtype}.")
    if estimate.dtype == object or not np.issubdtype(estimate.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {estimate.dtype}.")
    if estimate.ndim == 1:
        estimate = estimate[:, np.newaxis]
    if estimate.ndim != 2 or 0 in estimate.shape:
        raise ValueError(
            f"{name} must have shape (n_vertices, n_times) or (n_vertices,), got shape "
            f"{np.shape(estimate)}."
        )
    estimate = estimate.astype(float, copy=False)
    if not np.all(np.isfinite(estimate)):
        bad = np.argwhere(~np.isfinite(estimate))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})."
        )
    return estimate


def _check_positions(positions, n_vertices):
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (n_vertices, 3), got {positions.shape}.")
    if positions.shape[0] != n_vertices:
        raise ValueError(
            f"The estimate has {n_vertices} rows (vertices) but positions has "
            f"{positions.shape[0]}; row i of the estimate must be the vertex at positions[i]."
        )
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contains NaN or infinite values.")
    largest = np.abs(positions).max()
    if largest > _MAX_POSITION_M:
        raise ValueError(
            f"positions must be in meters, but a coordinate is {largest:g} (mm or cm given?)."
        )
    return positions


def _check_border(border, shape):
    if not isinstance(border, numbers.Integral) or isinstance(border, bool) or border < 0:
        raise ValueError(
            "Invalid value for the 'border' parameter. Allowed values are integers >= 0, but "
            f"got {border!r} instead."
        )
    border = int(border)
    if 2 * border >= min(shape):
        raise ValueError(
            f"border={border} leaves nothing of an array of shape {tuple(shape)}: it must be "
            f"less than half of each of its first two dimensions."
        )
    return border


def _as_row_array(rows, where):
    rows = np.atleast_1d(np.asarray(rows))
    if rows.ndim != 1:
        raise ValueError(f"{where} must be a row or a 1-D sequence of rows, got {rows.shape}.")
    if rows.size == 0:
        return rows.astype(np.int64)
    if rows.dtype == bool or not np.issubdtype(rows.dtype, np.integer):
        raise TypeError(f"{where} must hold integer rows, got dtype {rows.dtype}.")
    return rows.astype(np.int64)


def _check_true_rows(true_rows, n_columns, n_vertices):
    """Return one int array of true rows per column."""
    if isinstance(true_rows, np.ndarray) and true_rows.ndim in (1, 2):
        rows_per_column = list(true_rows)
    elif isinstance(true_rows, (list, tuple)):
        rows_per_column = list(true_rows)
    else:
        raise TypeError(
            "true_rows must be an array of shape (n_times,) or (n_times, n_sources), or a "
            f"list with one sequence of rows per column, got {type(true_rows).__name__}."
        )
    if len(rows_per_column) != n_columns:
        raise ValueError(
            f"true_rows has {len(rows_per_column)} entries but the estimate has {n_columns} "
            "columns (time samples); give one entry per column."
        )
    checked = []
    for column, rows in enumerate(rows_per_column):
        rows = _as_row_array(rows, f"true_rows[{column}]")
        out_of_range = (rows < 0) | (rows >= n_vertices)
        if np.any(out_of_range):
            raise ValueError(
                f"true_rows[{column}] holds row {rows[out_of_range][0]}, out of range for "
                f"{n_vertices} vertices (rows 0 to {n_vertices - 1})."
            )
        checked.append(rows)
    return checked


def _check_adjacency(adjacency, n_vertices, kept_rows):
    """Return the directed edges (first, second) among kept rows, in kept numbering."""
    if adjacency is None:
        return None
    if not (sparse.issparse(adjacency) or isinstance(adjacency, np.ndarray)):
        raise TypeError(
            f"adjacency must be a scipy sparse array or an ndarray, got {type(adjacency).__name__}."
        )
    if adjacency.shape != (n_vertices, n_vertices):
        raise ValueError(
            f"adjacency has shape {adjacency.shape} but the estimate has {n_vertices} rows "
            f"(vertices); it must be ({n_vertices}, {n_vertices})."
        )
    adjacency = sparse.csr_array(adjacency)[kept_rows][:, kept_rows].tocoo()
    first, second = adjacency.row, adjacency.col
    keep = (adjacency.data != 0) & (first != second)
    first, second = first[keep], second[keep]
    # symmetrize, so a one-sided adjacency is read as the undirected mesh
    edges = np.unique(
        np.concatenate([np.stack([first, second], 1), np.stack([second, first], 1)]), axis=0
    )
    return edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)


def _check_positive_float(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(
            f"Invalid value for the {name!r} parameter. Allowed values are numbers > 0, but "
            f"got {value!r} instead."
        )
    return float(value)


def _check_fraction(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(
            f"Invalid value for the {name!r} parameter. Allowed values are numbers from 0 to "
            f"1, but got {value!r} instead."
        )
    return float(value)


def _pick_hemisphere(src, hemi):
    if hemi not in _HEMI_IDS:
        raise ValueError(
            "Invalid value for the 'hemi' parameter. Allowed values are 'lh' and 'rh', but got "
            f"{hemi!r} instead."
        )
    try:
        hemispheres = list(src)
    except TypeError:
        raise TypeError(
            f"src must be a source space (mne.SourceSpaces), got {type(src).__name__}."
        ) from None
    surfaces = [s for s in hemispheres if isinstance(s, dict) and s.get("type") == "surf"]
    if len(surfaces) != 2:
        raise ValueError(
            "src must be a surface source space with two hemispheres, got "
            f"{len(hemispheres)} source space(s) of which {len(surfaces)} surface(s)."
        )
    by_id = [s for s in surfaces if s.get("id") == _HEMI_IDS[hemi]]
    # fall back to the usual order (left, right) for source spaces without ids
    return by_id[0] if len(by_id) == 1 else surfaces[("lh", "rh").index(hemi)]
