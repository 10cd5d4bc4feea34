"""Training: loss, clipping, checkpoints, history, TensorBoard, --resume and --overwrite."""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from _fake_splits import write_fake_run
from _settings import tiny_run_settings

from meg_unet.config import validate_settings
from meg_unet.data_provider import DataProvider
from meg_unet.errors import DataError
from meg_unet.io import read_history
from meg_unet.network import training
from meg_unet.network.training import (
    WeightedCategoricalCrossentropy,
    compile_model,
    distribution_scope,
    load_trained_model,
    pixel_error,
    train,
)
from meg_unet.network.callbacks import example_image
from meg_unet.network.unet import build_unet

import train_network  # the script at the repository root (pytest's pythonpath)

SAMPLES = {"train": 1200, "valid": 640, "test": 640}


def tiny_settings(tmp_path, **extra):
    return tiny_run_settings(tmp_path, **extra)


def write_config_file(tmp_path, **extra):
    """Write the tiny settings as a config.py for train_network.py."""
    values = tiny_settings(tmp_path, **extra)
    lines = [
        f"{key} = {str(value)!r}" if isinstance(value, Path) else f"{key} = {value!r}"
        for key, value in values.items()
    ]
    path = tmp_path / "config.py"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_head_model):
    """A run of the tiny profile on a fake split, trained once for the module's tests."""
    tmp_path = tmp_path_factory.mktemp("training")
    config = validate_settings(tiny_settings(tmp_path))
    write_fake_run(config, tiny_head_model.src, n_samples=SAMPLES)
    result = train(config)
    return config, result


def copy_run(config, tmp_path):
    """Copy a run's data and results to tmp_path; return the config that points there."""
    shutil.copytree(config.data_dir, tmp_path / "data")
    shutil.copytree(config.results_dir, tmp_path / "results")
    return config.replace(DATA_DIR=tmp_path / "data", RESULTS_DIR=tmp_path / "results")


# ---- loss, metric, optimizer ------------------------------------------------------------------


def test_weighted_cross_entropy_by_hand():
    y_true = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    y_pred = np.array([[[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]]])
    loss = WeightedCategoricalCrossentropy([1.0, 10.0])
    expected = (-np.log(0.8) - 10 * np.log(0.6) - np.log(0.5)) / 3
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    again = WeightedCategoricalCrossentropy.from_config(loss.get_config())
    assert again.class_weights == [1.0, 10.0]
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(restored(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)


def _localization_example():
    """One tile of 3 vertices x 2 samples: vertex 1 active in sample 0, nothing in sample 1."""
    y_true = np.zeros((1, 3, 2, 2), np.float32)
    y_true[..., 0] = 1.0
    y_true[0, 1, 0] = [0.0, 1.0]
    active = np.array([[0.5, 0.9], [0.9, 0.5], [0.5, 0.5]], np.float32)
    return y_true, np.stack([1.0 - active, active], axis=-1)[np.newaxis]


def test_localization_term_by_hand():
    from meg_unet.network.training import localization_term

    y_true, y_pred = _localization_example()
    log_odds = np.log([0.5 / 0.5, 0.9 / 0.1, 0.5 / 0.5])  # sample 0
    expected = -(log_odds[1] - np.log(np.exp(log_odds).sum()))
    term = keras.ops.convert_to_numpy(localization_term(y_true, y_pred))
    np.testing.assert_allclose(term, [[expected, 0.0]], rtol=1e-5)
    # the most confident vertices keep their order where 1 - p(silent) is 1.0 in float32
    confident = y_pred.copy()
    confident[0, :, 0, 0] = [1e-9, 1e-12, 1e-9]  # vertex 1 the most confident
    confident[0, :, 0, 1] = 1.0
    share = keras.ops.convert_to_numpy(localization_term(y_true, confident))[0, 0]
    assert share == pytest.approx(-np.log(1e3 / (1e3 + 2)), abs=1e-5)  # not log(3)


def test_the_localization_weight_adds_the_mean_term_over_samples():
    y_true, y_pred = _localization_example()
    plain = float(WeightedCategoricalCrossentropy([1.0, 10.0])(y_true, y_pred))
    loss = WeightedCategoricalCrossentropy([1.0, 10.0], localization_weight=2.0)
    log_odds = np.log([1.0, 9.0, 1.0])
    term = -(log_odds[1] - np.log(np.exp(log_odds).sum()))
    assert float(loss(y_true, y_pred)) == pytest.approx(plain + 2.0 * term / 2, rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.localization_weight == 2.0


def test_a_negative_localization_weight_is_refused(tmp_path):
    from meg_unet.config import ConfigError

    with pytest.raises(ConfigError, match=r"network\.LOCALIZATION_LOSS"):
        validate_settings(tiny_settings(tmp_path, PARAMETERS={"network.LOCALIZATION_LOSS": -1}))


def test_pixel_error_by_hand():
    y_true = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    y_pred = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pixel_error(y_true, y_pred)),
                               [0, 1, 0, 1])


