"""Tests of meg_unet.metrics: hand-made cases with known answers, and MNE's resolution metrics."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse

from meg_unet.metrics import (
    THESIS_SD_TABLE_SCALE,
    hemisphere_positions,
    localization_metrics,
    mesh_adjacency,
)

CM = 0.01  # one centimeter in meters


def _chain(x_cm):
    """Vertices on the x axis at ``x_cm`` (in order) and the path graph joining them."""
    x_cm = np.asarray(x_cm, dtype=float)
    positions = np.zeros((len(x_cm), 3))
    positions[:, 0] = x_cm * CM
    n_vertices = len(x_cm)
    adjacency = sparse.diags_array(
        [np.ones(n_vertices - 1), np.ones(n_vertices - 1)], offsets=[-1, 1], format="csr"
    )
    return positions, adjacency


def _cross():
    """Return a vertex at the origin, four at 1 cm and four at 2 cm along +-x, +-y, and a blur."""
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=float)
    positions = np.concatenate([np.zeros((1, 3)), directions, 2 * directions]) * CM
    estimate = np.array([1.0] + [0.5] * 4 + [0.25] * 4)
    return positions, estimate


# ---------------------------------------------------------------------------------------------
# Single source, hand-made


def test_perfect_estimate():
    """A delta at the true vertex: DLE 0, SD 0, OA 1."""
    positions, _ = _cross()
    estimate = np.zeros((len(positions), 3))
    true_rows = np.array([0, 4, 7])
    estimate[true_rows, np.arange(3)] = [2.0, -1e-3, 5.0]  # scale and sign do not matter
    metrics = localization_metrics(estimate, true_rows, positions)
    assert_allclose(metrics["dle_cm"], 0, atol=1e-12)
    assert_allclose(metrics["sd_cm"], 0, atol=1e-12)
    assert_allclose(metrics["oa"], 1)
    assert_allclose(metrics["sd_thesis_sqrtcm"], 0, atol=1e-12)
    assert_array_equal(metrics["global_peak_rows"], true_rows)
    assert_array_equal(metrics["recall"], 1)
    assert np.all(np.isnan(metrics["ghosts"]))  # no adjacency given
    assert_array_equal(metrics["columns"], [0, 1, 2])


def test_known_blur():
    """SD, OA and the thesis's SD of a cross-shaped blur, computed by hand."""
    positions, estimate = _cross()
    # sum F^2 = 1 + 4 * 0.25 + 4 * 0.0625 = 2.25
    # sum d^2 F^2 = 4 * 1 * 0.25 + 4 * 4 * 0.0625 = 2      -> SD = sqrt(2 / 2.25) cm
    # sum d F^2 = 4 * 1 * 0.25 + 4 * 2 * 0.0625 = 1.5      -> SD_thesis = sqrt(1.5 / 2.25) √cm
    # sum |F| / max |F| = 1 + 4 * 0.5 + 4 * 0.25 = 4
    metrics = localization_metrics(3 * estimate, [0], positions)
    assert_allclose(metrics["sd_cm"], np.sqrt(8 / 9))
    assert_allclose(metrics["sd_thesis_sqrtcm"], np.sqrt(2 / 3))
    assert_allclose(metrics["oa"], 4)
    assert_allclose(metrics["dle_cm"], 0)
    assert_allclose(localization_metrics(-estimate, [0], positions)["oa"], 4)  # signs ignored


def test_sd_thesis_measures_from_the_peak():
    """The thesis's SD ignores the true source; Hauk's SD measures from it."""
    positions, estimate = _cross()
    # true source 2 cm away from the peak, on the other side of the blur (row 6: -x, 2 cm)
    metrics = localization_metrics(estimate, [6], positions)
    assert_allclose(metrics["sd_thesis_sqrtcm"], np.sqrt(2 / 3))
    assert_allclose(metrics["dle_cm"], 2)
    # by hand: d^2 from (-2, 0): 4 (peak), 9 (+x1), 1 (-x1), 5, 5 (+-y1), 16, 0, 8, 8 (2 cm)
    squared = np.array([4, 9, 1, 5, 5, 16, 0, 8, 8])
    expected = np.sqrt(np.sum(squared * estimate**2) / np.sum(estimate**2))
    assert_allclose(metrics["sd_cm"], expected)
    assert THESIS_SD_TABLE_SCALE == 10  # table value = 10 x sqrt(cm) value, see module doc


