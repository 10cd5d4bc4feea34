"""Sources out of the probability map: peaks on the mesh, events, the refit, the matching."""

import numpy as np
import pytest
from scipy import sparse

from meg_unet.refit import inverse_gain, matching_pursuit, refit_sources
from meg_unet.sources import extract_sources, join_events, match_sources, mesh_peaks


def _chain(n):
    """Adjacency of a path 0 - 1 - ... - n-1 (a strip of cortex, for hand-made maps)."""
    edges = np.arange(n - 1)
    return sparse.coo_array(
        (np.ones(2 * (n - 1), bool), (np.r_[edges, edges + 1], np.r_[edges + 1, edges])),
        shape=(n, n),
    ).tocsr()


# --------------------------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------------------------


def test_two_maxima_on_neighbouring_vertices_merge_distant_ones_do_not():
    probability = np.zeros((10, 1))
    probability[[2, 3], 0] = [0.8, 0.9]  # neighbours: one peak, the higher
    probability[7, 0] = 0.6  # far away: a peak of its own
    peaks = mesh_peaks(probability, _chain(10), threshold=0.5)
    assert np.flatnonzero(peaks[:, 0]).tolist() == [3, 7]


def test_peaks_below_the_threshold_are_dropped_and_plateaus_give_one_peak():
    probability = np.zeros((10, 2))
    probability[[4, 5], 0] = 0.7  # a plateau of two neighbours: the lower row wins
    probability[8, 1] = 0.4
    peaks = mesh_peaks(probability, _chain(10), threshold=0.5)
    assert np.flatnonzero(peaks[:, 0]).tolist() == [4]
    assert not peaks[:, 1].any()


def test_wider_suppression_merges_maxima_two_steps_apart():
    probability = np.zeros((10, 1))
    probability[[2, 4], 0] = [0.9, 0.8]
    assert np.flatnonzero(mesh_peaks(probability, _chain(10), 0.5)[:, 0]).tolist() == [2, 4]
    assert np.flatnonzero(mesh_peaks(probability, _chain(10), 0.5, rings=2)[:, 0]).tolist() == [2]


def test_peaks_refuse_a_map_of_the_wrong_shape():
    with pytest.raises(ValueError, match="2-D"):
        mesh_peaks(np.zeros(5), _chain(5), 0.5)
    with pytest.raises(ValueError, match="vertices"):
        mesh_peaks(np.zeros((6, 3)), _chain(5), 0.5)
    with pytest.raises(ValueError, match="rings"):
        mesh_peaks(np.zeros((5, 3)), _chain(5), 0.5, rings=0)


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def test_a_peak_moving_to_a_neighbour_stays_one_event_and_a_long_gap_splits_it():
    probability = np.zeros((10, 12))
    probability[3, 0:3] = [0.6, 0.9, 0.7]
    probability[4, 3:5] = 0.8  # drifts to a neighbour: same event
    probability[4, 9:11] = 0.7  # four silent samples later: a new event
    peaks = mesh_peaks(probability, _chain(10), 0.5)
    events = join_events(peaks, probability, _chain(10), max_gap=2)
    assert [(e["row"], e["onset"], e["offset"], e["peak"]) for e in events] == [
        (3, 0, 5, 1), (4, 9, 11, 9)
    ]
    assert events[0]["rows"] == [3, 4]
    assert events[0]["probability"] == pytest.approx(0.9)


def test_simultaneous_distant_peaks_are_separate_events():
    probability = np.zeros((10, 4))
    probability[1, :] = 0.9
    probability[8, 1:3] = 0.6
    events = join_events(mesh_peaks(probability, _chain(10), 0.5), probability, _chain(10))
    assert sorted((e["row"], e["onset"], e["offset"]) for e in events) == [(1, 0, 4), (8, 1, 3)]


def test_a_map_without_peaks_has_no_events():
    probability = np.full((10, 5), 0.1)
    assert join_events(mesh_peaks(probability, _chain(10), 0.5), probability, _chain(10)) == []


# --------------------------------------------------------------------------------------------
# The refit
# --------------------------------------------------------------------------------------------


