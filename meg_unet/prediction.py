"""Run a trained U-Net over a data split or a real recording (thesis sections 3.7-3.8).

:func:`predict_split` is the library entry point of ``predict.py``.  It runs the model of a run
(``RESULTS_DIR/<run>/model/``) over every sample of a data split (by default the run's own test
split, ``DATA_DIR/<run>/test``) and writes, in ``RESULTS_DIR/<model run>/predictions/``::

    metrics.csv                 one row per (time sample with an active true source, method):
                                DLE, SD, OA, the thesis's SD, recall and ghost peaks of MNE,
                                dSPM, sLORETA (the split's saved, unnormalized estimates) and
                                of the U-Net (its class-"active" probability)
    summary.csv, summary.md     Mean, St. Dev., Min, Max and n per metric and method (the
                                layout of the thesis's Table 5; meg_unet.tables.write_tables)
    correlations_*.csv, .md     the metrics' correlations between methods (Tables 6-11)
    <split>-unet-stc.h5         the U-Net's estimate as an mne.SourceEstimate: the probability
                                of "active" per vertex and sample
    <split>-events.tsv          the sources extracted from it (meg_unet.sources): vertex,
                                position, onset, offset, peak time, amplitude (nAm),
                                probability, explained variance
    <split>-sources-stc.h5      their refitted moments (A m) as a sparse mne.SourceEstimate
    <split>-tile-NNNN.png       a few tiles: inputs as RGB (MNE, dSPM, sLORETA) | truth |
                                prediction, one pixel per (vertex, sample)
    prediction.json             what was predicted with what (model, checkpoint, data, border)

A split of another run (the thesis's stability experiments: the network of one run tested on the
data of another) is written to ``predictions-<data run>-<split>/`` instead, and so is any split
of the model's own run other than ``test``, so that nothing is overwritten.  A rerun replaces
the files of its own folder and touches nothing else.

:func:`predict_recording` computes MNE, dSPM and sLORETA of a real recording (raw or evoked) with
the model's settings, preprocesses them as in training and writes the U-Net's estimate of the
whole recording as a ``-stc.h5`` file, in chunks of whole tiles so that long recordings fit in
memory, and beside it the recording's table of events and sparse estimate.

Tiles
-----
The network sees tiles of ``T_STEPS`` consecutive samples of all vertices of the hemisphere, as
in training.  Whole tiles cover the samples from the start; the samples left over at the end
(training dropped them) are predicted by **one more tile aligned to the end** of the data, which
overlaps the last whole tile: every sample gets a prediction computed from real data, never from
padding.  Each sample takes its prediction from exactly one tile, its *owner*: the whole tile it
lies in, or the end-aligned tile for the leftover samples.  Only data shorter than one tile are
padded (with zeros after the preprocessing) to one tile.  Batch normalization runs in inference
mode (``Model.predict_on_batch``).

The border
----------
The U-Net is least reliable at the edges of a tile, so the thesis left its 2 outer pixels on each
side out of the metrics (``network.BORDER``; the ``border`` argument).  A tile's rows are the
hemisphere's vertices in source-space order, so with ``border=2`` the first two and the last two
vertices of the hemisphere (with HEMISPHERE = "both": the first two of lh and the last two of
rh) are never evaluated: no method can have its peak there.  A sample whose true source is one
of them stays in ``metrics.csv``, scored against the kept vertices (an estimate that is zero on
all of them gives NaN).  This is the thesis's behaviour and is kept.  A tile's columns are time
samples, so the ``border`` samples at each edge of the sample's owner tile are left out of
``metrics.csv`` too.  The same vertices and samples are left out for every method, so that all
four are compared on the same pixels.  The source estimates keep every vertex and sample.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import time
from pathlib import Path

import numpy as np

from . import __version__
from .calibration import apply_calibration
from .constants import HEMISPHERE_NAMES, INVERSE_METHOD_NAMES, INVERSE_METHODS, SENSOR_SETS
from .detection import samples_to_source, write_detection_tables
from .errors import UserError
from .io import atomic_path, read_json, split_files, write_json
from .io import read_evoked_recording, read_inverse, read_raw_recording

logger = logging.getLogger("meg_unet")

__all__ = [
    "ESTIMATE_METHODS",
    "METRICS_COLUMNS",
    "MismatchError",
    "TileLayout",
    "active_probability",
    "metrics_table",
    "predict_recording",
    "predict_split",
    "predict_tiles",
    "tile_layout",
]

#: The linear inverse methods compared with the U-Net in metrics.csv, in table order.
ESTIMATE_METHODS = INVERSE_METHODS

#: The U-Net's name in metrics.csv.
UNET = "unet"

#: The columns of metrics.csv, in order (``hemi`` follows when HEMISPHERE = "both").  This
#: schema is read by :mod:`meg_unet.tables`, :mod:`meg_unet.visualization` and
#: ``analyze_results.r``.
METRICS_COLUMNS = (
    "split",
    "sample",
    "n_sources",
    "true_vertices",
    "method",
    "peak_vertices",
    "dle_cm",
    "sd_cm",
    "oa",
    "sd_thesis_sqrtcm",
    "recall",
    "ghosts",
)

_DEFAULT_SPLIT = "test"
# relative difference of sampling rates that still counts as the same rate
_SFREQ_RTOL = 1e-3


class MismatchError(UserError, ValueError):
    """Data or a recording that differ from what a model was trained on; says what differs."""


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Invalid value for the {name!r} parameter. It must be an integer >= {minimum}, "
            f"but got {value!r} instead."
        )
    return int(value)


def _same_rate(sfreq, reference):
    return abs(sfreq - reference) <= _SFREQ_RTOL * reference


# --------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """Where the tiles of ``n_times`` samples start, and which samples each one predicts.

    Build it with :func:`tile_layout`.

    Attributes
    ----------
    n_times : int
        Samples of the data.
    t_steps : int
        Samples per tile.
    starts : ndarray of int, shape (n_tiles,)
        First sample of each tile: ``0, t_steps, 2 * t_steps ...`` for the whole tiles, then
        ``n_times - t_steps`` for the tile aligned to the end when samples are left over.  With
        ``n_times < t_steps``, one tile at 0 that is padded after the data.
    """

    n_times: int
    t_steps: int
    starts: np.ndarray

    @property
    def n_tiles(self):
        """Number of tiles."""
        return len(self.starts)

    @property
    def n_whole(self):
        """Number of whole, non-overlapping tiles from the start."""
        return self.n_times // self.t_steps

    @property
    def padded(self):
        """Whether the data are shorter than one tile (then padded to one)."""
        return self.n_times < self.t_steps

    @property
    def end_aligned(self):
        """Whether a last tile aligned to the end predicts the samples left over."""
        return not self.padded and self.n_times % self.t_steps > 0

    def owned(self, index):
        """Return the slice of samples whose prediction comes from tile ``index``."""
        if not 0 <= index < self.n_tiles:
            raise IndexError(f"tile {index} out of range (there are {self.n_tiles} tiles)")
        if index < self.n_whole:
            start = index * self.t_steps
            return slice(start, start + self.t_steps)
        return slice(self.n_whole * self.t_steps, self.n_times)

    def evaluated(self, border):
        """Return which samples lie outside the ``border`` columns of their owner tile.

        Parameters
        ----------
        border : int
            Columns left out at each edge of a tile.

        Returns
        -------
        mask : ndarray of bool, shape (n_times,)
            True for the samples that the metrics use.
        """
        border = _check_int(border, "border", 0)
        mask = np.zeros(self.n_times, dtype=bool)
        for index in range(self.n_tiles):
            owned = self.owned(index)
            position = np.arange(owned.start, owned.stop) - self.starts[index]
            mask[owned] = (position >= border) & (position < self.t_steps - border)
        return mask

    def describe(self):
        """Return a JSON-ready description (for prediction.json and the log)."""
        if self.padded:
            last = f"one tile padded with zeros after the {self.n_times} samples"
        elif self.end_aligned:
            last = (
                f"the last {self.n_times % self.t_steps} samples predicted by a tile aligned "
                f"to the end (samples {self.n_times - self.t_steps}-{self.n_times - 1})"
            )
        else:
            last = "no samples left over"
        return {
            "n_times": int(self.n_times),
            "t_steps": int(self.t_steps),
            "n_tiles": int(self.n_tiles),
            "n_whole_tiles": int(self.n_whole),
            "remainder": last,
        }


def tile_layout(n_times, t_steps):
    """Lay tiles of ``t_steps`` samples over ``n_times`` samples (see :class:`TileLayout`).

    Parameters
    ----------
    n_times : int
        Samples of the data (>= 1).
    t_steps : int
        Samples per tile (>= 1).

    Returns
    -------
    layout : TileLayout
        Whole tiles from the start, then one tile aligned to the end if samples are left over
        (or one padded tile if the data are shorter than a tile).
    """
    n_times, t_steps = _check_int(n_times, "n_times", 1), _check_int(t_steps, "t_steps", 1)
    n_whole = n_times // t_steps
    starts = list(range(0, n_whole * t_steps, t_steps))
    if n_whole == 0:
        starts = [0]
    elif n_times % t_steps:
        starts.append(n_times - t_steps)
    return TileLayout(n_times, t_steps, np.asarray(starts, dtype=np.int64))


def _window_of(array, start, t_steps):
    """Columns ``start .. start + t_steps`` of ``array`` (axis 1), zero-padded past its end."""
    window = array[:, start : start + t_steps]
    missing = t_steps - window.shape[1]
    if missing:
        pad = [(0, 0)] * window.ndim
        pad[1] = (0, missing)
        window = np.pad(window, pad)
    return window


# --------------------------------------------------------------------------------------------
# Running the network
# --------------------------------------------------------------------------------------------


def active_probability(probabilities):
    """Return the probability of "active" from the network's softmax output.

    Parameters
    ----------
    probabilities : ndarray, shape (..., n_classes)
        Softmax over the classes; class 0 is silent.

    Returns
    -------
    active : ndarray of float32, shape (...)
        ``1 - p(class 0)``: softmax channel 1 with two classes, the sum of all active classes
        with more.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim < 1 or probabilities.shape[-1] < 2:
        raise ValueError(
            "probabilities must have a last axis of at least 2 classes, but got shape "
            f"{probabilities.shape}"
        )
    return (1.0 - probabilities[..., 0]).astype(np.float32)


