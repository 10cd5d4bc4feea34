"""benchmarks/accuracy.py: experiment definitions, skipping logic, verdicts and tables."""

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent

import accuracy  # noqa: E402


@pytest.mark.parametrize("profile", ["tiny", "quick", "thesis"])
def test_every_data_set_is_a_valid_configuration(profile):
    runner = accuracy.Runner(ROOT / "config.py", profile)
    for data in accuracy.DATA_SETS.values():
        config = runner.config(data)
        assert config.run_name == f"{data.name}-{profile}"
        assert config.sensors == data.settings["SENSORS"]
        assert config.network.EPOCHS == data.settings.get("network.EPOCHS",
                                                          config.network.EPOCHS)


def test_thesis_data_sets_use_lambda2_one_over_snr_squared():
    runner = accuracy.Runner(ROOT / "config.py", "quick")
    assert runner.config(accuracy.DATA_SETS["meg1"]).lambda2 == pytest.approx(1 / 9)
    assert runner.config(accuracy.DATA_SETS["meg2"]).lambda2 == pytest.approx(1.0)
    assert runner.config(accuracy.DATA_SETS["megeeg1"]).lambda2 == pytest.approx(1.0)
    for name in ("mixed", "multi-2to5-snr3", "multi-single-snr0.5", "multi-single-snr10"):
        assert runner.config(accuracy.DATA_SETS[name]).lambda2 == pytest.approx(1 / 9)


def test_evaluations_refer_to_known_networks_data_and_tables():
    for experiment, evaluations in accuracy.EVALUATIONS.items():
        for evaluation in evaluations:
            assert evaluation.network in accuracy.NETWORKS[experiment]
            assert evaluation.data in accuracy.DATA_SETS
            assert evaluation.thesis_table is None or evaluation.thesis_table in accuracy.THESIS_MEANS
    # the thesis's crossings, Tables 13-17
    crossings = {(e.network, e.data): e.thesis_table for e in accuracy.EVALUATIONS["thesis"]}
    assert crossings[("meg1", "meg2")] == "13" and crossings[("meg2", "meg1")] == "14"
    assert crossings[("meg2", "megeeg1")] == "15" and crossings[("megeeg1", "meg2")] == "16"
    assert crossings[("megeeg1", "megeeg1-multi")] == "17"
    # the robustness curve takes single-dipole sets only, one per SNR
    curve = [e for e in accuracy.EVALUATIONS["multi"] if e.snr is not None]
    assert sorted(e.snr for e in curve) == sorted(accuracy.CURVE_SNRS)
    assert all(accuracy.DATA_SETS[e.data].settings["N_DIPOLES"] == 1 for e in curve)


def test_thesis_reference_takes_table_5_and_rescales_its_sd():
    reference = accuracy.thesis_reference("5")
    assert reference[("dle_cm", "unet")] == 3.587
    assert reference[("dle_cm", "dspm")] == 4.171
    assert reference[("sd_thesis_sqrtcm", "mne")] == pytest.approx(2.3923)
    assert reference[("oa", "sloreta")] == 144.095
    assert accuracy.thesis_reference(None) is None


def _summary(dle):
    return pd.DataFrame(
        [{"method": m, "metric": "dle_cm", "mean": v, "n": 10, "sd": 1, "min": 0, "max": 5}
         for m, v in dle.items()]
    )


def test_compare_with_l2_names_the_best_input_and_the_percentage():
    text = accuracy.compare_with_l2(_summary({"mne": 2.0, "dspm": 2.5, "sloreta": 1.5,
                                              "unet": 0.6}))
    assert text.startswith("yes: U-Net 0.60 cm vs sLORETA 1.50 cm")
    assert "60 % lower" in text
    text = accuracy.compare_with_l2(_summary({"mne": 2.0, "dspm": 1.0, "sloreta": 1.5,
                                              "unet": 1.2}))
    assert text.startswith("no: U-Net 1.20 cm vs dSPM 1.00 cm") and "20 % higher" in text


def test_training_state(tmp_path):
    model = tmp_path / "model"
    assert accuracy.training_state(model, 12) == "fresh"
    model.mkdir()
    sidecar = {"epochs_completed": 4}
    (model / "model.json").write_text(json.dumps(sidecar))
    assert accuracy.training_state(model, 12) == "fresh"  # no checkpoint to resume from
    (model / "last.keras").write_bytes(b"")
    assert accuracy.training_state(model, 12) == "resume"
    assert accuracy.training_state(model, 4) == "done"
    sidecar["stopped_early"] = True
    (model / "model.json").write_text(json.dumps(sidecar))
    assert accuracy.training_state(model, 12) == "done"
    sidecar.update(stopped_early=False, epochs_completed=12)
    (model / "model.json").write_text(json.dumps(sidecar))
    assert accuracy.training_state(model, 12) == "done"
    assert accuracy.training_state(model, 36) == "resume"  # EPOCHS raised since


def test_settings_are_written_as_a_user_would():
    assert accuracy._setting_text("meg+eeg") == "meg+eeg"
    assert accuracy._setting_text("meg1-quick") == "meg1-quick"
    assert accuracy._setting_text((2, 5)) == "(2, 5)"
    assert accuracy._setting_text(1 / 9) == repr(1 / 9)


def test_dry_run_prints_the_commands_and_runs_nothing(tmp_path, capsys):
    config = tmp_path / "config.py"
    config.write_text(f"DATA_DIR = {str(tmp_path / 'data')!r}\n"
                      f"RESULTS_DIR = {str(tmp_path / 'results')!r}\n")
    accuracy.main(["--profile", "tiny", "--dry-run", "--config", str(config),
                   "--output", str(tmp_path / "out.md")])
    out = capsys.readouterr().out
    assert "simulate_data.py" in out and "train_network.py" in out and "predict.py" in out
    assert "--set RUN_NAME=megeeg1-multi-tiny" in out and "'N_DIPOLES=(2, 5)'" in out
    assert not (tmp_path / "out.md").exists() and not (tmp_path / "data").exists()


def test_bad_window_counts_are_refused():
    with pytest.raises(SystemExit, match="--windows"):
        accuracy.main(["--windows", "0", "--dry-run"])


def test_multi_table_and_robustness_plot(tmp_path):
    rows = []
    for method, dle in (("mne", 3.0), ("sloreta", 2.0), ("mxne", 1.0), ("unet", 0.5)):
        for sample in range(4):
            rows.append(dict(method=method, sample=sample, dle_cm=dle, sd_cm=1.0, recall=1.0,
                             ghosts=0.0))
    table = pd.DataFrame(rows)
    timings = pd.DataFrame([dict(method=m, window=w, seconds=s)
                            for m, s in (("mne", 0.001), ("sloreta", 0.002), ("mxne", 2.0))
                            for w in (-1, 0, 1)])
    lines, means = accuracy.multi_table(table, timings, {0, 1}, unet_ms=3.5)
    assert means == {"mne": 3.0, "sloreta": 2.0, "mxne": 1.0, "unet": 0.5}
    assert any(line.startswith("| MxNE (subset) | 1.00 |") and "| 2000.0 |" in line
               for line in lines)
    assert lines[-1].startswith("| U-Net on the subset | 0.50 |") and lines[-1].endswith("| 2 |")
    path = tmp_path / "curve.png"
    accuracy.robustness_plot({1.0: means, 3.0: means}, path, "tiny")
    assert path.stat().st_size > 10_000
