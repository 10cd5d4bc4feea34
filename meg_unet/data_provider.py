"""Inputs and targets of the U-Net, cut into tiles (thesis section 3.4).

A :class:`DataProvider` loads one data split (``DATA_DIR/<run>/<split>/``, see
:mod:`meg_unet.io`) for the run's hemisphere(s):

- **inputs**: one channel per configured inverse solution (``config.channels`` order), each an
  image of ``n_vertices x n_times`` pixels (rows = the hemisphere's vertices in source-space
  order, lh then rh for ``HEMISPHERE = "both"``; columns = time samples), preprocessed by
  :class:`meg_unet.preprocessing.Preprocessing`; optionally three more channels with the
  vertices' x, y, z coordinates (``COORDINATE_CHANNELS``, thesis 3.4: six channels in all);
- **targets**: class 1 where ``|truth| > ACTIVE_THRESHOLD`` (thesis 3.4: 1e-20), class 0
  elsewhere; with more than two classes, ``|amplitude|`` above the threshold is binned into
  equal-width bins; one-hot encoded per tile.

A **tile** is ``T_STEPS`` consecutive, non-overlapping time samples of all vertices:
``(n_vertices, T_STEPS, n_channels)`` inputs and ``(n_vertices, T_STEPS, n_classes)`` targets.
The samples left over after the last whole tile are dropped (logged).  The vertical axis is
always the whole source space of the hemisphere in source-space order, so the U-Net sees every
vertex at the same pixel row in every tile (thesis 3.5).

A :class:`GeneratorDataProvider` streams batches of tiles to ``keras.Model.fit`` from worker
threads (``N_WORKERS``, ``MAX_QUEUE_SIZE``), in a seeded random order per epoch.

The preprocessing is fitted on the training split only and applied unchanged to the other
splits: ``DataProvider(config, "train")`` fits it, and ``DataProvider(config, "valid",
preprocessing=train.preprocessing)`` reuses it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from .schema import parameter_choices
from .errors import DataError
from .io import changed_files, read_json, read_with, split_files
from .preprocessing import Preprocessing

logger = logging.getLogger("meg_unet")

__all__ = [
    "DataProvider",
    "GeneratorDataProvider",
    "class_weights",
    "network_inputs",
    "one_hot",
]

#: The class weightings, as declared in parameters/.
CLASS_WEIGHTINGS = parameter_choices("network.CLASS_WEIGHTING")

#: Names of the coordinate channels (``data_provider.COORDINATE_CHANNELS``).
COORDINATE_NAMES = ("x", "y", "z")

_HEMI_INDEX = {"lh": 0, "rh": 1}

# _BLAS_NOTE: the preprocessing runs its BLAS and OpenMP calls on one thread.  On a 2-core
# machine that runs anything else (TensorFlow, a second job), multi-threaded OpenBLAS spins and
# was measured 10-50x slower here (an NMF of 1000 x 162 samples: 5 s on 2 threads, 0.5 s on 1).


#: The way out of a damaged split: the simulation rebuilds a split whose files do not match
#: the checksums of its manifest, without --overwrite.
_RESIMULATE = "rerun simulate_data.py with this configuration to rebuild the split"


# --------------------------------------------------------------------------------------------
# Loading a split
# --------------------------------------------------------------------------------------------


def _hemispheres(hemisphere):
    return ("lh", "rh") if hemisphere == "both" else (hemisphere,)


def _check_manifest(manifest, config, split, manifest_path):
    """Raise a DataError naming every structural setting in which the split and config differ."""
    expected = {
        "head_model": ("HEAD_MODEL", config.head_model),
        "spacing": ("SPACING", config.spacing),
        "sensors": ("SENSORS", config.sensors),
        "hemisphere": ("HEMISPHERE", config.hemisphere),
    }
    if "orientation" in manifest:
        expected["orientation"] = ("ORIENTATION", config.orientation)
    problems = []
    for key, (setting, value) in expected.items():
        if key not in manifest:
            problems.append(f"{manifest_path} has no {key!r} entry")
        elif manifest[key] != value:
            problems.append(
                f"split {split!r} was simulated with {setting}={manifest[key]!r}, but the "
                f"config has {value!r}"
            )
    channels = manifest.get("channels")
    if channels is None:
        problems.append(f"{manifest_path} has no 'channels' entry")
    else:
        missing = [c for c in config.channels if c not in channels]
        if missing:
            problems.append(
                f"split {split!r} was simulated with CHANNELS={tuple(channels)!r}, but the "
                f"config has {tuple(config.channels)!r} ({', '.join(missing)} missing)"
            )
    if problems:
        raise DataError(
            "; ".join(problems)
            + ". Simulate the data with this config (simulate_data.py), or train with the "
            "config the data were simulated with."
        )


def _read_estimate(path, src_vertno, hemispheres):
    """Read one ``-stc.h5`` file and return the rows of the hemisphere(s), float32."""
    import mne

    stc = read_with(mne.read_source_estimate, path, "a source estimate", _RESIMULATE)
    if not isinstance(stc, mne.SourceEstimate):
        raise DataError(f"{path} holds a {type(stc).__name__}, not a surface SourceEstimate")
    rows = []
    offset = 0
    for index, vertno in enumerate(stc.vertices):
        hemi = ("lh", "rh")[index]
        if hemi in hemispheres:
            if not np.array_equal(vertno, src_vertno[hemi]):
                raise DataError(
                    f"{path}: the {hemi} vertices of the estimate ({len(vertno)}) are not the "
                    f"{len(src_vertno[hemi])} vertices of the split's source space in "
                    "source-space order"
                )
            rows.append(stc.data[offset : offset + len(vertno)])
        offset += len(vertno)
    data = np.concatenate(rows, axis=0) if len(rows) > 1 else rows[0]
    if not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise DataError(f"{path} holds {bad} NaN or infinite values")
    return np.ascontiguousarray(data, dtype=np.float32), float(stc.tmin), float(stc.tstep)


class DataProvider:
    """One data split's inputs and targets, as images of ``n_vertices x n_times`` pixels.

    Parameters
    ----------
    config : meg_unet.config.Config
        The run's configuration: CHANNELS, HEMISPHERE, the ``data_provider`` settings and
        ``tile.T_STEPS`` are read from it.
    split : str
        The split's name (``"train"``, ``"valid"``, ``"test"``); files are named after it.
    preprocessing : Preprocessing | None
        The fitted preprocessing of the training split.  None builds it from ``config``; a
        preprocessing that needs fitting is then fitted here, which only the training split
        may do.
    directory : path-like | None
        The split's folder; None means ``DATA_DIR/<RUN_NAME>/<split>``.

    Attributes
    ----------
    directory : Path
        The split's folder.
    manifest : dict
        The split's ``manifest.json``.
    vertices : list of ndarray
        ``[lh_vertno, rh_vertno]`` of the rows, as in ``mne.SourceEstimate.vertices`` (the
        hemisphere not used is empty).
    vertno : ndarray of int, shape (n_vertices,)
        Vertex number of each row (row ``i`` is vertex ``vertno[i]`` of its hemisphere).
    positions : ndarray, shape (n_vertices, 3)
        Position of each row's vertex in meters (``src[hemi]['rr']``, MRI coordinates).
    estimates : dict of str to ndarray of float32, shape (n_vertices, n_times)
        The raw inverse estimates of the configured channels, unprocessed (for metrics).
    amplitudes : ndarray of float32, shape (n_vertices, n_times)
        The true source amplitudes (A m).
    inputs : ndarray of float32, shape (n_vertices, n_times, n_channels)
        The preprocessed input channels, then the coordinate channels if configured.
    targets : ndarray of uint8, shape (n_vertices, n_times)
        The class of each pixel.
    channel_names : tuple of str
        Names of the input channels, e.g. ``("mne", "dspm", "sloreta", "x", "y", "z")``.
    sfreq, tmin : float
        Sampling rate (Hz) and time of the first sample (s).
    tile_steps : int
        Samples per tile (``tile.T_STEPS``).
    n_tiles : int
        Whole tiles in the split.
    """

    def __init__(self, config, split, preprocessing=None, directory=None):
        import mne

        self.config = config
        self.split = split
        self.directory = (
            Path(directory) if directory is not None else config.run_data_dir / split
        )
        if not self.directory.is_dir():
            raise DataError(
                f"the {split!r} split folder {self.directory} does not exist; simulate the "
                "data first (python simulate_data.py)"
            )
        files = split_files(self.directory, split)
        needed = ["manifest", "src", *config.channels, "truth"]
        missing = [str(files[role]) for role in needed if not files[role].is_file()]
        if missing:
            raise DataError(
                f"the {split!r} split in {self.directory} is incomplete: missing "
                + ", ".join(missing)
            )
        self.manifest = read_json(files["manifest"], remedy=_RESIMULATE)
        _check_manifest(self.manifest, config, split, files["manifest"])
        # a file that changed since the simulation wrote it (truncated by a full disk, an
        # interrupted copy) is refused by name, before h5py or MNE fail on it
        changed = changed_files(self.directory, self.manifest, [files[r].name for r in needed])
        if changed:
            raise DataError(
                ", ".join(str(self.directory / name) for name in changed)
                + f": damaged or changed since the simulation wrote it (its SHA-256 differs "
                f"from the checksum in {files['manifest'].name}); {_RESIMULATE}"
            )

        hemispheres = _hemispheres(config.hemisphere)
        self.src = read_with(
            mne.read_source_spaces, files["src"], "a source space", _RESIMULATE, verbose=False
        )
        src_vertno = {hemi: self.src[_HEMI_INDEX[hemi]]["vertno"] for hemi in ("lh", "rh")}
        manifest_vertices = self.manifest.get("vertices", {})
        for hemi in hemispheres:
            listed = manifest_vertices.get(hemi)
            if listed is not None and not np.array_equal(listed, src_vertno[hemi]):
                raise DataError(
                    f"{files['manifest']}: the {hemi} vertices differ from those of "
                    f"{files['src']}"
                )
        self.vertices = [
            np.asarray(src_vertno[h] if h in hemispheres else [], dtype=np.int64)
            for h in ("lh", "rh")
        ]
        self.vertno = np.concatenate([self.vertices[_HEMI_INDEX[h]] for h in hemispheres])
        self.positions = np.concatenate(
            [self.src[_HEMI_INDEX[h]]["rr"][src_vertno[h]] for h in hemispheres]
        )

        self.estimates = {}
        times = set()
        for channel in config.channels:
            self.estimates[channel], tmin, tstep = _read_estimate(
                files[channel], src_vertno, hemispheres
            )
            times.add((self.estimates[channel].shape[1], round(tmin, 9), round(tstep, 12)))
        self.amplitudes, tmin, tstep = _read_estimate(files["truth"], src_vertno, hemispheres)
        times.add((self.amplitudes.shape[1], round(tmin, 9), round(tstep, 12)))
        if len(times) > 1:
            raise DataError(
                f"the source estimates of the {split!r} split in {self.directory} differ in "
                f"their time axes (samples, tmin, tstep): {sorted(times)}"
            )
        self.tmin, self.sfreq = tmin, 1.0 / tstep
        self._prepare(preprocessing)

    @classmethod
    def from_arrays(cls, config, estimates, amplitudes, vertices, positions, split="memory",
                    preprocessing=None, sfreq=None, tmin=0.0):
        """Make a provider from arrays in memory instead of a split folder.

        For data that are not a simulated split (benchmarks, estimates of a real recording
        whose ``amplitudes`` are unknown and may be zeros).

        Parameters
        ----------
        config : meg_unet.config.Config
            The run's configuration.
        estimates : dict of str to ndarray, shape (n_vertices, n_times)
            The raw estimates of every channel of ``config.channels``, rows in source-space
            order.
        amplitudes : ndarray, shape (n_vertices, n_times)
            True amplitudes (A m).
        vertices : list of ndarray
            ``[lh_vertno, rh_vertno]`` of the rows.
        positions : ndarray, shape (n_vertices, 3)
            Vertex positions in meters.
        split : str
            A name for messages; only ``"train"`` may fit the preprocessing.
        preprocessing : Preprocessing | None
            As for the constructor.
        sfreq : float | None
            Sampling rate in Hz (None: ``simulation.SFREQ``).
        tmin : float
            Time of the first sample in seconds.
        """
        self = cls.__new__(cls)
        self.config, self.split, self.directory = config, split, None
        self.manifest, self.src = {}, None
        self.vertices = [np.asarray(v, dtype=np.int64) for v in vertices]
        self.vertno = np.concatenate(self.vertices)
        self.positions = np.asarray(positions, dtype=np.float64)
        self.estimates = {
            c: np.ascontiguousarray(estimates[c], dtype=np.float32) for c in config.channels
        }
        self.amplitudes = np.ascontiguousarray(amplitudes, dtype=np.float32)
        shapes = {a.shape for a in (*self.estimates.values(), self.amplitudes)}
        if len(shapes) != 1 or len(self.vertno) != self.amplitudes.shape[0]:
            raise ValueError(
                f"estimates and amplitudes must all have shape ({len(self.vertno)}, n_times), "
                f"but got {sorted(shapes)}"
            )
        self.sfreq = float(config.simulation.SFREQ if sfreq is None else sfreq)
        self.tmin = float(tmin)
        self._prepare(preprocessing)
        return self

    def _prepare(self, preprocessing):
        """Cut the split into tiles, fit or apply the preprocessing, bin the targets."""
        config, split = self.config, self.split
        where = self.directory if self.directory is not None else "memory"
        self.n_vertices, self.n_times = self.amplitudes.shape
        self.tile_steps = config.tile.T_STEPS
        self.n_tiles = self.n_times // self.tile_steps
        if self.n_tiles == 0:
            raise DataError(
                f"the {split!r} split in {where} has {self.n_times} samples, fewer "
                f"than one tile of tile.T_STEPS = {self.tile_steps}"
            )
        dropped = self.n_times - self.n_tiles * self.tile_steps
        logger.info(
            "%s: %d vertices x %d samples -> %d tiles of %d samples%s",
            where,
            self.n_vertices,
            self.n_times,
            self.n_tiles,
            self.tile_steps,
            f" ({dropped} samples at the end dropped)" if dropped else "",
        )

        if preprocessing is None:
            preprocessing = Preprocessing.from_config(config)
        if not preprocessing.fitted:
            if split != "train":
                raise ValueError(
                    f"the {preprocessing.method!r} preprocessing is fitted on the training "
                    f"split only; pass the training split's preprocessing to the {split!r} "
                    "DataProvider"
                )
            logger.info("fitting the preprocessing (%r, %d classes) on %s",
                        preprocessing.method, preprocessing.n_classes, where)
            with threadpool_limits(limits=1):  # see _BLAS_NOTE
                preprocessing.fit(self.estimates, self.amplitudes)
        self.preprocessing = preprocessing

        self.inputs = network_inputs(config, preprocessing, self.estimates, self.positions)
        self.channel_names = tuple(config.channels)
        if config.data_provider.COORDINATE_CHANNELS:
            self.channel_names += COORDINATE_NAMES
        self.targets = preprocessing.transform_targets(self.amplitudes)

    @property
    def n_channels(self):
        """Input channels per pixel."""
        return self.inputs.shape[-1]

    @property
    def n_classes(self):
        """Target classes."""
        return self.preprocessing.n_classes

    @property
    def tile_shape(self):
        """``(n_vertices, T_STEPS, n_channels)``: the input shape of the network."""
        return (self.n_vertices, self.tile_steps, self.n_channels)

    def tile_slice(self, index):
        """Return the time-sample slice of tile ``index``."""
        if not 0 <= index < self.n_tiles:
            raise IndexError(f"tile {index} out of range (the split has {self.n_tiles} tiles)")
        start = index * self.tile_steps
        return slice(start, start + self.tile_steps)

    def tile(self, index):
        """Return tile ``index``.

        Returns
        -------
        inputs : ndarray of float32, shape (n_vertices, T_STEPS, n_channels)
            The preprocessed inputs.
        targets : ndarray of float32, shape (n_vertices, T_STEPS, n_classes)
            The one-hot targets.
        """
        columns = self.tile_slice(index)
        return self.inputs[:, columns], one_hot(self.targets[:, columns], self.n_classes)

    def tiled_targets(self):
        """Return the class labels of the samples that lie in whole tiles."""
        return self.targets[:, : self.n_tiles * self.tile_steps]


def network_inputs(config, preprocessing, estimates, positions):
    """Stack the preprocessed input channels as the network sees them.

    Parameters
    ----------
    config : meg_unet.config.Config
        Names the channels (CHANNELS) and whether the vertex coordinates are added
        (``data_provider.COORDINATE_CHANNELS``).
    preprocessing : Preprocessing
        The fitted preprocessing.
    estimates : dict of str to ndarray, shape (n_vertices, n_times)
        The raw estimates by method.
    positions : ndarray, shape (n_vertices, 3)
        The vertex positions (for the coordinate channels).

    Returns
    -------
    inputs : ndarray of float32, shape (n_vertices, n_times, n_channels)
        The channels in the order of CHANNELS, then x, y, z.
    """
    with threadpool_limits(limits=1):  # see _BLAS_NOTE
        channels = [
            preprocessing.transform_channel(c, np.asarray(estimates[c], dtype=np.float32))
            for c in config.channels
        ]
    if config.data_provider.COORDINATE_CHANNELS:
        channels.extend(_coordinate_channels(positions, channels[0].shape[1]))
    return np.ascontiguousarray(np.stack(channels, axis=-1), dtype=np.float32)


def _coordinate_channels(positions, n_times):
    """x, y, z of each vertex scaled to [0, 1] over the rows, constant over time.

    Min-max scaling per axis puts the coordinates on the scale of the normalized inputs; it
    depends only on the source space, so every split gets the same channels.
    """
    low, high = positions.min(axis=0), positions.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = ((positions - low) / span).astype(np.float32)
    return [np.broadcast_to(scaled[:, [axis]], (len(positions), n_times)) for axis in range(3)]


def one_hot(labels, n_classes):
    """One-hot encode integer labels along a new last axis (float32)."""
    # np.take on the rows of an identity is ~6x faster than indexing it (np.eye(n)[labels])
    return np.take(np.eye(n_classes, dtype=np.float32), labels, axis=0)


def class_weights(provider, weighting="inverse_frequency"):
    """Class weights of the loss from a split's targets, with the silent class at weight 1.

    Computed over the samples in whole tiles (what the network is trained on).  With
    ``"inverse_frequency"`` the weight of class ``c`` is ``count(0) / count(c)`` (thesis 3.5;
    the 2017 code's weights were about [1, 1333] for one active vertex among ~642);
    ``"sqrt_inverse_frequency"`` takes its square root (a milder push towards the rare
    class); ``"none"`` weighs every class 1 (the plain cross-entropy, whose probabilities are
    calibrated to begin with).  A class that never occurs gets weight 1, with a warning.

    Parameters
    ----------
    provider : DataProvider
        The training split.
    weighting : str
        One of :data:`CLASS_WEIGHTINGS`.

    Returns
    -------
    weights : ndarray of float64, shape (n_classes,)
        One weight per class.
    """
    if weighting not in CLASS_WEIGHTINGS:
        raise ValueError(
            "Invalid value for the 'weighting' parameter. Allowed values are "
            f"{', '.join(map(repr, CLASS_WEIGHTINGS))}, but got {weighting!r} instead."
        )
    counts = np.bincount(provider.tiled_targets().ravel(), minlength=provider.n_classes)
    weights = _weights_from_counts(counts)
    if weighting == "sqrt_inverse_frequency":
        return np.sqrt(weights)
    if weighting == "none":
        return np.ones_like(weights)
    return weights


def _weights_from_counts(counts):
    counts = np.asarray(counts, dtype=np.float64)
    if counts[0] == 0:
        raise DataError("the training split has no silent (class 0) pixels to weight against")
    weights = np.ones(len(counts))
    present = counts > 0
    weights[present] = counts[0] / counts[present]
    if not present.all():
        logger.warning(
            "classes %s never occur in the training split; their weight is set to 1",
            np.flatnonzero(~present).tolist(),
        )
    return weights


# --------------------------------------------------------------------------------------------
# Streaming tiles to Keras
# --------------------------------------------------------------------------------------------


class GeneratorDataProvider(keras.utils.PyDataset):
    """Batches of tiles of one split for ``keras.Model.fit``, cut by worker threads.

    An epoch is ``len(self)`` batches of ``batch_size`` tiles.  With ``steps_per_epoch=None``
    it is one pass over the split's tiles (the tiles left over after the last whole batch are
    left out of that epoch); otherwise the batches run on through an endless stream of passes,
    so that short epochs still cover every tile in turn.  With ``shuffle`` each pass visits the
    tiles in its own random order, drawn from ``seed`` and the pass number, so an interrupted
    training resumed at epoch ``initial_epoch`` sees the same tiles as an uninterrupted one.
    Keras's own shuffling must stay off (``fit(..., shuffle=False)``): it would reorder the
    batches with Python's unseeded global random generator.

    Parameters
    ----------
    provider : DataProvider
        The split.
    batch_size : int
        Tiles per batch.
    steps_per_epoch : int | None
        Batches per epoch; None: one pass over the tiles.
    shuffle : bool
        Visit the tiles in a seeded random order (training) or in time order (validation).
    seed : int | None
        Seed of the tile order; None draws one.
    initial_epoch : int
        Epoch of the first batch (to resume).
    workers : int
        Threads that cut tiles ahead of the training (1: in the main thread).
    max_queue_size : int
        Batches the workers keep ready.
    """

    def __init__(
        self,
        provider,
        batch_size=1,
        steps_per_epoch=None,
        shuffle=True,
        seed=None,
        initial_epoch=0,
        workers=1,
        max_queue_size=10,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, but got {batch_size!r}")
        if steps_per_epoch is not None and (
            isinstance(steps_per_epoch, bool)
            or not isinstance(steps_per_epoch, int)
            or steps_per_epoch < 1
        ):
            raise ValueError(
                f"steps_per_epoch must be a positive integer or None, but got {steps_per_epoch!r}"
            )
        if steps_per_epoch is None and provider.n_tiles < batch_size:
            raise DataError(
                f"the {provider.split!r} split has {provider.n_tiles} tiles, fewer than one "
                f"batch of network.BATCH_SIZE = {batch_size}"
            )
        self.provider = provider
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.shuffle = shuffle
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
        self.epoch = int(initial_epoch)
        self._n_batches = (
            steps_per_epoch if steps_per_epoch is not None else provider.n_tiles // batch_size
        )

    @classmethod
    def from_config(cls, provider, config, training=True, initial_epoch=0):
        """Stream ``provider`` as the configuration says.

        Training streams ``tile.STEPS_PER_EPOCH`` shuffled batches per epoch; validation
        ``network.VALIDATION_STEPS`` batches in time order.  Both use ``network.BATCH_SIZE``,
        ``data_provider.N_WORKERS`` and ``data_provider.MAX_QUEUE_SIZE``.
        """
        steps = config.tile.STEPS_PER_EPOCH if training else config.network.VALIDATION_STEPS
        dp = config.data_provider
        return cls(
            provider,
            batch_size=config.network.BATCH_SIZE,
            steps_per_epoch=steps,
            shuffle=training,
            seed=config.seed,
            initial_epoch=initial_epoch,
            workers=dp.N_WORKERS,
            max_queue_size=dp.MAX_QUEUE_SIZE,
        )

    def __len__(self):
        return self._n_batches

    def _pass_order(self, number):
        n_tiles = self.provider.n_tiles
        if not self.shuffle:
            return np.arange(n_tiles)
        return np.random.default_rng([self.seed, number]).permutation(n_tiles)

    def tile_indices(self, index, epoch=None):
        """Return the tiles of batch ``index`` of ``epoch`` (default: the current epoch)."""
        if not 0 <= index < self._n_batches:
            raise IndexError(f"batch {index} out of range (an epoch has {self._n_batches})")
        epoch = self.epoch if epoch is None else epoch
        n_tiles = self.provider.n_tiles
        if self.steps_per_epoch is None:
            order = self._pass_order(epoch)
            return order[index * self.batch_size : (index + 1) * self.batch_size]
        start = (epoch * self._n_batches + index) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        indices = np.empty(self.batch_size, dtype=np.int64)
        for number in np.unique(positions // n_tiles):
            in_pass = positions // n_tiles == number
            indices[in_pass] = self._pass_order(int(number))[positions[in_pass] % n_tiles]
        return indices

    def __getitem__(self, index):
        tiles = [self.provider.tile(int(t)) for t in self.tile_indices(index)]
        inputs = np.stack([t[0] for t in tiles])
        targets = np.stack([t[1] for t in tiles])
        return inputs, targets

    def on_epoch_end(self):
        """Move on to the next epoch's tile order (Keras calls this after each epoch)."""
        self.epoch += 1
