"""Calibrate a trained U-Net and choose every method's detection threshold on the validation split.

:func:`calibrate_detection` runs after training (``train_network.py`` calls it; ``predict.py``
calls it for a model trained without it).  On the run's validation split it

1. predicts the U-Net's probability of "active" for every vertex and sample, and calibrates
   it: no calibration, Platt scaling (:func:`meg_unet.detection.fit_platt`) and isotonic
   regression (:func:`meg_unet.detection.fit_isotonic`) are each fitted on half of the
   pixels, and the one with the lowest expected calibration error on the other half (over
   the pixels predicted at least 0.1) is refitted on all of them
   (:func:`choose_calibration`);
2. chooses, for the U-Net (on its calibrated probability) and for MNE, dSPM and sLORETA (on
   their unnormalized estimates), the detection threshold whose false-alarm rate on the
   split's noise-only samples (no source active within ``network.DETECTION_GUARD_MS``, see
   :func:`meg_unet.detection.noise_only`) is ``network.DETECTION_FALSE_ALARM_RATE``, or is
   at most that with the confidence ``network.DETECTION_CONFIDENCE``
   (:func:`meg_unet.detection.false_alarm_threshold`);

and writes both into the model's ``model.json`` under ``"detection"`` and the checkpoint's name
(``"best"`` or ``"last"``)::

    {"false_alarm_rate": 0.05, "confidence": 0.95,     # with DETECTION_CONFIDENCE
     "calibration": {"method": "isotonic", "x": [...], "y": [...],  # or "platt": slope...
                     "held_out_ece": {"none": ..., "platt": ..., "isotonic": ...},
                     "ece_before": ..., "ece_after": ...},   # on the validation pixels
     "thresholds": {"mne": ..., "dspm": ..., "sloreta": ..., "unet": ...},
     "validation": {"directory": ..., "n_samples": ..., "n_noise_samples": ...}}

The samples and vertices scored are those of the metrics (the tile border left out, see
:mod:`meg_unet.tiles`).
"""

from __future__ import annotations

import logging

import numpy as np

from .detection import (
    apply_isotonic,
    apply_platt,
    calibration_errors,
    false_alarm_threshold,
    fit_isotonic,
    fit_platt,
    noise_only,
    samples_to_source,
    stretch_gap,
)
from .io import read_json, write_json

logger = logging.getLogger("meg_unet")

__all__ = ["apply_calibration", "calibrate_detection", "choose_calibration"]


def apply_calibration(active, detection):
    """Calibrate the U-Net's probability of "active" with a model's ``"detection"`` record.

    Parameters
    ----------
    active : ndarray
        Probabilities of "active" as the network gives them.
    detection : dict | None
        A checkpoint's record in ``model.json``'s ``"detection"``; None returns ``active``
        unchanged.

    Returns
    -------
    calibrated : ndarray of float64
    """
    if not detection:
        return np.asarray(active, dtype=np.float64)
    return _apply(detection["calibration"], active)


def _apply(calibration, active):
    if calibration["method"] == "isotonic":
        return apply_isotonic(active, calibration["x"], calibration["y"])
    if calibration["method"] == "platt":
        return apply_platt(active, calibration["slope"], calibration["intercept"]).astype(
            np.float64)
    return np.asarray(active, dtype=np.float64)  # "none"


def _fit(method, probabilities, labels, seed):
    if method == "isotonic":
        x, y = fit_isotonic(probabilities, labels, seed=seed)
        return {"method": "isotonic", "x": x, "y": y}
    if method == "platt":
        slope, intercept = fit_platt(probabilities, labels, seed=seed)
        return {"method": "platt", "slope": slope, "intercept": intercept}
    return {"method": "none"}


def choose_calibration(probabilities, labels, seed=0):
    """Fit each calibration on half of the pixels, keep the best on the other half, refit.

    The candidates are none, Platt scaling and isotonic regression; the one with the lowest
    expected calibration error over the held-out pixels predicted at least 0.1 wins (over all
    pixels the silent majority makes every candidate look calibrated; a candidate that
    predicts no pixel that high scores 0 there, and the ECE over all pixels breaks ties), and
    is refitted on every pixel.

    Returns
    -------
    calibration : dict
        The chosen method and its parameters, and ``"held_out_ece"``: each candidate's ECE
        (``all`` and ``confident``) on the held-out half.
    """
    rng = np.random.default_rng(seed)
    half = rng.random(probabilities.shape) < 0.5
    scores = {}
    for method in ("none", "platt", "isotonic"):
        fitted = _fit(method, probabilities[half], labels[half], seed)
        scores[method] = calibration_errors(_apply(fitted, probabilities[~half]), labels[~half])
    # a map that never reaches 0.1 makes no confident claim to get wrong (NaN -> 0); on a tie
    # the ECE over all pixels decides
    best = min(scores, key=lambda m: (np.nan_to_num(scores[m]["confident"], nan=0.0),
                                      scores[m]["all"]))
    calibration = _fit(best, probabilities, labels, seed)
    calibration["held_out_ece"] = scores
    return calibration


