"""Simulate the thesis's data sets: dipoles, sensor data with an honest SNR, inverse solutions.

Section 3.3 of the thesis is the specification.  One split (train, valid or test) is built by
:meth:`SimulationModel.simulate_split` in stages:

1. **Sources.**  Single-dipole splits visit every vertex of the hemisphere(s) once per pass in a
   seeded random order; multi-dipole splits draw, per activation window, a uniform number of
   simultaneous dipoles (N_DIPOLES = (low, high)) at distinct random vertices.  Each activation
   is a 10 Hz sinusoid over SAMPLES_PER_ACTIVATION samples followed by a silent gap of
   EMPTY_SIGNAL x SAMPLES_PER_ACTIVATION samples.  At the thesis's sampling rate (600.6 Hz) the
   20 samples span a third of a cycle, exactly as in the thesis; the samples sit at
   ``(k + 0.5) / sfreq`` so that every one of the 20 samples is active (sin(0) would make the
   first one silent).  Orientation is fixed, normal to the cortex.  With
   ``simulation.PATCH_AREA_CM2 = (low, high)`` each source is instead a patch of cortex grown
   around its vertex along the mesh (:func:`grow_patch`) to an area drawn log-uniformly from
   the range, its moment spread over the patch by vertex area; the manifest lists each
   patch's rows (``patches``).
2. **Sensor data.**  The sources are projected through the fixed-orientation forward solution
   (directly, sample by sample of the activations: no dense channels x sources x samples array
   and no ``simulate_raw`` on one long source estimate).  Each dipole's amplitude is scaled so
   that its whitened sensor signal reaches its activation window's SNR (the configured SNR, or
   one drawn per window from a range; see :func:`draw_snrs` and :func:`dipole_amplitudes`).
   Sensor noise is drawn from the noise covariance (the thesis's diagonal ad-hoc noise,
   ``mne.make_ad_hoc_cov``).  Optionally ECG and blink artifacts are added
   (``mne.simulation.add_ecg``/``add_eog``), bad channels are marked, and the thesis's
   preprocessing runs: notch and band-pass filters, ICA (fastica) excluding ECG/EOG
   components, and ECG/EOG SSP projectors.
   With ``simulation.TIMING = "recording"`` (the quick profile's default) the data look like
   a recording instead of the thesis's fixed rhythm (:func:`draw_recording_schedule`): each
   source switches on at its own onset for its own duration (log-uniform in DURATION_MS,
   10-300 ms) with its own waveform (an evoked-like bump, a damped oscillation or an
   oscillatory burst, 2-40 Hz); the sources of a multi-dipole window overlap with different
   time courses; silent stretches of random length hold NOISE_ONLY_SHARE (30 %) of the
   samples; and each window draws its noise kind (white, 1/f "pink", or spatially correlated
   "brain" noise from random cortical sources, :func:`segment_noise`) and level (a factor of
   0.7-1.4 on the noise's standard deviation).  Sources are scaled to the window's SNR
   against its own noise level.  The manifest records every draw (``recording``).
3. **Noise covariance** from a separately simulated empty-room recording of the same sensors
   (noise only, filtered like the data), never from the data that hold the signal.
4. **Inverse solutions.**  One inverse operator (depth 0.8, loose 0.2 or fixed, lambda2 =
   LAMBDA2, or 1/SNR**2, or 1/(low * high) for an SNR range) applied with MNE, dSPM and
   sLORETA to the whole split.

Stages 1 and 2 are the functions of :mod:`meg_unet.activations`; stages 3 and 4, and the
thesis's artifacts and cleaning between them (ARTIFACTS), those of
:mod:`meg_unet.sensor_processing`.

The SNR
-------
For a dipole at vertex v with gain column g_v, noise covariance C and whitener W = C^(-1/2),
the SNR of one activation is the ratio of root-mean-square whitened signal to root-mean-square
whitened noise over the activation's samples and the n data channels::

    SNR = sqrt(mean_t ||W g_v a s(t)||^2 / n) / sqrt(mean_t ||W n(t)||^2 / n)

With noise drawn from C the denominator is 1 in expectation, so the amplitude is
``a = SNR * sqrt(n) / (||W g_v|| * rms(s))``.  This is the amplitude SNR for which MNE's
``lambda2 = 1 / SNR**2`` is the matched regularization.  Every dipole of a window is scaled to
the window's SNR on its own, so a window of k dipoles holds a summed signal whose SNR is
roughly sqrt(k) times the target (more when their fields add, less when they cancel).

``SNR`` may be a number, the SNR of every window, or a range ``(low, high)`` with
0 < low < high: then each activation window draws its own target SNR log-uniformly between
the bounds (``exp(uniform(log low, log high))``, from the split's seeded generator, see
:func:`draw_snrs`), so that a training set holds easy and hard cases in equal measure per
octave.  The median of the draw is the geometric mean ``sqrt(low * high)``, and
``LAMBDA2 = None`` resolves to ``1 / (low * high)``: one inverse operator serves the whole
split, matched to its typical window.  ``N_DIPOLES = (low, high)`` likewise draws the number
of dipoles per window (uniformly, integers), independently of the SNR.

The manifest records the configured ``snr_target`` (a number or ``[low, high]``), each
window's drawn target (``activations.snr_target``), the SNR reached with the noise that was
actually drawn (before artifacts and filtering), per window (``activations.snr_reached``) and
summarized (``snr_reached``), and how the reached SNR compares with each window's own target:
``snr_reached.ratio_to_target`` per dipole (each dipole's own whitened signal over the
window's noise, about 1 up to the sampling of the noise) and
``snr_reached.window_ratio_to_target`` for the summed signal of the window.  Filtering to
5-40 Hz removes most of the white noise and little of the signal, so the data entering the
inverse have a higher SNR than these figures.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .activations import (
    draw_activations,
    draw_snrs,
    round_significant,
    sensor_data,
    source_setup,
)
from .config import data_part, settings_differences
from .constants import INVERSE_METHOD_NAMES
from .io import (
    SPLITS,
    changed_files,
    file_checksums,
    read_json,
    split_dir,
    split_files,
    write_json,
)
from .sensor_processing import (
    add_artifacts_and_clean,
    empty_room_covariance,
    filter_raw,
    inverse_solution,
)

logger = logging.getLogger("meg_unet")


def split_seed(seed, split):
    """Return the integer seed of one split, derived from the run's SEED.

    The three splits draw from independent streams (``numpy.random.SeedSequence``), so
    changing the number of passes of one split does not change the others.
    """
    sequence = np.random.SeedSequence([int(seed), SPLITS.index(split)])
    return int(sequence.generate_state(1)[0])


# --------------------------------------------------------------------------------------------
# The stages of a split
# --------------------------------------------------------------------------------------------


class SimulationModel:
    """Simulate the data splits of one run.

    Parameters
    ----------
    config : meg_unet.config.Config
        The validated configuration.
    head_model : meg_unet.headmodel.HeadModel
        The head model of the run (source space, forward solutions, sensors).

    Attributes
    ----------
    hemisphere_rows : ndarray of int
        Columns of the forward solution (source-space order, lh then rh) where dipoles go.
    vertices : dict
        Vertex numbers of the simulated hemisphere(s): ``{"lh": ..., "rh": ...}`` (the other
        hemisphere empty unless HEMISPHERE = "both").
    """

    def __init__(self, config, head_model):
        self.config = config
        self.head_model = head_model
        self.setup = source_setup(config, head_model)
        self.hemisphere_rows = self.setup.hemisphere_rows
        self.vertices = self.setup.vertices
        self.sfreq = self.setup.sfreq

    # ---- public entry points ---------------------------------------------------------------

    def simulate(self, splits=SPLITS, overwrite=False):
        """Simulate several splits one after another; return their folders.

        See :meth:`simulate_split`; :func:`simulate` runs them on several workers.
        """
        return [self.simulate_split(split, overwrite=overwrite) for split in splits]

    def needs_simulation(self, split, overwrite=False):
        """Whether ``split`` must be (re)built; raises when it exists with other settings.

        A complete split whose manifest matches the configuration and whose files match their
        checksums is kept.  A split simulated with other settings is refused unless
        ``overwrite``.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, but got {split!r}")
        final = split_dir(self.config.data_dir, self.config.run_name, split)
        status = split_status(final, self.config)
        if status == "complete" and not overwrite:
            logger.info("%s: complete and matching the configuration, skipped", final)
            return False
        if status == "mismatch" and not overwrite:
            raise FileExistsError(_mismatch_message(final, self.config))
        return True

    def simulate_split(self, split, overwrite=False, blas_threads=None, progress=True):
        """Simulate one split into ``DATA_DIR/<run>/<split>/`` (skipped when already done).

        See :meth:`needs_simulation` for what is kept and refused.  Work in progress goes to
        ``<split>.partial/`` and is renamed when complete, so an interrupted run leaves no
        split that looks finished; a leftover partial folder is rebuilt from scratch (seeds
        make the result identical).

        Parameters
        ----------
        split : "train" | "valid" | "test"
            The split.
        overwrite : bool
            Replace the split even when complete or simulated with other settings.
        blas_threads : int | None
            BLAS threads of this process while it simulates (None: N_JOBS).
        progress : bool
            Show a bar of the split's stages.

        Returns
        -------
        directory : Path
            The split's folder.
        """
        final = split_dir(self.config.data_dir, self.config.run_name, split)
        if not self.needs_simulation(split, overwrite):
            return final
        partial = final.with_name(final.name + ".partial")
        if partial.exists():
            logger.info("%s: removing an interrupted attempt", partial)
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        from threadpoolctl import threadpool_limits

        # BLAS threads fight MNE's own workers on small machines: the inverse operator's SVD ran
        # 20x faster with one thread than with two on 2 cores (measured on this stack).
        if blas_threads is None:
            blas_threads = max(1, self.config.n_jobs)
        with threadpool_limits(limits=blas_threads):
            self._simulate_into(split, partial, progress)
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        logger.info("%s: written", final)
        return final

    # ---- the stages --------------------------------------------------------------------------

    def _simulate_into(self, split, directory, progress=True):
        import mne
        from tqdm.auto import tqdm

        config, sim = self.config, self.config.simulation
        files = split_files(directory, split)
        seed = split_seed(config.seed, split)
        rng = np.random.default_rng(seed)
        timings = {}
        stages = ["sources", "sensors", "empty room", "preprocessing", "inverse", "saving"]
        bar = tqdm(stages, desc=f"simulate {split}", unit="stage", leave=True,
                   disable=not progress)

        def stage(name):
            bar.set_postfix_str(name)
            timings[name] = time.perf_counter()

        def done(name):
            timings[name] = round(time.perf_counter() - timings[name], 3)
            bar.update(1)

        stage("sources")
        activations = draw_activations(len(self.hemisphere_rows), config.n_dipoles,
                                       sim.PASSES[split], sim.N_WINDOWS[split], rng)
        snr_targets = draw_snrs(len(activations), config.snr, rng)
        done("sources")

        stage("sensors")
        info = self.head_model.info.copy()
        raw, truth, snr_reached, onsets, amplitudes, timing = sensor_data(
            self.setup, self.head_model.fwd_fixed, info, activations, snr_targets, rng
        )
        done("sensors")

        stage("empty room")
        noise_cov = empty_room_covariance(info, self.head_model.fwd_fixed, sim, config.n_jobs,
                                          rng)
        done("empty room")

        stage("preprocessing")
        preprocessing = (add_artifacts_and_clean(raw, sim, seed, config.n_jobs)
                         if config.artifacts else {})
        if sim.PREPROCESS and not config.artifacts:
            preprocessing = filter_raw(raw, sim, config.n_jobs)
        done("preprocessing")

        stage("inverse")
        fwd = self.head_model.fwd_free
        inv = mne.minimum_norm.make_inverse_operator(
            raw.info, fwd, noise_cov, loose=sim.LOOSE if config.orientation == "loose" else 0.0,
            fixed=config.orientation == "fixed", depth=sim.DEPTH, verbose=False)
        estimates = {}
        for kind, method in INVERSE_METHOD_NAMES.items():
            estimates[kind] = self._hemisphere_estimate(
                inverse_solution(raw, inv, method, config.lambda2, config.hemisphere), raw)
        estimates["truth"] = self._hemisphere_estimate(truth, raw)
        done("inverse")

        stage("saving")
        _write_split_files(files, self.head_model.src, fwd, noise_cov, inv, raw, estimates)
        done("saving")
        bar.close()

        manifest = self._manifest(
            split, seed, raw, activations, onsets, amplitudes, snr_targets, snr_reached,
            preprocessing, timings, timing,
        )
        manifest["files"] = file_checksums(directory, [
            path.name for role, path in files.items() if role != "manifest" and path.exists()
        ])
        write_json(files["manifest"], manifest)

    def _hemisphere_estimate(self, data, raw):
        """A SourceEstimate of the rows of the simulated hemisphere(s), stored as float32."""
        import mne

        return mne.SourceEstimate(
            np.asarray(data, dtype=np.float32),
            vertices=[self.vertices["lh"], self.vertices["rh"]],
            tmin=raw.times[0],
            tstep=1.0 / self.sfreq,
            subject=self.head_model.subject,
        )

    def _manifest(self, split, seed, raw, activations, onsets, amplitudes, snr_targets,
                  snr_reached, preprocessing, timings, timing):
        import mne
        import scipy

        config = self.config
        head = self.head_model
        window_reached = snr_reached["window"]
        counts = np.array([len(rows) for rows in activations])
        durations = timing.get("window_durations", [len(self.setup.waveform)] * len(activations))
        manifest = {
            "split": split,
            "run_name": config.run_name,
            "config": config.result_settings(),
            "config_hash": config.data_hash(),
            "seed": seed,
            "versions": {
                "meg_unet": __version__,
                "mne": mne.__version__,
                "numpy": np.__version__,
                "scipy": scipy.__version__,
            },
            "head_model": head.kind,
            "subject": head.subject,
            "spacing": head.spacing,
            "sensors": head.sensors,
            "hemisphere": config.hemisphere,
            "channels": list(config.channels),
            "orientation": config.orientation,
            "sfreq": self.sfreq,
            "n_samples": int(raw.n_times),
            "n_activations": len(activations),
            "timing": config.simulation.TIMING,
            "samples_per_activation": len(self.setup.waveform),
            "gap_samples": self.setup.gap,
            # the SNR setting: a number, or [low, high] when each window drew its own target
            "snr_target": _jsonable_range(config.snr),
            "snr_target_label": config.snr_label,
            "snr_reached": _snr_record(snr_reached, snr_targets),
            "n_dipoles": {
                "setting": _jsonable_range(config.n_dipoles),
                "counts": {str(k): int(np.sum(counts == k)) for k in np.unique(counts)},
                "mean": float(np.mean(counts)) if len(counts) else 0.0,
            },
            "lambda2": config.lambda2,
            "vertices": {hemi: [int(v) for v in vertno] for hemi, vertno in self.vertices.items()},
            "activations": {
                "onsets": [int(o) for o in onsets],
                "durations": [int(d) for d in durations],
                "rows": [[int(r) for r in rows] for rows in activations],
                "amplitudes_nAm": [[float(a * 1e9) for a in amps] for amps in amplitudes],
                "snr_target": [round_significant(v) for v in snr_targets],
                "snr_reached": [round_significant(v) for v in window_reached],
            },
            "preprocessing": preprocessing,
            "bads": list(raw.info["bads"]),
            "timings_s": timings,
        }
        if timing.get("timing") == "recording":
            # "recording" timing: each source's onset, duration and waveform, the noise of
            # each segment and the share of samples with no source
            manifest["recording"] = {k: v for k, v in timing.items()
                                     if k not in ("timing", "window_durations", "patches")}
        if "patches" in timing:
            # extended sources: each source's rows (the drawn vertex first) and area
            manifest["patches"] = timing["patches"]
        return manifest


