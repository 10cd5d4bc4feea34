"""Run a trained U-Net over a data split and score it (thesis sections 3.7-3.8).

:func:`predict_split` is the library entry point of ``predict.py``.  It runs the model of a run
(``RESULTS_DIR/<run>/model/``) over every sample of a data split (by default the run's own test
split, ``DATA_DIR/<run>/test``) and writes, in ``RESULTS_DIR/<model run>/predictions/``::

    metrics.csv                 one row per (time sample, method), from
                                meg_unet.scoring.metrics_table: DLE, SD, OA, the thesis's
                                SD, recall, ghost peaks and detections of MNE, dSPM, sLORETA
                                (the split's saved, unnormalized estimates) and of the U-Net
                                (its calibrated probability of "active")
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

The tiles and the border pixels they leave out are described in :mod:`meg_unet.tiles`; a real
recording is predicted by :mod:`meg_unet.recording`.
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
from .detection import write_detection_tables
from .errors import DataError, UserError, check_int
from .io import atomic_path, read_inverse, read_json, split_files, write_json
from .scoring import metrics_table, window_snr
from .tiles import predict_tiles, tile_layout, tile_window

logger = logging.getLogger("meg_unet")

__all__ = [
    "ESTIMATE_METHODS",
    "MismatchError",
    "predict_split",
]

#: The linear inverse methods compared with the U-Net in metrics.csv, in table order.
ESTIMATE_METHODS = INVERSE_METHODS

#: The U-Net's name in metrics.csv.
UNET = "unet"

_DEFAULT_SPLIT = "test"
# relative difference of sampling rates that still counts as the same rate
_SFREQ_RTOL = 1e-3


class MismatchError(UserError, ValueError):
    """Data or a recording that differ from what a model was trained on; says what differs."""


def _same_rate(sfreq, reference):
    return abs(sfreq - reference) <= _SFREQ_RTOL * reference


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

    from .config import SETTINGS, validate_settings
    from .schema import PARAMETER_SCHEMA

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
    meg_unet.errors.DataError
        If the split is missing, incomplete or inconsistent.
    FileNotFoundError
        If there is no trained model.
    """
    n_images = check_int(n_images, "n_images", 0)
    own_model = model_dir is None
    trained = _load_model(config.run_results_dir if own_model else model_dir, which,
                          config if own_model else None, run_config=config)
    model_config = trained.config
    border = check_int(model_config.network.BORDER if border is None else border, "border", 0)
    t_steps = model_config.tile.T_STEPS
    if 2 * border >= t_steps:
        raise ValueError(f"border={border} leaves nothing of tiles of {t_steps} samples")

    data_dir = _find_split_dir(config.run_data_dir / _DEFAULT_SPLIT if data_dir is None
                               else data_dir)
    provider, split, data_run = _open_split(trained, data_dir)
    # the model's own test split is what visualize_predictions.py and the R script read;
    # anything else gets a folder of its own, so that nothing is overwritten
    own = data_run == trained.run_name and split == _DEFAULT_SPLIT
    out_dir = trained.run_dir / ("predictions" if own else f"predictions-{data_run}-{split}")
    logger.info("predicting %s with %s; writing %s", data_dir, trained.describe(), out_dir)
    layout = tile_layout(provider.n_times, t_steps)
    if layout.end_aligned:
        logger.info("%s", layout.describe()["remainder"])

    started = time.perf_counter()
    active = predict_tiles(trained.model, provider.inputs, layout,
                           batch_size=model_config.network.BATCH_SIZE, progress=progress)
    detection = _detection(config, trained, which, progress)
    active = apply_calibration(active, detection)
    estimates = _split_estimates(provider, data_dir, split)
    estimates[UNET] = active
    positions, adjacency, hemis = _source_geometry(provider.src, model_config.hemisphere)
    table = metrics_table(
        estimates, provider.amplitudes, positions, layout, provider.vertno,
        adjacency=adjacency, border=border, split=split, hemis=hemis,
        active_threshold=trained.preprocessing.active_threshold,
        thresholds=detection["thresholds"],
        window_snr=_window_snr(provider),
    )
    if table.empty:
        raise DataError(
            f"the {split!r} split in {data_dir} has no sample with an active true source "
            f"outside the border of {border}: nothing to evaluate"
        )

    kept = np.zeros(provider.targets.shape, dtype=bool)
    kept[border : provider.n_vertices - border] = layout.evaluated(border)[np.newaxis]
    written = _write_tables(
        table, out_dir, f"U-Net {trained.run_name} on {data_run}/{split}", detection,
        provider.sfreq, active[kept], provider.targets[kept] > 0,
        model_config.network.DETECTION_GUARD_MS,
    )
    subject = provider.src[0].get("subject_his_id")
    written.append(
        _save_stc(active, provider.vertices, provider.tmin, 1.0 / provider.sfreq,
                  subject, out_dir / f"{split}-unet-stc.h5")
    )
    sources_files, n_sources = _split_sources(
        provider, data_dir, split, active, positions, adjacency,
        detection["thresholds"][UNET], out_dir, progress,
    )
    written += sources_files
    written += _write_tile_images(
        out_dir, split, layout, estimates, provider.targets > 0, active, n_images
    )
    written.append(out_dir / "prediction.json")
    write_json(written[-1], dict(
        model=str(trained.model_dir), checkpoint=f"{which}.keras", model_run=trained.run_name,
        data=str(data_dir), data_run=data_run, split=split, border=int(border),
        tiles=layout.describe(), n_vertices=int(provider.n_vertices), n_rows=int(len(table)),
        methods=list(estimates), sources=n_sources,
        seconds=round(time.perf_counter() - started, 3), meg_unet=__version__,
    ))
    logger.info(
        "wrote %d metric rows (%d samples x %d methods) and %d files to %s",
        len(table), table["sample"].nunique(), len(estimates), len(written), out_dir,
    )
    return out_dir