def _noise_only_scores(estimate, noise, border):
    """Maximum of ``|estimate|`` over the kept rows in each noise-only sample (``noise``)."""
    rows = slice(border, estimate.shape[0] - border)
    return np.abs(estimate[rows][:, noise]).max(axis=0)


def calibrate_detection(config, model_dir=None, which="best", progress=True):
    """Calibrate a run's model and choose the detection thresholds on its validation split.

    Parameters
    ----------
    config : meg_unet.config.Config
        The run's configuration (its ``DATA_DIR/<RUN_NAME>/valid`` split is used).
    model_dir : path-like | None
        The trained run (default ``RESULTS_DIR/<RUN_NAME>``).
    which : "best" | "last"
        The checkpoint to calibrate (the one ``predict.py`` uses by default is ``best``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    detection : dict
        The record written to ``model.json`` (see the module docstring).
    """
    from .data_provider import DataProvider
    from .prediction import _load_model, _split_estimates
    from .tiles import predict_tiles, tile_layout

    trained = _load_model(config.run_results_dir if model_dir is None else model_dir, which,
                          config if model_dir is None else None, run_config=config)
    model_config = trained.config
    provider = DataProvider(model_config, "valid", preprocessing=trained.preprocessing)
    border = model_config.network.BORDER
    rate = model_config.network.DETECTION_FALSE_ALARM_RATE
    layout = tile_layout(provider.n_times, model_config.tile.T_STEPS)
    logger.info("calibrating %s on %s", trained.describe(), provider.directory)
    raw = predict_tiles(trained.model, provider.inputs, layout,
                        batch_size=model_config.network.BATCH_SIZE, progress=progress)
    labels = provider.targets > 0
    kept = np.zeros(labels.shape, dtype=bool)
    kept[border : labels.shape[0] - border] = layout.evaluated(border)[np.newaxis]
    calibration = choose_calibration(raw[kept], labels[kept], seed=model_config.seed)
    calibrated = _apply(calibration, raw)
    calibration["ece_before"] = calibration_errors(raw[kept], labels[kept])
    calibration["ece_after"] = calibration_errors(calibrated[kept], labels[kept])
    record = {"false_alarm_rate": float(rate), "calibration": calibration}
    if model_config.network.DETECTION_CONFIDENCE is not None:
        record["confidence"] = float(model_config.network.DETECTION_CONFIDENCE)
    estimates = _split_estimates(provider, provider.directory, "valid")
    estimates["unet"] = calibrated
    active = np.abs(provider.amplitudes) > trained.preprocessing.active_threshold
    noise, guard_ms = noise_only(samples_to_source(active.any(axis=0)), provider.sfreq,
                                 model_config.network.DETECTION_GUARD_MS)
    noise &= layout.evaluated(border)
    confidence = model_config.network.DETECTION_CONFIDENCE
    thresholds = {
        method: false_alarm_threshold(
            _noise_only_scores(np.asarray(estimate), noise, border), rate,
            samples=np.flatnonzero(noise), max_gap=stretch_gap(provider.sfreq, guard_ms),
            confidence=confidence)
        for method, estimate in estimates.items()
    }
    n_noise = int(noise.sum())
    record["thresholds"] = thresholds
    record["validation"] = {
        "directory": str(provider.directory),
        "n_samples": int(layout.evaluated(border).sum()),
        "n_noise_samples": n_noise,
        "guard_ms": guard_ms,
    }
    sidecar_path = trained.model_dir / "model.json"
    sidecar = read_json(sidecar_path)
    sidecar.setdefault("detection", {})[which] = record
    write_json(sidecar_path, sidecar)
    held_out = calibration["held_out_ece"]
    logger.info(
        "calibration: %s (held-out ECE over pixels predicted >= 0.1: %s); thresholds for a "
        "false-alarm rate of %g%s on %d noise-only samples: %s",
        calibration["method"],
        ", ".join(f"{m} {v['confident']:.4f}" for m, v in held_out.items()),
        rate, "" if confidence is None else f" with {confidence:g} confidence", n_noise,
        ", ".join(f"{m} {t:.3g}" for m, t in thresholds.items()),
    )
    return record
