"""DataProvider, Preprocessing, class weights and GeneratorDataProvider on fake splits."""

import json
import logging
import re
import types

import mne
import numpy as np
import pytest
from _fake_splits import refresh_checksums, write_fake_run, write_fake_split
from _settings import tiny_run_settings

from meg_unet.config import ConfigError, validate_settings
from meg_unet.data_provider import DataProvider, GeneratorDataProvider, class_weights
from meg_unet.errors import DataError, FileError
from meg_unet.io import split_files
from meg_unet.preprocessing import Preprocessing

T_STEPS = 64  # the tiny profile's tile width


def make_config(tmp_path, **settings):
    return validate_settings(tiny_run_settings(tmp_path, **settings))


@pytest.fixture(scope="module")
def src(tiny_head_model):
    return tiny_head_model.src


@pytest.fixture(scope="module")
def run(tmp_path_factory, src):
    """A fake run (rh, whole source space in the files) and its config."""
    tmp_path = tmp_path_factory.mktemp("dp")
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples={"train": 1000, "valid": 300, "test": 300})
    return config


@pytest.fixture(scope="module")
def train(run):
    return DataProvider(run, "train")


# ---- layout: rows, columns, tiles ------------------------------------------------------------


@pytest.mark.parametrize("hemisphere", ["rh", "lh", "both"])
@pytest.mark.parametrize("whole_source_space", [True, False])
def test_rows_are_vertices_in_source_space_order(tmp_path, src, hemisphere, whole_source_space):
    config = make_config(tmp_path, HEMISPHERE=hemisphere)
    write_fake_run(config, src, n_samples=200, splits=("train",),
                   whole_source_space=whole_source_space)
    provider = DataProvider(config, "train")

    hemis = {"lh": [0], "rh": [1], "both": [0, 1]}[hemisphere]
    expected_vertno = np.concatenate([src[h]["vertno"] for h in hemis])
    np.testing.assert_array_equal(provider.vertno, expected_vertno)
    np.testing.assert_allclose(
        provider.positions, np.concatenate([src[h]["rr"][src[h]["vertno"]] for h in hemis])
    )
    for h in (0, 1):
        wanted = src[h]["vertno"] if h in hemis else []
        np.testing.assert_array_equal(provider.vertices[h], wanted)

    # row i holds vertex vertno[i] of its hemisphere, read independently with MNE
    files = split_files(config.run_data_dir / "train")
    stc = mne.read_source_estimate(files["dspm"])
    truth = mne.read_source_estimate(files["truth"])
    offset = 0
    for h in hemis:
        stc_vertno = stc.vertices[h]
        data = stc.lh_data if h == 0 else stc.rh_data
        true_data = truth.lh_data if h == 0 else truth.rh_data
        for i, vertex in enumerate(src[h]["vertno"]):
            row = int(np.flatnonzero(stc_vertno == vertex)[0])
            np.testing.assert_array_equal(provider.estimates["dspm"][offset + i], data[row])
            np.testing.assert_array_equal(provider.amplitudes[offset + i], true_data[row])
        offset += len(src[h]["vertno"])
    assert provider.inputs.shape == (offset, 200, 3)


def test_tiles_are_consecutive_samples_and_the_remainder_is_dropped(train):
    assert train.n_times == 1000
    assert train.tile_steps == T_STEPS
    assert train.n_tiles == 1000 // T_STEPS == 15
    assert train.tile_shape == (162, T_STEPS, 3)
    for index in (0, 7, 14):
        inputs, targets = train.tile(index)
        assert inputs.shape == (162, T_STEPS, 3)
        assert targets.shape == (162, T_STEPS, 2)
        columns = slice(index * T_STEPS, (index + 1) * T_STEPS)
        np.testing.assert_array_equal(inputs, train.inputs[:, columns])
        np.testing.assert_array_equal(targets.argmax(axis=-1), train.targets[:, columns])
        np.testing.assert_array_equal(targets.sum(axis=-1), 1.0)
    with pytest.raises(IndexError):
        train.tile(15)
    assert train.tiled_targets().shape == (162, 15 * T_STEPS)


def test_remainder_is_logged(run, caplog):
    with caplog.at_level(logging.INFO, logger="meg_unet"):
        DataProvider(run, "valid")
    assert "(44 samples at the end dropped)" in caplog.text