def _detection(config, trained, which, progress):
    """The model's calibration and thresholds, calibrated on its validation split if need be."""
    detection = trained.sidecar.get("detection", {}).get(which)
    if detection is None:
        from .calibration import calibrate_detection

        logger.info("%s has no calibration yet: calibrating it on its validation split",
                    trained.describe())
        detection = calibrate_detection(config, model_dir=trained.run_dir, which=which,
                                        progress=progress)
    return detection


def _window_snr(provider):
    """The target SNR of each sample's activation window, from the split's manifest (None
    where the manifest does not list the windows)."""
    activations = provider.manifest.get("activations", {})
    if not all(key in activations for key in ("onsets", "durations", "snr_target")):
        return None
    return window_snr(activations, provider.n_times)


def _write_tables(table, out_dir, title, detection, sfreq, unet_pixels, true_pixels,
                  guard_ms):
    """Write metrics.csv, its summary tables and the detection tables; return their paths."""
    from .tables import read_metrics, write_tables

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "metrics.csv"]
    with atomic_path(written[0]) as tmp:
        table.to_csv(tmp, index=False, na_rep="NA")
    # the summary is computed from the file as written, as every later reader sees it
    metrics = read_metrics(written[0])
    written += write_tables(metrics, out_dir, title=title)
    written += write_detection_tables(
        metrics, sfreq, detection, unet_pixels, true_pixels, out_dir, title=title,
        guard_ms=guard_ms,
    )
    return written


def _open_split(trained, data_dir):
    """Check a split folder against a model and read it; return (provider, split, data run)."""
    from .data_provider import DataProvider

    manifest = read_json(data_dir / "manifest.json")
    split = manifest.get("split") or data_dir.name
    data_run = manifest.get("run_name") or data_dir.parent.name
    _check_split(trained, data_dir, split, manifest)
    _note_data_differences(trained, data_dir, data_run, manifest)
    # the data provider checks the split against a config: the model's, with the split's
    # sensors (allowed to differ, see _note_data_differences)
    data_config = trained.config
    if manifest.get("sensors") in SENSOR_SETS and manifest["sensors"] != data_config.sensors:
        data_config = data_config.replace(SENSORS=manifest["sensors"])
    provider = DataProvider(data_config, split, preprocessing=trained.preprocessing,
                            directory=data_dir)
    if not _same_rate(provider.sfreq, trained.sfreq):
        raise MismatchError(
            f"the split in {data_dir} is sampled at {provider.sfreq:g} Hz, but "
            f"{trained.describe()} was trained at {trained.sfreq:g} Hz"
        )
    return provider, split, data_run


def _split_sources(provider, data_dir, split, active, positions, adjacency, threshold, out_dir,
                   progress):
    """Extract the sources of a split's U-Net map; return (files written, number of sources).

    The refit needs the split's recording and inverse operator; without them nothing is
    extracted (None sources).
    """
    import mne

    files = split_files(data_dir, split)
    if not (files["raw"].is_file() and files["inv"].is_file()):
        logger.warning("%s has no recording or inverse operator (%s, %s): no sources are "
                       "extracted", data_dir, files["raw"].name, files["inv"].name)
        return [], None
    raw = mne.io.read_raw_fif(files["raw"], preload=False, verbose=False)
    return _write_sources(
        active, read_inverse(files["inv"]),
        lambda start, stop: raw.get_data(start=start, stop=stop), raw.ch_names,
        provider.vertices, positions, adjacency, threshold, provider.sfreq, provider.tmin,
        provider.src[0].get("subject_his_id"), out_dir / split, progress=progress,
    )


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
    # a mistyped split name is the usual cause: say which splits lie beside it
    run_dir = path if path.is_dir() else path.parent
    found = sorted(p.parent.name for p in run_dir.glob("*/manifest.json"))
    beside = f"; the splits in {run_dir}: {', '.join(found)}" if found else ""
    raise FileNotFoundError(
        f"no data split in {path} (expected {path / 'manifest.json'}); simulate it with "
        f"simulate_data.py, or pass --data DATA_DIR/<run>/<split>{beside}"
    )


def _check_split(trained, data_dir, split, manifest):
    """Refuse a split whose source space, orientation or channels differ from the model's.

    The settings compared are those of the role Geometry but SENSORS: the network sees source
    estimates only, so MEG and MEG+EEG data of the same source space go through one model.
    """
    from parameters import Role

    from .config import SETTINGS

    model_config = trained.config
    problems = []
    geometry = [name for name, setting in SETTINGS.items()
                if setting.role is Role.GEOMETRY and name != "SENSORS"]
    for setting in geometry:
        key = setting.lower()
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
        np.asarray(data, dtype=np.float32),
        vertices=[np.asarray(v, dtype=np.int64) for v in vertices], tmin=tmin, tstep=tstep,
        subject=subject,
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
    from .refit import inverse_gain
    from .sources import events_table, extract_sources, sparse_estimate, write_events

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

    from .network.callbacks import example_image

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
            [tile_window(np.abs(estimates[m]), start, layout.t_steps) for m in ESTIMATE_METHODS],
            axis=-1,
        )
        probability = tile_window(active, start, layout.t_steps)
        image = example_image(
            rgb,
            tile_window(labels, start, layout.t_steps).astype(int),
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