def test_peak_offset_gives_its_distance():
    """A delta 3 cm from the true source: DLE 3 cm and SD 3 cm."""
    positions, _ = _chain([0, 1, 2, 3, 4])
    estimate = np.zeros(5)
    estimate[3] = 1.0
    metrics = localization_metrics(estimate, [0], positions)
    assert_allclose(metrics["dle_cm"], 3)
    assert_allclose(metrics["sd_cm"], 3)
    assert_array_equal(metrics["recall"], 0)  # beyond the 2 cm radius
    # a 3-D offset
    positions_3d = np.array([[0.0, 0, 0], [3, 4, 12]]) * CM
    assert_allclose(localization_metrics(np.array([0.0, 1.0]), [0], positions_3d)["dle_cm"], 13)


def test_columns_are_independent():
    """Vectorized over time: each column equals the same column computed alone."""
    rng = np.random.default_rng(0)
    positions = rng.uniform(-0.05, 0.05, (30, 3))
    estimate = rng.standard_normal((30, 7))
    true_rows = rng.integers(0, 30, 7)
    together = localization_metrics(estimate, true_rows, positions)
    for column in range(7):
        alone = localization_metrics(estimate[:, column], [true_rows[column]], positions)
        for key in ("dle_cm", "sd_cm", "oa", "sd_thesis_sqrtcm", "recall"):
            assert_allclose(together[key][column], alone[key][0], err_msg=key)
        # and straight from the definitions
        weights = estimate[:, column] ** 2
        squared = np.sum((positions - positions[true_rows[column]]) ** 2, axis=1) / CM**2
        expected_sd = np.sqrt(np.sum(squared * weights) / np.sum(weights))
        assert_allclose(together["sd_cm"][column], expected_sd)
        peak = np.argmax(np.abs(estimate[:, column]))
        distance = np.linalg.norm(positions[peak] - positions[true_rows[column]]) / CM
        assert_allclose(together["dle_cm"][column], distance)


