"""predict.py and meg_unet.prediction on a tiny simulated and trained run."""

import json
import shutil

import matplotlib.image
import mne
import numpy as np
import pandas as pd
import pytest
from _settings import simulate_and_train, tiny_run_settings, write_config_file
from _fake_splits import write_fake_split

from meg_unet.config import validate_settings
from meg_unet.data_provider import DataProvider
from meg_unet.calibration import apply_calibration
from meg_unet.metrics import hemisphere_positions, mesh_adjacency
from meg_unet.network.training import load_trained_model
from meg_unet.prediction import MismatchError, predict_split
from meg_unet.scoring import metrics_table
from meg_unet.recording import predict_recording
from meg_unet.tiles import tile_layout
from meg_unet.sources import read_events
from meg_unet.tables import read_metrics, summary_table

import predict  # the script at the repository root (pytest's pythonpath)
import visualize_predictions

#: The schema of metrics.csv that meg_unet.tables and analyze_results.r read.
COLUMNS = [
    "split", "sample", "n_sources", "true_vertices", "method", "peak_vertices", "dle_cm",
    "sd_cm", "oa", "sd_thesis_sqrtcm", "recall", "ghosts",
    "score", "detections", "true_detections", "detected_sources", "snr",
    "samples_to_source",
]
METHODS = ["mne", "dspm", "sloreta", "unet"]
T_STEPS = 64  # the tiny profile's tiles
BORDER = 2


def tiny_settings(tmp_path, **extra):
    values = {
        "ARTIFACTS": False,  # no ECG/EOG, ICA or SSP: seconds instead of minutes
        # one short epoch is enough to have a model to run
        "PARAMETERS": {
            "network.EPOCHS": 1,
            "network.VALIDATION_STEPS": 2,
            "tile.STEPS_PER_EPOCH": 4,
        },
    }
    values.update(extra)
    return tiny_run_settings(tmp_path, run_name="meg", **values)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_head_model):
    """A tiny run simulated with SimulationModel and trained once for the module."""
    tmp_path = tmp_path_factory.mktemp("prediction")
    return simulate_and_train(validate_settings(tiny_settings(tmp_path)), tiny_head_model)


@pytest.fixture(scope="module")
def predicted(run):
    """The run's test split predicted once with the library entry point."""
    return predict_split(run, progress=False)


def test_predictions_folder(run, predicted):
    assert predicted == run.run_results_dir / "predictions"
    names = {p.name for p in predicted.iterdir()}
    assert {"metrics.csv", "summary.csv", "summary.md", "test-unet-stc.h5", "test-events.tsv",
            "test-sources-stc.h5", "prediction.json"} <= names
    record = json.loads((predicted / "prediction.json").read_text())
    assert record["border"] == BORDER and record["split"] == "test"
    # every source of the table is a vertex of the sparse estimate, within the hemisphere
    events = read_events(predicted / "test-events.tsv")
    assert record["sources"] == len(events)
    sparse = mne.read_source_estimate(predicted / "test-sources-stc.h5")
    assert set(events["vertex"]) == set(np.concatenate(sparse.vertices))
    assert set(events["hemi"]) <= {run.hemisphere}
    assert (events["offset_s"] > events["onset_s"]).all()
    assert "aligned to the end" in record["tiles"]["remainder"]


# ---- tiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_times, starts", [(10, [0, 4, 6]), (8, [0, 4]), (3, [0])])
def test_tiles_cover_every_sample_once(n_times, starts):
    layout = tile_layout(n_times, 4)
    assert layout.starts.tolist() == starts
    owners = np.zeros(n_times, int)
    for tile in range(layout.n_tiles):
        owners[layout.owned(tile)] += 1
    assert owners.tolist() == [1] * n_times
    assert layout.padded == (n_times < 4)


def test_border_columns_are_those_of_the_owner_tile():
    layout = tile_layout(10, 4)  # tiles 0-3, 4-7 and 6-9 (owning 8-9)
    np.testing.assert_array_equal(
        layout.evaluated(1), [0, 1, 1, 0, 0, 1, 1, 0, 1, 0]
    )
    with pytest.raises(ValueError, match="t_steps"):
        tile_layout(10, 0)