def _write_split_files(files, src, fwd, noise_cov, inv, raw, estimates):
    """Save a simulated split's source space, forward, covariance, inverse, raw and estimates."""
    import mne

    mne.write_source_spaces(files["src"], src, overwrite=True, verbose=False)
    with warnings.catch_warnings():
        # MNE warns that it stores the free orientation; meg_unet.io.read_forward redoes the
        # orientation choice after reading.
        warnings.filterwarnings("ignore", message="This forward solution is based on")
        mne.write_forward_solution(files["fwd"], fwd, overwrite=True, verbose=False)
    noise_cov.save(files["cov"], overwrite=True, verbose=False)
    mne.minimum_norm.write_inverse_operator(files["inv"], inv, overwrite=True, verbose=False)
    raw.save(files["raw"], overwrite=True, verbose=False)
    for kind, stc in estimates.items():
        stc.save(files[kind], ftype="h5", overwrite=True, verbose=False)


def _snr_record(snr_reached, snr_targets):
    """The manifest's summary of the SNR each activation and each dipole reached."""
    window_reached = snr_reached["window"]
    dipole_ratio = np.concatenate(
        [reached / target for reached, target in zip(snr_reached["dipoles"], snr_targets)]
    )
    return {
        "definition": "whitened RMS signal / whitened RMS noise per activation, "
        "before artifacts and filtering",
        "mean": float(np.mean(window_reached)),
        "median": float(np.median(window_reached)),
        "min": float(np.min(window_reached)),
        "max": float(np.max(window_reached)),
        "ratio_to_target": {
            "definition": "per dipole: its own whitened RMS signal / the whitened RMS "
            "noise of its activation, divided by that activation's target SNR",
            **_summary(dipole_ratio),
        },
        "window_ratio_to_target": {
            "definition": "per activation: the SNR reached by the summed signal of "
            "its dipoles, divided by its target SNR (about sqrt(n_dipoles) for "
            "several dipoles)",
            **_summary(window_reached / snr_targets),
        },
    }


