"""Training of the U-Net (thesis section 3.6): loss, optimizer, callbacks, checkpoints, resume.

:func:`train` is the library entry point of ``train_network.py``.  It writes
``RESULTS_DIR/<RUN_NAME>/model/``::

    best.keras          the model with the lowest validation loss so far (ModelCheckpoint)
    last.keras          the model after the latest epoch, optimizer state included (to resume)
    history.csv         one row per epoch: loss, pixel error, learning rate, validation loss
                        and pixel error (appended on resume)
    model.json          everything to rebuild the model and to refuse a mismatch: build
                        arguments, the run's result settings, the training data's manifest hash
                        and checksums, class weights, epochs completed, best validation loss
    preprocessing.npz   the input preprocessing fitted on the training split
    logs/               TensorBoard: train/ and validation/ scalars, images/ (one validation
                        tile per epoch: input as RGB | truth | prediction)

The loss is the pixel-wise categorical cross-entropy, each pixel weighted by the inverse
frequency of its true class in the training split (thesis 3.5), plus the L1 penalty of the
convolution kernels (lambda1 = ``network.L1``).  The optimizer is momentum SGD (learning rate
``LEARNING_RATE``, momentum ``MOMENTUM``) with the gradients clipped to a global norm of
``MAX_NORM`` before they are applied, and a learning rate multiplied by ``LR_DECAY`` after
every epoch (a staircase schedule keyed to the optimizer's step counter, so that it survives a
resume).  Training runs up to ``EPOCHS`` epochs and stops early when the validation loss has
not improved for ``EARLY_STOPPING_PATIENCE`` epochs.

Devices: the model is built and trained on one device unless several accelerators are visible
(see :func:`distribution_scope`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np
from keras import ops

from parameters import MODEL_ROLES, Role

from ..config import settings_differences, settings_of_roles
from ..data_provider import DataProvider, GeneratorDataProvider, class_weights
from ..preprocessing import Preprocessing
from ..io import read_history, read_json, read_with, write_json
from . import callbacks
from .unet import build_unet, mesh_neighbours, mesh_row_order

logger = logging.getLogger("meg_unet")

__all__ = [
    "WeightedCategoricalCrossentropy",
    "localization_term",
    "pixel_error",
    "build_arguments",
    "compile_model",
    "distribution_scope",
    "join_hosts",
    "load_trained_model",
    "model_paths",
    "train",
]

#: Version of the model.json layout.
SIDECAR_FORMAT = 1

#: The way out of a damaged checkpoint.
_RETRAIN = "train again with train_network.py --overwrite"

# --------------------------------------------------------------------------------------------
# Loss and metric
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="meg_unet")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Pixel-wise categorical cross-entropy weighted by the true class of each pixel.

    ``loss = mean over pixels of  w[c(p)] * -log q_c(p)(p)``, where ``c(p)`` is the true class
    of pixel ``p`` and ``q`` the predicted probabilities (thesis 3.5: inverse class frequency
    weights, so that the rare active pixels count as much as the silent ones).

    With a ``localization_weight`` a second term asks the network which vertex is active, not
    only whether: in every time sample with an active vertex, a softmax over the vertices of
    the log-odds of "active", and the mean of ``-log`` of it over the truly active vertices,
    times the weight (averaged over the samples, as the pixel term is).  Under the large class
    weights the pixel term is almost as content with a source's neighbours at 0.999 as with
    the source alone, so its map need not peak on the vertex; this term pays for that.

    Parameters
    ----------
    class_weights : sequence of float
        One weight per class.
    epsilon : float
        Probabilities are clipped to ``[epsilon, 1 - epsilon]`` before the logarithm of the
        pixel term.
    localization_weight : float
        Weight of the localization term; 0 (the thesis) leaves it out.
    name : str
        Name of the loss.
    reduction : str
        Keras reduction over pixels (default: the mean).
    """

    def __init__(
        self,
        class_weights,
        epsilon=1e-7,
        localization_weight=0.0,
        name="weighted_categorical_crossentropy",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = [float(w) for w in class_weights]
        self.epsilon = float(epsilon)
        self.localization_weight = float(localization_weight)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
        probabilities = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        cross_entropy = -ops.sum(y_true * ops.log(probabilities), axis=-1)
        pixel_weights = ops.sum(y_true * weights, axis=-1)
        loss = pixel_weights * cross_entropy
        if self.localization_weight > 0:
            # (batch, 1, time): every pixel of a sample carries its term, so the mean over
            # pixels is the mean over samples
            loss = loss + self.localization_weight * ops.expand_dims(
                localization_term(y_true, y_pred), 1)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=self.class_weights, epsilon=self.epsilon,
                      localization_weight=self.localization_weight)
        return config