def test_zero_column_and_no_source():
    """An all-zero column gives NaN; a column without a true source gives only OA."""
    positions, adjacency = _chain([0, 1, 2])
    estimate = np.array([[0.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    metrics = localization_metrics(estimate, [[1], [], [0]], positions, adjacency)
    for key in ("dle_cm", "sd_cm", "oa", "sd_thesis_sqrtcm", "recall", "ghosts"):
        assert np.isnan(metrics[key][0]), key
    assert_array_equal(metrics["global_peak_rows"], [-1, 0, 2])
    assert np.isnan(metrics["dle_cm"][1]) and np.isnan(metrics["sd_cm"][1])
    assert np.isnan(metrics["recall"][1])
    assert_allclose(metrics["oa"][1], 1.5)
    assert_array_equal(metrics["ghosts"][1:], [1, 0])  # any strong peak without a source
    assert_allclose(metrics["dle_cm"][2], 2)
    assert_array_equal(metrics["n_sources"], [1, 0, 1])


# ---------------------------------------------------------------------------------------------
# Several sources, hand-made


def test_two_dipoles_order_does_not_matter():
    """Optimal matching: the result does not depend on the order of the true sources."""
    x_cm = np.arange(-3, 6)  # rows 0..8 at x = -3..5 cm
    positions, adjacency = _chain(x_cm)
    estimate = np.zeros(len(x_cm))
    row_of = {x: row for row, x in enumerate(x_cm)}
    estimate[row_of[-1]] = 1.0  # two local maxima, at x = -1 and x = 2 cm
    estimate[row_of[2]] = 0.8
    estimate[row_of[0]] = estimate[row_of[1]] = 0.1
    # true sources at x = 1 and x = 3: matching in order (greedy, as the 2017 code did) would
    # give (1 + 4) / 2 from the first order and (1 + 2) / 2 from the second; the optimum is
    # 1 -> -1 (2 cm), 3 -> 2 (1 cm): 1.5 cm either way
    forward = localization_metrics(estimate, [[row_of[1], row_of[3]]], positions, adjacency)
    backward = localization_metrics(estimate, [[row_of[3], row_of[1]]], positions, adjacency)
    assert_allclose(forward["dle_cm"], 1.5)
    assert_allclose(backward["dle_cm"], 1.5)
    # matched peaks follow the order of the true sources
    assert_array_equal(forward["peak_rows"][0], [row_of[-1], row_of[2]])
    assert_array_equal(backward["peak_rows"][0], [row_of[2], row_of[-1]])
    # SD around the nearest true source
    nearest = np.min(np.abs(x_cm[:, np.newaxis] - np.array([1, 3])), axis=1)
    expected = np.sqrt(np.sum(nearest**2 * estimate**2) / np.sum(estimate**2))
    assert_allclose(forward["sd_cm"], expected)


def test_two_dipoles_perfect_and_swapped():
    """Two deltas on the true sources: DLE 0 and SD 0, in any order."""
    positions, adjacency = _chain(np.arange(10))
    estimate = np.zeros((10, 2))
    estimate[[2, 7], 0] = [1.0, 0.3]
    estimate[[2, 7], 1] = [0.3, 1.0]
    metrics = localization_metrics(estimate, [[2, 7], [7, 2]], positions, adjacency)
    assert_allclose(metrics["dle_cm"], 0)
    assert_allclose(metrics["sd_cm"], 0)
    assert_array_equal(metrics["recall"], 1)
    assert_array_equal(metrics["ghosts"], 0)


def test_fewer_maxima_than_sources():
    """One blob, two true sources: the unmatched source is scored against the global peak."""
    positions, adjacency = _chain(np.arange(10))
    estimate = np.zeros(10)
    estimate[4:7] = [0.5, 1.0, 0.5]  # one local maximum at row 5
    for true_rows in ([5, 8], [8, 5]):
        metrics = localization_metrics(estimate, [true_rows], positions, adjacency)
        assert_allclose(metrics["dle_cm"], (0 + 3) / 2)
        assert_array_equal(metrics["peak_rows"][0], [5, 5])
        assert_allclose(metrics["recall"], 0.5)  # one peak recalls one source only
    # both sources near the only peak: still one recalled
    metrics = localization_metrics(estimate, [[4, 6]], positions, adjacency)
    assert_allclose(metrics["dle_cm"], 1)
    assert_allclose(metrics["recall"], 0.5)


def test_recall_and_ghosts():
    """Recall within 2 cm and ghosts above half the maximum, on hand-made estimates."""
    positions, adjacency = _chain(np.arange(20))  # rows = x in cm
    estimate = np.zeros((20, 3))
    # column 0: peaks at the true sources (3, 10), a strong ghost at 16 (60 %) and a weak
    # bump at 13 (30 %, below the ghost threshold)
    estimate[[3, 10, 16, 13], 0] = [1.0, 0.9, 0.6, 0.3]
    # column 1: peak 1 cm from source 3, peak 3 cm from source 10: recall 1/2; the peak at
    # 13 is 3 cm from any source and above half the maximum: a ghost
    estimate[[4, 13], 1] = [1.0, 0.8]
    # column 2: a split peak around source 10 (9 and 11, both within 2 cm) is no ghost
    estimate[[9, 11], 2] = [1.0, 0.9]
    metrics = localization_metrics(estimate, [[3, 10], [10, 3], [10]], positions, adjacency)
    assert_allclose(metrics["recall"], [1, 0.5, 1])
    assert_array_equal(metrics["ghosts"], [1, 1, 0])
    assert_allclose(metrics["dle_cm"], [0, 2, 1])
    # thresholds are parameters
    strict = localization_metrics(
        estimate,
        [[3, 10], [10, 3], [10]],
        positions,
        adjacency,
        match_radius_cm=0.5,
        ghost_threshold=0.25,
    )
    assert_allclose(strict["recall"], [1, 0, 0])
    assert_array_equal(strict["ghosts"], [2, 2, 2])


def test_local_maxima():
    """Local maxima of |F| on the mesh: matched to sources, counted as detections."""
    positions, adjacency = _chain(np.arange(8))
    estimate = np.array([0.2, 0.1, 0.7, 0.7, 0.0, -0.9, 0.3, 0.4])
    metrics = localization_metrics(estimate, [[2, 5]], positions, adjacency,
                                   detection_threshold=0.0)
    assert_array_equal(metrics["peak_rows"][0], [2, 5])  # the two largest, |F|, matched
    assert_array_equal(metrics["detections"], [5])  # rows 5, 2 and 3 (a plateau), 7, 0
    strong = localization_metrics(estimate, [[2, 5]], positions, adjacency,
                                  detection_threshold=0.5)
    assert_array_equal(strong["detections"], [3])
    assert_array_equal(metrics["global_peak_rows"], [5])
    none = localization_metrics(np.zeros(8), [[2]], positions, adjacency, detection_threshold=0)
    assert_array_equal(none["detections"], [0])
    # an adjacency with self-loops (as mne.spatial_src_adjacency returns) gives the same
    with_loops = adjacency + sparse.eye_array(8, format="csr")
    again = localization_metrics(estimate, [[2, 5]], positions, with_loops, detection_threshold=0)
    assert_array_equal(again["detections"], metrics["detections"])


# ---------------------------------------------------------------------------------------------
# Tiles and their border


def test_border_keeps_positions_aligned():
    """With a border, metrics skip the edge rows and columns in uncropped numbering."""
    n_vertices, n_times = 12, 9
    kept_columns = np.arange(2, 7)
    positions, adjacency = _chain(np.arange(n_vertices))
    true_rows = np.array([2, 3, 5, 7, 9, 9, 4, 6, 2])
    estimate = np.zeros((n_vertices, n_times))
    estimate[true_rows, np.arange(n_times)] = 1.0
    estimate[0, :] = 5.0  # a large value in the border rows must be ignored
    metrics = localization_metrics(estimate, true_rows, positions, adjacency, border=2)
    assert_array_equal(metrics["columns"], kept_columns)
    assert_allclose(metrics["dle_cm"], 0)  # an off-by-one would give 1 cm
    assert_allclose(metrics["sd_cm"], 0)
    assert_array_equal(metrics["global_peak_rows"], true_rows[kept_columns])
    assert_array_equal(metrics["ghosts"], 0)
    # a true source inside the border is measured from its real position
    metrics = localization_metrics(estimate[:, 0], [1], positions, border=2)
    assert_allclose(metrics["dle_cm"], 1)  # peak at row 2 (x = 2 cm), source at x = 1 cm


# ---------------------------------------------------------------------------------------------
# Validation


def test_validation_messages():
    """Bad input fails early, with a message that says what is wrong."""
    positions, adjacency = _chain(np.arange(5))
    estimate = np.ones((5, 2))
    with pytest.raises(ValueError, match="5 rows .* positions has 4"):
        localization_metrics(estimate, [0, 1], positions[:4])
    with pytest.raises(ValueError, match=r"shape \(n_vertices, 3\)"):
        localization_metrics(estimate, [0, 1], positions[:, :2])
    with pytest.raises(ValueError, match="2 columns"):
        localization_metrics(estimate, [0, 1, 2], positions)
    with pytest.raises(ValueError, match="row 5, out of range for 5 vertices"):
        localization_metrics(estimate, [[0], [5]], positions)
    with pytest.raises(ValueError, match="out of range"):
        localization_metrics(estimate, [-1, 0], positions)
    with pytest.raises(TypeError, match="integer rows"):
        localization_metrics(estimate, np.array([0.0, 1.0]), positions)
    bad = estimate.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN .* row 3, column 1"):
        localization_metrics(bad, [0, 1], positions)
    with pytest.raises(ValueError, match="positions contains NaN"):
        localization_metrics(estimate, [0, 1], np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="must be in meters"):
        localization_metrics(estimate, [0, 1], positions * 1000)
    with pytest.raises(ValueError, match="needs the mesh adjacency"):
        localization_metrics(estimate, [[0, 3], [1]], positions)
    with pytest.raises(ValueError, match=r"adjacency has shape \(4, 4\)"):
        localization_metrics(estimate, [0, 1], positions, adjacency[:4, :4])
    with pytest.raises(ValueError, match="'border' parameter"):
        localization_metrics(estimate, [0, 1], positions, border=-1)
    with pytest.raises(ValueError, match="leaves nothing"):
        localization_metrics(estimate, [0, 1], positions, border=1)
    with pytest.raises(ValueError, match="'match_radius_cm' parameter"):
        localization_metrics(estimate, [0, 1], positions, match_radius_cm=0)
    with pytest.raises(ValueError, match="'ghost_threshold' parameter"):
        localization_metrics(estimate, [0, 1], positions, ghost_threshold=1.5)
    with pytest.raises(ValueError, match="must be real"):
        localization_metrics(estimate + 1j, [0, 1], positions)
    with pytest.raises(ValueError, match=r"shape \(n_vertices, n_times\)"):
        localization_metrics(np.ones((5, 2, 1)), [0, 1], positions)
    with pytest.raises(ValueError, match="'hemi' parameter"):
        hemisphere_positions([], "both")


def test_mesh_adjacency_hand_made():
    """Triangles in vertex numbers become edges between rows; omitted vertices drop out."""
    # vertices 0..4 of a surface; 2 is not in use (e.g. dropped by the forward model)
    src_hemi = dict(
        type="surf",
        id=101,
        vertno=np.array([0, 1, 3, 4]),
        use_tris=np.array([[0, 1, 3], [1, 2, 3], [3, 4, 0]]),
        rr=np.arange(15, dtype=float).reshape(5, 3) * CM,
    )
    expected_edges = {(0, 1), (0, 2), (1, 2), (2, 3), (0, 3)}  # in rows: vertex 3 -> row 2
    adjacency = mesh_adjacency(src_hemi)
    assert adjacency.dtype == bool
    edges = {tuple(sorted(edge)) for edge in zip(*adjacency.nonzero(), strict=True)}
    assert edges == expected_edges
    assert (adjacency != adjacency.T).nnz == 0
    with pytest.raises(ValueError, match="no triangulation"):
        mesh_adjacency(dict(src_hemi, use_tris=None))
    with pytest.raises(TypeError, match="one hemisphere"):
        mesh_adjacency([src_hemi])
    # hemispheres are found by their id, whatever their order
    right = dict(src_hemi, id=102, rr=-src_hemi["rr"])
    assert_array_equal(hemisphere_positions([right, src_hemi], "lh"), src_hemi["rr"][[0, 1, 3, 4]])
    assert_array_equal(hemisphere_positions([right, src_hemi], "rh"), right["rr"][[0, 1, 3, 4]])
    with pytest.raises(ValueError, match="two hemispheres"):
        hemisphere_positions([src_hemi], "lh")


# ---------------------------------------------------------------------------------------------
# Source spaces and MNE's resolution metrics


DEPTHS = (None, 0.8)  # no depth weighting, and the thesis's 0.8


@pytest.fixture(scope="module")
def inverse_head_model(head_model_ico3_meg):
    """Fixed-orientation MNE, dSPM and sLORETA resolution matrices of the ico3 MEG model."""
    import mne

    model = head_model_ico3_meg
    # a fixed-orientation inverse with depth weighting needs the free forward in surface
    # orientation; the resolution matrix needs the fixed forward (n_vertices columns)
    fwd = mne.convert_forward_solution(model.fwd_free, surf_ori=True, verbose="error")
    fwd_fixed = mne.convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose="error"
    )
    cov = mne.make_ad_hoc_cov(model.info, verbose="error")
    resolution = {}
    for depth in DEPTHS:
        inv = mne.minimum_norm.make_inverse_operator(
            model.info, fwd, cov, loose=0.0, depth=depth, fixed=True, verbose="error"
        )
        for method in ("MNE", "dSPM", "sLORETA"):
            resolution[method, depth] = mne.minimum_norm.make_inverse_resolution_matrix(
                fwd_fixed, inv, method=method, lambda2=1.0 / 9.0, verbose="error"
            )
    return inv["src"], resolution


def test_source_space_helpers(head_model_ico3_meg):
    """Positions match the source space; the adjacency is a symmetric ico3 mesh."""
    src = head_model_ico3_meg.src
    for index, hemi in enumerate(("lh", "rh")):
        positions = hemisphere_positions(src, hemi)
        assert_array_equal(positions, src[index]["rr"][src[index]["vertno"]])
        adjacency = mesh_adjacency(src[index])
        assert adjacency.shape == (len(src[index]["vertno"]),) * 2
        assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    # an ico3 mesh: 12 vertices of degree 5, the others of degree 6
    degrees = np.asarray(mesh_adjacency(src[0]).sum(axis=1)).ravel()
    assert np.sum(degrees == 5) == 12 and np.all(degrees[degrees != 5] == 6)


def psf_metrics(resolution_matrix, positions):
    """DLE, SD, OA and MNE's amplitude ratios of each point-spread function (column).

    Several rows per vertex (free or loose orientations) are combined by their Euclidean
    norm, as MNE does.
    """
    n_rows, n_vertices = resolution_matrix.shape
    resmat = np.linalg.norm(resolution_matrix.reshape(n_vertices, n_rows // n_vertices, -1),
                            axis=1)
    metrics = localization_metrics(resmat, np.arange(n_vertices), positions)
    column_sum = np.abs(resmat).sum(axis=0)
    column_max = np.abs(resmat).max(axis=0)
    return dict(metrics, sum_amp=column_sum / column_sum.max(),
                peak_amp=column_max / column_max.max(), peak_rows=metrics["global_peak_rows"])


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA"])
def test_psf_metrics_equal_mne(inverse_head_model, method, depth):
    """DLE, SD and the amplitude ratios equal mne.minimum_norm.resolution_metrics."""
    import mne

    src, resolution = inverse_head_model
    resmat = resolution[method, depth]
    positions = np.concatenate([hemisphere_positions(src, "lh"), hemisphere_positions(src, "rh")])
    ours = psf_metrics(resmat, positions)

    def theirs(metric):
        stc = mne.minimum_norm.resolution_metrics(
            resmat, src, function="psf", metric=metric, verbose="error"
        )
        return stc.data[:, 0]

    assert_allclose(ours["dle_cm"], theirs("peak_err"), rtol=0, atol=1e-6)
    assert_allclose(ours["sd_cm"], theirs("sd_ext"), rtol=0, atol=1e-6)
    assert_allclose(ours["sum_amp"], theirs("sum_amp"), rtol=0, atol=1e-6)
    assert_allclose(ours["peak_amp"], theirs("peak_amp"), rtol=0, atol=1e-6)
    # OA normalizes each PSF by its own maximum, MNE's ratios by the largest column:
    # oa = sum_amp / peak_amp * (max_k sum|PSF_k| / max_k max|PSF_k|)
    absolute = np.abs(resmat)
    scale = absolute.sum(axis=0).max() / absolute.max(axis=0).max()
    assert_allclose(ours["oa"], theirs("sum_amp") / theirs("peak_amp") * scale, rtol=1e-9)
    assert_allclose(ours["oa"], absolute.sum(axis=0) / absolute.max(axis=0), rtol=1e-12)
    # one hemisphere at a time (as predictions are scored) gives the same DLE and SD when the
    # PSFs are restricted to that hemisphere's rows
    n_left = len(src[0]["vertno"])
    left = psf_metrics(resmat[:n_left, :n_left], positions[:n_left])
    peak_in_left = np.argmax(absolute[:, :n_left], axis=0) < n_left
    assert_allclose(left["dle_cm"][peak_in_left], ours["dle_cm"][:n_left][peak_in_left])
    if method == "sLORETA":
        # known theory: sLORETA's PSFs peak at the true source (zero localization error)
        assert_array_equal(ours["dle_cm"], 0)
        assert_array_equal(ours["peak_rows"], np.arange(len(positions)))
    else:
        assert np.mean(ours["dle_cm"]) > 0


def test_psf_metrics_free_orientation(inverse_head_model):
    """Several rows per vertex are combined by their Euclidean norm, as MNE does."""
    import mne

    src, resolution = inverse_head_model
    resmat = resolution["MNE", 0.8]
    positions = np.concatenate([hemisphere_positions(src, "lh"), hemisphere_positions(src, "rh")])
    rng = np.random.default_rng(42)
    orientations = rng.standard_normal((resmat.shape[0], 3))
    orientations /= np.linalg.norm(orientations, axis=1, keepdims=True)
    # rows 3 i .. 3 i + 2 hold vertex i's three components, whose norm is |resmat[i]|
    free = (resmat[:, np.newaxis, :] * orientations[:, :, np.newaxis]).reshape(-1, resmat.shape[1])
    ours_free = psf_metrics(free, positions)
    ours_fixed = psf_metrics(np.abs(resmat), positions)
    for key in ("dle_cm", "sd_cm", "oa", "sum_amp", "peak_amp", "sd_thesis_sqrtcm"):
        assert_allclose(ours_free[key], ours_fixed[key], rtol=1e-9, atol=1e-12, err_msg=key)
    expected = mne.minimum_norm.resolution_metrics(
        free, src, function="psf", metric="peak_err", verbose="error"
    ).data[:, 0]
    assert_allclose(ours_free["dle_cm"], expected, atol=1e-6)