# ---- metrics.csv and the summary ------------------------------------------------------------


def test_metrics_csv_schema(run, predicted):
    df = pd.read_csv(predicted / "metrics.csv", dtype={"true_vertices": str,
                                                       "peak_vertices": str})
    assert list(df.columns) == COLUMNS
    read_metrics(predicted / "metrics.csv")  # the checks of meg_unet.tables pass

    manifest = json.loads((run.run_data_dir / "test" / "manifest.json").read_text())
    vertno = np.asarray(manifest["vertices"]["rh"])
    width = manifest["samples_per_activation"]
    truth = {}
    for onset, rows in zip(manifest["activations"]["onsets"], manifest["activations"]["rows"]):
        for sample in range(onset, onset + width):
            truth[sample] = ";".join(str(v) for v in sorted(vertno[rows]))
    evaluated = tile_layout(manifest["n_samples"], T_STEPS).evaluated(BORDER)
    expected = np.flatnonzero(evaluated).tolist()

    # one row per evaluated sample and method, noise-only samples included, methods in
    # table order
    assert (df["split"] == "test").all()
    assert df.groupby("sample")["method"].apply(list).tolist() == [METHODS] * len(expected)
    assert sorted(df["sample"].unique()) == expected
    # the true sources are the manifest's activations
    active = df["sample"].isin(truth)
    assert active.any() and (~active).any()
    assert (df.loc[active, "n_sources"] == 1).all() and (df.loc[~active, "n_sources"] == 0).all()
    assert df.loc[active, "true_vertices"].tolist() == [truth[s] for s in df.loc[active, "sample"]]
    assert df.loc[~active, "true_vertices"].isna().all()
    assert df.loc[active, ["dle_cm", "sd_cm", "oa"]].notna().all().all()
    assert (df.loc[active, "oa"] >= 1).all()
    # localization metrics are for samples with a source; detections for every sample
    assert df.loc[~active, ["dle_cm", "sd_cm", "oa", "recall", "ghosts"]].isna().all().all()
    assert df[["score", "detections"]].notna().all().all()
    assert (df["true_detections"] <= df["detections"]).all()
    assert (df["detected_sources"] <= df["n_sources"]).all()
    assert (df.loc[~active, "true_detections"] == 0).all()
    # each source's SNR in the sample: positive where a source is, none where none is
    assert (df.loc[active, "snr"] > 0).all() and df.loc[~active, "snr"].isna().all()


def test_summary_equals_summary_table(predicted):
    written = pd.read_csv(predicted / "summary.csv")
    expected = summary_table(read_metrics(predicted / "metrics.csv"))
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    text = (predicted / "summary.md").read_text()
    assert "| DLE (cm) | MNE |" in text and "U-Net" in text


def test_perfect_prediction_has_zero_dle(run):
    """The truth fed through the metric path as a prediction: DLE 0 for every dipole."""
    _, _, preprocessing = load_trained_model(run.run_results_dir / "model")
    provider = DataProvider(run, "test", preprocessing=preprocessing)
    perfect = (provider.amplitudes != 0).astype(np.float32)
    positions = hemisphere_positions(provider.src, "rh")
    table = metrics_table(
        {"unet": perfect},
        provider.amplitudes,
        positions,
        tile_layout(provider.n_times, T_STEPS),
        provider.vertno,
        adjacency=mesh_adjacency(provider.src[1]),
        border=BORDER,
    )
    # the border rows (vertices) are never evaluated: a source there has no kept peak
    in_border = table["true_vertices"].astype(int).isin([0, 1, 160, 161])
    inside = table[~in_border]
    assert len(inside) > 0.9 * len(table)
    assert (inside["dle_cm"] == 0).all() and (inside["sd_cm"] == 0).all()
    assert (inside["oa"] == 1).all() and (inside["recall"] == 1).all()
    assert (inside["ghosts"] == 0).all()
    assert (inside["peak_vertices"] == inside["true_vertices"]).all()
    assert table.loc[in_border, "dle_cm"].isna().all()