def localization_term(y_true, y_pred):
    """Per tile and sample: ``-mean over active vertices of log softmax_vertices(log-odds)``.

    Parameters
    ----------
    y_true, y_pred : tensor, shape (batch, n_vertices, n_times, n_classes)
        One-hot targets (class 0 silent) and predicted probabilities.

    Returns
    -------
    term : tensor, shape (batch, n_times)
        0 where no vertex is active.
    """
    # The log-odds from the silent class's probability: in float32, p(silent) keeps its
    # precision down to 1e-38 where p(active) = 1 - p(silent) is already 1.0, and the ranking
    # of the most confident vertices is what this term is about.
    silent = ops.clip(y_pred[..., 0], 1e-30, 1.0)
    active_probability = ops.clip(1.0 - silent, 1e-30, 1.0)
    log_odds = ops.log(active_probability) - ops.log(silent)
    log_share = log_odds - ops.logsumexp(log_odds, axis=1, keepdims=True)
    active = 1.0 - y_true[..., 0]
    n_active = ops.sum(active, axis=1)
    return -ops.sum(active * log_share, axis=1) / ops.maximum(n_active, 1.0)


@keras.saving.register_keras_serializable(package="meg_unet")
def pixel_error(y_true, y_pred):
    """Fraction of pixels whose most probable class is not the true class (1 - accuracy)."""
    wrong = ops.not_equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1))
    return ops.cast(wrong, "float32")


# --------------------------------------------------------------------------------------------
# Model, optimizer, devices
# --------------------------------------------------------------------------------------------


def build_arguments(config, tile_shape, n_classes, row_order=None, neighbours=None):
    """Return the keyword arguments of :func:`build_unet` for a configuration.

    Parameters
    ----------
    config : meg_unet.config.Config
        Gives the ``network`` settings and the seed.
    tile_shape : tuple of int
        ``(n_vertices, T_STEPS, n_channels)``.
    n_classes : int
        Target classes.
    row_order : list of int | None
        The rows' order inside the network (``network.ROW_ORDER = "mesh"``, see
        :func:`row_order`); None keeps the source space's.
    neighbours : list of list of int | None
        The mesh neighbours of the rows (``network.MESH_CONTEXT``, see
        :func:`network_geometry`); None builds the network without them.
    """
    net = config.network
    extra = {} if row_order is None else {"row_order": [int(i) for i in row_order]}
    if neighbours is not None:
        extra["mesh_neighbours"] = [[int(u) for u in row] for row in neighbours]
    return {
        **extra,
        "input_shape": [int(s) for s in tile_shape],
        "n_classes": int(n_classes),
        "n_levels": net.N_LEVELS,
        "filter_size": net.FILTER_SIZE,
        "root_features": net.ROOT_FEATURES,
        "pool_size": net.POOL_SIZE,
        "dropout_rate": round(1.0 - net.DROPOUT_KEEP, 10),
        "batch_norm": net.BATCH_NORM,
        "l1": net.L1,
        "seed": config.seed,
    }


def network_geometry(config, provider):
    """The mesh geometry that ``network.ROW_ORDER`` and ``network.MESH_CONTEXT`` ask for.

    Returns
    -------
    geometry : dict
        ``row_order``: None for ``ROW_ORDER = "source_space"``; for ``"mesh"``,
        :func:`~meg_unet.network.unet.mesh_row_order` of the mesh of the provider's source
        space (hemispheres one after the other, as the rows).  ``neighbours``: with
        ``MESH_CONTEXT``, :func:`~meg_unet.network.unet.mesh_neighbours` of that mesh, else
        None.  The keyword arguments of :func:`build_arguments` of the same names.
    """
    net = config.network
    geometry = {"row_order": None, "neighbours": None}
    wanted = [name for name, on in (('ROW_ORDER = "mesh"', net.ROW_ORDER == "mesh"),
                                    ("MESH_CONTEXT = True", net.MESH_CONTEXT)) if on]
    if not wanted:
        return geometry
    from scipy import sparse

    from ..metrics import mesh_adjacency

    if provider.src is None:
        raise ValueError(f"network.{wanted[0]} needs the source space of the training split; "
                         "this data provider was made from arrays")
    blocks = [mesh_adjacency(hemi) for hemi, vertno in zip(provider.src, provider.vertices)
              if len(vertno)]
    adjacency = sparse.block_diag(blocks)
    if net.ROW_ORDER == "mesh":
        geometry["row_order"] = mesh_row_order(adjacency)
    if net.MESH_CONTEXT:
        geometry["neighbours"] = mesh_neighbours(adjacency)
    return geometry


