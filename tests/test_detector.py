"""The U-Net as a detector: trained on recording-like data, quiet on noise (tiny run)."""

import json

import mne
import numpy as np
import pandas as pd
import pytest
from _settings import simulate_and_train, tiny_run_settings

from meg_unet.config import validate_settings
from meg_unet.io import split_files
from meg_unet.metrics import hemisphere_positions, localization_metrics, mesh_adjacency
from meg_unet.prediction import predict_split
from meg_unet.recording import predict_recording

#: The largest share of noise-only samples with a U-Net detection that the tests accept: the
#: thresholds are chosen for at most 5 % with 95 % confidence on the validation split's
#: noise-only samples.
MAX_FALSE_ALARMS = 0.15


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory, tiny_head_model):
    """A tiny run on recording-like data with noise-scaled inputs, trained and calibrated."""
    tmp_path = tmp_path_factory.mktemp("detector")
    config = validate_settings(tiny_run_settings(
        tmp_path, run_name="rec", ARTIFACTS=False,
        PARAMETERS={
            "simulation.TIMING": "recording",
            "data_provider.NORMALIZE_OVER": "noise",
            "network.CLASS_WEIGHTING": "sqrt_inverse_frequency",
            "network.EPOCHS": 2,
            "network.VALIDATION_STEPS": 4,
            "network.DETECTION_CONFIDENCE": 0.95,  # as the quick profile
        },
    ))
    return simulate_and_train(config, tiny_head_model, calibrate=True)


def test_calibration_and_thresholds_written(detector_run):
    sidecar = json.loads((detector_run.run_results_dir / "model" / "model.json").read_text())
    record = sidecar["detection"]["best"]
    assert set(record["thresholds"]) == {"mne", "dspm", "sloreta", "unet"}
    assert 0 < record["thresholds"]["unet"] < 1
    assert record["false_alarm_rate"] == 0.05 and record["confidence"] == 0.95
    calibration = record["calibration"]
    # the chosen calibration is the best of the three on held-out validation pixels
    # (NaN where a map never reaches 0.1: no confident claim, so nothing wrong there)
    held_out = {m: np.nan_to_num(v["confident"]) for m, v in
                calibration["held_out_ece"].items()}
    assert held_out[calibration["method"]] == min(held_out.values())
    assert calibration["ece_after"]["all"] <= calibration["ece_before"]["all"] + 1e-3
    assert record["validation"]["n_noise_samples"] > 1000


def test_test_split_false_alarms_near_the_target(detector_run):
    out_dir = predict_split(detector_run, progress=False)
    summary = pd.read_csv(out_dir / "detection.csv").set_index("method")
    # the same noise distribution as validation: near the 5 % target (the tiny splits hold
    # few long silences, so the linear methods' thresholds vary more; they are not tested)
    assert summary.loc["unet", "false_alarm_rate"] <= MAX_FALSE_ALARMS
    assert summary["false_alarm_rate"].between(0, 1).all()
    assert summary.loc["unet", "n_noise_samples"] > 1000
    metrics = pd.read_csv(out_dir / "metrics.csv")
    guard = detector_run.network.DETECTION_GUARD_MS * detector_run.simulation.SFREQ / 1000
    noise = metrics[(metrics["method"] == "unet") & (metrics["samples_to_source"] > guard)]
    assert len(noise) == summary.loc["unet", "n_noise_samples"]
    assert np.mean(noise["detections"] > 0) == pytest.approx(
        summary.loc["unet", "false_alarm_rate"])


def test_noise_only_recording_gives_almost_no_detections(detector_run, tmp_path):
    """A recording of sensor noise alone, through predict.py's real-recording path."""
    test_dir = detector_run.run_data_dir / "test"
    files = split_files(test_dir)
    info = mne.io.read_info(files["raw"], verbose=False)
    # the simulation's sensor noise (the diagonal ad-hoc covariance), filtered like the data
    picks = mne.pick_types(info, meg=True, exclude=[])
    cov = mne.make_ad_hoc_cov(mne.pick_info(info, picks), verbose=False)
    rng = np.random.default_rng(7)
    data = np.zeros((len(info["ch_names"]), 3000))
    data[picks] = rng.standard_normal((len(picks), 3000)) * np.sqrt(cov["data"])[:, np.newaxis]
    raw = mne.io.RawArray(data, info, verbose=False)
    sim = detector_run.simulation
    raw.filter(sim.L_FREQ, sim.H_FREQ, picks="data", fir_design=sim.FIR_DESIGN, verbose=False)
    raw_fname = tmp_path / "noise_raw.fif"
    raw.save(raw_fname, verbose=False)
    out = predict_recording(detector_run.run_results_dir, files["inv"], raw_fname=raw_fname,
                            config=detector_run, progress=False)
    stc = mne.read_source_estimate(out)
    sidecar = json.loads((detector_run.run_results_dir / "model" / "model.json").read_text())
    threshold = sidecar["detection"]["best"]["thresholds"]["unet"]
    src = mne.read_source_spaces(files["src"], verbose=False)
    result = localization_metrics(
        stc.data, [[]] * stc.data.shape[1], hemisphere_positions(src, "rh"),
        mesh_adjacency(src[1]), border=2, detection_threshold=threshold,
    )
    false_alarms = np.mean(result["detections"] > 0)
    assert false_alarms <= MAX_FALSE_ALARMS
    # the map is a calibrated probability: on noise it stays low nearly everywhere
    assert np.mean(stc.data >= 0.5) < 0.01