def test_channels_follow_the_config_order(run, train):
    config = run.replace(CHANNELS=("sloreta", "mne"))
    provider = DataProvider(config, "train")
    assert provider.channel_names == ("sloreta", "mne")
    np.testing.assert_array_equal(provider.inputs[..., 0], train.inputs[..., 2])
    np.testing.assert_array_equal(provider.inputs[..., 1], train.inputs[..., 0])


def test_targets_and_default_normalization(train):
    np.testing.assert_array_equal(train.targets, np.abs(train.amplitudes) > 1e-20)
    assert train.inputs.dtype == np.float32
    # "normalize" per sample: every time column of every channel peaks at exactly 1
    np.testing.assert_allclose(train.inputs.max(axis=0), 1.0, rtol=1e-6)
    assert train.inputs.min() >= 0


def test_coordinate_channels(run, train):
    config = run.replace(PARAMETERS={"data_provider.COORDINATE_CHANNELS": True})
    provider = DataProvider(config, "train")
    assert provider.channel_names == ("mne", "dspm", "sloreta", "x", "y", "z")
    assert provider.tile_shape == (162, T_STEPS, 6)
    coordinates = provider.inputs[..., 3:]
    constant_over_time = np.broadcast_to(coordinates[:, :1], coordinates.shape)
    np.testing.assert_array_equal(coordinates, constant_over_time)
    low, high = train.positions.min(axis=0), train.positions.max(axis=0)
    np.testing.assert_allclose(coordinates[:, 0], (train.positions - low) / (high - low),
                               rtol=1e-5, atol=1e-6)


# ---- preprocessing, by hand -------------------------------------------------------------------


def fitted(method, train_data, **kwargs):
    return Preprocessing(method, **kwargs).fit({"c": train_data}, np.zeros((1, 1)))


def test_normalize_per_sample_by_hand():
    data = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, 1.0]])
    out = Preprocessing("normalize").transform_channel("c", data)
    np.testing.assert_allclose(out, [[1 / 3, 0, -1], [1, 0, 0.5]], rtol=1e-6)