def make_optimizer(config, steps_per_epoch):
    """Momentum SGD with clipping and a per-epoch decay of the learning rate.

    Parameters
    ----------
    config : meg_unet.config.Config
        Gives LEARNING_RATE, MOMENTUM, MAX_NORM and LR_DECAY.
    steps_per_epoch : int
        Optimizer steps per epoch: the learning rate is multiplied by LR_DECAY after every
        ``steps_per_epoch`` steps.
    """
    net = config.network
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=net.LEARNING_RATE,
        decay_steps=int(steps_per_epoch),
        decay_rate=net.LR_DECAY,
        staircase=True,
    )
    # global_clipnorm scales the whole gradient down to MAX_NORM when it is longer, and the
    # clipped gradient is what the optimizer applies (the 2017 code discarded it, so its
    # networks trained unclipped).  MAX_NORM None applies the gradient as it is.
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=net.MOMENTUM, global_clipnorm=net.MAX_NORM
    )


def compile_model(model, config, weights, steps_per_epoch):
    """Compile ``model`` with the weighted loss, the pixel error and the optimizer."""
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=WeightedCategoricalCrossentropy(
            weights, localization_weight=config.network.LOCALIZATION_LOSS),
        metrics=[pixel_error],
    )
    return model


def distribution_scope(batch_size, devices=None):
    """Return a context in which to build and train the model, and its number of devices.

    - TensorFlow backend with more than one visible GPU: ``tf.distribute.MirroredStrategy``
      (one model replica per GPU, gradients summed over replicas).
    - JAX backend with more than one accelerator: ``keras.distribution.DataParallel`` (the
      batch is sharded over the devices of one SPMD program, so the step computes what one
      device would; on several hosts, :func:`join_hosts` first makes every host's devices
      part of it, see ``docs/scaling.md``).
    - Otherwise (one accelerator, CPU only, PyTorch backend): one device, the backend's default.

    ``network.BATCH_SIZE`` is the global batch, split evenly over the devices, so the results
    do not depend on how many devices there are; when it is not a multiple of the number of
    devices, training stays on one device (with a warning saying what to change).

    Parameters
    ----------
    batch_size : int
        Tiles per optimizer step.
    devices : list | None
        Devices to train on: JAX devices (e.g. ``jax.devices("cpu")`` with
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) or TensorFlow device names
        (e.g. ``["/cpu:0", "/cpu:1"]`` after splitting the CPU into logical devices), as the
        tests do; None: the backend's accelerators.

    Returns
    -------
    scope : context manager
        Enter it around building, compiling and fitting.
    n_devices : int
        Devices the model is trained on.
    """
    backend = keras.backend.backend()
    if devices is not None and backend not in ("jax", "tensorflow"):
        raise ValueError(f"devices can be chosen with JAX or TensorFlow only, not {backend!r}")
    if devices is not None:
        devices = list(devices)
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU")
    elif backend == "jax":
        import jax

        devices = [d for d in jax.devices() if d.platform != "cpu"]
    else:
        devices = []
    if len(devices) <= 1:
        return contextlib.nullcontext(), 1
    if batch_size % len(devices):
        logger.warning(
            "%d accelerators are visible, but network.BATCH_SIZE = %d is not a multiple of %d: "
            "training on one device (set BATCH_SIZE to a multiple to use them all)",
            len(devices),
            batch_size,
            len(devices),
        )
        return contextlib.nullcontext(), 1
    if backend == "tensorflow":
        import tensorflow as tf

        names = [d if isinstance(d, str) else d.name for d in devices]
        return tf.distribute.MirroredStrategy(names).scope(), len(devices)
    distribution = keras.distribution.DataParallel(
        devices=[f"{d.platform}:{d.id}" for d in devices]
    )
    return distribution.scope(), len(devices)