def predict_tiles(model, inputs, layout, batch_size=1, progress=True):
    """Predict the probability of "active" for every sample of preprocessed inputs.

    Parameters
    ----------
    model : keras.Model
        The trained U-Net (input ``(batch, n_vertices, t_steps, n_channels)``).
    inputs : ndarray, shape (n_vertices, n_times, n_channels)
        Preprocessed inputs (e.g. :attr:`meg_unet.data_provider.DataProvider.inputs`).
    layout : TileLayout
        The tiles (:func:`tile_layout` of ``n_times`` and the model's ``t_steps``).
    batch_size : int
        Tiles per call of the network.
    progress : bool
        Show a progress bar over the tiles.

    Returns
    -------
    active : ndarray of float32, shape (n_vertices, n_times)
        Probability of "active" of each vertex and sample, from the sample's owner tile.
    """
    batch_size = _check_int(batch_size, "batch_size", 1)
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[1] != layout.n_times:
        raise ValueError(
            f"inputs must have shape (n_vertices, {layout.n_times}, n_channels) to match the "
            f"layout, but got {inputs.shape}"
        )
    out = np.empty(inputs.shape[:2], dtype=np.float32)
    _predict_chunks(
        model,
        layout,
        lambda start, stop: inputs[:, start:stop],
        out,
        chunk_tiles=layout.n_tiles,
        batch_size=batch_size,
        desc="predict",
        progress=progress,
    )
    return out