def _problem(n_channels=60, n_rows=40, n_orient=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((n_channels, n_rows * n_orient))


@pytest.mark.parametrize("n_orient", [1, 3])
def test_the_refit_recovers_noiseless_amplitudes_to_one_percent(n_orient):
    rng, gain = _problem(n_orient=n_orient)
    n_times = 30
    truth = {5: 4.0, 22: -2.5}
    moments = {row: value * np.sin(np.linspace(0.2, 3.0, n_times)) * rng.uniform(0.5, 1, n_orient)[:, None]
               for row, value in truth.items()}
    data = sum(gain[:, row * n_orient : (row + 1) * n_orient] @ m for row, m in moments.items())
    fit = refit_sources(data, gain, [[4, 5, 6], [21, 22, 23]], n_orient=n_orient)
    assert sorted(fit.rows.tolist()) == [5, 22]
    for row, moment in zip(fit.rows, fit.moments):
        np.testing.assert_allclose(moment, moments[int(row)], rtol=0.01, atol=1e-9)
    assert fit.total_explained_variance == pytest.approx(1.0)
    np.testing.assert_allclose(fit.explained_variance, 1.0)


def test_the_refit_drops_a_candidate_that_explains_only_noise():
    rng, gain = _problem()
    n_times = 30
    signal = np.outer(gain[:, 10], 3.0 * np.hanning(n_times))
    data = signal + rng.standard_normal(signal.shape)  # whitened: unit noise
    fit = refit_sources(data, gain, [[9, 10, 11], [30, 31, 32]])
    assert fit.rows.tolist() == [10]
    assert fit.groups.tolist() == [0]
    assert 0 < fit.total_explained_variance == fit.explained_variance[0] < 1  # one span: all


def test_a_short_event_in_a_long_stretch_is_fitted_on_its_own_samples():
    rng, gain = _problem(seed=1)
    data = rng.standard_normal((60, 400))
    data[:, 100:110] += np.outer(gain[:, 12], np.full(10, 1.2))  # weak and short
    data[:, :] += np.outer(gain[:, 30], np.full(400, 0.5))  # weak, long
    groups, spans = [[11, 12, 13], [29, 30, 31]], [(98, 112), (0, 400)]
    fit = refit_sources(data, gain, groups, spans=spans, penalty=1.0)
    assert sorted(fit.rows.tolist()) == [12, 30]
    short = fit.moments[fit.rows.tolist().index(12), 0]
    assert np.all(short[:98] == 0) and np.all(short[112:] == 0)
    assert short[100:110].mean() == pytest.approx(1.2, rel=0.2)
    # over the whole stretch, the short source would not pay for 400 samples of moments
    assert refit_sources(data, gain, groups, penalty=1.0).rows.tolist() == [30]
    with pytest.raises(ValueError, match="spans"):
        refit_sources(data, gain, groups, spans=[(0, 10)])
    with pytest.raises(ValueError, match="within"):
        refit_sources(data, gain, groups, spans=[(0, 10), (5, 401)])


def test_noise_alone_gives_no_source_and_the_pursuit_finds_two_on_its_own():
    rng, gain = _problem(seed=3)
    noise = rng.standard_normal((60, 30))
    assert len(refit_sources(noise, gain, [[1, 2, 3]]).rows) == 0
    assert len(matching_pursuit(noise, gain).rows) == 0
    data = noise + np.outer(gain[:, 7], np.full(30, 2.0)) - np.outer(gain[:, 33], np.full(30, 2.0))
    assert sorted(matching_pursuit(data, gain, penalty=1.0).rows.tolist()) == [7, 33]


@pytest.mark.parametrize("n_orient", [1, 3])
def test_what_a_source_alone_explains_is_what_the_fit_loses_without_it(n_orient):
    rng, gain = _problem(n_orient=n_orient, seed=4)
    rows = [3, 17, 18]  # two neighbours that share much of what they explain
    data = sum(gain[:, r * n_orient : (r + 1) * n_orient] @ rng.standard_normal((n_orient, 25))
               for r in rows) + 0.3 * rng.standard_normal((60, 25))
    fit = refit_sources(data, gain, [[r] for r in rows], n_orient=n_orient, penalty=0.0)
    assert sorted(fit.rows.tolist()) == rows

    def residual(kept):
        columns = np.hstack([gain[:, r * n_orient : (r + 1) * n_orient] for r in kept])
        solution, *_ = np.linalg.lstsq(columns, data, rcond=None)
        return np.sum((data - columns @ solution) ** 2)

    everything = residual(rows)
    for row, unique in zip(fit.rows, fit.unique):
        others = [r for r in rows if r != row]
        assert unique == pytest.approx(residual(others) - everything, rel=1e-6)


def test_the_refit_refuses_mismatched_shapes():
    _, gain = _problem()
    with pytest.raises(ValueError, match="same rows"):
        refit_sources(np.zeros((59, 3)), gain, [[1]])
    with pytest.raises(ValueError, match="multiple"):
        refit_sources(np.zeros((60, 3)), gain[:, :40], [[1]], n_orient=3)
    with pytest.raises(ValueError, match="penalty"):
        refit_sources(np.zeros((60, 3)), gain, [[1]], penalty=-1)


# --------------------------------------------------------------------------------------------
# The whole path
# --------------------------------------------------------------------------------------------


def test_extraction_finds_the_source_of_the_map_and_the_data():
    rng, gain = _problem()
    probability = np.zeros((40, 30))
    probability[11, 10:20] = 0.9  # the network points next to the true source (row 10)
    probability[30, 25] = 0.7  # a ghost the data do not support
    data = rng.standard_normal((60, 30))
    data[:, 8:22] += np.outer(gain[:, 10], 3.0 * np.hanning(14))
    sources = extract_sources(probability, data, gain, _chain(40), threshold=0.5, pad=2)
    assert [(s["row"], s["onset"], s["offset"]) for s in sources] == [(10, 10, 20)]
    assert sources[0]["amplitude"] == pytest.approx(3.0, rel=0.25)
    assert sources[0]["probability"] == pytest.approx(0.9)


def test_extraction_fits_each_event_on_its_own_samples_or_its_stretch():
    rng, gain = _problem(seed=5)
    probability = np.zeros((40, 60))
    probability[10, 5:15] = 0.9
    probability[30, 10:50] = 0.8  # overlaps the first: one stretch of samples 5-50
    data = 0.1 * rng.standard_normal((60, 60))
    data[:, 5:15] += np.outer(gain[:, 10], np.ones(10))
    data[:, 10:50] += np.outer(gain[:, 30], np.ones(40))
    own = extract_sources(probability, data, gain, _chain(40), 0.5)
    assert [(s["row"], s["start"], len(s["moments"])) for s in own] == [(10, 5, 10),
                                                                         (30, 10, 40)]
    stretch = extract_sources(probability, data, gain, _chain(40), 0.5, fit_over="segment")
    assert [(s["start"], len(s["moments"])) for s in stretch] == [(5, 45), (5, 45)]
    with pytest.raises(ValueError, match="fit_over"):
        extract_sources(probability, data, gain, _chain(40), 0.5, fit_over="window")


def test_a_recording_with_no_source_yields_no_source():
    rng, gain = _problem()
    probability = rng.uniform(0, 0.3, (40, 50))
    assert extract_sources(probability, rng.standard_normal((60, 50)), gain, _chain(40),
                           threshold=0.5) == []


def _surface_gain(fwd, ch_names):
    """The surface-oriented free gain of the channels, straight from the forward solution."""
    import mne

    fwd = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=False, use_cps=True,
                                       copy=True, verbose=False)
    return mne.pick_channels_forward(fwd, ch_names, ordered=True, verbose=False)["sol"]["data"]