# --------------------------------------------------------------------------------------------
# Files of a trained model
# --------------------------------------------------------------------------------------------


def model_paths(model_dir):
    """Return the files of a model folder by role (see the module docstring)."""
    model_dir = Path(model_dir)
    return {
        "dir": model_dir,
        "best": model_dir / "best.keras",
        "last": model_dir / "last.keras",
        "history": model_dir / "history.csv",
        "sidecar": model_dir / "model.json",
        "preprocessing": model_dir / "preprocessing.npz",
        "logs": model_dir / "logs",
    }


def _data_record(provider):
    manifest = provider.manifest
    return {
        "split": provider.split,
        "directory": str(provider.directory),
        "config_hash": manifest.get("config_hash"),
        "files": manifest.get("files", {}),
        "n_samples": int(provider.n_times),
        "n_tiles": int(provider.n_tiles),
    }


def _comparable_settings(settings):
    """Recorded settings without those a resume may change (nor the raw overrides)."""
    return settings_of_roles(settings, (*MODEL_ROLES, Role.DATA, Role.TRAINING))


def _differences(old, new):
    return settings_differences(old, new, "in the saved model")


def check_compatible(sidecar, expected):
    """Raise ValueError listing what differs between a saved model and the current run.

    Parameters
    ----------
    sidecar : dict
        The saved ``model.json``.
    expected : dict
        The sidecar the current configuration and data would write; entries it lacks are not
        compared (``{"settings": ...}`` alone checks the settings before any data are read).
    """
    problems = []
    for key in ("build_arguments", "preprocessing", "training_data", "class_weights"):
        if key not in expected:
            continue
        old, new = sidecar.get(key), expected[key]
        if key == "training_data":
            old = {k: (old or {}).get(k) for k in ("config_hash", "files")}
            new = {k: new.get(k) for k in ("config_hash", "files")}
        problems.extend(_differences({key: old}, {key: new}))
    problems.extend(
        _differences(
            _comparable_settings(sidecar.get("settings", {})),
            _comparable_settings(expected["settings"]),
        )
    )
    if problems:
        raise ValueError(
            "the saved model does not match the current configuration and data:\n  - "
            + "\n  - ".join(problems)
            + "\nTrain a new model (another RUN_NAME, or --overwrite) or restore the settings."
        )


def load_trained_model(model_dir, which="best", config=None):
    """Load a trained model, its sidecar and its fitted preprocessing.

    Parameters
    ----------
    model_dir : path-like
        The model folder (``RESULTS_DIR/<RUN_NAME>/model``).
    which : "best" | "last"
        The checkpoint.
    config : meg_unet.config.Config | None
        If given, refuse a model whose architecture-relevant settings differ from it
        (CHANNELS, HEMISPHERE, SPACING ... and the ``network``/``data_provider`` settings).

    Returns
    -------
    model : keras.Model
        The model (compiled; batch normalization in inference mode at ``predict``).
    sidecar : dict
        The ``model.json``.
    preprocessing : Preprocessing
        The input preprocessing fitted on the training split.
    """
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', but got {which!r}")
    paths = model_paths(model_dir)
    for role in (which, "sidecar", "preprocessing"):
        if not paths[role].is_file():
            raise FileNotFoundError(f"{paths[role]} does not exist; train the model first")
    sidecar = read_json(paths["sidecar"])
    if config is not None:
        problems = _differences(
            settings_of_roles(sidecar.get("settings", {}), MODEL_ROLES),
            settings_of_roles(config.result_settings(), MODEL_ROLES),
        )
        if problems:
            raise ValueError(
                f"the model in {paths['dir']} was trained with other settings:\n  - "
                + "\n  - ".join(problems)
                + "\nUse the settings it was trained with, or train it again with them "
                "(train_network.py --overwrite)"
            )
    model = read_with(keras.saving.load_model, paths[which], "a Keras model", _RETRAIN)
    preprocessing = Preprocessing.load(paths["preprocessing"])
    return model, sidecar, preprocessing


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _holds_files(model_dir):
    return model_dir.exists() and any(model_dir.iterdir())