def _predict_chunks(model, layout, inputs_of, out, chunk_tiles, batch_size, desc,
                    progress=True):
    """Predict ``layout``'s tiles chunk by chunk into ``out`` (n_vertices, n_times).

    ``inputs_of(start, stop)`` returns the preprocessed inputs of samples ``start:stop``; it is
    called once per chunk of ``chunk_tiles`` tiles, so that only one chunk is held at a time.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=layout.n_tiles, desc=desc, unit="tile", disable=not progress)
    for first in range(0, layout.n_tiles, chunk_tiles):
        tiles = range(first, min(first + chunk_tiles, layout.n_tiles))
        span_start = int(layout.starts[tiles[0]])
        span_stop = min(int(layout.starts[tiles[-1]]) + layout.t_steps, layout.n_times)
        inputs = np.asarray(inputs_of(span_start, span_stop), dtype=np.float32)
        _check_model_input(model, (inputs.shape[0], layout.t_steps, inputs.shape[2]))
        for batch_first in range(0, len(tiles), batch_size):
            batch = tiles[batch_first : batch_first + batch_size]
            windows = np.stack(
                [
                    _window_of(inputs, int(layout.starts[t]) - span_start, layout.t_steps)
                    for t in batch
                ]
            )
            active = active_probability(model.predict_on_batch(windows))
            for tile, tile_active in zip(batch, active):
                owned = layout.owned(tile)
                offset = int(layout.starts[tile])
                out[:, owned] = tile_active[:, owned.start - offset : owned.stop - offset]
            bar.update(len(batch))
    bar.close()
    return out


def _check_model_input(model, tile_shape):
    """Refuse tiles of (n_vertices, t_steps, n_channels) that the model does not take."""
    expected = tuple(model.input_shape)[1:]
    if len(expected) != 3 or any(e is not None and e != t for e, t in zip(expected, tile_shape)):
        raise ValueError(
            f"the model takes tiles of shape {expected} (vertices, samples, channels), but "
            f"the inputs make tiles of shape {tuple(tile_shape)}"
        )


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def metrics_table(
    estimates,
    amplitudes,
    positions,
    layout,
    vertno,
    *,
    adjacency=None,
    border=2,
    active_threshold=1e-20,
    split=_DEFAULT_SPLIT,
    hemis=None,
    thresholds=None,
):
    """Compute the rows of metrics.csv: one per (sample, method).

    Without ``thresholds`` only the samples with an active true source get rows (the
    thesis's evaluation); with them every sample does, noise-only ones included, and each
    row says what the method detected there (see :mod:`meg_unet.detection`).  The
    localization metrics (DLE, SD, OA, the thesis's SD, recall, ghosts) are NaN on samples
    without a true source.

    Each estimate is cut into the tiles of ``layout``, and
    :func:`meg_unet.metrics.localization_metrics` runs on each tile with ``border`` (see the
    module docstring): the first and last ``border`` rows (vertices) of the hemisphere are
    never evaluated, and each sample is evaluated in its owner tile unless it lies in that
    tile's ``border`` columns.

    Parameters
    ----------
    estimates : dict of str to ndarray, shape (n_vertices, n_times)
        The estimates by method name (e.g. ``"mne"``, ``"dspm"``, ``"sloreta"``, ``"unet"``),
        rows in source-space order; signs are ignored.  Rows of the table come in this order.
    amplitudes : ndarray, shape (n_vertices, n_times)
        The true source amplitudes (A m).
    positions : ndarray, shape (n_vertices, 3)
        Vertex positions in meters (:func:`meg_unet.metrics.hemisphere_positions`).
    layout : TileLayout
        The tiles the U-Net predicted (:func:`tile_layout`).
    vertno : ndarray of int, shape (n_vertices,)
        Vertex number of each row (written to ``true_vertices`` and ``peak_vertices``).
    adjacency : scipy sparse array | None
        Mesh adjacency of the rows (:func:`meg_unet.metrics.mesh_adjacency`); needed for
        samples with several true sources and for ``ghosts``.
    border : int
        Rows and columns left out at each edge of a tile.
    active_threshold : float
        A source is active where ``|amplitude| > active_threshold``.
    split : str
        Written to the ``split`` column.
    hemis : ndarray of str, shape (n_vertices,) | None
        Hemisphere of each row; given (HEMISPHERE = "both"), a ``hemi`` column holds the
        hemisphere of each true vertex, joined by ``";"``.
    thresholds : dict of str to float | None
        Detection threshold per method (every method of ``estimates``), chosen on the
        validation split; adds the columns :data:`meg_unet.detection.DETECTION_COLUMNS`: the
        map's maximum (``score``), the detections, those within 2 cm of a true source, the
        true sources detected, ``strength``, the weakest true source's amplitude as a
        fraction of its activation's peak (:func:`event_strength`; NaN without a source), and
        ``samples_to_source``, the distance to the nearest sample with an active source.
        Needs ``adjacency``.

    Returns
    -------
    table : pandas.DataFrame
        The columns :data:`METRICS_COLUMNS` (+ ``hemi``, + the detection columns), sorted by
        sample, then method in the order of ``estimates``.  Metrics that cannot be computed
        (an estimate that is zero on every kept vertex) are NaN.
    """
    import pandas as pd

    from .detection import DETECTION_COLUMNS
    from .metrics import localization_metrics

    amplitudes = np.asarray(amplitudes)
    n_vertices, n_times = amplitudes.shape
    if not isinstance(estimates, dict) or not estimates:
        raise ValueError("estimates must be a non-empty dict of method name to array")
    for method, estimate in estimates.items():
        if np.shape(estimate) != (n_vertices, n_times):
            raise ValueError(
                f"the {method!r} estimate has shape {np.shape(estimate)}, but the amplitudes "
                f"have shape {(n_vertices, n_times)}"
            )
    if layout.n_times != n_times:
        raise ValueError(
            f"the layout covers {layout.n_times} samples, but the data have {n_times}"
        )
    vertno = np.asarray(vertno)
    if hemis is not None:
        hemis = np.asarray(hemis, dtype=object)
    if vertno.shape != (n_vertices,):
        raise ValueError(f"vertno must have shape ({n_vertices},), but got {vertno.shape}")
    if hemis is not None and np.shape(hemis) != (n_vertices,):
        raise ValueError(f"hemis must have shape ({n_vertices},), but got {np.shape(hemis)}")
    if thresholds is not None:
        missing = [method for method in estimates if method not in thresholds]
        if missing:
            raise ValueError(f"thresholds lacks the method(s) {missing}")
    names = METRICS_COLUMNS + (DETECTION_COLUMNS if thresholds is not None else ())

    active = np.abs(amplitudes) > active_threshold
    strength = event_strength(amplitudes, active) if thresholds is not None else None
    distance = samples_to_source(active.any(axis=0)) if thresholds is not None else None
    evaluated = layout.evaluated(border)
    columns = {name: [] for name in names}
    hemi_column = []
    for tile in range(layout.n_tiles):
        owned = layout.owned(tile)
        start = int(layout.starts[tile])
        samples = np.arange(owned.start, owned.stop)
        samples = samples[evaluated[samples]]
        if thresholds is None:
            samples = samples[active[:, samples].any(axis=0)]
        if not len(samples):
            continue
        window_active = _window_of(active, start, layout.t_steps)
        true_rows = [np.flatnonzero(column) for column in window_active.T]
        # localization_metrics returns the kept columns border .. t_steps - border - 1
        picks = samples - start - border
        true_text = [";".join(str(v) for v in vertno[true_rows[s - start]]) for s in samples]
        if hemis is not None:
            hemi_text = [";".join(hemis[true_rows[s - start]]) for s in samples]
        for method, estimate in estimates.items():
            result = localization_metrics(
                _window_of(np.asarray(estimate), start, layout.t_steps),
                true_rows,
                positions,
                adjacency,
                border=border,
                detection_threshold=None if thresholds is None else thresholds[method],
            )
            silent = result["n_sources"] == 0
            for name in ("oa", "sd_thesis_sqrtcm", "ghosts"):  # localization: active samples
                result[name] = np.where(silent, np.nan, result[name])
            columns["split"].extend([split] * len(samples))
            columns["sample"].extend(samples.tolist())
            columns["n_sources"].extend(result["n_sources"][picks].tolist())
            columns["true_vertices"].extend(true_text)
            columns["method"].extend([method] * len(samples))
            columns["peak_vertices"].extend(
                ";".join(str(v) for v in vertno[result["peak_rows"][p]]) for p in picks
            )
            for name in ("dle_cm", "sd_cm", "oa", "sd_thesis_sqrtcm", "recall", "ghosts"):
                columns[name].extend(np.asarray(result[name], dtype=np.float64)[picks].tolist())
            if thresholds is not None:
                for name in ("score", "detections", "true_detections", "detected_sources"):
                    columns[name].extend(np.asarray(result[name])[picks].tolist())
                columns["samples_to_source"].extend(distance[samples].tolist())
                columns["strength"].extend(
                    float(strength[true_rows[s - start], s].min()) if len(true_rows[s - start])
                    else np.nan for s in samples
                )
            if hemis is not None:
                hemi_column.extend(hemi_text)
    table = pd.DataFrame(columns, columns=list(names))
    if hemis is not None:
        table["hemi"] = hemi_column
    order = {method: index for index, method in enumerate(estimates)}
    table["_order"] = table["method"].map(order)
    table = table.sort_values(["sample", "_order"], kind="stable").drop(columns="_order")
    table = table.reset_index(drop=True)
    return table.astype({"sample": np.int64, "n_sources": np.int64})


def event_strength(amplitudes, active):
    """Each active pixel's ``|amplitude|`` relative to the peak of its source's event.

    An event is a run of consecutive active samples of one vertex (one activation of one
    source); a sample at 0.5 is at half of that activation's peak.  Silent pixels are 0.

    Parameters
    ----------
    amplitudes : ndarray, shape (n_vertices, n_times)
        True amplitudes.
    active : ndarray of bool, same shape
        Where a source is active.

    Returns
    -------
    strength : ndarray of float32, same shape
    """
    magnitude = np.abs(np.asarray(amplitudes, dtype=np.float64))
    strength = np.zeros(magnitude.shape, dtype=np.float32)
    for row in np.flatnonzero(active.any(axis=1)):
        edges = np.diff(np.concatenate([[0], active[row].astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        peaks = np.maximum.reduceat(magnitude[row], starts) if len(starts) else []
        for start, stop, peak in zip(starts, stops, peaks):
            strength[row, start:stop] = magnitude[row, start:stop] / peak
    return strength


# --------------------------------------------------------------------------------------------
# The trained model
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _TrainedModel:
    """A loaded model with what it was trained on."""

    run_dir: Path
    model_dir: Path
    which: str
    model: object
    sidecar: dict
    preprocessing: object
    config: object  # the run's configuration, rebuilt from model.json

    @property
    def run_name(self):
        return self.sidecar["settings"].get("RUN_NAME") or self.run_dir.name

    @property
    def hemispheres(self):
        return _hemispheres(self.config.hemisphere)

    @property
    def sfreq(self):
        return float(self.config.simulation.SFREQ)

    @property
    def methods(self):
        """The inverse methods the model's input channels name, in channel order."""
        return tuple(c for c in self.config.channels if c in INVERSE_METHOD_NAMES)

    def vertices(self, hemi):
        return np.asarray(self.sidecar["vertices"].get(hemi, []), dtype=np.int64)

    def describe(self):
        return f"the model in {self.model_dir} (run {self.run_name!r}, {self.which}.keras)"


def _hemispheres(hemisphere):
    return HEMISPHERE_NAMES if hemisphere == "both" else (hemisphere,)


def _find_model_dir(path):
    """Return (run folder, model folder) for a run folder or its ``model/`` folder."""
    path = Path(path)
    if (path / "model.json").is_file():
        return path.parent, path
    if (path / "model" / "model.json").is_file():
        return path, path / "model"
    raise FileNotFoundError(
        f"no trained model in {path} (expected {path / 'model' / 'model.json'}); train one "
        "with train_network.py, or pass --model RESULTS_DIR/<run>"
    )


def _load_model(model_dir, which, config, run_config=None):
    """Load a model folder, refusing a mismatch with ``config`` when one is given.

    ``run_config`` (default: ``config``) gives the paths and N_JOBS of the rebuilt
    configuration.
    """
    from .network.training import load_trained_model

    if which not in ("best", "last"):
        raise ValueError(
            "Invalid value for the 'which' parameter. Allowed values are 'best', 'last', but "
            f"got {which!r} instead."
        )
    run_dir, model_folder = _find_model_dir(model_dir)
    model, sidecar, preprocessing = load_trained_model(model_folder, which, config=config)
    missing = [k for k in ("settings", "vertices", "channels") if k not in sidecar]
    if missing:
        raise ValueError(
            f"{model_folder / 'model.json'} lacks {', '.join(missing)}; it was not written by "
            "this version of train_network.py"
        )
    model_config = _model_config(sidecar, model_folder, run_config or config)
    logger.info("loaded %s", model_folder / f"{which}.keras")
    return _TrainedModel(
        run_dir, model_folder, which, model, sidecar, preprocessing, model_config
    )


def _model_config(sidecar, model_folder, config):
    """Rebuild the configuration a model was trained with from its model.json.

    The hyperparameters are taken as resolved at training time, so a later change of
    ``parameters/`` does not change what the model is taken to expect.  Paths and N_JOBS come
    from ``config`` when given (they do not change results).
    """
    from parameters import Role

    from .config import PARAMETER_SCHEMA, SETTINGS, validate_settings

    settings = sidecar["settings"]
    values = {
        name: value
        for name, value in settings.items()
        if name in SETTINGS and SETTINGS[name].role is not Role.RUN
    }
    parameters, dropped = {}, []
    for section, names in settings.get("RESOLVED_PARAMETERS", {}).items():
        for name, value in names.items():
            key = f"{section}.{name}"
            if key in PARAMETER_SCHEMA:
                parameters[key] = value
            else:
                dropped.append(key)
    if dropped:
        # a hyperparameter removed from parameters/ since training cannot affect the code now
        logger.debug("%s: ignoring hyperparameters that no longer exist: %s",
                     model_folder / "model.json", ", ".join(dropped))
    values["PARAMETERS"] = parameters
    if config is not None:
        values.update(DATA_DIR=config.data_dir, RESULTS_DIR=config.results_dir,
                      N_JOBS=config.n_jobs)
    return validate_settings(values, source=f"{model_folder / 'model.json'} (its settings)")


# --------------------------------------------------------------------------------------------
# Predicting a data split
# --------------------------------------------------------------------------------------------


def predict_split(config, model_dir=None, data_dir=None, n_images=4, border=None,
                  which="best", progress=True):
    """Predict a data split with a trained model and compute the resolution metrics.

    Parameters
    ----------
    config : meg_unet.config.Config
        The configuration: gives the default model (``RESULTS_DIR/<RUN_NAME>``) and data
        (``DATA_DIR/<RUN_NAME>/test``).  When ``model_dir`` is None, the model must have been
        trained with these settings.
    model_dir : path-like | None
        A trained run, ``RESULTS_DIR/<run>`` (or its ``model/`` folder).  Its own settings
        (from ``model.json``) say what it expects.
    data_dir : path-like | None
        A split folder, ``DATA_DIR/<run>/<split>`` (a run folder means its ``test`` split).
        The split may come from another run (the thesis's stability experiments) if its source
        space (head model, spacing, hemisphere, vertex numbers), its orientation, its sampling
        rate and the input channels the model needs are the ones the model was trained on;
        other sensors (MEG vs MEG+EEG) or SNR are allowed.
    n_images : int
        Tiles drawn as PNG images (evenly spread over the split); 0 draws none.
    border : int | None
        Rows (vertices) and columns (samples) left out at each edge of a tile in the metrics
        (see the module docstring); None takes the model's ``network.BORDER`` (2, thesis).
    which : "best" | "last"
        The checkpoint to use.
    progress : bool
        Show progress bars.

    Returns
    -------
    out_dir : Path
        ``RESULTS_DIR/<model run>/predictions`` for the model run's test split, else
        ``RESULTS_DIR/<model run>/predictions-<data run>-<split>``.

    Raises
    ------
    MismatchError
        If the split differs from what the model was trained on; the message says what.
    meg_unet.data_provider.DataError
        If the split is missing, incomplete or inconsistent.
    FileNotFoundError
        If there is no trained model.
    """
    import mne

    from .data_provider import DataError, DataProvider
    from .tables import read_metrics, write_tables

    n_images = _check_int(n_images, "n_images", 0)
    trained = _load_model(
        config.run_results_dir if model_dir is None else model_dir,
        which,
        config if model_dir is None else None,
        run_config=config,
    )
    model_config = trained.config
    border = _check_int(model_config.network.BORDER if border is None else border, "border", 0)
    t_steps = model_config.tile.T_STEPS
    if 2 * border >= t_steps:
        raise ValueError(f"border={border} leaves nothing of tiles of {t_steps} samples")

    data_dir = _find_split_dir(config.run_data_dir / _DEFAULT_SPLIT if data_dir is None
                               else data_dir)
    manifest = read_json(data_dir / "manifest.json")
    split = manifest.get("split") or data_dir.name
    data_run = manifest.get("run_name") or data_dir.parent.name
    _check_split(trained, data_dir, split, manifest)
    _note_data_differences(trained, data_dir, data_run, manifest)
    # the model's own test split is what visualize_predictions.py and the R script read;
    # anything else gets a folder of its own, so that nothing is overwritten
    own = data_run == trained.run_name and split == _DEFAULT_SPLIT
    out_dir = trained.run_dir / ("predictions" if own else f"predictions-{data_run}-{split}")
    logger.info("predicting %s with %s; writing %s", data_dir, trained.describe(), out_dir)

    # the data provider checks the split against a config: the model's, with the split's
    # sensors (allowed to differ, see above)
    data_config = model_config
    if manifest.get("sensors") in SENSOR_SETS and manifest["sensors"] != model_config.sensors:
        data_config = model_config.replace(SENSORS=manifest["sensors"])
    provider = DataProvider(data_config, split, preprocessing=trained.preprocessing,
                            directory=data_dir)
    if not _same_rate(provider.sfreq, trained.sfreq):
        raise MismatchError(
            f"the split in {data_dir} is sampled at {provider.sfreq:g} Hz, but "
            f"{trained.describe()} was trained at {trained.sfreq:g} Hz"
        )
    layout = tile_layout(provider.n_times, t_steps)
    if layout.end_aligned:
        logger.info("%s", layout.describe()["remainder"])

    started = time.perf_counter()
    active = predict_tiles(
        trained.model,
        provider.inputs,
        layout,
        batch_size=model_config.network.BATCH_SIZE,
        progress=progress,
    )
    detection = trained.sidecar.get("detection", {}).get(which)
    if detection is None:
        from .calibration import calibrate_detection

        logger.info("%s has no calibration yet: calibrating it on its validation split",
                    trained.describe())
        detection = calibrate_detection(config, model_dir=trained.run_dir, which=which,
                                        progress=progress)
    active = apply_calibration(active, detection)
    estimates = _split_estimates(provider, data_dir, split)
    estimates[UNET] = active
    positions, adjacency, hemis = _source_geometry(provider.src, model_config.hemisphere)
    table = metrics_table(
        estimates,
        provider.amplitudes,
        positions,
        layout,
        provider.vertno,
        adjacency=adjacency,
        border=border,
        active_threshold=trained.preprocessing.active_threshold,
        split=split,
        hemis=hemis,
        thresholds=detection["thresholds"],
    )
    if table.empty:
        raise DataError(
            f"the {split!r} split in {data_dir} has no sample with an active true source "
            f"outside the border of {border}: nothing to evaluate"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "metrics.csv"]
    with atomic_path(written[0]) as tmp:
        table.to_csv(tmp, index=False, na_rep="NA")
    # the summary is computed from the file as written, as every later reader sees it
    title = f"U-Net {trained.run_name} on {data_run}/{split}"
    metrics = read_metrics(written[0])
    written += write_tables(metrics, out_dir, title=title)
    kept = np.zeros(provider.targets.shape, dtype=bool)
    kept[border : provider.n_vertices - border] = layout.evaluated(border)[np.newaxis]
    written += write_detection_tables(
        metrics, provider.sfreq, detection, active[kept], provider.targets[kept] > 0, out_dir,
        title=title, guard_ms=model_config.network.DETECTION_GUARD_MS,
    )
    subject = provider.src[0].get("subject_his_id")
    written.append(
        _save_stc(active, provider.vertices, provider.tmin, 1.0 / provider.sfreq,
                  subject, out_dir / f"{split}-unet-stc.h5")
    )
    files = split_files(data_dir, split)
    n_sources = None
    if files["raw"].is_file() and files["inv"].is_file():
        raw = mne.io.read_raw_fif(files["raw"], preload=False, verbose=False)
        sources_files, n_sources = _write_sources(
            active, read_inverse(files["inv"]),
            lambda start, stop: raw.get_data(start=start, stop=stop), raw.ch_names,
            provider.vertices, positions, adjacency, detection["thresholds"][UNET],
            provider.sfreq, provider.tmin, subject, out_dir / split, progress=progress,
        )
        written += sources_files
    else:
        logger.warning("%s has no recording or inverse operator (%s, %s): no sources are "
                       "extracted", data_dir, files["raw"].name, files["inv"].name)
    written += _write_tile_images(
        out_dir, split, layout, estimates, provider.targets > 0, active, n_images
    )
    record = {
        "model": str(trained.model_dir),
        "checkpoint": f"{which}.keras",
        "model_run": trained.run_name,
        "data": str(data_dir),
        "data_run": data_run,
        "split": split,
        "border": int(border),
        "tiles": layout.describe(),
        "n_vertices": int(provider.n_vertices),
        "n_rows": int(len(table)),
        "methods": list(estimates),
        "sources": n_sources,
        "seconds": round(time.perf_counter() - started, 3),
        "meg_unet": __version__,
    }
    written.append(out_dir / "prediction.json")
    write_json(written[-1], record)
    logger.info(
        "wrote %d metric rows (%d samples x %d methods) and %d files to %s",
        len(table), table["sample"].nunique(), len(estimates), len(written), out_dir,
    )
    return out_dir


def _note_data_differences(trained, data_dir, data_run, manifest):
    """Log the differences between the split and the training data that are allowed."""
    if manifest.get("sensors") != trained.config.sensors:
        logger.info(
            "%s was simulated with SENSORS=%r, the model was trained with %r: allowed, the "
            "network sees source estimates only", data_dir, manifest.get("sensors"),
            trained.config.sensors,
        )
    data_snr = _snr_key(manifest.get("snr_target"))  # a number, or (low, high) for a range
    if data_snr is not None and data_snr != _snr_key(trained.config.snr):
        from .config import format_snr

        logger.info(
            "%s was simulated at SNR %s, the model was trained at SNR %s: allowed",
            data_dir, format_snr(data_snr), trained.config.snr_label,
        )
    trained_on = trained.sidecar.get("training_data", {}).get("config_hash")
    if data_run == trained.run_name and trained_on and manifest.get("config_hash") != trained_on:
        logger.warning(
            "%s was simulated with other settings than the model's training data (config "
            "hash %s, training data %s): was it simulated again after training?",
            data_dir, manifest.get("config_hash"), trained_on,
        )


def _snr_key(snr):
    """An SNR setting (a number, or a (low, high) range as tuple or list) in comparable form.

    Returns None for anything else (no SNR recorded, or a hand-edited manifest).
    """
    if isinstance(snr, (tuple, list)) and len(snr) == 2:
        if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in snr):
            return tuple(float(v) for v in snr)
        return None
    if isinstance(snr, numbers.Real) and not isinstance(snr, bool):
        return float(snr)
    return None


def _split_estimates(provider, data_dir, split):
    """The split's raw MNE, dSPM and sLORETA estimates, whatever channels the network uses."""
    from .data_provider import DataError

    files = split_files(data_dir, split)
    estimates = {}
    for method in ESTIMATE_METHODS:
        if method in provider.estimates:
            estimates[method] = provider.estimates[method]
        elif files[method].is_file():
            estimates[method] = _read_hemisphere_rows(files[method], provider.vertices)
        else:
            raise DataError(f"{files[method]} is missing: the metrics compare all of "
                            f"{', '.join(ESTIMATE_METHODS)}")
    return estimates


def _find_split_dir(path):
    """A split folder, or a run folder's test split."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    if (path / _DEFAULT_SPLIT / "manifest.json").is_file():
        return path / _DEFAULT_SPLIT
    raise FileNotFoundError(
        f"no data split in {path} (expected {path / 'manifest.json'}); simulate it with "
        "simulate_data.py, or pass --data DATA_DIR/<run>/<split>"
    )


def _check_split(trained, data_dir, split, manifest):
    """Refuse a split whose source space, orientation or channels differ from the model's."""
    model_config = trained.config
    problems = []
    for key, setting in (("head_model", "HEAD_MODEL"), ("spacing", "SPACING"),
                         ("hemisphere", "HEMISPHERE"), ("orientation", "ORIENTATION")):
        expected = getattr(model_config, key)
        if key in manifest and manifest[key] != expected:
            problems.append(
                f"{setting}: the split has {manifest[key]!r}, the model was trained on "
                f"{expected!r}"
            )
    listed = manifest.get("vertices", {})
    for hemi in trained.hemispheres:
        if hemi not in listed:
            continue
        ours, theirs = trained.vertices(hemi), np.asarray(listed[hemi], dtype=np.int64)
        if not np.array_equal(ours, theirs):
            problems.append(
                f"vertex numbers: the split's {hemi} source space has {len(theirs)} vertices "
                f"({_vertex_summary(theirs)}), the model's {len(ours)} "
                f"({_vertex_summary(ours)})"
            )
    files = split_files(data_dir, split)
    channels = manifest.get("channels", [])
    needed = trained.methods
    missing = [c for c in needed if c not in channels or not files[c].is_file()]
    if missing:
        problems.append(
            f"input channels: the model needs {', '.join(needed)}; the split has "
            f"{', '.join(channels) or 'none'} ({', '.join(missing)} missing)"
        )
    if "sfreq" in manifest and not _same_rate(manifest["sfreq"], trained.sfreq):
        problems.append(
            f"sampling rate: the split is sampled at {manifest['sfreq']:g} Hz, the model "
            f"was trained at {trained.sfreq:g} Hz"
        )
    if problems:
        raise MismatchError(
            f"the split in {data_dir} does not match what {trained.describe()} was trained "
            "on:\n  - " + "\n  - ".join(problems)
        )


def _vertex_summary(vertno):
    vertno = np.asarray(vertno)
    if len(vertno) == 0:
        return "none"
    if len(vertno) <= 6:
        return "numbers " + ", ".join(map(str, vertno))
    head = ", ".join(map(str, vertno[:3]))
    return f"numbers {head}, ..., {vertno[-1]}"


def _read_hemisphere_rows(path, vertices):
    """Read a ``-stc.h5`` file and return the rows of ``vertices`` ([lh, rh]) as float32."""
    import mne

    from .data_provider import DataError

    stc = mne.read_source_estimate(path)
    rows, offset = [], 0
    for index, vertno in enumerate(stc.vertices):
        wanted = np.asarray(vertices[index])
        if len(wanted):
            if not np.array_equal(vertno, wanted):
                raise DataError(
                    f"{path}: its {HEMISPHERE_NAMES[index]} vertices are not those of the split's "
                    "source space"
                )
            rows.append(stc.data[offset : offset + len(vertno)])
        offset += len(vertno)
    return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


def _source_geometry(src, hemisphere):
    """Positions (m), mesh adjacency and (for "both") the hemisphere of each row."""
    from scipy import sparse

    from .metrics import hemisphere_positions, mesh_adjacency

    hemis = _hemispheres(hemisphere)
    positions = np.concatenate([hemisphere_positions(src, h) for h in hemis])
    blocks = [mesh_adjacency(src[HEMISPHERE_NAMES.index(h)]) for h in hemis]
    adjacency = blocks[0] if len(blocks) == 1 else sparse.block_diag(blocks, format="csr")
    labels = None
    if hemisphere == "both":
        labels = np.concatenate(
            [np.full(len(src[HEMISPHERE_NAMES.index(h)]["vertno"]), h, dtype=object) for h in hemis]
        )
    return positions, adjacency, labels


def _save_stc(data, vertices, tmin, tstep, subject, path):
    """Write an estimate as ``-stc.h5`` atomically (float32)."""
    import mne

    stc = mne.SourceEstimate(
        np.asarray(data, dtype=np.float32), vertices=[np.asarray(v, dtype=np.int64) for v in vertices], tmin=tmin,
        tstep=tstep, subject=subject,
    )
    with atomic_path(path) as tmp:
        stc.save(tmp, ftype="h5", overwrite=True, verbose=False)
    logger.info("wrote %s", path)
    return path


def _write_sources(active, inv, data_of, ch_names, vertices, positions, adjacency, threshold,
                   sfreq, tmin, subject, stem, nave=1, progress=True):
    """Extract the sources of a calibrated probability map; write their events and estimate.

    ``data_of(start, stop)`` returns the recording's sensor data (rows ``ch_names``) of those
    samples; ``positions`` and ``adjacency`` are those of the map's rows.
    Writes ``<stem>-events.tsv`` and ``<stem>-sources-stc.h5`` (:mod:`meg_unet.sources`) and
    returns their paths and the number of sources.  ``nave``: trials averaged in the data.
    """
    from .sources import events_table, extract_sources, inverse_gain, sparse_estimate
    from .sources import write_events

    gain = inverse_gain(inv, vertices, n_orient=1, nave=nave)
    sources = extract_sources(
        active, lambda start, stop: gain.whiten(data_of(start, stop), ch_names), gain.gain,
        adjacency, threshold, n_orient=1, progress=progress,
    )
    table = events_table(sources, vertices, positions, sfreq, tmin)
    stem = Path(stem)
    events_fname = write_events(table, stem.with_name(f"{stem.name}-events.tsv"))
    stc = sparse_estimate(sources, vertices, active.shape[1], tmin, 1.0 / sfreq, subject)
    stc_fname = stem.with_name(f"{stem.name}-sources-stc.h5")
    with atomic_path(stc_fname) as tmp:
        stc.save(tmp, ftype="h5", overwrite=True, verbose=False)
    logger.info("%d sources (refitted peaks of the probability above %.3g): wrote %s and %s",
                len(table), threshold, events_fname, stc_fname)
    return [events_fname, stc_fname], len(table)


def _write_tile_images(out_dir, split, layout, estimates, labels, active, n_images):
    """Draw ``n_images`` tiles as PNG: inputs as RGB | truth | prediction."""
    import matplotlib.image

    from .network.training import example_image

    for old in out_dir.glob(f"{split}-tile-*.png"):
        old.unlink()  # a rerun with fewer images leaves none of the earlier ones
    if n_images == 0:
        return []
    candidates = layout.n_whole if layout.n_whole else layout.n_tiles
    chosen = np.unique(np.linspace(0, candidates - 1, min(n_images, candidates)).round())
    written = []
    for tile in chosen.astype(int):
        start = int(layout.starts[tile])
        # the thesis's RGB order: MNE, dSPM, sLORETA, each scaled to its peak in the tile
        rgb = np.stack(
            [_window_of(np.abs(estimates[m]), start, layout.t_steps) for m in ESTIMATE_METHODS],
            axis=-1,
        )
        probability = _window_of(active, start, layout.t_steps)
        image = example_image(
            rgb,
            _window_of(labels, start, layout.t_steps).astype(int),
            np.stack([1.0 - probability, probability], axis=-1),
            n_classes=2,
        )
        path = out_dir / f"{split}-tile-{tile:04d}.png"
        with atomic_path(path) as tmp:
            matplotlib.image.imsave(tmp, image)
        written.append(path)
    logger.info("drew %d tile images (inputs as RGB | truth | prediction) in %s",
                len(written), out_dir)
    return written


# --------------------------------------------------------------------------------------------
# Predicting a real recording
# --------------------------------------------------------------------------------------------


def predict_recording(model_dir, inverse_fname, raw_fname=None, evoked_fname=None,
                      out_fname=None, config=None, *, which="best", chunk_tiles=20,
                      overwrite=False, progress=True):
    """Estimate the active sources of a real recording with a trained U-Net.

    MNE, dSPM and sLORETA (those the model's input channels name) are computed with the
    model's lambda2 and ``pick_ori=None`` as for the training data, for the model's
    hemisphere; they are preprocessed with the model folder's saved preprocessing and run
    through the network.  The raw file is read chunk by chunk (not preloaded): the inverse
    solutions of ``chunk_tiles`` tiles at a time, predicted into one preallocated float32
    array.  For a 10-minute raw at 600 Hz that array takes 0.9 GB on 642 vertices (ico3); a
    chunk of 20 such tiles a few hundred MB more.  Tiles are laid as for a data split (see
    the module docstring).  The BLAS threads of the inverse solutions are limited to N_JOBS
    (1 unless ``config`` says otherwise).

    Parameters
    ----------
    model_dir : path-like
        A trained run, ``RESULTS_DIR/<run>`` (or its ``model/`` folder).
    inverse_fname : path-like
        An inverse operator (``-inv.fif``) of the recording's subject on the model's source
        space.
    raw_fname, evoked_fname : path-like | None
        The recording: a raw file (any format ``mne.io.read_raw`` reads) or an evoked file
        (``-ave.fif``, its first condition); exactly one of them.
    out_fname : path-like | None
        The ``-stc.h5`` file to write; None writes
        ``RESULTS_DIR/<run>/predictions/<recording name>-unet-stc.h5``.
    config : meg_unet.config.Config | None
        If given, the model must have been trained with its settings.
    which : "best" | "last"
        The checkpoint to use.
    chunk_tiles : int
        Tiles whose inverse solutions are computed and predicted at a time.
    overwrite : bool
        Replace an existing ``out_fname`` (the default file in the predictions folder is
        predict.py's own and always replaced).
    progress : bool
        Show a progress bar over the tiles.

    Returns
    -------
    out_fname : Path
        The written source estimate: the probability of "active" per vertex of the model's
        hemisphere and sample of the recording, with the recording's tmin and sampling
        interval and the inverse operator's subject (``mne.read_source_estimate`` reads it,
        ``stc.plot`` draws it).  With a calibrated model, the sources extracted from it
        (:mod:`meg_unet.sources`) are written beside it: ``<stem>-events.tsv``, the table of
        events, and ``<stem>-sources-stc.h5``, their refitted moments (A m) as a sparse
        estimate, where ``<stem>`` is ``out_fname`` without ``-unet-stc.h5``.

    Raises
    ------
    MismatchError
        If the inverse operator's source space (vertex numbers) or orientation, its sensor
        types (MEG vs MEG+EEG) or the recording's sampling rate differ from what the model
        was trained on; the message says what differs and what to do.
    meg_unet.errors.FileError
        If the recording or the inverse operator cannot be read (a format that the reader of
        its extension does not take, a truncated or damaged file).
    """
    from threadpoolctl import threadpool_limits

    if (raw_fname is None) == (evoked_fname is None):
        raise ValueError("give exactly one of raw_fname and evoked_fname")
    for name, value in (("inverse_fname", inverse_fname), ("raw_fname", raw_fname),
                        ("evoked_fname", evoked_fname)):
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"{name}: {value} does not exist")
    chunk_tiles = _check_int(chunk_tiles, "chunk_tiles", 1)
    recording_fname = Path(raw_fname if raw_fname is not None else evoked_fname)
    if out_fname is not None:
        out_fname = Path(out_fname)
        if not out_fname.name.endswith("-stc.h5"):
            raise ValueError(f"out_fname must end with -stc.h5, but got {out_fname.name!r}")
        if out_fname.exists() and not overwrite:
            raise FileExistsError(f"{out_fname} exists; pass overwrite=True (--overwrite) to "
                                  "replace it")

    # the user's files first: an unreadable or truncated one is refused before the model loads
    inv = read_inverse(inverse_fname)
    if raw_fname is not None:
        recording = read_raw_recording(raw_fname)
        kind = "raw"
    else:
        recording = read_evoked_recording(evoked_fname)
        kind = "evoked"
    trained = _load_model(model_dir, which, config)
    _check_recording(trained, inv, recording, kind, recording_fname, inverse_fname)

    if out_fname is None:
        stem = _recording_stem(recording_fname)
        out_fname = trained.run_dir / "predictions" / f"{stem}-unet-stc.h5"
    model_config = trained.config
    hemis = trained.hemispheres
    src = inv["src"]
    vertices = [np.asarray(src[i]["vertno"]) if h in hemis else np.array([], dtype=np.int64)
                for i, h in enumerate(HEMISPHERE_NAMES)]
    positions = _mri_positions(inv, hemis)
    n_vertices = sum(len(v) for v in vertices)
    layout = tile_layout(len(recording.times), model_config.tile.T_STEPS)
    logger.info(
        "predicting %s (%d samples, %d tiles of %d; %s) with %s; computing %s with "
        "lambda2=%g, %d tiles at a time",
        recording_fname, layout.n_times, layout.n_tiles, layout.t_steps,
        layout.describe()["remainder"], trained.describe(), ", ".join(trained.methods),
        model_config.lambda2, chunk_tiles,
    )
    # on 2 cores shared with the network, one BLAS thread was measured 1.6x faster than two
    blas_threads = None if model_config.n_jobs == -1 else model_config.n_jobs
    with threadpool_limits(limits=blas_threads):
        estimator = _InverseEstimates(inv, recording, kind, trained.methods,
                                      model_config.lambda2, hemis)

    def inputs_of(start, stop):
        with threadpool_limits(limits=blas_threads):
            estimates = {m: estimator(m, start, stop) for m in trained.methods}
        return _preprocess_inputs(model_config, trained.preprocessing, estimates, positions)

    active = np.empty((n_vertices, layout.n_times), dtype=np.float32)
    _predict_chunks(
        trained.model,
        layout,
        inputs_of,
        active,
        chunk_tiles=chunk_tiles,
        batch_size=model_config.network.BATCH_SIZE,
        desc=f"predict {recording_fname.name}",
        progress=progress,
    )
    detection = trained.sidecar.get("detection", {}).get(which)
    if detection is None:
        logger.warning("%s has no calibration (train_network.py writes it): the estimate is "
                       "the network's uncalibrated probability", trained.describe())
    active = apply_calibration(active, detection)
    subject = src[0].get("subject_his_id")
    tmin, sfreq = float(recording.times[0]), recording.info["sfreq"]
    _save_stc(active, vertices, tmin, 1.0 / sfreq, subject, out_fname)
    if detection is not None:
        _, adjacency, _ = _source_geometry(src, model_config.hemisphere)
        if kind == "raw":
            def data_of(start, stop):
                return recording.get_data(start=start, stop=stop)
        else:
            def data_of(start, stop):
                return recording.data[:, start:stop]
        name = out_fname.name
        stem = out_fname.with_name(name[: -len("-unet-stc.h5" if name.endswith(
            "-unet-stc.h5") else "-stc.h5")])
        _write_sources(
            active, inv, data_of, recording.ch_names, vertices, positions, adjacency,
            detection["thresholds"][UNET], sfreq, tmin, subject, stem,
            nave=getattr(recording, "nave", 1), progress=progress,
        )
    return out_fname