def _summary(values):
    values = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def _jsonable_range(value):
    """A number stays a number; a range (tuple) becomes a [low, high] list (SNR, N_DIPOLES)."""
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------------
# Split status: complete, missing, mismatching or corrupt
# --------------------------------------------------------------------------------------------


def split_status(directory, config):
    """Say whether a split folder is ``"missing"``, ``"complete"``, ``"mismatch"`` or ``"corrupt"``.

    ``"complete"`` needs a manifest with the configuration's hash and files that match their
    checksums; a manifest written with other settings is a ``"mismatch"``; anything else that
    exists (missing or altered files, no manifest) is ``"corrupt"`` and gets rebuilt.
    """
    directory = Path(directory)
    if not directory.exists():
        return "missing"
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return "corrupt"
    try:
        manifest = read_json(manifest_path)
    except ValueError:
        return "corrupt"
    if manifest.get("config_hash") != config.data_hash():
        # splits written before data_hash carry a hash of every setting: compare the data
        # part of the settings they recorded
        recorded = manifest.get("config")
        current = json.loads(json.dumps(config.data_settings()))
        if not isinstance(recorded, dict) or data_part(recorded) != current:
            return "mismatch"
    changed = changed_files(directory, manifest, manifest.get("files") or {})
    if changed:
        logger.warning("%s: %s is missing or changed; the split will be rebuilt", directory,
                       changed[0])
        return "corrupt"
    return "complete"