def _holds_model(paths):
    """Whether the folder holds a checkpoint or a finished epoch (more than a stopped start).

    A training stopped before its first epoch ended leaves model.json, preprocessing.npz and
    an empty history.csv: nothing that a fresh start would lose.
    """
    return (
        paths["last"].exists() or paths["best"].exists() or not read_history(paths["history"]).empty
    )


def _check_fresh_folder(paths, overwrite):
    """Refuse, before any work, to start a fresh model where one exists (unless overwrite)."""
    if _holds_model(paths) and not overwrite:
        raise FileExistsError(
            f"{paths['dir']} already holds a model; continue it with --resume, replace it with "
            "--overwrite, or use another RUN_NAME"
        )


def _prepare_fresh_folder(paths):
    """Empty the model folder (after the data loaded, so a data error keeps the old model)."""
    model_dir = paths["dir"]
    if _holds_files(model_dir):
        if len(read_history(paths["history"])):
            logger.warning("--overwrite: removing the earlier model in %s", model_dir)
        else:
            logger.warning("removing what a training stopped in its first epoch left in %s",
                           model_dir)
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)


def _resume_state(paths, sidecar):
    """Epoch to continue from, and the early-stopping state of the epochs done."""
    history = read_history(paths["history"])
    if history.empty:
        raise FileNotFoundError(f"{paths['history']} is missing or empty: nothing to resume")
    initial_epoch = int(history["epoch"].iloc[-1]) + 1
    if sidecar.get("epochs_completed") != initial_epoch:
        logger.warning(
            "history.csv ends at epoch %d but model.json says %s epochs were completed; "
            "continuing after the history's last epoch",
            initial_epoch - 1,
            sidecar.get("epochs_completed"),
        )
    if "val_loss" not in history or history["val_loss"].isna().all():
        return initial_epoch, None, 0
    best_row = history.loc[history["val_loss"].idxmin()]
    return initial_epoch, float(best_row["val_loss"]), initial_epoch - 1 - int(best_row["epoch"])


@dataclasses.dataclass
class TrainingResult:
    """What :func:`train` did.

    Attributes
    ----------
    model_dir : Path
        The model folder.
    epochs_completed : int
        Epochs trained in all, earlier (resumed) ones included.
    best_val_loss : float | None
        Lowest validation loss (its model is ``best.keras``).
    history : dict of str to list
        Keras's history of this call's epochs.
    model : keras.Model | None
        The model after the last epoch (None when there was nothing left to train).
    """

    model_dir: Path
    epochs_completed: int
    best_val_loss: float | None
    history: dict
    model: object = None


def needs_synchronized_batch_norm(n_devices):
    """Whether batch normalization must sum its statistics over devices itself.

    Under TensorFlow's ``MirroredStrategy`` each replica sees only its part of the batch;
    under JAX's ``DataParallel`` one program sees all of it.
    """
    return n_devices > 1 and keras.backend.backend() == "tensorflow"