def test_the_gain_read_out_of_an_inverse_operator_is_the_whitened_forward(tiny_head_model):
    import mne

    head = tiny_head_model
    info = head.info.copy()
    info["bads"] = [info["ch_names"][0]]
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    inv = mne.minimum_norm.make_inverse_operator(info, head.fwd_free, cov, loose=0.2,
                                                 depth=0.8, verbose=False)
    vertices = [head.src[0]["vertno"], np.zeros(0, int)]
    free = inverse_gain(inv, vertices)
    assert free.n_orient == 3 and info["bads"][0] not in free.ch_names
    # the gain is whitened exactly as the data are: the whitener applied to the forward's gain
    oracle = free.whiten(_surface_gain(head.fwd_free, free.ch_names), free.ch_names)
    scale = np.abs(oracle).max()
    np.testing.assert_allclose(free.gain, oracle[:, : free.gain.shape[1]], atol=1e-6 * scale)
    normal = inverse_gain(inv, [np.zeros(0, int), head.src[1]["vertno"][:5]], n_orient=1)
    n_lh = len(head.src[0]["vertno"])
    np.testing.assert_allclose(normal.gain, oracle[:, 3 * n_lh + 2 : 3 * (n_lh + 5) : 3],
                               atol=1e-6 * scale)
    # white noise of the covariance comes out with unit variance (bad channel ignored)
    assert cov["diag"]  # the ad-hoc covariance: one variance per channel
    noise = np.random.default_rng(0).standard_normal((len(cov.data), 4000))
    white = free.whiten(noise * np.sqrt(cov.data)[:, None], cov["names"])
    assert np.mean(white[np.any(free.whitener != 0, axis=1)] ** 2) == pytest.approx(1, rel=0.05)
    with pytest.raises(ValueError, match="lacks"):
        inverse_gain(inv, [np.array([10**7]), np.zeros(0, int)])
    # an average of 4 trials has half the noise: whitened, data and gain are twice as large
    averaged = inverse_gain(inv, vertices, nave=4)
    np.testing.assert_allclose(averaged.gain, 2 * free.gain, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(averaged.whitener, 2 * free.whitener, rtol=1e-6,
                               atol=1e-9 * np.abs(free.whitener).max())
    fixed = mne.minimum_norm.make_inverse_operator(info, head.fwd_free, cov, fixed=True,
                                                   verbose=False)
    with pytest.raises(ValueError, match="n_orient"):
        inverse_gain(fixed, vertices, n_orient=3)


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


def test_matching_pairs_within_the_radius_one_to_one():
    true = np.array([[0, 0, 0], [0.05, 0, 0]])
    estimated = np.array([[0.001, 0, 0], [0.003, 0, 0], [0.2, 0, 0]])
    pairs, distances = match_sources(estimated, true, radius=0.02)
    assert pairs.tolist() == [[0, 0]]
    np.testing.assert_allclose(distances, [0.001])
    assert match_sources(np.zeros((0, 3)), true)[0].shape == (0, 2)


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def _two_sources():
    moments = np.linspace(1e-9, 2e-8, 10)
    return [
        {"row": 7, "onset": 3, "offset": 9, "peak": 5, "probability": 0.8, "amplitude": 2e-8,
         "explained_variance": 0.5, "start": 2, "moments": moments},
        {"row": 1, "onset": 20, "offset": 24, "peak": 21, "probability": 0.95,
         "amplitude": 5e-9, "explained_variance": 0.7, "start": 20, "moments": -moments[:4]},
    ]


def test_the_table_of_events_round_trips(tmp_path):
    from meg_unet.sources import EVENT_COLUMNS, events_table, read_events, write_events

    positions = np.arange(30, dtype=float).reshape(10, 3) / 1000
    vertices = [np.arange(100, 105), np.arange(100, 105)]
    table = events_table(_two_sources(), vertices, positions, sfreq=100.0, tmin=-0.1)
    assert list(table.columns) == list(EVENT_COLUMNS)
    assert table["vertex"].tolist() == [102, 101]
    assert table["hemi"].tolist() == ["rh", "lh"]
    np.testing.assert_allclose(table[["x_mm", "y_mm", "z_mm"]].to_numpy()[0], [21, 22, 23])
    np.testing.assert_allclose(table["onset_s"], [-0.07, 0.1])
    np.testing.assert_allclose(table["amplitude_nam"], [20, 5])
    back = read_events(write_events(table, tmp_path / "test-events.tsv"))
    assert back["hemi"].tolist() == ["rh", "lh"]
    np.testing.assert_allclose(back.drop(columns="hemi").to_numpy(dtype=float),
                               table.drop(columns="hemi").to_numpy(dtype=float), rtol=1e-5)
    empty = events_table([], vertices, positions, sfreq=100.0)
    assert empty.empty and list(empty.columns) == list(EVENT_COLUMNS)
    assert read_events(write_events(empty, tmp_path / "empty-events.tsv")).empty
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="lacks"):
        read_events(tmp_path / "bad.tsv")


def test_the_sparse_estimate_holds_the_fitted_moments_and_reads_back(tmp_path):
    import mne

    from meg_unet.sources import sparse_estimate

    vertices = [np.array([10, 20, 30, 40, 50]), np.array([5, 15, 25, 35, 45])]
    stc = sparse_estimate(_two_sources(), vertices, n_times=30, tmin=0.0, tstep=0.01,
                          subject="fsaverage")
    assert [v.tolist() for v in stc.vertices] == [[20], [25]]
    np.testing.assert_allclose(stc.rh_data[0, 2:12], np.linspace(1e-9, 2e-8, 10), rtol=1e-6)
    assert stc.rh_data[0, 12:].max() == 0 and stc.lh_data[0, 20] < 0
    stc.save(tmp_path / "x-stc.h5", ftype="h5", verbose=False)
    back = mne.read_source_estimate(tmp_path / "x-stc.h5")
    np.testing.assert_allclose(back.data, stc.data)
    none = sparse_estimate([], vertices, n_times=30, tmin=0.0, tstep=0.01)
    assert none.data.shape == (0, 30)