def _mismatch_message(directory, config):
    manifest = read_json(Path(directory) / "manifest.json")
    details = "; ".join(settings_differences(
        data_part(manifest.get("config", {})), json.loads(json.dumps(config.data_settings())),
        "on disk"))
    return (
        f"{directory} was simulated with other settings ({details or 'unknown difference'}). "
        "Use another RUN_NAME, or --overwrite to replace it."
    )


def simulate(config, head_model=None, splits=SPLITS, overwrite=False):
    """Simulate a run's splits (the library entry point of ``simulate_data.py``).

    Each split is one unit of work with its own seed (:func:`split_seed`), so the splits can
    be simulated in any order and on any worker with the same result.  With ``N_JOBS`` above
    1 they run in that many worker processes (joblib's ``loky`` backend, one BLAS thread
    each); with ``DASK_SCHEDULER`` set, on the workers of that ``dask.distributed`` cluster
    (which must see ``DATA_DIR`` at the same path).  A bar counts the splits done.

    Parameters
    ----------
    config : meg_unet.config.Config
        The validated configuration.
    head_model : meg_unet.headmodel.HeadModel | None
        The head model; None loads (or builds and caches) the configured one, once, before
        any worker starts.
    splits : sequence of str
        Which splits to simulate.
    overwrite : bool
        Replace splits that exist, even when complete or simulated with other settings.

    Returns
    -------
    directories : list of Path
        The split folders, in the order of ``splits``.
    """
    if head_model is None:
        from .headmodel import head_model_from_config

        head_model = head_model_from_config(config)
    model = SimulationModel(config, head_model)
    # refuse a split simulated with other settings before any work starts
    todo = [split for split in splits if model.needs_simulation(split, overwrite)]
    n_workers = simulation_workers(config, len(todo))
    if todo and (n_workers > 1 or config.dask_scheduler is not None):
        _fan_out(model, todo, overwrite, n_workers)
    else:
        for split in todo:
            model.simulate_split(split, overwrite=overwrite)
    return [split_dir(config.data_dir, config.run_name, split) for split in splits]