def join_hosts(environ=None):
    """Join a multi-host JAX job when its launcher says so; return whether it did.

    Every host runs the same ``train_network.py`` command with ``KERAS_BACKEND=jax`` and the
    variables of :func:`keras.distribution.initialize`: ``KERAS_DISTRIBUTION_JOB_ADDRESSES``
    (the coordinator's ``host:port``), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` (above 1) and
    ``KERAS_DISTRIBUTION_PROCESS_ID`` (0 on the coordinator).  After it, every host's
    accelerators are devices of one ``DataParallel`` program (:func:`distribution_scope`).
    Without those variables, or under another backend, nothing happens.
    """
    environ = os.environ if environ is None else environ
    try:
        n_processes = int(environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    except ValueError as exc:
        raise ValueError("KERAS_DISTRIBUTION_NUM_PROCESSES must be a whole number, but got "
                         f"{environ['KERAS_DISTRIBUTION_NUM_PROCESSES']!r}") from exc
    if n_processes <= 1 or keras.backend.backend() != "jax":
        return False
    keras.distribution.initialize()
    return True


def train(config, overwrite=False, resume=False):
    """Train the U-Net of a run on its training split (the entry point of train_network.py).

    Parameters
    ----------
    config : meg_unet.config.Config
        The run's configuration; every setting comes from it.
    overwrite : bool
        Replace an existing model folder (its removal is logged).  Without it, a fresh run
        refuses to touch an existing model.
    resume : bool
        Continue from ``last.keras`` with its optimizer state, at the epoch after the last one
        in ``history.csv``.  Refused if the architecture, the settings (other than those of
        the role ``Resumable``, such as EPOCHS and EARLY_STOPPING_PATIENCE) or the training
        data differ from the saved model's.  When no epoch has finished yet (no folder, or a
        training stopped during its first epoch), training starts from the beginning; so does
        a fresh run in such a folder.

    Returns
    -------
    result : TrainingResult
        Where the model is and how far it got.
    """
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    join_hosts()
    paths = model_paths(config.run_results_dir / "model")
    if resume and read_history(paths["history"]).empty:
        # stopped before the first epoch was recorded: there is nothing to go on from
        logger.warning("%s: no finished epoch to resume from; training from the start",
                       paths["dir"])
        resume, overwrite = False, True
    if resume:
        return _train_resumed(config, paths)
    return _train_fresh(config, paths, overwrite)


def _train_fresh(config, paths, overwrite):
    """Build, compile and fit a new model in an empty model folder."""
    _check_fresh_folder(paths, overwrite)
    run = _TrainingRun(config, preprocessing=None, initial_epoch=0)
    _prepare_fresh_folder(paths)  # after the data loaded, so a data error keeps the old model
    with run.scope:
        model = build_unet(**run.arguments,
                           synchronized_batch_norm=needs_synchronized_batch_norm(run.n_devices))
        compile_model(model, config, run.weights, len(run.train_stream))
        run.preprocessing.save(paths["preprocessing"])
        return _fit(config, paths, run, model, best=None, wait=0, resume=False)


def _train_resumed(config, paths):
    """Load ``last.keras`` and fit on from the epoch after the last one in history.csv."""
    missing = [p.name for p in (paths["last"], paths["sidecar"], paths["preprocessing"])
               if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"nothing to resume in {paths['dir']}: {', '.join(missing)} missing; start "
            "again with --overwrite (or use another RUN_NAME)"
        )
    saved = read_json(paths["sidecar"])
    # the settings first, before any data is read; the data and build arguments once read
    check_compatible(saved, {"settings": config.result_settings()})
    initial_epoch, best, wait = _resume_state(paths, saved)
    if initial_epoch >= config.network.EPOCHS:
        logger.info("%s: already trained for %d epochs (network.EPOCHS = %d); raise "
                    "network.EPOCHS to train longer", paths["dir"], initial_epoch,
                    config.network.EPOCHS)
        return TrainingResult(paths["dir"], initial_epoch, saved.get("best_val_loss"), {})
    run = _TrainingRun(config, Preprocessing.load(paths["preprocessing"]), initial_epoch)
    check_compatible(saved, run.sidecar)
    for key in ("best_val_loss", "best_epoch", "last_val_loss"):
        if key in saved:
            run.sidecar[key] = saved[key]
    run.sidecar["epochs_completed"] = initial_epoch
    with run.scope:
        logger.info("resuming %s at epoch %d", paths["last"], initial_epoch)
        model = read_with(keras.saving.load_model, paths["last"], "a Keras model", _RETRAIN)
        return _fit(config, paths, run, model, best=best, wait=wait, resume=True)


class _TrainingRun:
    """The data, streams, class weights and sidecar of one training, fresh or resumed.

    Parameters
    ----------
    config : meg_unet.config.Config
        The run's configuration.
    preprocessing : Preprocessing | None
        The saved preprocessing of a resumed model; None fits it on the training split.
    initial_epoch : int
        The epoch the streams start at (their shuffling is seeded per epoch).
    """

    def __init__(self, config, preprocessing, initial_epoch):
        self.initial_epoch = initial_epoch
        self.train_data = DataProvider(config, "train", preprocessing=preprocessing)
        self.preprocessing = self.train_data.preprocessing  # the one given, or fitted
        self.valid_data = DataProvider(config, "valid", preprocessing=self.preprocessing)
        if self.valid_data.tile_shape != self.train_data.tile_shape:
            raise ValueError(
                f"the validation tiles {self.valid_data.tile_shape} differ from the training "
                f"tiles {self.train_data.tile_shape}"
            )
        self.weights = class_weights(self.train_data, config.network.CLASS_WEIGHTING)
        logger.info("class weights (%s of the training split): %s",
                    config.network.CLASS_WEIGHTING.replace("_", " "),
                    np.array2string(self.weights, precision=1))
        self.train_stream = GeneratorDataProvider.from_config(
            self.train_data, config, training=True, initial_epoch=initial_epoch
        )
        self.valid_stream = GeneratorDataProvider.from_config(
            self.valid_data, config, training=False, initial_epoch=initial_epoch
        )
        self.arguments = build_arguments(config, self.train_data.tile_shape,
                                         self.train_data.n_classes,
                                         **network_geometry(config, self.train_data))
        self.scope, self.n_devices = distribution_scope(config.network.BATCH_SIZE)
        vertices = self.train_data.vertices
        #: The model.json this training writes (and a resumed one must match).
        self.sidecar = {
            "format": SIDECAR_FORMAT,
            "build_arguments": self.arguments,
            "settings": config.result_settings(),
            "config_hash": config.result_hash(),
            "preprocessing": self.preprocessing.settings(),
            "channels": list(self.train_data.channel_names),
            "vertices": {"lh": vertices[0].tolist(), "rh": vertices[1].tolist()},
            "training_data": _data_record(self.train_data),
            "validation_data": _data_record(self.valid_data),
            "class_weights": [float(w) for w in self.weights],
            "steps_per_epoch": len(self.train_stream),
            "validation_steps": len(self.valid_stream),
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "devices": self.n_devices,
            "epochs_completed": 0,
            "best_val_loss": None,
            "best_epoch": None,
        }


def _fit(config, paths, run, model, best, wait, resume):
    """Fit ``model`` from ``run.initial_epoch`` on, writing checkpoints, history and logs."""
    write_json(paths["sidecar"], run.sidecar)
    chosen = _callbacks(config, paths, run.sidecar, run.valid_data, resume, best, wait)
    logger.info(
        "training a %d-level U-Net (%s parameters) on %s tiles %s for up to %d epochs of %d "
        "steps on %d device(s); writing %s (checkpoints, history.csv, model.json) and "
        "TensorBoard logs in %s",
        config.network.N_LEVELS,
        f"{model.count_params():,}",
        run.train_data.n_tiles,
        run.train_data.tile_shape,
        config.network.EPOCHS,
        len(run.train_stream),
        run.n_devices,
        paths["dir"],
        paths["logs"],
    )
    history = model.fit(
        run.train_stream,
        validation_data=run.valid_stream,
        epochs=config.network.EPOCHS,
        initial_epoch=run.initial_epoch,
        callbacks=chosen,
        shuffle=False,  # the stream shuffles, seeded; Keras would reorder batches unseeded
        verbose="auto",
    )
    final = read_json(paths["sidecar"])
    logger.info(
        "trained %d epochs; best validation loss %.4g at epoch %s: %s",
        final["epochs_completed"],
        final["best_val_loss"] if final["best_val_loss"] is not None else math.nan,
        final["best_epoch"],
        paths["best"],
    )
    return TrainingResult(
        paths["dir"], final["epochs_completed"], final["best_val_loss"], history.history, model
    )


def _callbacks(config, paths, sidecar, valid_data, resume, best, wait):
    chosen = [
        callbacks.LearningRateLogger(),
        callbacks.AtomicModelCheckpoint(
            paths["best"],
            monitor="val_loss",
            save_best_only=True,
            initial_value_threshold=best,
        ),
        callbacks.AtomicModelCheckpoint(paths["last"], save_best_only=False),
        keras.callbacks.CSVLogger(str(paths["history"]), append=resume),
        callbacks.ResumableEarlyStopping(
            best=best,
            wait=wait,
            monitor="val_loss",
            patience=config.network.EARLY_STOPPING_PATIENCE,
        ),
        callbacks.SidecarWriter(paths["sidecar"], sidecar),
    ]
    if importlib.util.find_spec("tensorflow") is not None:
        chosen.append(
            callbacks.TensorBoard(log_dir=str(paths["logs"]), write_graph=False, profile_batch=0)
        )
        inputs, targets = valid_data.tile(0)
        chosen.append(
            callbacks.ExampleImageLogger(
                paths["logs"] / "images", inputs, targets.argmax(axis=-1), valid_data.n_classes
            )
        )
    else:
        logger.info("TensorFlow is not installed: no TensorBoard logs")
    return chosen
