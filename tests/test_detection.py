"""Detection metrics, thresholds and calibration (meg_unet.detection) on hand-made data."""

import numpy as np
import pandas as pd
import pytest

from meg_unet.detection import (
    apply_isotonic,
    apply_platt,
    detection_summary,
    expected_calibration_error,
    false_alarm_threshold,
    fit_isotonic,
    fit_platt,
    noise_only,
    reliability_curve,
    samples_to_source,
)
from meg_unet.metrics import hemisphere_positions, localization_metrics, mesh_adjacency


# ---- calibration ----------------------------------------------------------------------------


def test_platt_scaling_recovers_a_known_miscalibration():
    """Labels drawn with P(active) = sigmoid(2 z - 3) from scores z: the fit finds (2, -3)."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=200_000)
    labels = rng.random(z.size) < 1 / (1 + np.exp(-(2 * z - 3)))
    overconfident = 1 / (1 + np.exp(-z))  # what a network would say: sigmoid(z)
    slope, intercept = fit_platt(overconfident, labels)
    assert slope == pytest.approx(2, abs=0.05) and intercept == pytest.approx(-3, abs=0.05)
    calibrated = apply_platt(overconfident, slope, intercept)
    assert expected_calibration_error(calibrated, labels) < 0.01
    assert expected_calibration_error(overconfident, labels) > 0.1


def test_identity_calibration_and_bad_input():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(apply_platt(p, 1.0, 0.0), p, rtol=1e-6)
    with pytest.raises(ValueError, match="only one class"):
        fit_platt(p, [True, True, True])
    with pytest.raises(ValueError, match="differ in size"):
        fit_platt(p, [True, False])


def test_reliability_curve_and_ece_by_hand():
    # bin [0.2, 0.267): 4 pixels at 0.25, 1 active -> perfect; bin of 0.95: 2 pixels, 0 active
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.95, 0.95])
    y = np.array([1, 0, 0, 0, 0, 0], bool)
    confidence, frequency, counts = reliability_curve(p, y, n_bins=15)
    assert counts.sum() == 6 and counts[3] == 4 and counts[14] == 2
    assert frequency[3] == 0.25 and confidence[14] == pytest.approx(0.95)
    assert expected_calibration_error(p, y, n_bins=15) == pytest.approx(2 / 6 * 0.95)


# ---- thresholds -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.2])
def test_false_alarm_threshold_keeps_the_rate(rate):
    scores = np.random.default_rng(1).exponential(size=10_000)
    threshold = false_alarm_threshold(scores, rate)
    assert np.mean(scores >= threshold) <= rate
    assert np.mean(scores >= threshold) > rate - 2 / scores.size
    # ties: every score equal -> no false alarm at all
    assert np.mean(np.ones(50) >= false_alarm_threshold(np.ones(50), rate)) == 0


def test_false_alarm_threshold_refuses_no_noise_and_bad_rate():
    with pytest.raises(ValueError, match="no noise-only samples"):
        false_alarm_threshold([], 0.05)
    with pytest.raises(ValueError, match=r"rate must be in \(0, 1\)"):
        false_alarm_threshold([1.0], 1.5)


def test_false_alarm_threshold_with_a_confidence():
    """Ten stretches of noise, stretch k scoring k throughout: at a rate of 0.3 the plain rule
    lets stretches 9 and 10 fire (0.2 of the samples); resampling the stretches, that rate
    exceeds 0.3 in 12 % of the draws (binomial(10, 0.2) >= 4), so with 95 % confidence only
    stretch 10 may fire (binomial(10, 0.1) >= 4: 1.3 %)."""
    scores = np.repeat(np.arange(1.0, 11.0), 10)
    samples = np.concatenate([100 * k + np.arange(10) for k in range(10)])
    plain = false_alarm_threshold(scores, 0.3)
    assert plain == np.nextafter(8.0, np.inf)
    sure = false_alarm_threshold(scores, 0.3, samples=samples, max_gap=1, confidence=0.95)
    assert sure == np.nextafter(9.0, np.inf)
    # one stretch holding everything: the rate is known exactly, and met exactly
    assert false_alarm_threshold(scores, 0.3, samples=np.arange(100), max_gap=1,
                                 confidence=0.95) == np.nextafter(7.0, np.inf)
    with pytest.raises(ValueError, match="needs the samples"):
        false_alarm_threshold(scores, 0.3, confidence=0.95)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        false_alarm_threshold(scores, 0.3, samples=samples, confidence=1.0)


# ---- per-sample detections ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh(tiny_head_model):
    src = tiny_head_model.src
    return hemisphere_positions(src, "rh"), mesh_adjacency(src[1])


def _bump(positions, center, width_cm=1.0):
    distances = np.linalg.norm(positions - positions[center], axis=1) * 100
    return np.exp(-0.5 * (distances / width_cm) ** 2)


def test_detections_on_hand_made_maps(mesh):
    positions, adjacency = mesh
    distances = np.linalg.norm(positions - positions[10], axis=1) * 100
    far = int(np.argmax(distances))  # the vertex farthest from vertex 10
    estimate = np.zeros((len(positions), 4))
    estimate[:, 0] = _bump(positions, 10)  # one true source, found
    estimate[:, 1] = _bump(positions, 10) + 0.8 * _bump(positions, far)  # + a false one
    estimate[:, 2] = 0.3 * _bump(positions, far)  # noise-only sample, below the threshold
    estimate[:, 3] = 0.9 * _bump(positions, far)  # noise-only sample, a false alarm
    result = localization_metrics(estimate, [[10], [10], [], []], positions, adjacency,
                                  detection_threshold=0.5)
    np.testing.assert_array_equal(result["detections"], [1, 2, 0, 1])
    np.testing.assert_array_equal(result["true_detections"], [1, 1, 0, 0])
    np.testing.assert_array_equal(result["detected_sources"], [1, 1, 0, 0])
    np.testing.assert_allclose(result["score"], [1.0, 1.0, 0.3, 0.9], rtol=1e-6)
    with pytest.raises(ValueError, match="adjacency"):
        localization_metrics(estimate, [[10], [10], [], []], positions, None,
                             detection_threshold=0.5)


def test_two_neighbouring_sources_one_detection(mesh):
    """Two sources on neighbouring vertices under one blob: one detection, which finds the
    sources within 2 cm of it (on ico2 the neighbour lies farther away)."""
    positions, adjacency = mesh
    neighbour = int(adjacency.tocsr()[[10]].indices[0])
    distance_cm = np.linalg.norm(positions[neighbour] - positions[10]) * 100
    estimate = _bump(positions, 10, width_cm=2.0)[:, np.newaxis]
    result = localization_metrics(estimate, [[10, neighbour]], positions, adjacency,
                                  detection_threshold=0.5)
    assert result["detections"][0] == 1
    assert result["detected_sources"][0] == 1 + (distance_cm <= 2.0)
    assert result["true_detections"][0] == 1


def test_detection_summary_by_hand():
    table = pd.DataFrame({
        "method": ["unet"] * 4 + ["mne"] * 4,
        "n_sources": [1, 1, 0, 0] * 2,
        "dle_cm": [0.5, 1.5, np.nan, np.nan, 2.0, 3.0, np.nan, np.nan],
        "score": [0.9, 0.8, 0.1, 0.85, 5, 4, 6, 1],
        "detections": [1, 2, 0, 1, 1, 0, 1, 0],
        "true_detections": [1, 1, 0, 0, 0, 0, 0, 0],
        "detected_sources": [1, 1, 0, 0, 0, 0, 0, 0],
    })
    summary = detection_summary(table, sfreq=100.0).set_index("method")
    assert summary.index.tolist() == ["mne", "unet"]
    unet, mne = summary.loc["unet"], summary.loc["mne"]
    assert unet["false_alarm_rate"] == 0.5 and unet["false_detections_per_s"] == 50.0
    assert unet["precision"] == 0.5 and unet["recall"] == 1.0
    assert unet["auc"] == 0.75  # active scores 0.9, 0.8 against noise 0.1, 0.85
    assert unet["count_error"] == 0.5 and unet["abs_count_error"] == 0.5  # 0, +1, 0, +1
    assert unet["dle_detected_cm"] == 1.0 and unet["n_detected_single"] == 2
    assert mne["precision"] == 0.0 and mne["recall"] == 0.0 and mne["auc"] == 0.5
    assert mne["dle_detected_cm"] == 2.0  # only the sample with a detection
    assert np.isnan(unet["recall_snr"])  # no snr column: no SNR figures
    assert np.isnan(unet["dle_detected_snr_cm"])


def test_recall_where_the_sources_stand_above_the_noise():
    table = pd.DataFrame({
        "method": ["unet"] * 4, "n_sources": [1, 1, 2, 0], "dle_cm": [0.0, np.nan, 0.0, np.nan],
        "score": [0.9, 0.1, 0.9, 0.1], "detections": [1, 0, 1, 0],
        "true_detections": [1, 0, 1, 0], "detected_sources": [1, 0, 1, 0],
        "snr": [2.5, 0.3, 2.0, np.nan],
    })
    row = detection_summary(table, sfreq=100.0).iloc[0]
    assert row["recall"] == 0.5  # 2 of 4 sources
    assert row["recall_snr"] == 2 / 3  # the two at SNR >= 2: 1 + 1 of 1 + 2 sources


def test_dle_of_detected_single_sources_at_snr_3_only():
    """Near the zero crossings of its waveform a source is invisible; the DLE at SNR >= 3
    leaves those samples out, the plain one keeps them."""
    table = pd.DataFrame({
        "method": ["unet"] * 4, "n_sources": [1, 1, 1, 2], "dle_cm": [0.5, 3.5, 1.0, 0.0],
        "score": [0.9, 0.8, 0.1, 0.9], "detections": [1, 1, 0, 1],
        "true_detections": [1, 0, 0, 1], "detected_sources": [1, 0, 0, 1],
        "snr": [3.0, 0.6, 4.0, 5.0],
    })
    row = detection_summary(table, sfreq=100.0).iloc[0]
    assert row["dle_detected_cm"] == 2.0  # 0.5 and 3.5; the third has no detection
    assert row["dle_detected_snr_cm"] == 0.5  # the two-source sample does not count


def test_detection_by_snr_bands():
    from meg_unet.detection import detection_by_snr

    table = pd.DataFrame({
        "method": ["unet"] * 4 + ["sloreta"] * 4, "n_sources": [1, 1, 1, 0] * 2,
        "dle_cm": [0.5, 3.5, 1.0, np.nan] * 2, "score": [0.9, 0.8, 0.1, 0.1] * 2,
        "detections": [1, 1, 0, 0, 1, 0, 0, 0], "true_detections": [1, 0, 0, 0] * 2,
        "detected_sources": [1, 0, 0, 0] * 2, "snr": [3.0, 0.6, 4.0, np.nan] * 2,
    })
    bands = detection_by_snr(table, bands=(0.0, 1.0, np.inf))
    assert bands["method"].tolist() == ["sloreta", "sloreta", "unet", "unet"]
    unet = bands[bands["method"] == "unet"].set_index("snr_low")
    assert unet.loc[0.0, "n_samples"] == 1 and unet.loc[1.0, "n_samples"] == 2
    assert unet.loc[0.0, "recall"] == 0.0 and unet.loc[1.0, "recall"] == 0.5
    assert unet.loc[0.0, "dle_detected_cm"] == 3.5 and unet.loc[1.0, "dle_detected_cm"] == 0.5
    sloreta = bands[bands["method"] == "sloreta"].set_index("snr_low")
    assert np.isnan(sloreta.loc[0.0, "dle_detected_cm"])  # nothing detected below SNR 1
    assert detection_by_snr(table.drop(columns="snr")).empty


def test_sample_snr_by_hand():
    """A source stands at its window's SNR x its amplitude / its RMS over the activation."""
    from meg_unet.scoring import sample_snr, window_snr

    amplitudes = np.array([[0.0, 1.0, 1.0, 0.0, -3.0, -4.0, 0.0, 0.0]])
    windows = window_snr({"onsets": [0, 3], "durations": [3, 4], "snr_target": [2.0, 3.0]}, 8)
    np.testing.assert_allclose(windows, [2, 2, 2, 3, 3, 3, 3, np.nan])
    snr = sample_snr(amplitudes, amplitudes != 0, windows)
    rms = np.sqrt((9 + 16) / 2)
    np.testing.assert_allclose(snr, [[0, 2, 2, 0, 9 / rms, 12 / rms, 0, 0]])
    with pytest.raises(ValueError, match="window_snr must have shape"):
        sample_snr(amplitudes, amplitudes != 0, windows[:4])