def test_normalize_per_channel_uses_the_training_maximum():
    prep = fitted("normalize", np.array([[1.0, 4.0], [2.0, 0.0]]), normalize_over="channel")
    out = prep.transform_channel("c", np.array([[2.0, 8.0], [1.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.5, 2.0], [0.25, 0.0]])


def test_normalize_over_noise_uses_the_noise_only_samples():
    """The scale is the channel's RMS over the training samples with no active source."""
    data = np.array([[3.0, 1.0, 9.0], [4.0, 1.0, 9.0]])
    amplitudes = np.array([[0.0, 1e-9, 0.0], [0.0, 0.0, 1e-9]])  # only sample 0 is silent
    prep = Preprocessing("normalize", normalize_over="noise").fit({"c": data}, amplitudes)
    scale = np.sqrt((9 + 16) / 2)
    out = prep.transform_channel("c", np.array([[scale, 2 * scale]]))
    np.testing.assert_allclose(out, [[1.0, 2.0]], rtol=1e-6)
    with pytest.raises(DataError, match="every sample of the training split has one"):
        Preprocessing("normalize", normalize_over="noise").fit({"c": data}, np.ones((2, 3)))


def test_mean_subtraction_by_hand():
    prep = fitted("mean_subtraction", np.array([[1.0, 3.0], [2.0, 6.0]]))  # row means 2, 4
    out = prep.transform_channel("c", np.array([[0.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(out, [[-2, -2], [-3, -3]])


def test_zero_center_by_hand():
    out = Preprocessing("zero_center").transform_channel("c", np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(out, [[-1, -2], [1, 2]])


def test_svd_keeps_the_leading_spatial_component():
    # X = 3 e0 a^T + 1 e1 b^T with orthonormal time courses a, b: rank 2, singular values 3, 1
    a = np.array([0.5, 0.5, 0.5, 0.5])
    b = np.array([0.5, -0.5, 0.5, -0.5])
    e0, e1 = np.eye(3)[0], np.eye(3)[1]
    data = 3 * np.outer(e0, a) + np.outer(e1, b)
    prep = fitted("svd", data, n_components=1, random_state=0)
    np.testing.assert_allclose(prep.transform_channel("c", data), 3 * np.outer(e0, a), atol=1e-6)
    # another split is projected on the training split's component (vertex 0)
    other = np.arange(12.0).reshape(3, 4)
    expected = np.zeros((3, 4))
    expected[0] = other[0]
    np.testing.assert_allclose(prep.transform_channel("c", other), expected, atol=1e-5)


def test_pca_whitening_by_hand():
    # columns (time samples) vary only along vertex 0 (+-2); vertex 2 is constant 1
    data = np.array([[2.0, -2, 2, -2], [0, 0, 0, 0], [1, 1, 1, 1]])
    prep = fitted("pca_whiten", data, n_components=1, random_state=0)
    out = prep.transform_channel("c", data)
    # variance along vertex 0: 16 / 3 (ddof 1), so the whitened value is +-2 / sqrt(16/3)
    value = 2 / np.sqrt(16 / 3)
    np.testing.assert_allclose(out, [[value, -value, value, -value], [0] * 4, [0] * 4],
                               atol=1e-6)
    np.testing.assert_allclose(np.var(out[0], ddof=1), 1.0)


def test_nmf_reconstructs_from_the_training_components():
    pattern = np.array([1.0, 2.0, 0.0, 0.0])  # spatial component on vertices 0 and 1
    course = np.array([0.0, 1.0, 3.0, 2.0, 1.0])
    data = np.outer(pattern, course) * 1e-10  # MNE-like magnitudes
    prep = fitted("nmf", data, n_components=1, random_state=0)
    np.testing.assert_allclose(prep.transform_channel("c", data), data, rtol=1e-3, atol=1e-15)
    np.testing.assert_allclose(prep.transform_channel("c", 2 * data), 2 * data, rtol=1e-3,
                               atol=1e-15)
    # activity outside the component's support cannot be reconstructed from it
    elsewhere = np.outer([0.0, 0.0, 1.0, 0.0], course) * 1e-10
    np.testing.assert_allclose(prep.transform_channel("c", elsewhere), 0.0, atol=1e-14)
    with pytest.raises(DataError, match="non-negative"):
        prep.transform_channel("c", -data)


def test_fitted_preprocessing_needs_the_training_split(run, train):
    config = run.replace(PARAMETERS={"data_provider.INPUT_PREPROCESSING": "mean_subtraction"})
    with pytest.raises(ValueError, match="fitted on the training split only"):
        DataProvider(config, "valid")
    fitted_train = DataProvider(config, "train")
    valid = DataProvider(config, "valid", preprocessing=fitted_train.preprocessing)
    means = train.estimates["mne"].astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(
        valid.inputs[..., 0], valid.estimates["mne"] - means[:, None], rtol=1e-4, atol=1e-16
    )


@pytest.mark.parametrize("method", ["normalize", "mean_subtraction", "zero_center", "nmf",
                                    "svd", "pca_whiten"])
def test_preprocessing_save_and_load(tmp_path, method):
    rng = np.random.default_rng(0)
    data = {"mne": rng.random((12, 40)) * 1e-10, "dspm": rng.random((12, 40)) * 5}
    prep = Preprocessing(method, normalize_over="channel", n_components=3, n_classes=3,
                         random_state=0).fit(data, rng.random((12, 40)) * 1e-8)
    prep.save(tmp_path / "p.npz")
    again = Preprocessing.load(tmp_path / "p.npz")
    assert again.settings() == prep.settings()
    other = {"mne": rng.random((12, 40)) * 1e-10, "dspm": rng.random((12, 40)) * 5}
    for name in data:
        np.testing.assert_allclose(again.transform_channel(name, other[name]),
                                   prep.transform_channel(name, other[name]), rtol=1e-6)
    amplitudes = rng.random((12, 40)) * 1e-8
    np.testing.assert_array_equal(again.transform_targets(amplitudes),
                                  prep.transform_targets(amplitudes))


def test_more_classes_bin_the_amplitude_in_equal_widths():
    prep = Preprocessing(n_classes=4, active_threshold=1e-20)
    prep.fit({}, np.array([[0.0, -3.0, 1.0]]))  # training maximum |amplitude| 3: bins of 1
    amplitudes = np.array([[0.0, 0.5, 1.5, 2.9, 3.0, 5.0, -2.5]])
    np.testing.assert_array_equal(prep.transform_targets(amplitudes), [[0, 1, 2, 3, 3, 3, 3]])
    two = Preprocessing(n_classes=2, active_threshold=0.7)
    np.testing.assert_array_equal(two.transform_targets(amplitudes), [[0, 0, 1, 1, 1, 1, 1]])


# ---- class weights ----------------------------------------------------------------------------


def test_class_weights_by_hand(caplog):
    labels = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])  # 10 silent, 2 active
    provider = types.SimpleNamespace(tiled_targets=lambda: labels, n_classes=2)
    np.testing.assert_allclose(class_weights(provider), [1.0, 5.0])
    three = types.SimpleNamespace(tiled_targets=lambda: labels, n_classes=3)
    with caplog.at_level(logging.WARNING, logger="meg_unet"):
        np.testing.assert_allclose(class_weights(three), [1.0, 5.0, 1.0])
    assert "never occur" in caplog.text


def test_class_weights_of_a_split(train):
    counts = np.bincount(train.targets[:, : 15 * T_STEPS].ravel())
    np.testing.assert_allclose(class_weights(train), [1.0, counts[0] / counts[1]])


# ---- streaming ---------------------------------------------------------------------------------


def test_stream_visits_every_tile_once_per_epoch_in_a_seeded_order(train):
    stream = GeneratorDataProvider(train, batch_size=2, shuffle=True, seed=5, workers=2,
                                   max_queue_size=4)
    assert len(stream) == 15 // 2
    epoch0 = np.concatenate([stream.tile_indices(i) for i in range(len(stream))])
    assert len(set(epoch0)) == 14 and set(epoch0) <= set(range(15))
    x, y = stream[0]
    assert x.shape == (2, 162, T_STEPS, 3) and y.shape == (2, 162, T_STEPS, 2)
    for k, tile in enumerate(stream.tile_indices(0)):
        np.testing.assert_array_equal(x[k], train.tile(int(tile))[0])
    again = GeneratorDataProvider(train, batch_size=2, shuffle=True, seed=5)
    np.testing.assert_array_equal(
        np.concatenate([again.tile_indices(i) for i in range(len(again))]), epoch0
    )
    stream.on_epoch_end()
    epoch1 = np.concatenate([stream.tile_indices(i) for i in range(len(stream))])
    assert not np.array_equal(epoch0, epoch1)
    # a stream resumed at epoch 1 cuts the same batches
    resumed = GeneratorDataProvider(train, batch_size=2, shuffle=True, seed=5, initial_epoch=1)
    np.testing.assert_array_equal(resumed.tile_indices(3), stream.tile_indices(3))


def test_short_epochs_run_on_through_the_tiles(train):
    stream = GeneratorDataProvider(train, batch_size=1, steps_per_epoch=4, shuffle=True, seed=0)
    assert len(stream) == 4
    seen = []
    for _ in range(4):  # 16 batches: one whole pass of 15 tiles, then the next pass begins
        seen.extend(int(stream.tile_indices(i)[0]) for i in range(4))
        stream.on_epoch_end()
    assert sorted(seen[:15]) == list(range(15))


def test_validation_stream_is_in_time_order(run, train):
    stream = GeneratorDataProvider.from_config(train, run, training=False)
    assert len(stream) == 15
    assert [int(stream.tile_indices(i)[0]) for i in range(15)] == list(range(15))
    stream.on_epoch_end()
    assert int(stream.tile_indices(0)[0]) == 0


def test_from_config_reads_the_settings(run, train):
    config = run.replace(PARAMETERS={"network.BATCH_SIZE": 3, "data_provider.N_WORKERS": 2,
                                     "data_provider.MAX_QUEUE_SIZE": 5})
    stream = GeneratorDataProvider.from_config(train, config)
    assert (stream.batch_size, stream.workers, stream.max_queue_size) == (3, 2, 5)
    assert stream.steps_per_epoch == run.tile.STEPS_PER_EPOCH
    assert stream.seed == run.seed and stream.shuffle
    with pytest.raises(ConfigError, match="VALIDATION_STEPS must be an integer > 0 or None"):
        run.replace(PARAMETERS={"network.VALIDATION_STEPS": 0})


# ---- bad inputs -------------------------------------------------------------------------------


def test_missing_split_folder(tmp_path):
    config = make_config(tmp_path)
    with pytest.raises(DataError, match="'train' split folder .*t/train does not exist"):
        DataProvider(config, "train")


def test_missing_file_is_named(tmp_path, src):
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=100, splits=("train",))
    (config.run_data_dir / "train" / "train-sloreta-stc.h5").unlink()
    with pytest.raises(DataError, match="missing .*train-sloreta-stc.h5"):
        DataProvider(config, "train")


@pytest.mark.parametrize(
    "written, configured, message",
    [
        ({"spacing": "ico2"}, {"SPACING": "ico3"},
         "split 'train' was simulated with SPACING='ico2', but the config has 'ico3'"),
        ({"head_model": "sample"}, {},
         "simulated with HEAD_MODEL='sample', but the config has 'fsaverage'"),
        ({"sensors": "meg+eeg"}, {}, "SENSORS='meg\\+eeg', but the config has 'meg'"),
        ({"hemisphere": "lh"}, {}, "HEMISPHERE='lh', but the config has 'rh'"),
        ({"channels": ("mne",)}, {}, "CHANNELS=\\('mne',\\).*dspm, sloreta missing"),
        ({"orientation": "fixed"}, {}, "ORIENTATION='fixed', but the config has 'loose'"),
    ],
)
def test_split_from_another_simulation(tmp_path, src, written, configured, message):
    config = make_config(tmp_path, **configured)
    settings = dict(spacing="ico2", head_model="fsaverage", sensors="meg", hemisphere="rh",
                    channels=("mne", "dspm", "sloreta"), orientation="loose")
    settings.update(written)
    write_fake_split(config.run_data_dir / "train", src, n_samples=100, **settings)
    with pytest.raises(DataError, match=message):
        DataProvider(config, "train")


def test_nan_in_a_source_estimate_names_the_file(tmp_path, src):
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=100, splits=("train",))
    fname = config.run_data_dir / "train" / "train-dspm-stc.h5"
    stc = mne.read_source_estimate(fname)
    stc.data[170, 3] = np.nan
    stc.data[171, 3] = np.inf
    stc.save(fname, ftype="h5", overwrite=True, verbose=False)
    refresh_checksums(fname.parent)  # as if the simulation had written the NaN
    with pytest.raises(DataError, match="train-dspm-stc.h5 holds 2 NaN or infinite values"):
        DataProvider(config, "train")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["train-mne-stc.h5", "train-truth-stc.h5", "train-src.fif"])
def test_damaged_file_is_named_before_it_is_read(tmp_path, src, name):
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=100, splits=("train",))
    path = config.run_data_dir / "train" / name
    _truncate(path)
    with pytest.raises(DataError) as excinfo:
        DataProvider(config, "train")
    message = str(excinfo.value)
    assert str(path) in message and "checksum in manifest.json" in message
    assert "rerun simulate_data.py" in message