def _recording_stem(path):
    name = Path(path).name
    for suffix in (".fif.gz", ".fif"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _inverse_sensors(inv):
    """``"meg"``, ``"meg+eeg"`` or another description of the inverse's channel types."""
    import mne

    info = inv["info"]
    types = {
        mne.channel_type(info, info["ch_names"].index(name))
        for name in inv["eigen_fields"]["col_names"]
    }
    has_meg = bool(types & {"mag", "grad"})
    has_eeg = "eeg" in types
    if has_meg and has_eeg:
        return "meg+eeg"
    if has_meg:
        return "meg"
    return "+".join(sorted(types))


def _sensor_text(sensors):
    return {"meg": "MEG", "meg+eeg": "MEG+EEG"}.get(sensors, sensors.upper())


def _check_recording(trained, inv, recording, kind, recording_fname, inverse_fname):
    """Refuse a recording or inverse that differ from what the model was trained on."""
    from mne.io.constants import FIFF

    problems = []
    src = inv["src"]
    for hemi in trained.hemispheres:
        ours = trained.vertices(hemi)
        theirs = np.asarray(src[HEMISPHERE_NAMES.index(hemi)]["vertno"])
        if not np.array_equal(ours, theirs):
            problems.append(
                f"source space: the inverse operator's {hemi} hemisphere has {len(theirs)} "
                f"vertices ({_vertex_summary(theirs)}, subject "
                f"{src[0].get('subject_his_id')!r}), the model was trained on {len(ours)} "
                f"({_vertex_summary(ours)}: {trained.config.head_model} "
                f"{trained.config.spacing}); compute the inverse on that source space"
            )
    sensors = _inverse_sensors(inv)
    if sensors != trained.config.sensors:
        problems.append(
            f"sensors: the model was trained on {_sensor_text(trained.config.sensors)} data, "
            f"the inverse operator uses {_sensor_text(sensors)} channels; use an inverse "
            f"operator made from {_sensor_text(trained.config.sensors)} channels"
        )
    free = inv["source_ori"] == FIFF.FIFFV_MNE_FREE_ORI
    if free != (trained.config.orientation == "loose"):
        problems.append(
            f"orientation: the model was trained on {trained.config.orientation}-orientation "
            f"inverse solutions, the inverse operator has {'free or loose' if free else 'fixed'}"
            " orientations; make it with "
            + (f"loose={trained.config.simulation.LOOSE:g}"
               if trained.config.orientation == "loose" else "fixed=True")
        )
    sfreq = float(recording.info["sfreq"])
    if not _same_rate(sfreq, trained.sfreq):
        problems.append(
            f"sampling rate: the model was trained at {trained.sfreq:.1f} Hz, the recording is "
            f"sampled at {sfreq:g} Hz; resample it with {kind}.resample({trained.sfreq:.3f})"
        )
    if problems:
        raise MismatchError(
            f"{recording_fname} with {inverse_fname} does not match what "
            f"{trained.describe()} was trained on:\n  - " + "\n  - ".join(problems)
        )


def _mri_positions(inv, hemis):
    """Vertex positions of the hemispheres in MRI coordinates, as in the training splits."""
    import mne
    from mne.io.constants import FIFF

    from .metrics import hemisphere_positions

    src = inv["src"]
    positions = np.concatenate([hemisphere_positions(src, h) for h in hemis])
    if src[0]["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        trans = inv["mri_head_t"]
        if trans["from"] == FIFF.FIFFV_COORD_MRI:
            trans = mne.transforms.invert_transform(trans)
        positions = mne.transforms.apply_trans(trans, positions)
    return positions


class _InverseEstimates:
    """Inverse solutions of a recording's samples ``start:stop`` for the model's hemisphere.

    With ``pick_ori=None``, dSPM and sLORETA are the MNE solution times a noise normalization
    per source (MNE-Python applies the same kernel, then scales), so the MNE kernel is applied
    once per chunk and scaled for each method: a third of the work of three applications.
    """

    def __init__(self, inv, recording, kind, methods, lambda2, hemis):
        import mne

        self.kind = kind
        self.recording = recording
        self.lambda2 = lambda2
        nave = 1 if kind == "raw" else recording.nave
        # prepared once per method, not once per chunk
        self.operators = {
            m: mne.minimum_norm.prepare_inverse_operator(
                inv, nave, lambda2, INVERSE_METHOD_NAMES[m], verbose=False
            )
            for m in {"mne", *methods}
        }
        self.label = None
        if len(hemis) == 1:  # compute one hemisphere only
            index = HEMISPHERE_NAMES.index(hemis[0])
            self.label = mne.Label(vertices=inv["src"][index]["vertno"], hemi=hemis[0])
        self.scales = self._noise_normalizations(methods)
        self._base, self._base_span = None, None
        self._evoked = {}

    def _noise_normalizations(self, methods):
        """Each method's noise normalization per source (None for MNE), or None if MNE-Python's
        kernel assembly (a private function) cannot be used: then each method is applied."""
        try:
            from mne.minimum_norm.inverse import _assemble_kernel

            scales = {}
            for method in methods:
                _, noise_norm, _, _ = _assemble_kernel(
                    self.operators[method], self.label, INVERSE_METHOD_NAMES[method], None,
                    verbose=False)
                scales[method] = None if noise_norm is None else np.ravel(noise_norm)
            return scales
        except Exception as exc:  # a future MNE-Python: fall back to its public functions
            logger.debug("applying each inverse method on its own: %s", exc)
            return None

    def _apply(self, method, start, stop):
        import mne

        kwargs = dict(label=self.label, pick_ori=None, prepared=True, verbose=False)
        if self.kind == "raw":
            return mne.minimum_norm.apply_inverse_raw(
                self.recording, self.operators[method], self.lambda2, INVERSE_METHOD_NAMES[method],
                start=start, stop=stop, **kwargs,
            ).data
        return mne.minimum_norm.apply_inverse(
            self.recording, self.operators[method], self.lambda2, INVERSE_METHOD_NAMES[method],
            **kwargs,
        ).data

    def __call__(self, method, start, stop):
        if self.kind == "raw":
            return self._solution(method, start, stop).astype(np.float32)
        if method not in self._evoked:  # evoked data are short: solved once, then sliced
            self._evoked[method] = self._solution(method, None, None).astype(np.float32)
        return self._evoked[method][:, start:stop]

    def _solution(self, method, start, stop):
        if self.scales is None:
            return self._apply(method, start, stop)
        if self._base_span != (start, stop):  # the MNE solution of these samples, once
            self._base, self._base_span = self._apply("mne", start, stop), (start, stop)
        scale = self.scales[method]
        return self._base if scale is None else self._base * scale[:, np.newaxis]


def _preprocess_inputs(config, preprocessing, estimates, positions):
    """The network's inputs from raw estimates, as :class:`DataProvider` makes them."""
    from threadpoolctl import threadpool_limits

    from .data_provider import _coordinate_channels

    # one BLAS thread, as in the data provider (it was measured much faster on 2 cores)
    with threadpool_limits(limits=1):
        channels = [
            preprocessing.transform_channel(c, np.asarray(estimates[c], dtype=np.float32))
            for c in config.channels
        ]
    if config.data_provider.COORDINATE_CHANNELS:
        channels.extend(_coordinate_channels(positions, channels[0].shape[1]))
    return np.ascontiguousarray(np.stack(channels, axis=-1), dtype=np.float32)
