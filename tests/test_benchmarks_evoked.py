"""benchmarks/evoked.py: the moved device, the evoked simulation, the scoring and the command."""

import json
import re
from pathlib import Path

import mne
import numpy as np
import pytest
from _settings import simulate_and_train, tiny_run_settings

from meg_unet.config import validate_settings

ROOT = Path(__file__).resolve().parent.parent

import evoked  # noqa: E402

METHOD_NAMES = ("MNE", "dSPM", "sLORETA", "U-Net")


def tiny_settings(tmp_path):
    """The tiny profile without artifacts, one short epoch (as tests/test_prediction.py)."""
    return tiny_run_settings(
        tmp_path, run_name="meg", ARTIFACTS=False,
        PARAMETERS={"network.EPOCHS": 1, "network.VALIDATION_STEPS": 2,
                    "tile.STEPS_PER_EPOCH": 4},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_head_model):
    """A tiny run simulated, trained for one epoch and calibrated (about 25 s on 2 cores)."""
    tmp_path = tmp_path_factory.mktemp("evoked")
    return simulate_and_train(validate_settings(tiny_settings(tmp_path)), tiny_head_model,
                              calibrate=True)


# ---- the moved device -------------------------------------------------------------------------


def test_rotation_matrix_is_a_rotation_about_its_axis():
    rotation = evoked.rotation_matrix((0, 0, 2), 90)
    np.testing.assert_allclose(rotation @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rotation @ [0, 0, 1], [0, 0, 1], atol=1e-12)
    rotation = evoked.rotation_matrix((1, 2, 3), 17)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_moved_dev_head_t_translates_and_rotates_the_helmet():
    from mne.transforms import Transform, apply_trans

    original = Transform("meg", "head", np.eye(4))
    moved = evoked.moved_dev_head_t(original, 5.0, 0.0, direction=(0, 0, 3))
    np.testing.assert_allclose(moved["trans"][:3, 3], [0, 0, 0.005])
    moved = evoked.moved_dev_head_t(original, 0.0, 90.0, axis=(1, 0, 0))
    np.testing.assert_allclose(apply_trans(moved, [0, 0.1, 0]), [0, 0, 0.1], atol=1e-12)
    with pytest.raises(evoked.BenchmarkError, match="not all zero"):
        evoked.moved_dev_head_t(original, 5.0, 0.0, direction=(0, 0, 0))


def test_gain_change():
    gain = np.arange(1.0, 13.0).reshape(3, 4)
    assert evoked.gain_change(gain, gain) == {
        "frobenius": 0.0, "per_source_median": 0.0, "per_source_p95": 0.0}
    change = evoked.gain_change(gain, 1.1 * gain)
    assert change["frobenius"] == pytest.approx(0.1)
    assert change["per_source_median"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="shape"):
        evoked.gain_change(gain, gain[:, :2])


def test_unmoved_device_reproduces_the_training_forward(tiny_head_model):
    same = evoked.moved_head(tiny_head_model, 0.0, 0.0)
    assert same["gain_change"]["frobenius"] < 1e-5
    assert same["sensor_shift_mm"] == (0.0, 0.0)
    moved = evoked.moved_head(tiny_head_model, 5.0, 3.0)
    # 5 mm and 3 degrees (about 6 mm at the helmet's radius) move the sensors by millimetres
    # and change the gain matrix by percents
    assert 4.0 < moved["sensor_shift_mm"][0] < moved["sensor_shift_mm"][1] < 12.0
    assert 0.02 < moved["gain_change"]["frobenius"] < 0.5
    assert moved["info"]["dev_head_t"]["trans"][2, 3] != pytest.approx(
        tiny_head_model.info["dev_head_t"]["trans"][2, 3])
    # the training head model is untouched
    assert tiny_head_model.info["dev_head_t"]["trans"][0, 3] != moved["info"][
        "dev_head_t"]["trans"][0, 3]


# ---- the evoked recording ---------------------------------------------------------------------


def test_sources_are_far_apart_and_responses_peak_at_their_latencies(tiny_head_model):
    _, positions, adjacency = evoked.hemisphere_geometry(tiny_head_model.src, "rh")
    assert positions.shape == (162, 3) and adjacency.shape == (162, 162)
    for seed in range(5):
        rows = evoked.choose_sources(positions, np.random.default_rng(seed))
        assert np.linalg.norm(positions[rows[0]] - positions[rows[1]]) >= evoked.MIN_DISTANCE
    times = np.arange(-120, 241) / 600.0
    waves = evoked.response_waveforms(times, [0.02, 0.03])
    assert waves.max() == pytest.approx(1.0)
    np.testing.assert_allclose(times[np.argmax(waves, axis=1)], evoked.LATENCIES, atol=1 / 600)
    columns, _, _ = evoked.hemisphere_geometry(tiny_head_model.src, "both")
    assert columns.tolist() == list(range(324))


def test_simulated_evoked(tiny_head_model):
    config = validate_settings(tiny_run_settings(Path("/nonexistent")))
    fwd = tiny_head_model.fwd_fixed
    names = list(fwd["sol"]["row_names"])
    info = mne.pick_info(tiny_head_model.info,
                         mne.pick_channels(tiny_head_model.info["ch_names"], names, ordered=True))
    with info._unlock():
        info["bads"] = ["MEG 2443"]
    columns = 162 + np.array([10, 100])
    result = evoked.simulate_evoked(info, fwd["sol"]["data"], columns, np.array([0.02, 0.02]),
                                    8, 3.0, config.simulation, np.random.default_rng(0))
    epochs = result["epochs"]
    assert len(epochs) == 8 and epochs.info["bads"] == ["MEG 2443"]
    assert epochs.times[0] == pytest.approx(-0.2, abs=1e-3)
    assert epochs.times[-1] == pytest.approx(0.4, abs=1e-3)
    data = epochs.get_data()
    assert np.all(np.isfinite(data))
    # the filter keeps most of the response and removes more noise than signal
    assert all(2.0 < snr < 10.0 for snr in result["snr_filtered"])
    assert all(0 <= leak < 0.5 for leak in result["baseline_leak"])
    assert np.all(result["amplitudes_nAm"] > 0)