def simulation_workers(config, n_units):
    """The number of local worker processes for ``n_units`` splits (N_JOBS, -1: all cores)."""
    import os

    wanted = (os.cpu_count() or 1) if config.n_jobs == -1 else config.n_jobs
    return max(1, min(wanted, n_units))


def _simulate_unit(model, split, overwrite):
    """One split on a worker: one BLAS thread, no stage bar (the caller counts the splits)."""
    return str(model.simulate_split(split, overwrite=overwrite, blas_threads=1,
                                    progress=False))


def _fan_out(model, splits, overwrite, n_workers):
    """Run :func:`_simulate_unit` for every split through joblib, locally or on Dask."""
    import contextlib

    from joblib import Parallel, delayed, parallel_config
    from tqdm.auto import tqdm

    scheduler = model.config.dask_scheduler
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            stack.enter_context(parallel_config(backend="loky", n_jobs=n_workers))
            where = f"{n_workers} local workers"
        else:
            try:
                from dask.distributed import Client
            except ImportError as exc:  # pragma: no cover - dask is in requirements.txt
                raise RuntimeError(
                    "DASK_SCHEDULER is set but dask.distributed is not installed "
                    "(pip install distributed)") from exc
            client = stack.enter_context(Client(scheduler, set_as_default=False))
            # send the model (head model included, megabytes) to each worker once
            stack.enter_context(parallel_config(backend="dask", client=client, n_jobs=-1,
                                                scatter=[model]))
            where = f"the Dask cluster at {scheduler}"
        logger.info("simulating %s on %s", ", ".join(splits), where)
        results = Parallel(return_as="generator_unordered")(
            delayed(_simulate_unit)(model, split, overwrite) for split in splits)
        for directory in tqdm(results, total=len(splits), desc="simulate", unit="split"):
            logger.info("%s: written", directory)