def _first_step(config):
    """Compile a small U-Net with ``config`` and return it with the length of its first step."""
    model = build_unet((42, 8, 3), 2, n_levels=2, filter_size=3, root_features=4, seed=0)
    compile_model(model, config, [1.0, 100.0], steps_per_epoch=8)
    rng = np.random.default_rng(0)
    x = rng.random((1, 42, 8, 3), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (1, 42, 8))]
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    model.train_on_batch(x, y)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    return model, np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before)))


def test_gradient_clipping_really_limits_the_step(tmp_path):
    """The first momentum-SGD step moves the weights by exactly lr * MAX_NORM."""
    config = validate_settings(tiny_settings(tmp_path, PARAMETERS={"network.L1": 0.0}))
    model, step = _first_step(config)
    assert model.optimizer.global_clipnorm == config.network.MAX_NORM == 0.01
    assert step == pytest.approx(config.network.LEARNING_RATE * config.network.MAX_NORM,
                                 rel=1e-3)


def test_max_norm_none_trains_unclipped(tmp_path):
    """MAX_NORM None (the quick profile) applies the whole gradient: the step exceeds lr * 0.01."""
    config = validate_settings(
        tiny_settings(tmp_path, PARAMETERS={"network.L1": 0.0, "network.MAX_NORM": None})
    )
    model, step = _first_step(config)
    assert model.optimizer.global_clipnorm is None
    assert step > 10 * config.network.LEARNING_RATE * 0.01


@pytest.mark.parametrize(
    "bad, message",
    [(0, "a number > 0 or None"), (-0.5, "a number > 0 or None"),
     ("big", "a number > 0 or None")],
)
def test_bad_max_norm_is_refused(tmp_path, bad, message):
    from meg_unet.config import ConfigError

    with pytest.raises(ConfigError, match=f"network.MAX_NORM.*{message}"):
        validate_settings(tiny_settings(tmp_path, PARAMETERS={"network.MAX_NORM": bad}))


def test_one_device_on_this_machine():
    scope, n_devices = distribution_scope(batch_size=1)
    assert n_devices == 1
    with scope:
        pass


def test_example_image_by_hand():
    inputs = np.zeros((2, 3, 3), dtype=np.float32)
    inputs[0, 0] = [1.0, 2.0, 4.0]
    labels = np.array([[1, 0, 0], [0, 0, 1]])
    probabilities = np.stack([1 - labels * 0.5, labels * 0.5], axis=-1)
    image = example_image(inputs, labels, probabilities, n_classes=2)
    assert image.shape == (2, 3 * 3 + 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])  # each channel at its peak
    np.testing.assert_array_equal(image[:, 3:5], 255)  # separator
    np.testing.assert_array_equal(image[:, 5:8, 0], labels * 255)  # truth
    np.testing.assert_array_equal(image[:, 10:13, 0], np.round(labels * 0.5 * 255))


# ---- a trained model --------------------------------------------------------------------------