def test_perfect_prediction_of_two_dipoles(tiny_head_model):
    src = tiny_head_model.src
    amplitudes = np.zeros((162, 20))
    amplitudes[[10, 100], 5:15] = 1e-8
    table = metrics_table(
        {"unet": (amplitudes > 0).astype(float)},
        amplitudes,
        hemisphere_positions(src, "rh"),
        tile_layout(20, 20),
        src[1]["vertno"],
        adjacency=mesh_adjacency(src[1]),
        border=0,
        hemis=np.full(162, "rh", dtype=object),
    )
    assert table["sample"].tolist() == list(range(5, 15))
    assert (table["n_sources"] == 2).all() and (table["true_vertices"] == "10;100").all()
    assert (table["hemi"] == "rh;rh").all()
    assert (table["dle_cm"] == 0).all() and (table["recall"] == 1).all()


# ---- images and the source estimate ----------------------------------------------------------


def test_tile_images_are_limited(predicted):
    images = sorted(predicted.glob("test-tile-*.png"))
    assert len(images) == 4  # the default, not one per tile
    image = matplotlib.image.imread(images[0])
    assert image.shape[:2] == (162, 3 * T_STEPS + 4)  # inputs | truth | prediction


def test_unet_source_estimate(run, predicted):
    stc = mne.read_source_estimate(predicted / "test-unet-stc.h5")
    reference = mne.read_source_estimate(run.run_data_dir / "test" / "test-truth-stc.h5")
    assert stc.subject == "fsaverage"
    assert len(stc.vertices[0]) == 0
    np.testing.assert_array_equal(stc.vertices[1], reference.vertices[1])
    np.testing.assert_allclose(stc.times, reference.times)
    assert stc.data.dtype == np.float32
    assert 0 <= stc.data.min() and stc.data.max() <= 1

    # tile by tile, with batch normalization in inference mode; the samples left over are
    # predicted by a tile aligned to the end
    # (the probability calibrated on the validation split, see test_calibration_record)
    model, sidecar, preprocessing = load_trained_model(run.run_results_dir / "model")

    def calibrated(p):
        return apply_calibration(p, sidecar["detection"]["best"])

    provider = DataProvider(run, "test", preprocessing=preprocessing)
    first = model.predict(provider.inputs[np.newaxis, :, :T_STEPS], verbose=0)[0]
    np.testing.assert_allclose(stc.data[:, :T_STEPS], calibrated(1 - first[..., 0]), atol=1e-5)
    n_times = provider.n_times
    last = model.predict(provider.inputs[np.newaxis, :, n_times - T_STEPS :], verbose=0)[0]
    left_over = n_times % T_STEPS
    assert left_over > 0
    np.testing.assert_allclose(
        stc.data[:, n_times - left_over :], calibrated(1 - last[:, -left_over:, 0]), atol=1e-5
    )


def test_calibration_record(run, predicted):
    """predict.py calibrates a model trained without it, on the run's validation split."""
    sidecar = json.loads((run.run_results_dir / "model" / "model.json").read_text())
    record = sidecar["detection"]["best"]
    assert record["false_alarm_rate"] == run.network.DETECTION_FALSE_ALARM_RATE
    assert set(record["thresholds"]) == set(METHODS)
    assert record["calibration"]["method"] in ("none", "platt", "isotonic")
    assert set(record["calibration"]["held_out_ece"]) == {"none", "platt", "isotonic"}
    assert record["validation"]["n_noise_samples"] > 0
    assert record["validation"]["directory"] == str(run.run_data_dir / "valid")
    calibration = record["calibration"]
    assert calibration["ece_after"]["all"] <= calibration["ece_before"]["all"] + 1e-3
    summary = pd.read_csv(predicted / "detection.csv")
    assert summary["method"].tolist() == METHODS
    assert summary["false_alarm_rate"].between(0, 1).all()
    text = (predicted / "detection.md").read_text()
    assert text.count("| U-Net |") == 1
    assert "| SNR in the sample | samples |" in text  # recall and DLE per band of SNR
    assert summary[["false_alarm_low", "false_alarm_high", "recall_snr"]].notna().all().all()
    assert (predicted / "reliability.png").stat().st_size > 0


# ---- another run's split ----------------------------------------------------------------------