def test_damaged_file_without_a_checksum_is_named_by_its_reader(tmp_path, src):
    """A manifest without checksums: h5py's error on the truncated file names the file."""
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=100, splits=("train",))
    directory = config.run_data_dir / "train"
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["files"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    path = directory / "train-dspm-stc.h5"
    _truncate(path)
    with pytest.raises(FileError) as excinfo:
        DataProvider(config, "train")
    message = str(excinfo.value)
    assert message.startswith(f"{path} cannot be read as a source estimate (OSError")
    assert "rerun simulate_data.py" in message


def test_damaged_manifest_is_named(tmp_path, src):
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=100, splits=("train",))
    path = config.run_data_dir / "train" / "manifest.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(FileError, match=re.escape(str(path)) + " is not valid JSON .*rerun"):
        DataProvider(config, "train")


def test_split_shorter_than_one_tile(tmp_path, src):
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=T_STEPS - 1, splits=("train",))
    with pytest.raises(DataError, match="63 samples, fewer than one tile of tile.T_STEPS = 64"):
        DataProvider(config, "train")


def test_manifest_vertices_must_match_the_source_space(tmp_path, src):
    config = make_config(tmp_path)
    write_fake_run(config, src, n_samples=100, splits=("train",))
    path = config.run_data_dir / "train" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["vertices"]["rh"] = manifest["vertices"]["rh"][::-1]
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="rh vertices differ"):
        DataProvider(config, "train")
