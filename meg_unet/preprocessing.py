"""The preprocessing of the U-Net's input channels (thesis section 3.4).

:class:`Preprocessing` turns each inverse solution into an input channel: the quick profile's
noise normalization (one scale per channel, fitted on the training split, so that a sample
keeps its level against the noise), the thesis's per-sample maximum, and the thesis code's
other modes (``"nmf"``, ``"svd"``, ``"pca_whiten"``, ``"mean_subtraction"``,
``"zero_center"``).  What it fits is fitted on the training split only and applied unchanged
to the other splits and to recordings; :meth:`Preprocessing.save` and
:meth:`Preprocessing.load` keep it beside the trained model
(``RESULTS_DIR/<run>/model/preprocessing.npz``).
"""

from __future__ import annotations

import json

import numpy as np

from .schema import parameter_choices
from .errors import DataError
from .io import atomic_path

#: The input preprocessings and the scalings of "normalize", as declared in parameters/.
PREPROCESSING_METHODS = parameter_choices("data_provider.INPUT_PREPROCESSING")
NORMALIZE_OVER = parameter_choices("data_provider.NORMALIZE_OVER")


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
