"""Data-parallel training: two virtual CPU devices take the same steps as one device."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

STEP = Path(__file__).resolve().parent / "_data_parallel_step.py"


def _train(backend, n_devices, dropout_rate, out):
    env = dict(os.environ, KERAS_BACKEND=backend,
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    subprocess.run([sys.executable, str(STEP), str(n_devices), str(dropout_rate), str(out)],
                   env=env, check=True, capture_output=True, timeout=600)
    return np.load(out)


# JAX draws the dropout masks of the whole batch in one program, as one device does;
# TensorFlow's MirroredStrategy draws them per replica (another, equally valid draw), so its
# check leaves dropout out.
@pytest.mark.parametrize("backend, dropout_rate", [("jax", 0.2), ("tensorflow", 0.0)])
def test_two_steps_on_two_devices_match_one_device(backend, dropout_rate, tmp_path):
    if importlib.util.find_spec("jax" if backend == "jax" else "tensorflow") is None:
        pytest.skip(f"{backend} is not installed")
    one, two = (_train(backend, n, dropout_rate, tmp_path / f"{n}.npz") for n in (1, 2))
    assert one.files == two.files
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    for name in (f for f in one.files if f.startswith("w")):
        # float32 sums taken in another order, over two Adam steps of 0.01
        np.testing.assert_allclose(two[name], one[name], rtol=0, atol=1e-4, err_msg=name)
    # the two steps moved the weights by far more than that tolerance
    assert one["moved"] > 1e-2


@pytest.mark.slow
def test_without_synchronized_batch_norm_two_tensorflow_devices_train_another_network(
        tmp_path, monkeypatch):
    """The reason for SynchronizedBatchNormalization: per-replica statistics differ."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    monkeypatch.setenv("MEG_UNET_TEST_PLAIN_BATCH_NORM", "1")
    one, two = (_train("tensorflow", n, 0.0, tmp_path / f"{n}.npz") for n in (1, 2))
    assert max(np.abs(two[k] - one[k]).max() for k in one.files if k.startswith("w")) > 1e-3


def test_a_model_with_synchronized_batch_norm_loads_under_any_backend(tmp_path):
    import keras

    from meg_unet.network.unet import build_unet

    model = build_unet((12, 8, 3), 2, n_levels=2, filter_size=3, root_features=2, seed=0,
                       synchronized_batch_norm=True)
    path = tmp_path / "model.keras"
    model.save(path)
    code = ("import sys, keras, meg_unet.network; "
            "m = keras.saving.load_model(sys.argv[1]); print(m.count_params())")
    for backend in ("jax", "tensorflow"):
        if importlib.util.find_spec("jax" if backend == "jax" else "tensorflow") is None:
            continue
        done = subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, KERAS_BACKEND=backend))
        assert int(done.stdout.split()[-1]) == model.count_params()
    assert keras.backend.backend() == "tensorflow"