def test_score_method_on_a_perfect_and_on_an_empty_map(tiny_head_model):
    _, positions, adjacency = evoked.hemisphere_geometry(tiny_head_model.src, "rh")
    times = np.arange(-120, 241) / 600.0
    waves = evoked.response_waveforms(times, [0.02, 0.02])
    rows = np.array([5, 120])
    perfect = np.zeros((162, len(times)))
    perfect[rows] = waves
    scores = evoked.score_method(perfect, times, waves, rows, positions, adjacency, 0.1, 600.0)
    assert scores["false_alarm_rate"] == 0.0 and scores["false_detections_per_s"] == 0.0
    assert scores["detected"] == [True, True] and scores["dle_cm"] == [0.0, 0.0]
    assert scores["score_baseline"] < 0.1 < scores["score_response"]

    # a map that is 1 everywhere at one wrong vertex: a false alarm in every baseline sample,
    # one detection per sample, sources missed
    wrong = np.zeros_like(perfect)
    wrong[60] = 1.0
    scores = evoked.score_method(wrong, times, waves, rows, positions, adjacency, 0.5, 600.0)
    assert scores["false_alarm_rate"] == 1.0
    assert scores["false_detections_per_s"] == pytest.approx(600.0)
    assert scores["detected"] == [False, False] and min(scores["dle_cm"]) > 2.0


# ---- the command ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Too few samples")  # 4 trials: a short baseline
def test_end_to_end_on_a_tiny_model(trained, head_model_cache, tmp_path, capsys):
    out = tmp_path / "evoked.md"
    status = evoked.main([
        "--model", str(trained.run_results_dir), "--n-trials", "4", "--repeats", "2",
        "--cache", str(head_model_cache), "--out", str(out), "--seed", "3",
    ])
    assert status == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    for heading in ("## Settings", "## Head-model perturbation", "## Summary over repeats",
                    "## Repeats"):
        assert heading in text
    assert "(1, 1, 1)" in text and "rotated by 3 degrees" in text
    change = float(re.search(r"relative Frobenius difference ([\d.]+) %", text).group(1))
    assert 1.0 < change < 50.0

    # the summary: one row per method, printed too
    thresholds = json.loads((trained.run_results_dir / "model" / "model.json").read_text())[
        "detection"]["best"]["thresholds"]
    for name in METHOD_NAMES:
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| {name} |") and "of 4 |" in line)
        assert row in printed
        cells = [c.strip() for c in row.strip("|").split("|")]
        method = {"MNE": "mne", "dSPM": "dspm", "sLORETA": "sloreta", "U-Net": "unet"}[name]
        assert float(cells[1]) == pytest.approx(thresholds[method], rel=1e-2)
        mean_rate, median_rate = re.fullmatch(r"([\d.]+) \(([\d.]+)\)", cells[2]).groups()
        assert 0 <= float(mean_rate) <= 1 and 0 <= float(median_rate) <= 1
        assert float(cells[3]) >= 0
        assert 0 <= int(cells[4].split(" of ")[0]) <= 4
        assert cells[5] == "--" or 0 <= float(cells[5]) < 30
        baseline, response = (float(v) for v in cells[6].split(" / "))
        assert baseline >= 0 and response >= 0
        if name == "U-Net":
            assert baseline <= 1 and response <= 1
    # every repeat and method has its row
    repeat_rows = [line for line in text.splitlines()
                   if re.match(r"\| [01] \| (MNE|dSPM|sLORETA|U-Net) \|", line)]
    assert len(repeat_rows) == 8
    assert len(re.findall(r"^\| [01] \| \d+, \d+ \([\d.]+ cm\) \|", text, re.M)) == 2


def test_a_folder_without_a_model_is_refused(tmp_path, capsys):
    assert evoked.main(["--model", str(tmp_path), "--out", str(tmp_path / "x.md")]) == 1
    assert "no trained model in" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_a_model_without_detection_thresholds_is_refused(tmp_path, capsys):
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "model.json").write_text(json.dumps({"settings": {}, "vertices": {}}))
    (model / "best.keras").write_bytes(b"")
    assert evoked.main(["--model", str(tmp_path / "run")]) == 1
    assert "no detection thresholds for the 'best' checkpoint" in capsys.readouterr().err
    assert evoked.main(["--model", str(tmp_path / "run"), "--checkpoint", "last"]) == 1
    assert "no last.keras checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--n-trials", "-3"], "--n-trials must be at least 2"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--snr", "0"], "--snr must be positive"),
    (["--shift-mm", "-1"], "--shift-mm must be >= 0"),
    (["--rotate-deg", "120"], "--rotate-deg must lie within"),
    (["--axis", "0,0,0"], "not all zero"),
    (["--direction", "1,2"], "three numbers"),
    (["--checkpoint", "worst"], "invalid choice"),
])
def test_bad_arguments_are_refused(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as excinfo:
        evoked.main(["--model", str(tmp_path), *arguments])
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err