def test_another_runs_split_goes_to_its_own_folder(run, predicted, tiny_head_model, tmp_path):
    before = (predicted / "metrics.csv").stat().st_mtime_ns
    other = tmp_path / "data" / "other" / "test"
    # other sensors are allowed: the network sees source estimates only
    write_fake_split(other, tiny_head_model.src, "test", sensors="meg+eeg", n_samples=200)
    out = predict_split(run, model_dir=run.run_results_dir, data_dir=other.parent,
                        n_images=1, progress=False)
    assert out == run.run_results_dir / "predictions-other-test"
    assert len(list(out.glob("test-tile-*.png"))) == 1
    assert set(read_metrics(out / "metrics.csv")["method"]) == set(METHODS)
    assert (predicted / "metrics.csv").stat().st_mtime_ns == before


def test_another_source_space_or_channels_refused(run, tiny_head_model, tmp_path):
    src_ico1 = mne.setup_source_space(
        "fsaverage", "ico1", subjects_dir=tiny_head_model.subjects_dir, add_dist=False,
        verbose="error",
    )
    coarse = tmp_path / "coarse" / "test"
    write_fake_split(coarse, src_ico1, "test", spacing="ico1", n_samples=100)
    with pytest.raises(MismatchError, match="SPACING") as excinfo:
        predict_split(run, model_dir=run.run_results_dir, data_dir=coarse, progress=False)
    assert "vertex numbers: the split's rh source space has 42 vertices" in str(excinfo.value)
    assert "the model's 162" in str(excinfo.value)

    fewer = tmp_path / "fewer" / "test"
    write_fake_split(fewer, tiny_head_model.src, "test", channels=("mne", "dspm"),
                     n_samples=100)
    with pytest.raises(MismatchError, match=r"needs mne, dspm, sloreta.*\(sloreta missing\)"):
        predict_split(run, model_dir=run.run_results_dir, data_dir=fewer, progress=False)

    # the default model must match the configuration
    with pytest.raises(ValueError, match="CHANNELS"):
        predict_split(run.replace(CHANNELS=("mne", "dspm")), progress=False)


# ---- a real recording --------------------------------------------------------------------------


def test_recording_matches_the_split(run, predicted, tmp_path):
    split_dir = run.run_data_dir / "test"
    out = predict_recording(
        run.run_results_dir,
        split_dir / "test-inv.fif",
        raw_fname=split_dir / "test_raw.fif",
        chunk_tiles=7,  # several chunks, the last one shorter
        progress=False,
    )
    assert out == predicted / "test_raw-unet-stc.h5"
    stc = mne.read_source_estimate(out)
    raw = mne.io.read_raw_fif(split_dir / "test_raw.fif", verbose=False)
    assert stc.data.shape == (162, raw.n_times)
    assert stc.tstep == pytest.approx(1 / raw.info["sfreq"])
    assert stc.subject == "fsaverage"
    # the same raw and inverse as the split: the same prediction (up to float32 storage)
    expected = mne.read_source_estimate(predicted / "test-unet-stc.h5")
    np.testing.assert_allclose(stc.data, expected.data, atol=1e-4)

    # the recording's sources are the split's: same map, same data, same inverse operator
    recorded = read_events(predicted / "test_raw-events.tsv")
    pd.testing.assert_frame_equal(recorded, read_events(predicted / "test-events.tsv"),
                                  atol=1e-3)
    sparse = mne.read_source_estimate(predicted / "test_raw-sources-stc.h5")
    assert sparse.data.shape[1] == raw.n_times

    # an explicit output file is not replaced without overwrite
    target = tmp_path / "rec-unet-stc.h5"
    target.write_text("earlier")
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_recording(run.run_results_dir, split_dir / "test-inv.fif",
                          raw_fname=split_dir / "test_raw.fif", out_fname=target)