def test_isotonic_calibration_follows_a_plateau_that_platt_cannot():
    """A network whose confident pixels are active a third of the time, whatever it says."""
    rng = np.random.default_rng(2)
    p = rng.beta(0.3, 3, size=300_000)
    truth = np.where(p < 0.3, p, 0.3)  # frequencies rise, then stay at 0.3
    labels = rng.random(p.size) < truth
    x, y = fit_isotonic(p, labels)
    calibrated = apply_isotonic(p, x, y)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0)
    assert expected_calibration_error(calibrated, labels) < 0.01
    confident = p >= 0.5
    assert abs(calibrated[confident].mean() - labels[confident].mean()) < 0.02
    # strictly increasing over float32 inputs: the calibrated map keeps the raw map's order,
    # and so its local maxima, also on the knots' flat steps and beyond the last knot
    distinct = np.unique(p.astype(np.float32))
    assert np.all(np.diff(apply_isotonic(distinct, x, y)) > 0)


def test_samples_to_source_and_the_guard():
    active = np.array([0, 0, 1, 1, 0, 0, 0, 0, 0, 1], bool)
    distance = samples_to_source(active)
    np.testing.assert_array_equal(distance, [2, 1, 0, 0, 1, 2, 3, 2, 1, 0])
    # at 1000 Hz a guard of 2 ms keeps the samples 3 or more samples away
    mask, guard = noise_only(distance, 1000.0, 2.0)
    np.testing.assert_array_equal(np.flatnonzero(mask), [6])
    assert guard == 2.0
    # nothing that far: every silent sample counts, and the guard says so
    mask, guard = noise_only(distance, 1000.0, 10.0)
    assert guard == 0.0 and mask.sum() == 7
    np.testing.assert_array_equal(samples_to_source(np.zeros(3, bool)), [3, 3, 3])


