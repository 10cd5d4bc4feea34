"""The callbacks of a training run: what it logs, checkpoints and records after each epoch.

Checkpoints are written atomically, the early stopping and ``model.json`` (the sidecar) carry
what a resumed training needs, the learning rate goes to the history and TensorBoard, and an
example tile (inputs, truth, prediction) goes to TensorBoard's images.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

from ..io import write_json


class LearningRateLogger(keras.callbacks.Callback):
    """Add the learning rate used during each epoch to its logs (history.csv, TensorBoard)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self._rate


class TensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard that logs the epoch's learning rate from the logs.

    Keras's own callback reads the optimizer's rate *after* the epoch, i.e. the next epoch's
    after a decay step; :class:`LearningRateLogger` already put the rate in use in the logs.
    """

    def _collect_learning_rate(self, logs):
        return logs


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that writes beside the file and renames, so a crash leaves no half file."""

    def __init__(self, filepath, **kwargs):
        self._final = Path(filepath)
        self._partial = self._final.with_name(".partial-" + self._final.name)
        super().__init__(str(self._partial), **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self._partial.exists():
            os.replace(self._partial, self._final)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that starts from the best value and patience count of earlier epochs."""

    def __init__(self, best=None, wait=0, **kwargs):
        super().__init__(**kwargs)
        self._initial_best = best
        self._initial_wait = wait

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best = self._initial_best
        self.wait = self._initial_wait


class SidecarWriter(keras.callbacks.Callback):
    """Update model.json after every epoch (epochs completed, best validation loss)."""

    def __init__(self, path, sidecar):
        super().__init__()
        self.path = path
        self.sidecar = sidecar

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.sidecar["epochs_completed"] = epoch + 1
        val_loss = logs.get("val_loss")
        if val_loss is not None:
            val_loss = float(val_loss)
            self.sidecar["last_val_loss"] = val_loss
            best = self.sidecar.get("best_val_loss")
            if best is None or val_loss < best:
                self.sidecar["best_val_loss"] = val_loss
                self.sidecar["best_epoch"] = epoch
        write_json(self.path, self.sidecar)

    def on_train_end(self, logs=None):
        stopped = getattr(self.model, "stop_training", False)
        self.sidecar["stopped_early"] = bool(stopped)
        write_json(self.path, self.sidecar)


class ExampleImageLogger(keras.callbacks.Callback):
    """Log one validation tile per epoch to TensorBoard: input as RGB | truth | prediction."""

    def __init__(self, log_dir, inputs, labels, n_classes):
        super().__init__()
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(log_dir))
        self.inputs = inputs
        self.labels = labels
        self.n_classes = n_classes

    def on_epoch_end(self, epoch, logs=None):
        probabilities = ops.convert_to_numpy(self.model(self.inputs[np.newaxis], training=False))
        image = example_image(self.inputs, self.labels, probabilities[0], self.n_classes)
        with self._writer.as_default():
            self._tf.summary.image(
                "validation example (input | truth | prediction)", image[np.newaxis], step=epoch
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()


def example_image(inputs, labels, probabilities, n_classes):
    """Put a tile's input, truth and prediction side by side as one RGB image.

    Parameters
    ----------
    inputs : ndarray, shape (n_vertices, t_steps, n_channels)
        The network's input; the first three channels become red, green and blue (each
        scaled to [0, 1] by its largest absolute value in the tile; missing ones are black).
    labels : ndarray of int, shape (n_vertices, t_steps)
        True classes.
    probabilities : ndarray, shape (n_vertices, t_steps, n_classes)
        The network's output.
    n_classes : int
        Classes; truth and prediction are shown as class / (n_classes - 1) in grey (the
        prediction as the expected class under its probabilities).

    Returns
    -------
    image : ndarray of uint8, shape (n_vertices, 3 * t_steps + 4, 3)
        Input | truth | prediction, separated by white lines 2 pixels wide.
    """
    height, width = labels.shape
    rgb = np.zeros((height, width, 3), dtype=np.float64)
    for channel in range(min(3, inputs.shape[-1])):
        data = np.abs(inputs[..., channel])
        peak = data.max()
        rgb[..., channel] = data / peak if peak > 0 else 0.0
    truth = labels / (n_classes - 1)
    expected = probabilities @ np.arange(n_classes) / (n_classes - 1)
    separator = np.ones((height, 2, 3))
    panels = [
        rgb,
        separator,
        np.repeat(truth[..., np.newaxis], 3, axis=-1),
        separator,
        np.repeat(expected[..., np.newaxis], 3, axis=-1),
    ]
    return (np.clip(np.concatenate(panels, axis=1), 0, 1) * 255).round().astype(np.uint8)