def test_evoked_shorter_than_a_tile(run, tmp_path):
    split_dir = run.run_data_dir / "test"
    raw = mne.io.read_raw_fif(split_dir / "test_raw.fif", verbose=False)
    evoked = mne.EvokedArray(raw.get_data(stop=40), raw.info, tmin=0.0, nave=1,
                             verbose=False)
    evoked.save(tmp_path / "short-ave.fif", verbose=False)
    out = predict_recording(
        run.run_results_dir,
        split_dir / "test-inv.fif",
        evoked_fname=tmp_path / "short-ave.fif",
        out_fname=tmp_path / "short-unet-stc.h5",
        progress=False,
    )
    stc = mne.read_source_estimate(out)
    assert stc.data.shape == (162, 40)
    assert np.all(np.isfinite(stc.data))


def test_recording_at_another_sampling_rate_refused(run, tmp_path):
    split_dir = run.run_data_dir / "test"
    raw = mne.io.read_raw_fif(split_dir / "test_raw.fif", preload=True, verbose=False)
    raw.crop(0, 1).resample(1000.0, verbose=False)
    raw.save(tmp_path / "fast_raw.fif", verbose=False)
    with pytest.raises(MismatchError) as excinfo:
        predict_recording(run.run_results_dir, split_dir / "test-inv.fif",
                          raw_fname=tmp_path / "fast_raw.fif", progress=False)
    message = str(excinfo.value)
    assert "the model was trained at 600.6 Hz, the recording is sampled at 1000 Hz" in message
    assert "raw.resample(600.615)" in message


def test_recording_with_other_sensors_or_source_space_refused(run, tmp_path):
    # a model trained on MEG+EEG, fixed-orientation data on other vertices (its sidecar
    # crafted): every difference is named
    results = tmp_path / "results"
    shutil.copytree(run.run_results_dir / "model", results / "megeeg" / "model")
    sidecar_path = results / "megeeg" / "model" / "model.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["settings"]["SENSORS"] = "meg+eeg"
    sidecar["settings"]["ORIENTATION"] = "fixed"
    sidecar["vertices"]["rh"] = list(range(1, 163))
    # a hyperparameter removed from parameters/ since training does not stop a prediction
    sidecar["settings"]["RESOLVED_PARAMETERS"]["simulation"]["REMOVED_SINCE"] = 1
    sidecar_path.write_text(json.dumps(sidecar))
    split_dir = run.run_data_dir / "test"
    with pytest.raises(MismatchError) as excinfo:
        predict_recording(results / "megeeg", split_dir / "test-inv.fif",
                          raw_fname=split_dir / "test_raw.fif", progress=False)
    message = str(excinfo.value)
    assert "the model was trained on MEG+EEG data, the inverse operator uses MEG" in message
    assert "source space: the inverse operator's rh hemisphere has 162 vertices" in message
    assert "orientation: the model was trained on fixed-orientation" in message


# ---- the script ---------------------------------------------------------------------------------


def test_script_end_to_end(run, tmp_path, capsys):
    shutil.copytree(run.run_results_dir / "model", tmp_path / "results" / "meg" / "model")
    values = tiny_settings(tmp_path)
    values["DATA_DIR"] = run.data_dir
    config_file = write_config_file(tmp_path / "config.py", values)
    out = tmp_path / "results" / "meg" / "predictions"

    assert predict.main(["--config", str(config_file), "--n-images", "2"]) == 0
    assert len(list(out.glob("test-tile-*.png"))) == 2
    assert list(read_metrics(out / "metrics.csv")["method"].unique()) == METHODS
    # a rerun replaces its own outputs, earlier images included
    assert predict.main(["--config", str(config_file), "--n-images", "1"]) == 0
    assert len(list(out.glob("test-tile-*.png"))) == 1
    # make demo ends with the table of events, and the figures draw the first second
    from meg_unet.cli import events

    assert events(["--config", str(config_file), "--rows", "3"]) == 0
    printed = capsys.readouterr().out
    assert "sources found in the test split" in printed and "the simulation put" in printed
    n_found = len(read_events(out / "test-events.tsv"))
    assert printed.startswith(f"{n_found} sources found")
    assert ("amplitude_nam" in printed) == (n_found > 0)
    assert visualize_predictions.main(["--config", str(config_file)]) == 0
    assert (tmp_path / "results" / "meg" / "figures" / "sources.png").is_file()

    split_dir = run.data_dir / "meg" / "test"
    assert predict.main([
        "--config", str(config_file), "--raw", str(split_dir / "test_raw.fif"),
        "--inverse", str(split_dir / "test-inv.fif"),
    ]) == 0
    assert (out / "test_raw-unet-stc.h5").is_file()

    with pytest.raises(SystemExit) as excinfo:
        predict.main(["--config", str(config_file), "--data", str(tmp_path / "nothing")])
    assert excinfo.value.code == 1
    with pytest.raises(SystemExit) as excinfo:
        predict.main(["--config", str(config_file), "--raw", "x_raw.fif"])
    assert excinfo.value.code == 2


