"""An evoked recording on a moved MEG device: baseline false alarms, detection of the response.

A real-recording check that runs offline.  For a trained run (``--model RESULTS_DIR/<run>``) it

1. **moves the MEG device**: the run's own head model (source space, BEM, trans: from the
   model's HEAD_MODEL, SPACING, SENSORS, ``headmodel.BEM_ICO`` and ``simulation.SFREQ`` in
   ``model.json``) with ``info["dev_head_t"]`` changed by a rigid movement of the helmet
   relative to the head: a rotation of ``--rotate-deg`` about ``--axis`` through the head
   origin, then a translation of ``--shift-mm`` along ``--direction`` (head coordinates).  The
   forward solution is recomputed (:func:`meg_unet.headmodel.fsaverage.compute_forward`,
   fixed orientation to simulate, free/loose for the inverse, as the pipeline does), and the
   output says how much the gain matrix changed against the training head model;
2. **simulates an evoked experiment**: ``--n-trials`` trials, each 200 ms before and 400 ms
   after a stimulus, at the model's sampling rate.  Two sources in the model's hemisphere
   (seeded random vertices at least 4 cm apart, fixed orientation normal to the cortex) give
   Gaussian responses peaking at 100 ms and 170 ms (standard deviation drawn in 15-30 ms),
   with a trial-to-trial amplitude jitter of 10 %.  The noise is the pipeline's "brain" noise
   (:func:`meg_unet.activations.segment_noise`: 100 random cortical sources with 1/f time
   courses, spatially correlated, plus white sensor noise from the ad-hoc diagonal
   covariance, half of the power each).  The sources are scaled so that the *averaged*
   response reaches ``--snr`` at each source's peak: the whitened RMS over channels of the
   source's field at its peak, over the whitened RMS of the averaged noise (before filtering,
   the definition of :mod:`meg_unet.simulation`);
3. **processes it like a recording**: the trials lie in one continuous recording (stimulus
   onsets 0.9-1.1 s apart, at random, with 3 s of noise before the first and after the last
   one, longer than the filter), which is band-passed as the pipeline does (5-40 Hz, ``firwin``,
   zero phase; the channels of ``simulation.BAD_CHANNELS`` marked bad) and *then* cut into
   epochs (no baseline correction), so that no trial sees the filter's edge effects; the
   noise covariance comes from the epochs' baselines (``mne.compute_covariance(epochs,
   tmax=0, method="shrunk")``), the inverse operator from it and the moved device's forward
   solution (the model's loose and depth); the epochs are averaged (``nave`` = trials);
4. **scores every method** with the model's detection thresholds (``model.json``'s
   ``"detection"`` for the checkpoint, chosen on the validation split for a false-alarm rate):
   the U-Net (:func:`meg_unet.recording.predict_recording` on the evoked file: its
   calibrated probability) and MNE, dSPM, sLORETA (``apply_inverse`` with the model's lambda2,
   ``pick_ori=None``, the model's hemisphere).  A method detects a source at every local
   maximum of its map on the cortical mesh that reaches its threshold
   (:func:`meg_unet.metrics.localization_metrics`).  On the baseline (t < 0, 10 ms left out at
   each edge): the false-alarm rate (share of samples with any detection) and false detections
   per second.  Per source: whether it is detected (a detection within 2 cm while its
   amplitude is above half its peak) and the DLE at its peak (distance from the source to the
   map's maximum at the source's peak sample).  The median over samples of the map's maximum
   (the U-Net's probability, the linear methods' estimate) on the baseline and on the
   response samples (any source above half its peak);
5. repeats this ``--repeats`` times (other source vertices, widths and noise; the moved head
   model stays) and writes a Markdown file with the settings, the perturbation, every repeat
   and the summary over repeats (``--out``, default ``benchmarks/results/evoked-<run>.md``);
   the summary table is printed as well.

The filtered noise-free response is also projected onto the baseline, so that the output says
how much of the response the zero-phase filter smears before the stimulus.

Run from the repository root::

    python benchmarks/evoked.py --model results/quick

On the quick model (ico3, 642 vertices) with the defaults (60 trials, 3 repeats) it took 39 s
of wall time on 2 CPU cores shared with another job (forward solution 8 s, each repeat 8-13 s),
with a peak memory of 1.2 GB; the result is ``benchmarks/results/evoked-quick.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_line  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent

#: Methods in table order (the U-Net last, as in the library's tables).
METHODS = ("mne", "dspm", "sloreta", "unet")
_MNE_NAMES = {"mne": "MNE", "dspm": "dSPM", "sloreta": "sLORETA"}
_DISPLAY = {"mne": "MNE", "dspm": "dSPM", "sloreta": "sLORETA", "unet": "U-Net"}
_HEMIS = ("lh", "rh")

#: Epoch: seconds before and after the stimulus.
TMIN, TMAX = -0.2, 0.4
#: Peak latencies of the two sources' responses (s) and the range of their widths (standard
#: deviation of the Gaussian, s).
LATENCIES = (0.100, 0.170)
WIDTHS = (0.015, 0.030)
#: Trial-to-trial amplitude jitter (relative standard deviation).
JITTER = 0.10
#: Smallest distance between the two sources (m).
MIN_DISTANCE = 0.04
#: Stimulus onset asynchrony (s), drawn uniformly per trial, and the noise before the first and
#: after the last trial (s), longer than the 5-40 Hz filter (1.65 s at 600 Hz).
SOA = (0.9, 1.1)
PADDING = 3.0
#: Samples at the edges of the baseline left out of the false-alarm count (s).
EDGE = 0.010
#: Distance within which a detection counts for a source (cm), and the share of its peak
#: amplitude above which a source counts as on.
MATCH_RADIUS_CM = 2.0
HALF = 0.5


# ---------------------------------------------------------------------------------------------
# The model


class BenchmarkError(Exception):
    """A problem with the arguments or the model folder, with a message for the user."""


def load_model_record(model, which):
    """The trained run's folders, settings, configuration and detection record.

    Parameters
    ----------
    model : path-like
        ``RESULTS_DIR/<run>`` or its ``model/`` folder.
    which : "best" | "last"
        The checkpoint.

    Returns
    -------
    record : dict
        ``run_dir``, ``model_dir``, ``sidecar`` (model.json), ``config`` (the run's
        configuration rebuilt from model.json) and ``detection`` (the checkpoint's record).

    Raises
    ------
    BenchmarkError
        If there is no trained model, no checkpoint ``which`` or no detection record.
    """
    from meg_unet.io import read_json
    from meg_unet.prediction import _find_model_dir, _model_config

    try:
        run_dir, model_dir = _find_model_dir(model)
    except FileNotFoundError as exc:
        raise BenchmarkError(str(exc)) from None
    if not (model_dir / f"{which}.keras").is_file():
        raise BenchmarkError(
            f"{model_dir} has no {which}.keras checkpoint; train the model with "
            "train_network.py, or choose --checkpoint last/best"
        )
    sidecar = read_json(model_dir / "model.json")
    detection = sidecar.get("detection", {}).get(which)
    if not detection or "thresholds" not in detection:
        raise BenchmarkError(
            f"{model_dir / 'model.json'} has no detection thresholds for the {which!r} "
            "checkpoint (its \"detection\" record): train_network.py writes them after "
            "training, and predict.py adds them to a model trained without them"
        )
    missing = [m for m in METHODS if m not in detection["thresholds"]]
    if missing:
        raise BenchmarkError(
            f"{model_dir / 'model.json'}: the detection record lacks thresholds for "
            f"{', '.join(missing)}"
        )
    if "settings" not in sidecar:
        raise BenchmarkError(f"{model_dir / 'model.json'} lacks the run's settings")
    config = _model_config(sidecar, model_dir, None)
    return dict(run_dir=run_dir, model_dir=model_dir, sidecar=sidecar, config=config,
                detection=detection)


def load_training_head_model(config, cache_dir, n_jobs=1):
    """The head model the run was trained on (built into ``cache_dir`` if not cached)."""
    from meg_unet.headmodel import load_head_model

    kwargs = {}
    if config.head_model == "custom":
        kwargs = dict(subjects_dir=config.custom_subjects_dir, subject=config.custom_subject,
                      trans=config.custom_trans_file, bem=config.custom_bem_file,
                      info=config.custom_info_file)
    return load_head_model(
        config.head_model, config.spacing, config.sensors, cache_dir,
        sfreq=config.simulation.SFREQ, bem_ico=config.headmodel.BEM_ICO, n_jobs=n_jobs,
        verbose="error", **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# The moved device


def _unit(vector, name):
    vector = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(vector)
    if vector.shape != (3,) or not np.isfinite(norm) or norm == 0:
        raise BenchmarkError(f"{name} must be three numbers, not all zero, but got {vector}")
    return vector / norm


def rotation_matrix(axis, degrees):
    """Rotation by ``degrees`` about the unit vector ``axis`` (Rodrigues' formula)."""
    axis = _unit(axis, "axis")
    angle = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def moved_dev_head_t(dev_head_t, shift_mm, rotate_deg, direction=(1, 1, 1), axis=(1, 0, 0)):
    """A device -> head transformation with the helmet moved relative to the head.

    Parameters
    ----------
    dev_head_t : mne.transforms.Transform
        The original device -> head transformation.
    shift_mm : float
        Translation of the helmet (mm) along ``direction``, in head coordinates.
    rotate_deg : float
        Rotation of the helmet (degrees) about ``axis`` through the head origin, applied
        before the translation.
    direction, axis : sequence of 3 float
        Directions in head coordinates (x right, y front, z up); normalized here.

    Returns
    -------
    dev_head_t : mne.transforms.Transform
        ``P @ dev_head_t`` with ``P`` the rigid movement.
    """
    from mne.transforms import Transform

    movement = np.eye(4)
    movement[:3, :3] = rotation_matrix(axis, rotate_deg)
    movement[:3, 3] = _unit(direction, "direction") * shift_mm / 1000.0
    return Transform("meg", "head", movement @ dev_head_t["trans"])


def sensor_displacement_mm(info, old, new):
    """Mean and largest displacement (mm) of the MEG sensors in head coordinates."""
    from mne.transforms import apply_trans

    positions = np.array([ch["loc"][:3] for ch in info["chs"] if ch["kind"] == 1])
    moved = apply_trans(new, positions) - apply_trans(old, positions)
    distance = 1000.0 * np.linalg.norm(moved, axis=1)
    return float(distance.mean()), float(distance.max())


def gain_change(reference, other):
    """How much a gain matrix differs from a reference (same channels and sources).

    Returns
    -------
    change : dict
        ``frobenius``: ``||G - G_ref||_F / ||G_ref||_F``; ``per_source_median`` and
        ``per_source_p95``: the same ratio per source (column).
    """
    reference = np.asarray(reference, dtype=float)
    other = np.asarray(other, dtype=float)
    if reference.shape != other.shape:
        raise ValueError(f"gain matrices differ in shape: {reference.shape}, {other.shape}")
    difference = other - reference
    per_source = np.linalg.norm(difference, axis=0) / np.linalg.norm(reference, axis=0)
    return {
        "frobenius": float(np.linalg.norm(difference) / np.linalg.norm(reference)),
        "per_source_median": float(np.median(per_source)),
        "per_source_p95": float(np.percentile(per_source, 95)),
    }


def moved_head(head, shift_mm, rotate_deg, direction=(1, 1, 1), axis=(1, 0, 0), n_jobs=1):
    """The head model with the MEG device moved, and its forward solutions recomputed.

    Returns
    -------
    moved : dict
        ``info`` (the moved device), ``fwd_free`` and ``fwd_fixed`` (as
        :func:`meg_unet.headmodel.fsaverage.orient_forward` makes them), ``gain_change``
        (:func:`gain_change` of the fixed gain against the training head model's, all
        sources), ``sensor_shift_mm`` (mean, max) and ``seconds`` (the forward computation).
    """
    import mne

    from meg_unet.headmodel.fsaverage import compute_forward, orient_forward

    info = head.info.copy()
    old = info["dev_head_t"]
    with info._unlock():
        info["dev_head_t"] = moved_dev_head_t(old, shift_mm, rotate_deg, direction, axis)
    start = time.perf_counter()
    with mne.use_log_level("error"):
        fwd = compute_forward(info, head.trans, head.src, head.bem, head.sensors, n_jobs=n_jobs)
    fwd_free, fwd_fixed = orient_forward(fwd)
    seconds = time.perf_counter() - start
    reference = head.fwd_fixed["sol"]
    if list(reference["row_names"]) != list(fwd_fixed["sol"]["row_names"]):
        raise RuntimeError("the recomputed forward solution has other channels")
    return dict(
        info=info, fwd_free=fwd_free, fwd_fixed=fwd_fixed,
        gain_change=gain_change(reference["data"], fwd_fixed["sol"]["data"]),
        sensor_shift_mm=sensor_displacement_mm(info, old, info["dev_head_t"]),
        seconds=seconds,
    )


# ---------------------------------------------------------------------------------------------
# The evoked recording


def hemisphere_geometry(src, hemisphere):
    """Rows of the forward solution, positions (m) and mesh adjacency of the model's hemisphere(s).

    Returns
    -------
    columns : ndarray of int
        Columns of the forward solution (lh sources first, then rh).
    positions : ndarray, shape (n, 3)
        MRI coordinates, in the order of the hemisphere rows of a source estimate.
    adjacency : scipy.sparse array, shape (n, n)
    """
    from scipy import sparse

    from meg_unet.metrics import hemisphere_positions, mesh_adjacency

    hemis = _HEMIS if hemisphere == "both" else (hemisphere,)
    n_lh = len(src[0]["vertno"])
    columns, positions, blocks = [], [], []
    for hemi in hemis:
        index = _HEMIS.index(hemi)
        n = len(src[index]["vertno"])
        columns.append(np.arange(n) + (n_lh if index == 1 else 0))
        positions.append(hemisphere_positions(src, hemi))
        blocks.append(mesh_adjacency(src[index]))
    return (np.concatenate(columns), np.concatenate(positions),
            sparse.block_diag(blocks, format="csr"))


def choose_sources(positions, rng, min_distance=MIN_DISTANCE):
    """Two random rows at least ``min_distance`` (m) apart."""
    first = int(rng.integers(len(positions)))
    distance = np.linalg.norm(positions - positions[first], axis=1)
    candidates = np.flatnonzero(distance >= min_distance)
    if not len(candidates):
        raise BenchmarkError(f"no vertex lies {min_distance * 100:g} cm from vertex row {first}")
    return np.array([first, int(rng.choice(candidates))])


def response_waveforms(times, widths, latencies=LATENCIES):
    """Gaussian responses of peak 1, one row per source."""
    times = np.asarray(times)[np.newaxis, :]
    latencies = np.asarray(latencies)[:, np.newaxis]
    widths = np.asarray(widths)[:, np.newaxis]
    return np.exp(-0.5 * ((times - latencies) / widths) ** 2)


def noise_std_of(info):
    """Standard deviation per channel of the ad-hoc diagonal noise covariance (bads included)."""
    import mne

    info = info.copy()
    with info._unlock():
        info["bads"] = []  # make_ad_hoc_cov gives a bad channel a variance of 0
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    order = [cov["names"].index(name) for name in info["ch_names"]]
    return np.sqrt(np.asarray(cov["data"], dtype=float)[order])


def simulate_evoked(info, gain, source_columns, widths, n_trials, snr, sim, rng, n_jobs=1):
    """Simulate, filter and epoch the evoked experiment.

    Parameters
    ----------
    info : mne.Info
        Measurement info of the data channels only (the moved device), with the bad channels.
    gain : ndarray, shape (n_channels, n_sources)
        Fixed-orientation gain of the moved device (all sources; brain noise comes from both
        hemispheres).
    source_columns : ndarray of int, shape (2,)
        Gain columns of the two sources.
    widths : ndarray, shape (2,)
        Standard deviations of their Gaussian responses (s).
    n_trials : int
        Trials.
    snr : float
        Target SNR of the averaged response at each source's peak (before filtering).
    sim : namespace
        The model's ``simulation`` parameters (filter, brain noise sources).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    result : dict
        ``epochs`` (filtered, ``mne.EpochsArray``), ``waveforms`` (true responses of peak 1,
        shape (2, n_times) on the epoch's times), ``amplitudes_nAm``, ``snr_filtered`` (per
        source: the same ratio after filtering, against the filtered averaged noise),
        ``baseline_leak`` (per source: the largest whitened RMS of the filtered noise-free
        averaged response on the scored baseline, as a share of its value at the peak).
    """
    import mne
    from mne.filter import filter_data

    from meg_unet.activations import segment_noise

    sfreq = float(info["sfreq"])
    n_pre, n_post = int(round(-TMIN * sfreq)), int(round(TMAX * sfreq))
    times = np.arange(-n_pre, n_post + 1) / sfreq
    waveforms = response_waveforms(times, widths)
    soa = np.round(rng.uniform(*SOA, size=n_trials) * sfreq).astype(int)
    pad = int(round(PADDING * sfreq))
    onsets = pad + n_pre + np.concatenate([[0], np.cumsum(soa[:-1])])
    n_total = int(onsets[-1] + n_post + 1 + pad)

    noise_std = noise_std_of(info)
    whitener = 1.0 / noise_std
    noise = segment_noise("brain", n_total, noise_std, gain, sim.BRAIN_NOISE_SOURCES, rng)
    epoch_index = onsets[:, np.newaxis] + np.arange(-n_pre, n_post + 1)[np.newaxis, :]
    averaged_noise = noise[:, epoch_index].mean(axis=1)
    noise_rms = np.sqrt(np.mean((averaged_noise * whitener[:, np.newaxis]) ** 2))
    field = gain[:, source_columns] * whitener[:, np.newaxis]
    field_rms = np.linalg.norm(field, axis=0) / np.sqrt(len(whitener))
    amplitudes = snr * noise_rms / field_rms  # peak moment (Am) of each source

    sources = np.zeros((2, n_total))
    jitter = 1.0 + JITTER * rng.standard_normal((n_trials, 2))
    for trial, onset in enumerate(onsets):
        span = slice(onset - n_pre, onset + n_post + 1)
        sources[:, span] += (jitter[trial] * amplitudes)[:, np.newaxis] * waveforms
    data = noise + gain[:, source_columns] @ sources
    del noise

    raw = mne.io.RawArray(data, info.copy(), verbose=False)
    del data
    raw.filter(sim.L_FREQ, sim.H_FREQ, picks="data", fir_design=sim.FIR_DESIGN, n_jobs=n_jobs,
               verbose=False)
    epochs_data = raw.get_data()[:, epoch_index].transpose(1, 0, 2)
    events = np.column_stack([onsets, np.zeros(n_trials, int), np.ones(n_trials, int)])
    epochs = mne.EpochsArray(epochs_data, raw.info, events=events, tmin=times[0],
                             baseline=None, verbose=False)

    # the filtered noise-free response (the filter is linear: filter the source time courses)
    filtered_sources = filter_data(sources, sfreq, sim.L_FREQ, sim.H_FREQ,
                                   fir_design=sim.FIR_DESIGN, verbose=False)
    clean = np.stack([filtered_sources[:, index] for index in epoch_index]).mean(axis=0)
    good = np.array([name not in info["bads"] for name in info["ch_names"]])
    # the averaged filtered noise: the averaged filtered data less the averaged filtered signal
    averaged_signal = (gain[:, source_columns] @ clean)
    residual = (epochs_data.mean(axis=0) - averaged_signal)[good] * whitener[good, np.newaxis]
    filtered_noise_rms = np.sqrt(np.mean(residual**2))
    baseline = scored_baseline(times)
    peaks = np.argmax(waveforms, axis=1)
    snr_filtered, leak = [], []
    for j in range(2):
        rms = (np.linalg.norm(field[good, j][:, np.newaxis] * clean[j][np.newaxis, :], axis=0)
               / np.sqrt(good.sum()))
        snr_filtered.append(float(rms[peaks[j]] / filtered_noise_rms))
        leak.append(float(rms[baseline].max() / rms[peaks[j]]))
    return dict(
        epochs=epochs, times=times, waveforms=waveforms, amplitudes_nAm=amplitudes * 1e9,
        snr_filtered=snr_filtered, baseline_leak=leak,
    )


def scored_baseline(times):
    """The baseline samples that count: t < 0, ``EDGE`` left out at each end."""
    return (times >= times[0] + EDGE - 1e-9) & (times <= -EDGE + 1e-9)


# ---------------------------------------------------------------------------------------------
# Scoring


def score_method(estimate, times, waveforms, source_rows, positions, adjacency, threshold,
                 sfreq):
    """Detection figures of one method's map on the evoked recording.

    Parameters
    ----------
    estimate : ndarray, shape (n_vertices, n_times)
        The map (|.| is used): the U-Net's calibrated probability or a linear estimate.
    times : ndarray, shape (n_times,)
        Seconds relative to the stimulus.
    waveforms : ndarray, shape (n_sources, n_times)
        The true responses (peak 1).
    source_rows : ndarray of int, shape (n_sources,)
        Rows of ``estimate`` of the true sources.
    positions : ndarray, shape (n_vertices, 3)
    adjacency : scipy.sparse array
    threshold : float
        The method's detection threshold.
    sfreq : float
        Sampling rate (Hz).

    Returns
    -------
    scores : dict
        ``false_alarm_rate``, ``false_detections_per_s``, ``detected`` (list of bool, per
        source), ``dle_cm`` (list, per source, at its peak), ``score_baseline`` and
        ``score_response`` (median of the map's maximum).
    """
    from meg_unet.metrics import localization_metrics

    estimate = np.asarray(estimate, dtype=np.float64)
    on = waveforms >= HALF
    true_rows = [source_rows[on[:, column]] for column in range(len(times))]
    metrics = localization_metrics(estimate, true_rows, positions, adjacency, border=0,
                                   match_radius_cm=MATCH_RADIUS_CM,
                                   detection_threshold=threshold)
    baseline = scored_baseline(times)
    detections = metrics["detections"][baseline]
    response = on.any(axis=0)
    detected, dle = [], []
    for j, row in enumerate(source_rows):
        window = np.flatnonzero(on[j])
        alone = localization_metrics(estimate[:, window], [[row]] * len(window), positions,
                                     adjacency, border=0, match_radius_cm=MATCH_RADIUS_CM,
                                     detection_threshold=threshold)
        detected.append(bool(np.any(alone["detected_sources"] > 0)))
        peak = int(np.argmax(waveforms[j]))
        at_peak = localization_metrics(estimate[:, [peak]], [[row]], positions, adjacency,
                                       border=0)
        dle.append(float(at_peak["dle_cm"][0]))
    return dict(
        false_alarm_rate=float(np.mean(detections > 0)),
        false_detections_per_s=float(detections.sum() / (baseline.sum() / sfreq)),
        detected=detected,
        dle_cm=dle,
        score_baseline=float(np.median(metrics["score"][baseline])),
        score_response=float(np.median(metrics["score"][response])),
    )


def linear_estimates(evoked, inv, methods, lambda2, hemisphere):
    """MNE, dSPM, sLORETA of the evoked for the model's hemisphere rows (pick_ori=None)."""
    import mne
    from threadpoolctl import threadpool_limits

    label = None
    if hemisphere != "both":
        index = _HEMIS.index(hemisphere)
        label = mne.Label(vertices=inv["src"][index]["vertno"], hemi=hemisphere)
    estimates = {}
    with threadpool_limits(limits=1):
        for method in methods:
            stc = mne.minimum_norm.apply_inverse(evoked, inv, lambda2, _MNE_NAMES[method],
                                                 pick_ori=None, label=label, verbose=False)
            estimates[method] = stc.data
    return estimates


def run_repeat(repeat, seed, record, head, moved, geometry, n_trials, snr, tmp_dir,
               n_jobs=1):
    """One evoked recording, every method scored.  Returns the repeat's record."""
    import mne
    from threadpoolctl import threadpool_limits

    from meg_unet.recording import predict_recording

    config, detection = record["config"], record["detection"]
    sim = config.simulation
    columns, positions, adjacency = geometry
    rng = np.random.default_rng([seed, repeat])
    rows = choose_sources(positions, rng)
    widths = rng.uniform(*WIDTHS, size=2)
    fwd_fixed = moved["fwd_fixed"]
    names = list(fwd_fixed["sol"]["row_names"])
    info = mne.pick_info(moved["info"], mne.pick_channels(moved["info"]["ch_names"], names,
                                                           ordered=True))
    with info._unlock():
        info["bads"] = [b for b in sim.BAD_CHANNELS if b in names]
    started = time.perf_counter()
    with threadpool_limits(limits=max(1, n_jobs)):
        simulated = simulate_evoked(info, fwd_fixed["sol"]["data"], columns[rows], widths,
                                    n_trials, snr, sim, rng, n_jobs=n_jobs)
        epochs = simulated["epochs"]
        cov = mne.compute_covariance(epochs, tmax=0, method="shrunk", verbose=False)
        evoked = epochs.average()
        inv = mne.minimum_norm.make_inverse_operator(
            evoked.info, moved["fwd_free"], cov,
            loose=sim.LOOSE if config.orientation == "loose" else 0.0,
            fixed=config.orientation == "fixed", depth=sim.DEPTH, verbose=False,
        )
    stem = f"evoked-{repeat}"
    evoked_fname = Path(tmp_dir) / f"{stem}-ave.fif"
    inverse_fname = Path(tmp_dir) / f"{stem}-inv.fif"
    out_fname = Path(tmp_dir) / f"{stem}-unet-stc.h5"
    evoked.save(evoked_fname, overwrite=True, verbose=False)
    mne.minimum_norm.write_inverse_operator(inverse_fname, inv, overwrite=True, verbose=False)
    methods = tuple(m for m in METHODS if m != "unet")
    estimates = linear_estimates(evoked, inv, methods, config.lambda2, config.hemisphere)
    predict_recording(record["run_dir"], inverse_fname, evoked_fname=evoked_fname,
                      out_fname=out_fname, which=record["which"], overwrite=True,
                      progress=False)
    estimates["unet"] = mne.read_source_estimate(out_fname).data
    times = evoked.times
    if not np.allclose(times, simulated["times"]):
        raise RuntimeError("the evoked's times differ from the simulated epochs'")
    scores = {
        method: score_method(estimates[method], times, simulated["waveforms"], rows,
                             positions, adjacency, detection["thresholds"][method],
                             float(evoked.info["sfreq"]))
        for method in METHODS
    }
    vertno = np.concatenate([head.src[_HEMIS.index(h)]["vertno"] for h in
                             (_HEMIS if config.hemisphere == "both" else (config.hemisphere,))])
    return dict(
        repeat=repeat,
        vertices=[int(vertno[r]) for r in rows],
        distance_cm=float(100 * np.linalg.norm(positions[rows[0]] - positions[rows[1]])),
        widths_ms=[float(1000 * w) for w in widths],
        amplitudes_nAm=[float(a) for a in simulated["amplitudes_nAm"]],
        snr_filtered=simulated["snr_filtered"],
        baseline_leak=simulated["baseline_leak"],
        n_times=len(times),
        seconds=time.perf_counter() - started,
        scores=scores,
    )


# ---------------------------------------------------------------------------------------------
# Tables


def _number(value, digits=3):
    return "--" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _score(value):
    return "--" if not np.isfinite(value) else f"{value:.3g}"


def summarize(repeats):
    """Per method over repeats: mean false-alarm figures, detection share, median DLE/scores."""
    summary = {}
    for method in METHODS:
        scores = [r["scores"][method] for r in repeats]
        detected = [d for s in scores for d in s["detected"]]
        summary[method] = dict(
            false_alarm_rate=float(np.mean([s["false_alarm_rate"] for s in scores])),
            false_alarm_rate_median=float(np.median([s["false_alarm_rate"] for s in scores])),
            false_detections_per_s=float(np.mean([s["false_detections_per_s"] for s in scores])),
            detected=int(sum(detected)),
            n_sources=len(detected),
            dle_cm=float(np.median([d for s in scores for d in s["dle_cm"]])),
            score_baseline=float(np.median([s["score_baseline"] for s in scores])),
            score_response=float(np.median([s["score_response"] for s in scores])),
        )
    return summary


def summary_table(summary, thresholds):
    """The Markdown summary table over repeats."""
    lines = [
        "| Method | threshold | baseline false-alarm rate: mean (median) | false detections / s "
        "(mean) | sources detected | DLE at peak, median (cm) | max of map, median: baseline "
        "/ response |",
        "| :-- | --: | --: | --: | --: | --: | --: |",
    ]
    for method in METHODS:
        s = summary[method]
        lines.append(
            f"| {_DISPLAY[method]} | {_score(thresholds[method])} | "
            f"{_number(s['false_alarm_rate'])} ({_number(s['false_alarm_rate_median'])}) | "
            f"{_number(s['false_detections_per_s'], 1)} | {s['detected']} of {s['n_sources']} | "
            f"{_number(s['dle_cm'], 2)} | {_score(s['score_baseline'])} / "
            f"{_score(s['score_response'])} |"
        )
    return lines


def repeat_table(repeats):
    """The Markdown table of every repeat and method."""
    lines = [
        "| Repeat | Method | false-alarm rate | false detections / s | source 1 (100 ms): "
        "detected, DLE (cm) | source 2 (170 ms): detected, DLE (cm) | max of map, median: "
        "baseline / response |",
        "| --: | :-- | --: | --: | --: | --: | --: |",
    ]
    for r in repeats:
        for method in METHODS:
            s = r["scores"][method]
            sources = [f"{'yes' if d else 'no'}, {_number(e, 2)}"
                       for d, e in zip(s["detected"], s["dle_cm"])]
            lines.append(
                f"| {r['repeat']} | {_DISPLAY[method]} | {_number(s['false_alarm_rate'])} | "
                f"{_number(s['false_detections_per_s'], 1)} | {sources[0]} | {sources[1]} | "
                f"{_score(s['score_baseline'])} / {_score(s['score_response'])} |"
            )
    return lines


def repeat_description(repeats):
    """One line per repeat: sources, widths, amplitudes, SNR after filtering, leak."""
    lines = [
        "| Repeat | source vertices (distance) | widths (ms) | peak moments (nAm) | SNR after "
        "filtering | filtered response on the baseline (share of its peak) | seconds |",
        "| --: | :-- | :-- | :-- | :-- | :-- | --: |",
    ]
    for r in repeats:
        lines.append(
            f"| {r['repeat']} | {r['vertices'][0]}, {r['vertices'][1]} "
            f"({r['distance_cm']:.1f} cm) | {r['widths_ms'][0]:.0f}, {r['widths_ms'][1]:.0f} | "
            f"{r['amplitudes_nAm'][0]:.2f}, {r['amplitudes_nAm'][1]:.2f} | "
            f"{r['snr_filtered'][0]:.1f}, {r['snr_filtered'][1]:.1f} | "
            f"{100 * r['baseline_leak'][0]:.1f} %, {100 * r['baseline_leak'][1]:.1f} % | "
            f"{r['seconds']:.0f} |"
        )
    return lines


def markdown(args, record, head, moved, hemisphere_change, repeats, summary, seconds,
             command):
    """The whole Markdown report."""
    import mne

    config, detection = record["config"], record["detection"]
    sim = config.simulation
    change, hemi_change = moved["gain_change"], hemisphere_change
    lines = [
        f"# Evoked recording on a moved MEG device: model `{record['run_dir'].name}`",
        "",
        f"Written by `{command}` on {datetime.datetime.now().isoformat(timespec='minutes')} "
        f"in {seconds / 60:.1f} min. Machine: {machine_line()}; MNE {mne.__version__}.",
        "",
        "## Settings",
        "",
        f"- Model: `{record['model_dir']}` ({record['which']}.keras), trained on "
        f"{config.head_model} {config.spacing}, {config.sensors.upper()}, hemisphere "
        f"{config.hemisphere}, {config.orientation} orientation (loose {sim.LOOSE:g}, depth "
        f"{sim.DEPTH:g}), SNR {config.snr_label}, lambda2 {config.lambda2:.4g}, profile "
        f"{config.profile}.",
        f"- Detection thresholds from `model.json` (false-alarm rate "
        f"{detection.get('false_alarm_rate', float('nan')):g}"
        + (f" at most, with {detection['confidence']:g} confidence," if "confidence" in detection
           else "")
        + " on the validation split's noise-only samples; U-Net on its calibrated probability, "
        "the others on their unnormalized estimates).",
        f"- {args.n_trials} trials of {TMIN * 1000:.0f} to {TMAX * 1000:.0f} ms at "
        f"{float(head.info['sfreq']):.3f} Hz ({repeats[0]['n_times']} samples), stimulus "
        f"onsets {SOA[0]:g}-{SOA[1]:g} s apart; {args.repeats} repeats, seed {args.seed}.",
        f"- Two sources at random vertices of the model's hemisphere, at least "
        f"{MIN_DISTANCE * 100:g} cm apart, fixed orientation; Gaussian responses peaking at "
        f"{LATENCIES[0] * 1000:.0f} and {LATENCIES[1] * 1000:.0f} ms, standard deviation drawn "
        f"in {WIDTHS[0] * 1000:.0f}-{WIDTHS[1] * 1000:.0f} ms, amplitude jitter "
        f"{JITTER * 100:.0f} % per trial; scaled so that the averaged response reaches SNR "
        f"{args.snr:g} at each source's peak (whitened RMS over channels against the averaged "
        "noise, before filtering).",
        f"- Noise: the pipeline's \"brain\" noise ({sim.BRAIN_NOISE_SOURCES} random cortical "
        "sources, 1/f, plus white sensor noise of the ad-hoc diagonal covariance, equal "
        "power).",
        f"- Processing: one continuous recording ({PADDING:g} s of noise before the first and "
        f"after the last trial) band-passed {sim.L_FREQ:g}-{sim.H_FREQ:g} Hz "
        f"({sim.FIR_DESIGN}, zero phase) and then cut into epochs (no baseline correction); "
        f"bad: {', '.join(b for b in sim.BAD_CHANNELS if b in head.info['ch_names']) or 'none'}; "
        "noise covariance from the epochs' baselines (t <= 0, shrunk); inverse operator from it "
        "and the moved device's forward solution; `predict_recording` on the averaged evoked.",
        f"- Scoring: baseline = t < 0 with {EDGE * 1000:.0f} ms left out at each edge; a source "
        f"is detected when a detection lies within {MATCH_RADIUS_CM:g} cm of it while its "
        f"amplitude is above {HALF * 100:.0f} % of its peak; DLE at its peak: distance to the "
        "map's maximum; 'max of map': the map's largest value per sample (the U-Net's "
        "probability, the others' estimate), median over the baseline and over the response "
        "samples (a source above half its peak).",
        "",
        "## Head-model perturbation",
        "",
        f"MEG helmet rotated by {args.rotate_deg:g} degrees about the axis "
        f"({', '.join(f'{v:g}' for v in args.axis)}) through the head origin, then moved "
        f"{args.shift_mm:g} mm along ({', '.join(f'{v:g}' for v in args.direction)}) (head "
        f"coordinates: x right, y front, z up). The sensors moved by "
        f"{moved['sensor_shift_mm'][0]:.1f} mm on average (at most "
        f"{moved['sensor_shift_mm'][1]:.1f} mm). Fixed-orientation gain matrix against the "
        f"training head model's: relative Frobenius difference {100 * change['frobenius']:.1f} % "
        f"over all sources, {100 * hemi_change['frobenius']:.1f} % over the model's hemisphere "
        f"(per source: median {100 * change['per_source_median']:.1f} %, 95th percentile "
        f"{100 * change['per_source_p95']:.1f} %). Forward solution recomputed in "
        f"{moved['seconds']:.0f} s.",
        "",
        "## Summary over repeats",
        "",
        *summary_table(summary, detection["thresholds"]),
        "",
        "Sources detected: over all repeats (two per repeat). MNE's threshold is an absolute "
        "amplitude (Am) chosen on single-trial training data; averaging lowers the noise by "
        f"sqrt({args.n_trials}), and the sources are scaled to the averaged noise, so MNE's "
        "absolute scale here is not the one its threshold was chosen on (dSPM and sLORETA are "
        "normalized by the noise of the average, nave).",
        "",
        "## Repeats",
        "",
        *repeat_description(repeats),
        "",
        *repeat_table(repeats),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The command line


def _vector(text):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers x,y,z, got {text!r}") from None
    if len(values) != 3 or not np.any(values) or not np.all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(
            f"expected three numbers x,y,z, not all zero, got {text!r}")
    return tuple(values)


def build_parser():
    """The command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="the trained run, RESULTS_DIR/<run> (or its model/ folder)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    parser.add_argument("--n-trials", type=int, default=60, help="trials averaged (>= 2)")
    parser.add_argument("--shift-mm", type=float, default=5.0,
                        help="translation of the MEG helmet relative to the head (mm, >= 0)")
    parser.add_argument("--rotate-deg", type=float, default=3.0,
                        help="rotation of the MEG helmet about --axis (degrees)")
    parser.add_argument("--direction", type=_vector, default=(1.0, 1.0, 1.0),
                        help="direction of the translation x,y,z in head coordinates "
                        "(default 1,1,1: right, front, up)")
    parser.add_argument("--axis", type=_vector, default=(1.0, 0.0, 0.0),
                        help="rotation axis x,y,z through the head origin (default 1,0,0: "
                        "left-right, a nod)")
    parser.add_argument("--snr", type=float, default=3.0,
                        help="SNR of the averaged response at each source's peak")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="recordings with other sources and noise")
    parser.add_argument("--cache", default=None,
                        help="head-model cache (default: DATA_DIR/headmodels of --config)")
    parser.add_argument("--config", default=str(ROOT / "config.py"),
                        help="configuration whose DATA_DIR holds the head-model cache")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="jobs of the forward solution and the filter, BLAS threads")
    parser.add_argument("--out", default=None,
                        help="Markdown file (default: benchmarks/results/evoked-<run>.md)")
    return parser


def check_arguments(parser, args):
    """Refuse values that make no sense, with the parser's usage message (exit status 2)."""
    if args.n_trials < 2:
        parser.error(f"--n-trials must be at least 2, but got {args.n_trials}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, but got {args.repeats}")
    if not np.isfinite(args.snr) or args.snr <= 0:
        parser.error(f"--snr must be positive, but got {args.snr:g}")
    if not np.isfinite(args.shift_mm) or args.shift_mm < 0:
        parser.error(f"--shift-mm must be >= 0, but got {args.shift_mm:g}")
    if not np.isfinite(args.rotate_deg) or abs(args.rotate_deg) > 90:
        parser.error(f"--rotate-deg must lie within -90..90, but got {args.rotate_deg:g}")
    if args.n_jobs < 1:
        parser.error(f"--n-jobs must be at least 1, but got {args.n_jobs}")


def main(argv=None):
    """Run the benchmark; return the exit status (0, or 1 with a message on stderr).

    Parameters
    ----------
    argv : list of str | None
        Command-line arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success, 1 if the model folder cannot be used.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    started = time.perf_counter()
    try:
        record = load_model_record(args.model, args.checkpoint)
    except BenchmarkError as exc:
        print(f"evoked.py: error: {exc}", file=sys.stderr)
        return 1
    record["which"] = args.checkpoint
    config = record["config"]
    if args.cache is None:
        from meg_unet.config import load_config

        cache = load_config(args.config).head_model_dir
    else:
        cache = Path(args.cache)
    out = Path(args.out) if args.out else (
        ROOT / "benchmarks" / "results" / f"evoked-{record['run_dir'].name}.md")
    print(f"[{_now()}] head model: {config.head_model} {config.spacing} {config.sensors} "
          f"(cache {cache})", flush=True)
    head = load_training_head_model(config, cache, n_jobs=args.n_jobs)
    moved = moved_head(head, args.shift_mm, args.rotate_deg, args.direction, args.axis,
                       n_jobs=args.n_jobs)
    geometry = hemisphere_geometry(head.src, config.hemisphere)
    hemisphere_change = gain_change(head.fwd_fixed["sol"]["data"][:, geometry[0]],
                                    moved["fwd_fixed"]["sol"]["data"][:, geometry[0]])
    print(f"[{_now()}] moved device: gain changed by {100 * moved['gain_change']['frobenius']:.1f}"
          f" % (Frobenius; {100 * hemisphere_change['frobenius']:.1f} % in the model's "
          f"hemisphere), forward in {moved['seconds']:.0f} s", flush=True)
    repeats = []
    with tempfile.TemporaryDirectory(prefix="evoked-") as tmp_dir:
        for repeat in range(args.repeats):
            result = run_repeat(repeat, args.seed, record, head, moved, geometry,
                                args.n_trials, args.snr, tmp_dir, n_jobs=args.n_jobs)
            repeats.append(result)
            print(f"[{_now()}] repeat {repeat}: done in {result['seconds']:.0f} s", flush=True)
    summary = summarize(repeats)
    seconds = time.perf_counter() - started
    shown = " ".join(["python benchmarks/evoked.py", *(argv if argv is not None
                                                        else sys.argv[1:])])
    text = markdown(args, record, head, moved, hemisphere_change, repeats, summary, seconds,
                    shown)
    from meg_unet.io import atomic_path

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    print("\n".join(summary_table(summary, record["detection"]["thresholds"])))
    print(f"[{_now()}] wrote {out} ({seconds / 60:.1f} min)", flush=True)
    return 0


def _now():
    return datetime.datetime.now().strftime("%H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
