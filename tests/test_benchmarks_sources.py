"""benchmarks/sources.py: the scores per window, the summary and the command on a tiny model."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _settings import simulate_and_train, tiny_run_settings, write_config_file

from meg_unet.config import validate_settings
from meg_unet.prediction import predict_split

ROOT = Path(__file__).resolve().parent.parent

import sources as benchmark  # noqa: E402


def test_the_summary_counts_matches_per_kind_of_window():
    table = pd.DataFrame([
        # method, window, n_true, n_found, n_matched, matched_dle_cm, amplitude_error, ms
        ("omp", 0, 1, 2, 1, 0.5, 0.1, 2.0),
        ("omp", 1, 3, 3, 2, 1.0, 0.3, 4.0),
        ("omp", -1, 0, 1, 0, np.nan, np.nan, 3.0),
        ("omp", -2, 0, 0, 0, np.nan, np.nan, 1.0),
    ], columns=["method", "window", "n_true", "n_found", "n_matched", "matched_dle_cm",
                "amplitude_error", "ms"])
    summary = benchmark.summary(table).set_index("windows")
    assert summary.loc["1 source", "precision"] == 0.5
    assert summary.loc["2-5 sources", "recall"] == pytest.approx(2 / 3)
    assert summary.loc["noise only", "count_error"] == 0.5
    assert np.isnan(summary.loc["noise only", "recall"])
    assert summary.loc["noise only", "ms_median"] == 2.0
    text = benchmark.markdown(benchmark.summary(table), "# title")
    assert "| noise only | omp | 2 | 0.00 |  | 0.50 |" in text


def test_a_source_found_at_a_neighbouring_source_is_no_ghost():
    table = pd.DataFrame([
        # the second found source lies at the previous window's source, still ringing
        ("omp", 0, 1, 2, 1, 1, 0.5, 0.1, 2.0),
        ("omp", 1, 1, 2, 1, 0, 0.5, 0.1, 2.0),
    ], columns=["method", "window", "n_true", "n_found", "n_matched", "n_neighbour",
                "matched_dle_cm", "amplitude_error", "ms"])
    summary = benchmark.summary(table).set_index("windows")
    assert summary.loc["1 source", "precision"] == pytest.approx(2 / 3)
    assert summary.loc["1 source", "count_error"] == 0.5
    assert summary.loc["1 source", "neighbours"] == 0.25


def test_neighbour_rows_are_the_other_sources_with_signal_near_the_window():
    from meg_unet.split_data import Window

    amplitudes = np.zeros((4, 100))
    amplitudes[0, 10:30] = 1.0  # the window's own source
    amplitudes[1, 30:45] = 1e-3  # the next source, starting right after the window
    amplitudes[2, 80:90] = 1.0  # far away in time
    truth = type("Truth", (), {"amplitudes": amplitudes})()
    window = Window(0, 10, 30, (0,))
    assert list(benchmark.neighbour_rows(truth, window, guard=5)) == [1]
    assert list(benchmark.neighbour_rows(truth, window, guard=0)) == []
    # a patch is one source: its other rows are the window's own, not neighbours
    amplitudes[3, 10:30] = 0.5
    truth.manifest = {"patches": {"rows": [[[0, 3]]]}}
    assert list(benchmark.neighbour_rows(truth, window, guard=5)) == [1]
    del truth.manifest["patches"]
    assert list(benchmark.neighbour_rows(truth, window, guard=5)) == [1, 3]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, tiny_head_model):
    """A tiny run trained for one epoch, calibrated and predicted on its test split."""
    tmp_path = tmp_path_factory.mktemp("sources")
    values = tiny_run_settings(tmp_path, run_name="meg", ARTIFACTS=False, PARAMETERS={
        "network.EPOCHS": 1, "network.VALIDATION_STEPS": 2, "tile.STEPS_PER_EPOCH": 4})
    config = simulate_and_train(validate_settings(values), tiny_head_model, calibrate=True)
    predict_split(config, n_images=0, progress=False)
    return write_config_file(tmp_path / "config.py", values), tmp_path


def test_the_command_scores_every_method_on_the_same_windows(predicted, capsys):
    config_file, tmp_path = predicted
    out = tmp_path / "bench"
    status = benchmark.main([
        "--config", str(config_file), "--n-windows", "6", "--n-slow-windows", "2",
        "--n-noise", "3", "--results-dir", str(out), "--methods", "unet_refit", "unet_peaks",
        "omp", "mxne", "--threshold-factor", "1.5",
    ])
    assert status == 0
    table = pd.read_csv(out / "sources-meg.csv")
    windows = table.groupby("method")["window"].apply(lambda w: sorted(w[w >= 0]))
    assert len(windows["omp"]) == 6 and windows["omp"] == windows["unet_refit"]
    assert set(windows["mxne"]) <= set(windows["omp"]) and len(windows["mxne"]) == 2
    assert (table["n_matched"] <= table[["n_true", "n_found"]].min(axis=1)).all()
    noise = table[table["n_true"] == 0]
    assert noise["n_matched"].eq(0).all() and noise["window"].lt(0).all()
    text = (out / "sources-meg.md").read_text()
    assert text in capsys.readouterr().out
    assert "| 1 source | unet_refit | 6 |" in text
    assert "The U-Net's whole path per 30 samples" in text
    assert "candidates above 1.5 x the detection thresholds" in text


def test_missing_predictions_are_refused_with_what_to_run(predicted, tmp_path, capsys):
    config_file, _ = predicted
    other = tmp_path / "nothing"
    assert benchmark.main(["--config", str(config_file), "--data", str(other)]) == 1
    assert "is not a simulated split" in capsys.readouterr().err
    valid = Path(str(config_file.parent / "data" / "meg" / "valid"))
    assert benchmark.main(["--config", str(config_file), "--data", str(valid)]) == 1
    assert "run predict.py --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main(["--config", str(config_file), "--n-windows", "0"])
    with pytest.raises(SystemExit):
        benchmark.main(["--config", str(config_file), "--threshold-factor", "0"])


def test_a_wrong_forward_model_inverts_every_method_with_the_moved_device(predicted, capsys):
    config_file, tmp_path = predicted
    out = tmp_path / "wrong"
    status = benchmark.main([
        "--config", str(config_file), "--n-windows", "4", "--n-slow-windows", "1",
        "--n-noise", "2", "--results-dir", str(out), "--methods", "unet_refit", "omp",
        "--wrong-forward", "4", "3",
    ])
    assert status == 0
    text = (out / "sources-meg-wrong-forward.md").read_text()
    assert "moved by 4 mm and turned by 3 degrees" in text
    change = float(text.split("the gain matrix changes by ")[1].split("%")[0])
    assert 1 < change < 60
    # the U-Net's map came from predict_recording with the wrong inverse operator
    work = tmp_path / "results" / "meg" / "sources-meg-wrong-forward-work"
    assert (work / "model-unet-stc.h5").is_file() and (work / "model-events.tsv").is_file()
    table = pd.read_csv(out / "sources-meg-wrong-forward.csv")
    assert set(table["method"]) == {"unet_refit", "omp"}


@pytest.mark.parametrize("patches", [False, True])
def test_a_split_on_a_finer_source_space_is_inverted_on_the_models(predicted, tiny_head_model,
                                                                    head_model_ico3_meg,
                                                                    patches, capsys):
    """ico3 data (dipoles off the tiny model's ico2 grid, or patches) scored on ico2."""
    from meg_unet.simulation import SimulationModel

    config_file, tmp_path = predicted
    fine = validate_settings(tiny_run_settings(
        tmp_path, run_name=f"fine-{patches}", SPACING="ico3", ARTIFACTS=False,
        PARAMETERS={"simulation.PATCH_AREA_CM2": (2.0, 10.0)} if patches else {}))
    directory = SimulationModel(fine, head_model_ico3_meg).simulate_split("test")
    out = tmp_path / f"fine-{patches}"
    status = benchmark.main([
        "--config", str(config_file), "--data", str(directory), "--n-windows", "20",
        "--n-slow-windows", "1", "--n-noise", "2", "--results-dir", str(out),
        "--methods", "unet_refit", "omp", "--out", "fine"])
    assert status == 0
    text = (out / "fine.md").read_text()
    assert "simulated on a ico3 source space (642 sources)" in text
    assert "on the model's ico2 (162 sources)" in text
    table = pd.read_csv(out / "fine.csv")
    windows = sorted(set(table.loc[table["window"] >= 0, "window"]))
    manifest = benchmark.read_json(directory / "manifest.json")
    rows = [manifest["activations"]["rows"][w] for w in windows]
    if patches:
        assert "Every source is a patch of" in text and len(windows) == 20
    else:
        # ico2 vertices are the first 162 of ico3: only windows of the others count
        assert all(r >= 162 for window in rows for r in window)
        n_off = sum(min(r) >= 162 for r in manifest["activations"]["rows"])
        assert f"lies off the model's grid count ({n_off} of 642)" in text
    # matches are scored against the simulated positions, within 2 cm
    assert table["matched_dle_cm"].dropna().between(0, 2).all()
