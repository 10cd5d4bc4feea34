"""Train a small U-Net two steps on N virtual CPU devices; save its loss and weights.

Run as a script by tests/test_data_parallel.py, with KERAS_BACKEND set (and, for JAX,
``XLA_FLAGS=--xla_force_host_platform_device_count=2``): both must be set before keras, jax or
tensorflow are imported.  Usage: ``python _data_parallel_step.py N_DEVICES DROPOUT_RATE OUT.npz``.
"""

import os
import sys

import numpy as np

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    devices = ["/cpu:0", "/cpu:1"]
else:
    import jax

    devices = jax.devices("cpu")

import keras  # noqa: E402

from meg_unet.network.training import (  # noqa: E402
    WeightedCategoricalCrossentropy,
    distribution_scope,
    needs_synchronized_batch_norm,
)
from meg_unet.network.unet import build_unet  # noqa: E402

n_devices, dropout_rate, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
batch, steps = 4, 2
rng = np.random.default_rng(0)
tiles = rng.standard_normal((batch * steps, 42, 16, 3)).astype("float32")
active = (rng.random((batch * steps, 42, 16)) < 0.1).astype("int64")
targets = np.eye(2, dtype="float32")[active]

scope, used = distribution_scope(batch, devices=devices[:n_devices])
assert used == n_devices, (used, n_devices)
with scope:
    # batch normalization over the global batch (and dropout): as on one device
    model = build_unet((42, 16, 3), 2, n_levels=2, filter_size=3, root_features=4,
                       dropout_rate=dropout_rate, batch_norm=True, seed=0,
                       synchronized_batch_norm=needs_synchronized_batch_norm(used)
                       and not os.environ.get("MEG_UNET_TEST_PLAIN_BATCH_NORM"))
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=WeightedCategoricalCrossentropy([1.0, 9.0]))
    initial = [np.asarray(w) for w in model.get_weights()]
    history = model.fit(tiles, targets, batch_size=batch, epochs=1, shuffle=False, verbose=0)
np.savez(out, loss=np.array(history.history["loss"]),
         moved=max(np.abs(np.asarray(w) - w0).max()
                   for w, w0 in zip(model.get_weights(), initial)),
         **{f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})