def test_training_writes_the_model_folder(trained):
    config, result = trained
    model_dir = config.run_results_dir / "model"
    assert result.model_dir == model_dir
    for name in ("best.keras", "last.keras", "history.csv", "model.json", "preprocessing.npz"):
        assert (model_dir / name).is_file(), name
    history = read_history(model_dir / "history.csv").to_dict("records")
    assert [row["epoch"] for row in history] == list(range(config.network.EPOCHS))
    assert {"loss", "pixel_error", "val_loss", "val_pixel_error", "learning_rate"} <= set(
        history[0]
    )
    sidecar = json.loads((model_dir / "model.json").read_text())
    assert sidecar["build_arguments"] == {
        "input_shape": [162, 64, 3],
        "n_classes": 2,
        "n_levels": config.network.N_LEVELS,
        "filter_size": config.network.FILTER_SIZE,
        "root_features": config.network.ROOT_FEATURES,
        "pool_size": 2,
        "dropout_rate": pytest.approx(0.2),
        "batch_norm": True,
        "l1": config.network.L1,
        "seed": config.seed,
    }
    assert sidecar["settings"] == json.loads(json.dumps(config.result_settings()))
    assert sidecar["config_hash"] == config.result_hash()
    manifest = json.loads((config.run_data_dir / "train" / "manifest.json").read_text())
    assert sidecar["training_data"]["config_hash"] == manifest["config_hash"]
    assert sidecar["training_data"]["files"] == manifest["files"]
    assert sidecar["epochs_completed"] == config.network.EPOCHS == result.epochs_completed
    assert sidecar["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in history))
    assert sidecar["best_val_loss"] == pytest.approx(result.best_val_loss)
    weights = sidecar["class_weights"]
    assert weights[0] == 1.0 and weights[1] > 50  # one active vertex among 162, 2/3 of the time
    assert sidecar["steps_per_epoch"] == config.tile.STEPS_PER_EPOCH
    assert sidecar["validation_steps"] == SAMPLES["valid"] // 64  # the whole validation split
    assert sidecar["vertices"]["rh"] == list(range(162))


def test_loss_falls(trained):
    config, result = trained
    history = read_history(result.model_dir / "history.csv").to_dict("records")
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_learning_rate_decays_per_epoch(trained):
    config, result = trained
    history = read_history(result.model_dir / "history.csv").to_dict("records")
    for row in history:
        expected = config.network.LEARNING_RATE * config.network.LR_DECAY ** row["epoch"]
        assert row["learning_rate"] == pytest.approx(expected, rel=1e-5)


def test_saved_models_reload_to_identical_predictions(trained):
    config, result = trained
    valid = DataProvider(config, "valid", preprocessing=None)
    x = np.stack([valid.tile(0)[0], valid.tile(1)[0]])
    expected = result.model.predict(x, verbose=0)
    last = keras.saving.load_model(result.model_dir / "last.keras")
    np.testing.assert_array_equal(last.predict(x, verbose=0), expected)
    # the optimizer state travels with last.keras
    assert int(last.optimizer.iterations) == int(result.model.optimizer.iterations)
    model, sidecar, preprocessing = load_trained_model(result.model_dir, "best", config=config)
    if sidecar["best_epoch"] == sidecar["epochs_completed"] - 1:
        np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    assert preprocessing.settings()["method"] == config.data_provider.INPUT_PREPROCESSING


def test_load_trained_model_refuses_other_settings(trained):
    config, result = trained
    other = config.replace(CHANNELS=("mne", "dspm"))
    with pytest.raises(ValueError, match="CHANNELS"):
        load_trained_model(result.model_dir, config=other)


def test_tensorboard_logs_with_example_images(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config, result = trained
    logs = result.model_dir / "logs"
    scalars = EventAccumulator(str(logs / "train")).Reload().Tags()["tensors"]
    assert "epoch_loss" in scalars and "epoch_learning_rate" in scalars
    images = EventAccumulator(str(logs / "images")).Reload()
    tags = images.Tags()["tensors"]
    assert len(tags) == 1 and "validation example" in tags[0]
    assert len(images.Tensors(tags[0])) == config.network.EPOCHS


def test_fresh_run_refuses_an_existing_model(trained, tmp_path):
    config, result = trained
    with pytest.raises(FileExistsError, match="with --resume, replace it with --overwrite"):
        train(config)
    before = (result.model_dir / "last.keras").stat().st_mtime_ns
    config_file = write_config_file(tmp_path, DATA_DIR=config.data_dir,
                                    RESULTS_DIR=config.results_dir)
    with pytest.raises(SystemExit) as excinfo:
        train_network.main(["--config", str(config_file)])
    assert excinfo.value.code == 1
    assert (result.model_dir / "last.keras").stat().st_mtime_ns == before


# ---- resume and overwrite ---------------------------------------------------------------------


def test_resume_continues_the_epoch_count(trained, tmp_path):
    config = copy_run(trained[0], tmp_path)
    config_file = write_config_file(tmp_path)
    epochs = config.network.EPOCHS
    assert train_network.main(
        ["--config", str(config_file), "--resume", "--set", f"network.EPOCHS={epochs + 2}"]
    ) == 0
    model_dir = config.run_results_dir / "model"
    history = read_history(model_dir / "history.csv").to_dict("records")
    assert [row["epoch"] for row in history] == list(range(epochs + 2))
    # the learning rate goes on decaying from where it was: the optimizer state was restored
    assert history[-1]["learning_rate"] == pytest.approx(
        config.network.LEARNING_RATE * config.network.LR_DECAY ** (epochs + 1), rel=1e-5
    )
    last = keras.saving.load_model(model_dir / "last.keras")
    assert int(last.optimizer.iterations) == (epochs + 2) * config.tile.STEPS_PER_EPOCH
    sidecar = json.loads((model_dir / "model.json").read_text())
    assert sidecar["epochs_completed"] == epochs + 2
    assert sidecar["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in history))

    # nothing left to do: resuming again returns at once
    again = train(config.replace(PARAMETERS={"network.EPOCHS": epochs + 2}), resume=True)
    assert again.epochs_completed == epochs + 2 and again.model is None


def test_resume_refuses_another_architecture(trained, tmp_path):
    config = copy_run(trained[0], tmp_path)
    other = config.replace(PARAMETERS={"network.ROOT_FEATURES": 8, "network.EPOCHS": 5})
    with pytest.raises(ValueError, match="ROOT_FEATURES: 4 in the saved model, 8 now"):
        train(other, resume=True)


def test_resume_refuses_other_training_data(trained, tmp_path, tiny_head_model):
    config = copy_run(trained[0], tmp_path)
    write_fake_run(config, tiny_head_model.src, n_samples=SAMPLES, splits=("train",),
                   random_state=99)
    with pytest.raises(ValueError, match="training_data.files"):
        train(config.replace(PARAMETERS={"network.EPOCHS": 5}), resume=True)


def test_resume_without_a_checkpoint_names_the_way_out(trained, tmp_path):
    """Epochs recorded but last.keras gone: nothing to resume from, and --overwrite is named."""
    config = copy_run(trained[0], tmp_path)
    (config.run_results_dir / "model" / "last.keras").unlink()
    with pytest.raises(FileNotFoundError, match="nothing to resume .*last.keras missing; start "
                                                "again with --overwrite"):
        train(config, resume=True)


_KILL_BEFORE_THE_FIRST_CHECKPOINT = """
import os, signal, sys
import keras
import meg_unet.network.training as training
import train_network

callbacks = training._callbacks


class KillInTheFirstEpoch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as with the OOM killer or kill -9


training._callbacks = lambda *args: callbacks(*args) + [KillInTheFirstEpoch()]
sys.exit(train_network.main(sys.argv[1:]))
"""


def _interrupted_model_folder(model_dir):
    """Check what a training stopped in its first epoch leaves, and return the file names."""
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.json", "preprocessing.npz"} <= names
    assert not {"last.keras", "best.keras"} & names
    assert read_history(model_dir / "history.csv").to_dict("records") == []
    return names


def test_training_killed_before_its_first_checkpoint_goes_on(trained, tmp_path):
    """kill -9 during the first epoch; then --resume trains from the start."""
    root = Path(train_network.__file__).resolve().parent
    config = trained[0].replace(DATA_DIR=trained[0].data_dir, RESULTS_DIR=tmp_path / "results")
    config_file = write_config_file(tmp_path, DATA_DIR=config.data_dir,
                                    RESULTS_DIR=config.results_dir)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_BEFORE_THE_FIRST_CHECKPOINT, "--config", str(config_file)],
        cwd=root, capture_output=True, text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    model_dir = config.run_results_dir / "model"
    _interrupted_model_folder(model_dir)

    assert train_network.main(["--config", str(config_file), "--resume"]) == 0
    history = read_history(model_dir / "history.csv").to_dict("records")
    assert [row["epoch"] for row in history] == list(range(config.network.EPOCHS))
    assert (model_dir / "last.keras").is_file()


def test_ctrl_c_in_the_first_epoch_says_how_to_go_on(trained, tmp_path, monkeypatch, capsys):
    config = trained[0].replace(DATA_DIR=trained[0].data_dir, RESULTS_DIR=tmp_path / "results")
    config_file = write_config_file(tmp_path, DATA_DIR=config.data_dir,
                                    RESULTS_DIR=config.results_dir)
    callbacks = training._callbacks

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_callbacks", lambda *args: callbacks(*args) + [CtrlC()])
    with pytest.raises(SystemExit) as excinfo:
        train_network.main(["--config", str(config_file)])
    assert excinfo.value.code == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == ("train_network.py: interrupted; go on with: train_network.py --resume "
                    "(with the same --config/--set)")
    model_dir = config.run_results_dir / "model"
    _interrupted_model_folder(model_dir)
    # the same command again goes on: the folder of a stopped start is no model to protect
    monkeypatch.undo()
    assert train_network.main(["--config", str(config_file)]) == 0
    history = read_history(model_dir / "history.csv").to_dict("records")
    assert [row["epoch"] for row in history] == list(range(config.network.EPOCHS))


def test_damaged_training_data_named_by_the_script(trained, tmp_path, capsys):
    """A truncated data file: one line naming it and simulate_data.py; the model is kept."""
    config = copy_run(trained[0], tmp_path)
    path = config.run_data_dir / "train" / "train-dspm-stc.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    model_dir = config.run_results_dir / "model"
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    config_file = write_config_file(tmp_path)
    for options in (["--overwrite"], ["--resume", "--set", "network.EPOCHS=9"]):
        with pytest.raises(SystemExit) as excinfo:
            train_network.main(["--config", str(config_file), *options])
        assert excinfo.value.code == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"train_network.py: error: {path}: damaged or changed since")
        assert "rerun simulate_data.py" in line
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_overwrite_replaces_the_model(trained, tmp_path):
    config = copy_run(trained[0], tmp_path)
    model_dir = config.run_results_dir / "model"
    (model_dir / "notes.txt").write_text("an earlier result")
    config_file = write_config_file(tmp_path, PARAMETERS={"network.EPOCHS": 1})
    assert train_network.main(["--config", str(config_file), "--overwrite"]) == 0
    assert not (model_dir / "notes.txt").exists()
    assert [row["epoch"] for row in read_history(model_dir / "history.csv").to_dict("records")] == [0]
    with pytest.raises(ValueError, match="exclude each other"):
        train(config, overwrite=True, resume=True)


def test_overwrite_keeps_the_old_model_when_the_data_fail(trained, tmp_path):
    config = copy_run(trained[0], tmp_path)
    shutil.rmtree(config.run_data_dir / "valid")
    with pytest.raises(DataError, match="'valid' split folder"):
        train(config, overwrite=True)
    assert (config.run_results_dir / "model" / "last.keras").is_file()


def test_a_mesh_row_order_travels_with_the_model(tmp_path, tiny_head_model):
    config = validate_settings(tiny_settings(tmp_path, PARAMETERS={
        "network.ROW_ORDER": "mesh", "network.EPOCHS": 1, "tile.STEPS_PER_EPOCH": 2}))
    write_fake_run(config, tiny_head_model.src, n_samples=SAMPLES)
    result = train(config)
    order = result.model.get_layer("row_order").order
    sidecar = json.loads((result.model_dir / "model.json").read_text())
    assert sidecar["build_arguments"]["row_order"] == order
    assert sorted(order) == list(range(len(tiny_head_model.src[1]["vertno"])))
    model, _, _ = load_trained_model(result.model_dir, "last", config=config)
    assert model.get_layer("row_order_back").inverse


def test_the_quick_profiles_network_trains_and_its_mesh_neighbours_travel_with_it(
        tmp_path, tiny_head_model):
    from meg_unet.metrics import mesh_adjacency

    config = validate_settings(tiny_settings(tmp_path, PARAMETERS={
        "network.MESH_CONTEXT": True, "network.LOCALIZATION_LOSS": 1.0, "network.EPOCHS": 1,
        "tile.STEPS_PER_EPOCH": 2}))
    write_fake_run(config, tiny_head_model.src, n_samples=SAMPLES)
    result = train(config)
    history = read_history(result.model_dir / "history.csv")
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    sidecar = json.loads((result.model_dir / "model.json").read_text())
    assert sidecar["settings"]["RESOLVED_PARAMETERS"]["network"]["LOCALIZATION_LOSS"] == 1.0
    neighbours = sidecar["build_arguments"]["mesh_neighbours"]
    adjacency = mesh_adjacency(tiny_head_model.src[1])
    assert len(neighbours) == adjacency.shape[0]
    # padded with the vertex itself up to the largest degree
    assert set(neighbours[0]) - {0} == set(adjacency[[0]].nonzero()[1].tolist())
    model, _, _ = load_trained_model(result.model_dir, "last", config=config)
    assert model.get_layer("output_mesh_context").neighbours == neighbours


def test_an_unknown_row_order_is_refused(tmp_path):
    from meg_unet.config import ConfigError

    with pytest.raises(ConfigError, match=r"network\.ROW_ORDER"):
        validate_settings(tiny_settings(tmp_path, PARAMETERS={"network.ROW_ORDER": "hilbert"}))


def test_join_hosts_only_acts_on_a_multi_host_jax_launch():
    from meg_unet.network.training import join_hosts

    assert join_hosts({}) is False
    assert join_hosts({"KERAS_DISTRIBUTION_NUM_PROCESSES": "1"}) is False
    # the tests run under TensorFlow: a JAX launch's variables change nothing here
    assert join_hosts({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}) is False
    with pytest.raises(ValueError, match="whole number"):
        join_hosts({"KERAS_DISTRIBUTION_NUM_PROCESSES": "two"})
