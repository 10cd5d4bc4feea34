"""Inputs and targets of the U-Net, cut into tiles (thesis section 3.4).

A :class:`DataProvider` loads one data split (``DATA_DIR/<run>/<split>/``, see
:mod:`meg_unet.io`) for the run's hemisphere(s):

- **inputs**: one channel per configured inverse solution (``config.channels`` order), each an
  image of ``n_vertices x n_times`` pixels (rows = the hemisphere's vertices in source-space
  order, lh then rh for ``HEMISPHERE = "both"``; columns = time samples), preprocessed by
  :class:`Preprocessing`; optionally three more channels with the vertices' x, y, z
  coordinates (``COORDINATE_CHANNELS``, thesis 3.4: six channels in all);
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

Fit-based preprocessing (``"nmf"``, ``"svd"``, ``"pca_whiten"``, ``"mean_subtraction"``,
``"normalize"`` over the whole channel, and the bins of more than two classes) is fitted on the
training split only and applied unchanged to the other splits: ``DataProvider(config,
"train")`` fits it, ``DataProvider(config, "valid", preprocessing=train.preprocessing)``
reuses it, and :meth:`Preprocessing.save` / :meth:`Preprocessing.load` keep it beside the
trained model (``RESULTS_DIR/<run>/model/preprocessing.npz``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from .config import parameter_choices
from .errors import UserError
from .io import atomic_path, changed_files, read_json, read_with, split_files

logger = logging.getLogger("meg_unet")

__all__ = [
    "DataError",
    "DataProvider",
    "GeneratorDataProvider",
    "Preprocessing",
    "PREPROCESSING_METHODS",
    "class_weights",
    "network_inputs",
    "one_hot",
]

#: The input preprocessings, the scalings of "normalize" and the class weightings, as
#: declared in parameters/.
PREPROCESSING_METHODS = parameter_choices("data_provider.INPUT_PREPROCESSING")
NORMALIZE_OVER = parameter_choices("data_provider.NORMALIZE_OVER")
CLASS_WEIGHTINGS = parameter_choices("network.CLASS_WEIGHTING")

#: Names of the coordinate channels (``data_provider.COORDINATE_CHANNELS``).
COORDINATE_NAMES = ("x", "y", "z")

_HEMI_INDEX = {"lh": 0, "rh": 1}

# _BLAS_NOTE: the preprocessing runs its BLAS and OpenMP calls on one thread.  On a 2-core
# machine that runs anything else (TensorFlow, a second job), multi-threaded OpenBLAS spins and
# was measured 10-50x slower here (an NMF of 1000 x 162 samples: 5 s on 2 threads, 0.5 s on 1).


class DataError(UserError, ValueError):
    """A data split that is missing, damaged, inconsistent with the config, or not finite."""


#: The way out of a damaged split: the simulation rebuilds a split whose files do not match
#: the checksums of its manifest, without --overwrite.
_RESIMULATE = "rerun simulate_data.py with this configuration to rebuild the split"


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


class Preprocessing:
    """Input preprocessing and target binning, fitted on the training split.

    Each input channel (one inverse method, an ``(n_vertices, n_times)`` array) is transformed
    on its own.  Where a method treats the data as samples and features, the time samples
    (columns) are the samples and the vertices (rows) the features.

    ``"normalize"``
        Scale to [0, 1] (thesis 3.4, its best option).  ``normalize_over="sample"`` divides each
        time column by its maximum absolute value over the vertices (the 2017 code; no
        fitting); ``"channel"`` divides the whole channel by its maximum absolute value over the
        training split.  Non-negative estimates (ORIENTATION = "loose": norms of the three
        orientations) land in [0, 1]; signed fixed-orientation estimates land in [-1, 1] so
        that their sign and their zero keep their meaning.  All-zero columns stay zero.
        ``normalize_over="noise"`` divides the whole channel by one fixed scale, its RMS over
        the training split's samples with no active source: the input is the estimate in
        units of its noise floor, so a sample keeps how far it stands above the noise (a
        per-sample maximum makes a noise-only sample look like an active one).
    ``"mean_subtraction"``
        Subtract each vertex's mean over the training split's time samples (feature-wise
        centering: removes the constant bias map of the estimate).
    ``"zero_center"``
        Subtract, from each time column, its own mean over the vertices (sample-wise
        centering; no fitting).
    ``"nmf"``
        Non-negative matrix factorization (:class:`sklearn.decomposition.NMF`,
        ``n_components`` spatial components fitted on the training split); each time column is
        replaced by its reconstruction ``W H`` from those components, with ``W >= 0`` solved
        for every split with the components fixed.  Needs non-negative estimates
        (ORIENTATION = "loose").  The factorization runs on the channel divided by its
        training maximum (NMF's tolerances assume values near one; MNE's are ~1e-10 A m),
        and the reconstruction is scaled back.
    ``"svd"``
        Truncated SVD: project each time column on the ``n_components`` leading left singular
        vectors of the training split (:class:`sklearn.decomposition.TruncatedSVD` on the
        columns), i.e. the best rank-``n_components`` spatial approximation.
    ``"pca_whiten"``
        PCA whitening (:class:`sklearn.decomposition.PCA`, ``whiten=True``) fitted on the
        training split: the column minus the training mean, expressed in the ``n_components``
        principal directions with unit variance each, then rotated back into vertex space
        (the ZCA form of whitening), so that the input stays an ``n_vertices x n_times``
        image.

    Apart from ``"normalize"`` and ``"pca_whiten"`` the channels keep their units (MNE in
    A m, dSPM and sLORETA unitless).

    Targets: ``|amplitude| > active_threshold`` is active.  With two classes that is class 1;
    with ``n_classes > 2`` the active range ``(active_threshold, max]`` is cut into
    ``n_classes - 1`` equal-width bins, ``max`` being the largest ``|amplitude|`` of the
    training split (larger values in other splits go to the top class).

    Parameters
    ----------
    method : str
        One of :data:`PREPROCESSING_METHODS`.
    normalize_over : "sample" | "channel" | "noise"
        What ``"normalize"`` scales (see above).
    n_components : int
        Components kept by ``"nmf"``, ``"svd"`` and ``"pca_whiten"``.
    n_classes : int
        Target classes (>= 2).
    active_threshold : float
        Amplitude (A m) above which a source is active.
    random_state : int | None
        Seed of the randomized solvers of ``"svd"`` and ``"pca_whiten"`` and of NMF.
    """

    #: Options that need statistics of the training split.
    FITTED_METHODS = ("mean_subtraction", "nmf", "svd", "pca_whiten")

    def __init__(
        self,
        method="normalize",
        normalize_over="sample",
        n_components=32,
        n_classes=2,
        active_threshold=1e-20,
        random_state=None,
    ):
        if method not in PREPROCESSING_METHODS:
            raise ValueError(
                "Invalid value for the 'method' parameter. Allowed values are "
                f"{', '.join(map(repr, PREPROCESSING_METHODS))}, but got {method!r} instead."
            )
        if normalize_over not in NORMALIZE_OVER:
            raise ValueError(
                "Invalid value for the 'normalize_over' parameter. Allowed values are "
                f"{', '.join(map(repr, NORMALIZE_OVER))}, but got {normalize_over!r} instead."
            )
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ValueError(
                f"Invalid value for the 'n_components' parameter. It must be a positive "
                f"integer, but got {n_components!r} instead."
            )
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(
                f"Invalid value for the 'n_classes' parameter. It must be an integer >= 2, "
                f"but got {n_classes!r} instead."
            )
        self.method = method
        self.normalize_over = normalize_over
        self.n_components = n_components
        self.n_classes = n_classes
        self.active_threshold = float(active_threshold)
        self.random_state = random_state
        self.channel_state = {}  # channel name -> dict of fitted arrays
        self.target_max = None
        self.fitted = not self.needs_fit

    @classmethod
    def from_config(cls, config):
        """Return the (unfitted) preprocessing that ``config.data_provider`` selects."""
        dp = config.data_provider
        return cls(
            method=dp.INPUT_PREPROCESSING,
            normalize_over=dp.NORMALIZE_OVER,
            n_components=dp.N_COMPONENTS,
            n_classes=dp.N_CLASSES,
            active_threshold=dp.ACTIVE_THRESHOLD,
            random_state=config.seed,
        )

    @property
    def fits_inputs(self):
        """Whether the input preprocessing uses statistics of the training split."""
        return self.method in self.FITTED_METHODS or (
            self.method == "normalize" and self.normalize_over != "sample"
        )

    @property
    def needs_fit(self):
        """Whether inputs or target bins use statistics of the training split."""
        return self.fits_inputs or self.n_classes > 2

    def settings(self):
        """Return the settings as a JSON-ready dict (what a loaded state must match)."""
        return {
            "method": self.method,
            "normalize_over": self.normalize_over,
            "n_components": self.n_components,
            "n_classes": self.n_classes,
            "active_threshold": self.active_threshold,
            "random_state": self.random_state,
        }

    # ---- fitting ---------------------------------------------------------------------------

    def fit(self, estimates, amplitudes):
        """Fit the statistics on the training split.

        Parameters
        ----------
        estimates : dict of str to ndarray, shape (n_vertices, n_times)
            The raw input channels by name.
        amplitudes : ndarray, shape (n_vertices, n_times)
            The true source amplitudes (A m).

        Returns
        -------
        self : Preprocessing
            Fitted.
        """
        silent = None
        if self.method == "normalize" and self.normalize_over == "noise":
            silent = ~np.any(np.abs(amplitudes) > self.active_threshold, axis=0)
            if not silent.any():
                raise DataError(
                    "NORMALIZE_OVER = 'noise' scales each channel by its RMS over the samples "
                    "with no active source, but every sample of the training split has one "
                    "(use simulation.TIMING = 'recording' or a gap, EMPTY_SIGNAL > 0)"
                )
        self.channel_state = {
            name: self._fit_channel(name, np.asarray(data, dtype=np.float64), silent)
            for name, data in estimates.items()
        }
        if self.n_classes > 2:
            target_max = float(np.max(np.abs(amplitudes))) if np.size(amplitudes) else 0.0
            if not target_max > self.active_threshold:
                raise DataError(
                    f"no amplitude of the training split exceeds ACTIVE_THRESHOLD "
                    f"({self.active_threshold:g}), so it has nothing to bin into "
                    f"{self.n_classes - 1} active classes"
                )
            self.target_max = target_max
        self.fitted = True
        return self

    def _fit_channel(self, name, data, silent=None):
        n_vertices = data.shape[0]
        method = self.method
        if method == "normalize":
            if self.normalize_over == "channel":
                return {"scale": np.array(_safe_max_abs(data))}
            if self.normalize_over == "noise":
                rms = float(np.sqrt(np.mean(data[:, silent] ** 2)))
                return {"scale": np.array(rms if rms > 0 else 1.0)}
            return {}
        if method == "zero_center":
            return {}
        if method == "mean_subtraction":
            return {"mean": data.mean(axis=1)}
        if self.n_components >= n_vertices:
            raise DataError(
                f"data_provider.N_COMPONENTS = {self.n_components} must be smaller than the "
                f"{n_vertices} vertices for {method!r}"
            )
        if method == "nmf":
            from sklearn.decomposition import NMF

            _check_non_negative(name, data)
            scale = _safe_max_abs(data)
            model = NMF(
                n_components=self.n_components,
                init="nndsvda",
                max_iter=400,
                random_state=self.random_state,
            )
            model.fit((data / scale).T)
            return {"scale": np.array(scale), "components": model.components_}
        if method == "svd":
            from sklearn.decomposition import TruncatedSVD

            model = TruncatedSVD(
                n_components=self.n_components, n_iter=10, random_state=self.random_state
            )
            model.fit(data.T)
            return {"components": model.components_}
        # pca_whiten
        from sklearn.decomposition import PCA

        model = PCA(n_components=self.n_components, whiten=True, random_state=self.random_state)
        model.fit(data.T)
        return {
            "mean": model.mean_,
            "components": model.components_,
            "explained_variance": model.explained_variance_,
        }

    # ---- applying ----------------------------------------------------------------------------

    def transform_channel(self, name, data):
        """Preprocess one input channel.

        Parameters
        ----------
        name : str
            The channel's name (the inverse method), whose fitted state is used.
        data : ndarray, shape (n_vertices, n_times)
            The raw estimate.

        Returns
        -------
        out : ndarray of float32, shape (n_vertices, n_times)
            The preprocessed channel.
        """
        if not self.fitted:
            raise RuntimeError(
                f"the {self.method!r} preprocessing is fitted on the training split: call "
                "fit() first, or pass the training split's preprocessing"
            )
        data = np.asarray(data, dtype=np.float64)
        method = self.method
        state = self.channel_state.get(name, {})
        if self.fits_inputs:
            if name not in self.channel_state:
                raise ValueError(
                    f"the preprocessing was fitted on channels {sorted(self.channel_state)}, "
                    f"not on {name!r}"
                )
            n_features = _state_n_vertices(state)
            if n_features is not None and n_features != data.shape[0]:
                raise ValueError(
                    f"the preprocessing of {name!r} was fitted on {n_features} vertices, but "
                    f"the data have {data.shape[0]}"
                )
        if method == "normalize":
            if self.normalize_over == "sample":
                peak = np.max(np.abs(data), axis=0, keepdims=True)
                out = np.divide(data, peak, out=np.zeros_like(data), where=peak > 0)
            else:
                out = data / float(state["scale"])
        elif method == "zero_center":
            out = data - data.mean(axis=0, keepdims=True)
        elif method == "mean_subtraction":
            out = data - state["mean"][:, np.newaxis]
        elif method == "nmf":
            from sklearn.decomposition import non_negative_factorization

            _check_non_negative(name, data)
            scale = float(state["scale"])
            components = state["components"]
            weights, _, _ = non_negative_factorization(
                (data / scale).T,
                H=components,
                n_components=components.shape[0],
                init="custom",
                update_H=False,
                max_iter=400,
                random_state=self.random_state,
            )
            out = (weights @ components).T * scale
        elif method == "svd":
            components = state["components"]
            out = components.T @ (components @ data)
        else:  # pca_whiten
            components = state["components"]
            scores = (components @ (data - state["mean"][:, np.newaxis])) / np.sqrt(
                state["explained_variance"]
            )[:, np.newaxis]
            out = components.T @ scores
        return out.astype(np.float32)

    def transform_targets(self, amplitudes):
        """Bin true amplitudes into class labels.

        Parameters
        ----------
        amplitudes : ndarray, shape (n_vertices, n_times)
            True source amplitudes (A m).

        Returns
        -------
        labels : ndarray of uint8, shape (n_vertices, n_times)
            Class per pixel: 0 silent, 1 .. n_classes - 1 active.
        """
        magnitude = np.abs(np.asarray(amplitudes))
        labels = np.zeros(magnitude.shape, dtype=np.uint8)
        active = magnitude > self.active_threshold
        if self.n_classes == 2:
            labels[active] = 1
            return labels
        if self.target_max is None:
            raise RuntimeError("the class bins are fitted on the training split: call fit() first")
        width = (self.target_max - self.active_threshold) / (self.n_classes - 1)
        bins = np.floor((magnitude[active] - self.active_threshold) / width).astype(np.int64)
        labels[active] = 1 + np.clip(bins, 0, self.n_classes - 2)
        return labels

    # ---- saving ------------------------------------------------------------------------------

    def save(self, fname):
        """Write the settings and fitted state to an ``.npz`` file (atomically)."""
        arrays = {"settings": np.array(json.dumps(self.settings()))}
        if self.target_max is not None:
            arrays["target_max"] = np.array(self.target_max)
        for channel, state in self.channel_state.items():
            for key, value in state.items():
                arrays[f"{channel}/{key}"] = np.asarray(value)
        with atomic_path(fname) as tmp:
            with open(tmp, "wb") as fid:
                np.savez(fid, **arrays)

    @classmethod
    def load(cls, fname):
        """Read a preprocessing written by :meth:`save`."""
        with np.load(fname, allow_pickle=False) as npz:
            settings = json.loads(str(npz["settings"]))
            self = cls(**settings)
            for key in npz.files:
                if key == "target_max":
                    self.target_max = float(npz[key])
                elif "/" in key:
                    channel, name = key.split("/", 1)
                    self.channel_state.setdefault(channel, {})[name] = npz[key]
        self.fitted = True
        return self


def _safe_max_abs(data):
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    return peak if peak > 0 else 1.0


def _check_non_negative(name, data):
    if np.min(data) < 0:
        raise DataError(
            f"the 'nmf' preprocessing needs non-negative inputs, but the {name!r} channel has "
            "negative values (ORIENTATION = 'fixed' gives signed estimates; use 'loose' or "
            "another INPUT_PREPROCESSING)"
        )


def _state_n_vertices(state):
    for key in ("mean", "components"):
        if key in state:
            return np.shape(state[key])[-1]
    return None


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