@pytest.mark.filterwarnings("ignore:.*(Invalid tag|naming conventions):RuntimeWarning")
def test_foreign_or_truncated_recording_refused_by_name(run, tmp_path, capsys):
    """A text file, a FIF file cut in half or a raw file given as the inverse: one line each,
    naming the file and the way out, before the model loads and before anything is written."""
    shutil.copytree(run.run_results_dir / "model", tmp_path / "results" / "meg" / "model")
    values = tiny_settings(tmp_path)
    values["DATA_DIR"] = run.data_dir
    config_file = write_config_file(tmp_path / "config.py", values)
    split_dir = run.data_dir / "meg" / "test"
    raw_file, inverse = split_dir / "test_raw.fif", split_dir / "test-inv.fif"
    text = tmp_path / "recording.txt"
    text.write_text("time,MEG 0111\n0.000,1e-12\n")
    half = tmp_path / "half_raw.fif"
    data = raw_file.read_bytes()
    half.write_bytes(data[: len(data) // 2])

    cases = [
        (["--raw", str(text), "--inverse", str(inverse)],
         [f"{text} cannot be read as a raw recording by mne.io.read_raw_boxy", "save it as FIF"]),
        (["--raw", str(half), "--inverse", str(inverse)],
         [f"{half} is truncated or damaged: its last sample", "export the recording again"]),
        (["--evoked", str(half), "--inverse", str(inverse)],
         [f"{half} cannot be read as an evoked response", "evoked.save"]),
        (["--raw", str(raw_file), "--inverse", str(raw_file)],
         [f"{raw_file} cannot be read as an inverse operator", "write_inverse_operator"]),
    ]
    for options, fragments in cases:
        with pytest.raises(SystemExit) as excinfo:
            predict.main(["--config", str(config_file), *options])
        assert excinfo.value.code == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]
        assert line.startswith("predict.py: error: "), err
        for fragment in fragments:
            assert fragment in line, line
    assert not (tmp_path / "results" / "meg" / "predictions").exists()


def test_the_l2_inputs_of_a_recording_come_from_one_kernel_as_from_three(run):
    from meg_unet.recording import _InverseEstimates

    split_dir = run.run_data_dir / "test"
    raw = mne.io.read_raw_fif(split_dir / "test_raw.fif", verbose=False)
    inv = mne.minimum_norm.read_inverse_operator(split_dir / "test-inv.fif", verbose=False)
    methods = ("dspm", "sloreta")  # without "mne": its kernel is prepared anyway
    shared = _InverseEstimates(inv, raw, "raw", methods, 1.0, (run.hemisphere,))
    assert shared.scales is not None  # MNE-Python's kernel assembly is usable
    separate = _InverseEstimates(inv, raw, "raw", methods, 1.0, (run.hemisphere,))
    separate.scales = None  # the fallback: each method applied on its own
    for method in methods:
        np.testing.assert_allclose(shared(method, 10, 90), separate(method, 10, 90),
                                   rtol=1e-5, atol=0)


def test_a_mistyped_split_name_lists_the_splits_beside_it(tmp_path):
    from meg_unet.prediction import _find_split_dir

    for split in ("train", "valid"):
        (tmp_path / "run" / split).mkdir(parents=True)
        (tmp_path / "run" / split / "manifest.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no data split in .*validation.*the splits in "
                                                r".*run: train, valid"):
        _find_split_dir(tmp_path / "run" / "validation")
    assert _find_split_dir(tmp_path / "run" / "valid") == tmp_path / "run" / "valid"