def test_false_alarm_interval_resamples_stretches():
    from meg_unet.detection import false_alarm_interval

    # two stretches of 4 noise-only samples, 30 samples apart: one fires throughout, one never
    samples = np.r_[0:4, 34:38]
    alarms = np.r_[[True] * 4, [False] * 4]
    low, high = false_alarm_interval(alarms, samples, max_gap=5)
    assert low == 0.0 and high == 1.0  # resampling whole stretches: all or nothing
    # the same alarms spread evenly over the stretches leave no doubt about the rate
    even = np.r_[[True, False] * 4]
    assert false_alarm_interval(even, samples, max_gap=5) == (0.5, 0.5)
    # one stretch (no gap over max_gap): a single block, the rate itself
    assert false_alarm_interval(alarms, samples, max_gap=40) == (0.5, 0.5)
    assert false_alarm_interval(alarms, samples, max_gap=5) == (low, high)  # seeded


def test_detection_summary_reports_the_false_alarm_interval():
    table = pd.DataFrame({
        "method": ["unet"] * 6, "sample": [0, 1, 2, 40, 41, 42], "n_sources": [0] * 6,
        "dle_cm": [np.nan] * 6, "score": [0.9, 0.9, 0.9, 0.1, 0.1, 0.1],
        "detections": [1, 1, 1, 0, 0, 0], "true_detections": [0] * 6,
        "detected_sources": [0] * 6, "snr": [np.nan] * 6,
        "samples_to_source": [100] * 6,
    })
    row = detection_summary(table, sfreq=100.0, guard_ms=50.0).iloc[0]
    assert row["false_alarm_rate"] == 0.5
    assert (row["false_alarm_low"], row["false_alarm_high"]) == (0.0, 1.0)
