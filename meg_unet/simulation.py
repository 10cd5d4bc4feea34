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
from .config import data_part
from .constants import INVERSE_METHOD_NAMES
from .io import (
    SPLITS,
    read_json,
    sha256sum,
    split_dir,
    split_files,
    write_json,
)

logger = logging.getLogger("meg_unet")


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def split_seed(seed, split):
    """Return the integer seed of one split, derived from the run's SEED.

    The three splits draw from independent streams (``numpy.random.SeedSequence``), so
    changing the number of passes of one split does not change the others.
    """
    sequence = np.random.SeedSequence([int(seed), SPLITS.index(split)])
    return int(sequence.generate_state(1)[0])


def activation_waveform(sfreq, n_samples, freq):
    """Return the activation time course: a sinusoid at ``freq`` Hz over ``n_samples`` samples.

    Samples are taken at the midpoints ``(k + 0.5) / sfreq`` so that none is exactly zero.
    """
    times = (np.arange(n_samples) + 0.5) / sfreq
    return np.sin(2 * np.pi * freq * times)


def draw_activations(n_vertices, n_dipoles, n_passes, n_windows, rng):
    """Draw which source rows are active in each activation window.

    Parameters
    ----------
    n_vertices : int
        Number of candidate source rows (vertices of the hemisphere(s)).
    n_dipoles : int | tuple of int
        1 for single-dipole splits, or an inclusive range (low, high) of simultaneous dipoles.
    n_passes : int
        Single-dipole splits: passes over every vertex, each in a new random order.
    n_windows : int
        Multi-dipole splits: number of activation windows.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    activations : list of ndarray of int
        Per activation window, the active source rows (distinct).
    """
    if isinstance(n_dipoles, int):
        if n_dipoles != 1:
            n_dipoles = (n_dipoles, n_dipoles)
    if n_dipoles == 1:
        return [
            np.array([row]) for _ in range(n_passes) for row in rng.permutation(n_vertices)
        ]
    low, high = n_dipoles
    if high > n_vertices:
        raise ValueError(
            f"N_DIPOLES allows up to {high} simultaneous dipoles, but the hemisphere has only "
            f"{n_vertices} vertices"
        )
    counts = rng.integers(low, high + 1, size=n_windows)
    return [np.sort(rng.choice(n_vertices, size=count, replace=False)) for count in counts]


def draw_snrs(n_windows, snr, rng):
    """Draw the target SNR of each activation window.

    Parameters
    ----------
    n_windows : int
        Number of activation windows.
    snr : float | tuple of float
        One SNR for every window, or a range (low, high) with 0 < low < high from which each
        window's SNR is drawn log-uniformly.
    rng : numpy.random.Generator
        Source of randomness; untouched when ``snr`` is a single number, so that single-SNR
        splits draw the same sources and noise as before ranges existed.

    Returns
    -------
    snrs : ndarray, shape (n_windows,)
        Target amplitude SNR per window (see the module docstring).
    """
    n_windows = int(n_windows)
    if n_windows < 0:
        raise ValueError(f"n_windows must be >= 0, but got {n_windows}")
    if not isinstance(snr, (tuple, list)):
        if not snr > 0:
            raise ValueError(f"Invalid value for the 'snr' parameter: must be positive, but "
                             f"got {snr!r} instead.")
        return np.full(n_windows, float(snr))
    low, high = (float(v) for v in snr)
    if not 0 < low < high < np.inf:
        raise ValueError(
            "Invalid value for the 'snr' parameter: a range (low, high) needs "
            f"0 < low < high, but got {tuple(snr)!r} instead."
        )
    return np.exp(rng.uniform(np.log(low), np.log(high), size=n_windows))


def dipole_amplitudes(gain, rows, whitener_diag, snr, waveform):
    """Scale dipoles so each one's whitened sensor signal reaches ``snr``.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources)
        Fixed-orientation gain matrix of the data channels (T/Am, V/Am).
    rows : ndarray of int
        Source columns of the dipoles.
    whitener_diag : ndarray, shape (n_channels,)
        Inverse noise standard deviation per channel (a diagonal noise covariance).
    snr : float
        Target amplitude SNR of each of these dipoles (see the module docstring): the SNR of
        their activation window.
    waveform : ndarray, shape (n_samples,)
        The activation time course.

    Returns
    -------
    amplitudes : ndarray, shape (len(rows),)
        Dipole moments in Am.
    """
    whitened = gain[:, rows] * whitener_diag[:, np.newaxis]
    norms = np.linalg.norm(whitened, axis=0)
    rms = np.sqrt(np.mean(waveform**2))
    n_channels = gain.shape[0]
    return snr * np.sqrt(n_channels) / (norms * rms)


def mesh_geometry(src, hemisphere_rows):
    """Vertex areas and the mesh's edge lengths over the rows of a surface source space.

    Parameters
    ----------
    src : mne.SourceSpaces
        A surface source space with its triangulation of the used vertices (``use_tris``).
    hemisphere_rows : ndarray of int
        Columns of the source space (lh then rh) that the simulation uses.

    Returns
    -------
    areas : ndarray, shape (n_rows,)
        A third of the area of the triangles around each row's vertex, in m^2.
    edges : scipy.sparse.csr_array, shape (n_rows, n_rows)
        Length in m of each mesh edge between two rows (hemispheres are not joined).
    """
    from scipy import sparse

    offsets = np.cumsum([0] + [len(s["vertno"]) for s in src])
    areas = np.zeros(offsets[-1])
    blocks = []
    for index, hemi in enumerate(src):
        if hemi.get("use_tris") is None or not len(hemi["use_tris"]):
            raise ValueError("simulation.PATCH_AREA_CM2 needs a surface source space with its "
                             "triangulation (use_tris), e.g. an ico or oct spacing")
        vertno = np.asarray(hemi["vertno"])
        positions = hemi["rr"][vertno]
        tris = np.searchsorted(vertno, hemi["use_tris"])
        a, b, c = (positions[tris[:, k]] for k in range(3))
        tri_area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
        np.add.at(areas, offsets[index] + tris.ravel(), np.repeat(tri_area / 3, 3))
        pairs = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
        lengths = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
        blocks.append(sparse.coo_array((lengths, (pairs[:, 0], pairs[:, 1])),
                                       shape=(len(vertno), len(vertno))))
    edges = sparse.block_diag(blocks, format="csr")
    edges = edges.maximum(edges.T)  # each edge once in each direction
    rows = np.asarray(hemisphere_rows)
    return areas[rows], sparse.csr_array(edges[rows][:, rows])


def grow_patch(seed, area, areas, edges):
    """The rows of a patch grown from ``seed`` along the mesh until it covers ``area``.

    Rows join in order of their path length from the seed along the mesh edges, until their
    summed area reaches ``area`` (m^2); the seed alone when its own area does.

    Returns
    -------
    rows : ndarray of int
        The patch's rows, the seed first.
    weights : ndarray of float
        Each row's share of the patch's area (they sum to 1): the share of the moment it holds.
    """
    from scipy.sparse.csgraph import dijkstra

    distance = dijkstra(edges, indices=int(seed))
    reachable = np.flatnonzero(np.isfinite(distance))
    order = reachable[np.argsort(distance[reachable], kind="stable")]
    n = int(np.searchsorted(np.cumsum(areas[order]), area)) + 1
    rows = order[: min(n, len(order))]
    return rows, areas[rows] / areas[rows].sum()


# --------------------------------------------------------------------------------------------
# Recording-like timing (simulation.TIMING = "recording")
# --------------------------------------------------------------------------------------------


#: Concentration of the Dirichlet draw that splits the silent samples into stretches.  At 1
#: (flat) the silences are short and alike (~2 % of an ico3 split lay over 50 ms from any
#: source); at 0.1 most windows follow one another closely and a few silences last a second or
#: more, like the baselines of a recording (~16 % of the samples over 50 ms from a source).
_SILENCE_CONCENTRATION = 0.1


def _log_uniform(rng, low, high, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size=size))


def source_waveform(kind, n_samples, sfreq, freq, rng):
    """Return one source's time course, peak ``|1|``, over ``n_samples`` samples.

    Parameters
    ----------
    kind : "bump" | "damped" | "burst"
        ``"bump"``: an evoked-like Gaussian deflection centred in the window (width a sixth
        of it) of random sign; ``"damped"``: ``sin(2 pi freq t + phase)`` decaying with a
        time constant of a third of the window; ``"burst"``: the same oscillation under a
        Hann envelope.
    n_samples : int
        Active samples (>= 1).
    sfreq : float
        Sampling rate in Hz.
    freq : float
        Oscillation frequency in Hz (unused by ``"bump"``).
    rng : numpy.random.Generator
        Draws the sign of a bump and the phase of an oscillation.

    Returns
    -------
    waveform : ndarray, shape (n_samples,)
        Sampled at ``(k + 0.5) / sfreq``.
    """
    times = (np.arange(n_samples) + 0.5) / sfreq
    length = n_samples / sfreq
    if kind == "bump":
        wave = np.exp(-0.5 * ((times - length / 2) / (length / 6)) ** 2)
        wave *= rng.choice((-1.0, 1.0))
    else:
        wave = np.sin(2 * np.pi * freq * times + rng.uniform(0, 2 * np.pi))
        if kind == "damped":
            wave *= np.exp(-times / (length / 3))
        elif kind == "burst":
            wave *= np.sin(np.pi * times / length) ** 2
        else:
            raise ValueError(f"unknown waveform kind {kind!r}")
    peak = np.max(np.abs(wave))
    return wave / peak if peak > 0 else wave


def draw_recording_schedule(activations, sfreq, sim, rng):
    """Draw when each source is on, with which waveform, and the silences and noise between.

    Each activation window's first source starts the window; the other sources of the window
    start at random samples while the first is still on, so they overlap with their own time
    courses.  Every source draws its duration log-uniformly from ``sim.DURATION_MS``, its
    waveform from ``sim.WAVEFORMS`` and, for oscillations, its frequency log-uniformly from
    ``sim.OSCILLATION_HZ``.  Silent stretches before each window (and after the last one)
    hold ``sim.NOISE_ONLY_SHARE`` of all samples, split at random (a Dirichlet draw of
    concentration 0.1: most are short or empty, a few last a second or more).  Each window,
    with the silence before it, is one noise segment with its own kind (``sim.NOISE_KINDS``)
    and level (``sim.NOISE_LEVEL``).

    Parameters
    ----------
    activations : list of ndarray of int
        Active rows per window (:func:`draw_activations`).
    sfreq : float
        Sampling rate in Hz.
    sim : namespace
        The ``simulation`` parameters.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    schedule : dict
        ``window_onsets``, ``window_durations`` (samples, one per window); per window the
        lists ``source_onsets`` (absolute samples), ``source_durations``, ``waveforms``,
        ``frequencies_hz`` (one entry per source, in the order of the window's rows);
        ``segments`` as ``(start, stop)`` covering every sample, with ``noise_kinds`` and
        ``noise_levels``; and ``n_times``.
    """
    n_windows = len(activations)
    low, high = (d * sfreq / 1000.0 for d in sim.DURATION_MS)
    sources = []
    lengths = np.zeros(n_windows, dtype=np.int64)
    for index, rows in enumerate(activations):
        durations = np.maximum(1, np.round(_log_uniform(rng, low, high, len(rows)))).astype(int)
        offsets = np.zeros(len(rows), dtype=np.int64)
        if len(rows) > 1:
            offsets[1:] = rng.integers(0, durations[0], size=len(rows) - 1)
        kinds = [str(k) for k in rng.choice(sim.WAVEFORMS, size=len(rows))]
        freqs = _log_uniform(rng, *sim.OSCILLATION_HZ, size=len(rows))
        sources.append((offsets, durations, kinds, freqs))
        lengths[index] = int(np.max(offsets + durations)) if len(rows) else 0
    share = float(sim.NOISE_ONLY_SHARE)
    n_silent = int(round(share / (1.0 - share) * lengths.sum()))
    gaps = rng.dirichlet(np.full(n_windows + 1, _SILENCE_CONCENTRATION)) * n_silent
    gaps = np.floor(gaps).astype(np.int64)
    gaps[rng.choice(n_windows + 1, size=n_silent - gaps.sum(), replace=True)] += 1
    onsets = gaps[:-1] + np.concatenate([[0], np.cumsum(gaps[:-1] + lengths)[:-1]])
    n_times = int(lengths.sum() + gaps.sum())
    starts = onsets - gaps[:-1]
    stops = np.append(starts[1:], n_times)
    schedule = {
        "window_onsets": onsets,
        "window_durations": lengths,
        "source_onsets": [onset + s[0] for onset, s in zip(onsets, sources)],
        "source_durations": [s[1] for s in sources],
        "waveforms": [s[2] for s in sources],
        "frequencies_hz": [s[3] for s in sources],
        "segments": list(zip(starts.tolist(), stops.tolist())),
        "noise_kinds": [str(k) for k in rng.choice(sim.NOISE_KINDS, size=n_windows)],
        "noise_levels": _log_uniform(rng, *sim.NOISE_LEVEL, size=n_windows),
        "n_times": n_times,
    }
    return schedule


def _pink(shape, rng):
    """Gaussian noise with a 1/f power spectrum along the last axis, unit variance per row."""
    white = rng.standard_normal(shape)
    n = shape[-1]
    if n < 4:
        return white
    spectrum = np.fft.rfft(white, axis=-1)
    freqs = np.arange(spectrum.shape[-1], dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= np.sqrt(freqs)
    spectrum[..., 0] = 0.0
    pink = np.fft.irfft(spectrum, n=n, axis=-1)
    std = pink.std(axis=-1, keepdims=True)
    return np.divide(pink, std, out=white, where=std > 0)


def segment_noise(kind, n_samples, noise_std, gain, n_brain_sources, rng):
    """Sensor noise of one segment, of unit whitened power per channel on average.

    Parameters
    ----------
    kind : "white" | "pink" | "brain"
        See ``simulation.NOISE_KINDS`` in ``parameters/simulation.py``.
    n_samples : int
        Length of the segment.
    noise_std : ndarray, shape (n_channels,)
        Standard deviation of the sensor noise per channel (the noise covariance's diagonal).
    gain : ndarray, shape (n_channels, n_sources)
        Fixed-orientation gain matrix (for ``"brain"`` noise).
    n_brain_sources : int
        Random cortical sources of ``"brain"`` noise.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    noise : ndarray, shape (n_channels, n_samples)
    """
    shape = (len(noise_std), n_samples)
    if kind == "white":
        return rng.standard_normal(shape) * noise_std[:, np.newaxis]
    if kind == "pink":
        return _pink(shape, rng) * noise_std[:, np.newaxis]
    if kind != "brain":
        raise ValueError(f"unknown noise kind {kind!r}")
    columns = rng.choice(gain.shape[1], size=min(n_brain_sources, gain.shape[1]), replace=False)
    background = gain[:, columns] @ _pink((len(columns), n_samples), rng)
    whitened_ms = np.mean((background / noise_std[:, np.newaxis]) ** 2)
    if whitened_ms > 0:
        background *= np.sqrt(0.5 / whitened_ms)
    sensor = rng.standard_normal(shape) * noise_std[:, np.newaxis] * np.sqrt(0.5)
    return background + sensor


def _snr_reached(signal, noise, whitener, windows):
    """SNR reached per activation window, with the noise actually drawn.

    ``windows`` holds, per window, its sample slice and the mean square whitened signal of
    each of its dipoles.  Returns ``{"window": ndarray, "dipoles": list of ndarray}``: the
    summed signal's SNR per window, and each dipole's own SNR against the window's noise.
    """
    reached = {"window": [], "dipoles": []}
    for window, dipole_ms in windows:
        s = signal[:, window] * whitener[:, np.newaxis]
        n = noise[:, window] * whitener[:, np.newaxis]
        noise_ms = np.mean(n**2)
        reached["window"].append(np.sqrt(np.mean(s**2) / noise_ms))
        reached["dipoles"].append(np.sqrt(np.asarray(dipole_ms) / noise_ms))
    reached["window"] = np.array(reached["window"])
    return reached


# --------------------------------------------------------------------------------------------
# The model
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
        sim = config.simulation
        self.sfreq = float(head_model.info["sfreq"])
        if abs(self.sfreq - sim.SFREQ) > 1e-6:
            raise ValueError(
                f"the head model's sampling rate is {self.sfreq} Hz, but "
                f"simulation.SFREQ is {sim.SFREQ} Hz"
            )
        src = head_model.src
        n_lh = len(src[0]["vertno"])
        lh_vertno, rh_vertno = src[0]["vertno"], src[1]["vertno"]
        empty = np.array([], int)
        if config.hemisphere == "lh":
            self.hemisphere_rows = np.arange(n_lh)
            self.vertices = {"lh": lh_vertno, "rh": empty}
        elif config.hemisphere == "rh":
            self.hemisphere_rows = n_lh + np.arange(len(rh_vertno))
            self.vertices = {"lh": empty, "rh": rh_vertno}
        else:
            self.hemisphere_rows = np.arange(n_lh + len(rh_vertno))
            self.vertices = {"lh": lh_vertno, "rh": rh_vertno}
        self.waveform = activation_waveform(
            self.sfreq, sim.SAMPLES_PER_ACTIVATION, sim.WAVEFORM_FREQ
        )
        self.gap = int(round(sim.EMPTY_SIGNAL * sim.SAMPLES_PER_ACTIVATION))
        self.patch_geometry = (
            mesh_geometry(src, self.hemisphere_rows) if sim.PATCH_AREA_CM2 is not None else None
        )

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
        activations = draw_activations(
            len(self.hemisphere_rows),
            config.n_dipoles,
            sim.PASSES[split],
            sim.N_WINDOWS[split],
            rng,
        )
        snr_targets = draw_snrs(len(activations), config.snr, rng)
        done("sources")

        stage("sensors")
        info = self.head_model.info.copy()
        raw, truth, snr_reached, onsets, amplitudes, timing = self._sensor_data(
            info, activations, snr_targets, rng
        )
        done("sensors")

        stage("empty room")
        noise_cov = self._empty_room_covariance(info, rng)
        done("empty room")

        stage("preprocessing")
        preprocessing = self._preprocess(raw, seed) if config.artifacts else {}
        if sim.PREPROCESS and not config.artifacts:
            preprocessing = self._filter(raw)
        done("preprocessing")

        stage("inverse")
        fwd = self.head_model.fwd_free
        inv = mne.minimum_norm.make_inverse_operator(
            raw.info,
            fwd,
            noise_cov,
            loose=sim.LOOSE if config.orientation == "loose" else 0.0,
            fixed=config.orientation == "fixed",
            depth=sim.DEPTH,
            verbose=False,
        )
        estimates = {}
        for kind, method in INVERSE_METHOD_NAMES.items():
            estimates[kind] = self._hemisphere_estimate(
                self._inverse_solution(raw, inv, method), raw, rows_are_hemisphere=True)
        estimates["truth"] = self._hemisphere_estimate(truth, raw, rows_are_hemisphere=True)
        done("inverse")

        stage("saving")
        mne.write_source_spaces(files["src"], self.head_model.src, overwrite=True, verbose=False)
        with warnings.catch_warnings():
            # MNE warns that it stores the free orientation; meg_unet.io.read_forward redoes
            # the orientation choice after reading.
            warnings.filterwarnings("ignore", message="This forward solution is based on")
            mne.write_forward_solution(files["fwd"], fwd, overwrite=True, verbose=False)
        noise_cov.save(files["cov"], overwrite=True, verbose=False)
        mne.minimum_norm.write_inverse_operator(files["inv"], inv, overwrite=True, verbose=False)
        raw.save(files["raw"], overwrite=True, verbose=False)
        for kind, stc in estimates.items():
            stc.save(files[kind], ftype="h5", overwrite=True, verbose=False)
        done("saving")
        bar.close()

        manifest = self._manifest(
            split, seed, raw, activations, onsets, amplitudes, snr_targets, snr_reached,
            preprocessing, timings, timing,
        )
        manifest["files"] = {
            path.name: sha256sum(path)
            for role, path in files.items()
            if role != "manifest" and path.exists()
        }
        write_json(files["manifest"], manifest)

    def _sensor_data(self, info, activations, snr_targets, rng):
        """Project the activations through the forward model and add noise.

        Each window's dipoles are scaled to that window's entry of ``snr_targets``.  Returns
        the raw data, the true source time courses, the SNR reached (a dict of arrays:
        ``"window"``, per window, of the summed signal; ``"dipoles"``, per window, of each
        dipole's own signal), the onsets and the amplitudes (Am), and what the
        ``"recording"`` timing drew (a dict for the manifest; empty for ``"thesis"``).
        """
        import mne

        fwd = self.head_model.fwd_fixed
        data_picks = mne.pick_channels(info["ch_names"], fwd["sol"]["row_names"], ordered=True)
        gain = fwd["sol"]["data"]
        noise_std = self._noise_std(info, fwd["sol"]["row_names"])
        whitener = 1.0 / noise_std
        if self.config.simulation.TIMING == "recording":
            signal, noise, truth, windows, amplitudes, record = self._recording_sources(
                gain, noise_std, activations, snr_targets, rng
            )
        else:
            signal, noise, truth, windows, amplitudes, record = self._thesis_sources(
                gain, noise_std, activations, snr_targets, rng
            )
        snr_reached = _snr_reached(signal, noise, whitener, windows)
        data = np.zeros((len(info["ch_names"]), signal.shape[1]))
        data[data_picks] = signal + noise
        raw = mne.io.RawArray(data, info, verbose=False)
        onsets = np.array([window.start for window, _ in windows], dtype=np.int64)
        return raw, truth, snr_reached, onsets, amplitudes, record

    def _thesis_sources(self, gain, noise_std, activations, snr_targets, rng):
        """The thesis's rhythm: the same waveform and gap in every window, white noise."""
        whitener = 1.0 / noise_std
        n_active = len(self.waveform)
        period = n_active + self.gap
        n_times = period * len(activations)
        signal = np.zeros((gain.shape[0], n_times))
        truth = np.zeros((len(self.hemisphere_rows), n_times), dtype=np.float32)
        onsets = np.arange(len(activations)) * period
        amplitudes, windows, patches = [], [], []
        waveform_ms = np.mean(self.waveform**2)
        for onset, rows, snr in zip(onsets, activations, snr_targets):
            patches.append([])
            sources = [self._source_gain(gain, row, rng, patches[-1]) for row in rows]
            columns = np.stack([column for column, _, _ in sources], axis=1)
            amps = dipole_amplitudes(columns, np.arange(len(sources)), whitener, snr,
                                     self.waveform)
            amplitudes.append(amps)
            moments = amps[:, np.newaxis] * self.waveform[np.newaxis, :]
            signal[:, onset : onset + n_active] += columns @ moments
            for (_, source_rows, weights), moment in zip(sources, moments):
                truth[source_rows, onset : onset + n_active] += np.outer(weights, moment)
            # one dipole's whitened signal is (W g) a s(t): its mean square over channels and
            # samples is ||W g||^2 a^2 mean(s^2) / n_channels
            norms = np.linalg.norm(columns * whitener[:, None], axis=0)
            windows.append((slice(onset, onset + n_active),
                            norms**2 * amps**2 * waveform_ms / len(whitener)))
        noise = rng.standard_normal(signal.shape) * noise_std[:, np.newaxis]
        return signal, noise, truth, windows, amplitudes, self._patch_record(patches)

    def _source_gain(self, gain, row, rng, patches):
        """The gain column of the source drawn at ``row``, and its rows and weights in the truth.

        A point dipole is the row's own column.  With ``simulation.PATCH_AREA_CM2`` the source
        is a patch grown around the row (its area drawn here and appended to ``patches``):
        the area-weighted sum of its rows' columns, one moment spread over the patch.
        """
        if self.patch_geometry is None:
            return gain[:, self.hemisphere_rows[row]], np.array([row]), np.ones(1)
        areas, edges = self.patch_geometry
        area_cm2 = float(_log_uniform(rng, *self.config.simulation.PATCH_AREA_CM2))
        rows, weights = grow_patch(row, area_cm2 * 1e-4, areas, edges)
        patches.append((rows, area_cm2, float(areas[rows].sum() * 1e4)))
        return gain[:, self.hemisphere_rows[rows]] @ weights, rows, weights

    def _patch_record(self, patches):
        """The manifest's record of the patches drawn per window (empty for point dipoles)."""
        if self.patch_geometry is None:
            return {}
        return {"patches": {
            "area_cm2_drawn": [[_round(drawn) for _, drawn, _ in window] for window in patches],
            "area_cm2": [[_round(area) for _, _, area in window] for window in patches],
            "rows": [[[int(r) for r in rows] for rows, _, _ in window] for window in patches],
        }}

    def _recording_sources(self, gain, noise_std, activations, snr_targets, rng):
        """Recording-like data: own onsets, durations and waveforms, silences, varied noise.

        See :func:`draw_recording_schedule`.  Each window's dipoles are scaled to its SNR
        against its own noise level (the noise's whitened RMS is the drawn level).
        """
        sim = self.config.simulation
        whitener = 1.0 / noise_std
        schedule = draw_recording_schedule(activations, self.sfreq, sim, rng)
        n_times = schedule["n_times"]
        signal = np.zeros((gain.shape[0], n_times))
        noise = np.zeros_like(signal)
        truth = np.zeros((len(self.hemisphere_rows), n_times), dtype=np.float32)
        amplitudes, windows, patches = [], [], []
        for index, (rows, snr) in enumerate(zip(activations, snr_targets)):
            patches.append([])
            level = schedule["noise_levels"][index]
            start, stop = schedule["segments"][index]
            noise[:, start:stop] = level * segment_noise(
                schedule["noise_kinds"][index], stop - start, noise_std, gain,
                sim.BRAIN_NOISE_SOURCES, rng,
            )
            amps, dipole_ms = [], []
            for row, onset, length, kind, freq in zip(
                rows, schedule["source_onsets"][index], schedule["source_durations"][index],
                schedule["waveforms"][index], schedule["frequencies_hz"][index],
            ):
                waveform = source_waveform(kind, int(length), self.sfreq, freq, rng)
                column, source_rows, weights = self._source_gain(gain, row, rng, patches[-1])
                amp = dipole_amplitudes(column[:, np.newaxis], [0], whitener, snr * level,
                                        waveform)[0]
                moments = amp * waveform
                signal[:, onset : onset + length] += np.outer(column, moments)
                truth[source_rows, onset : onset + length] += np.outer(weights, moments)
                norm = np.linalg.norm(column * whitener)
                dipole_ms.append(norm**2 * amp**2 * np.mean(waveform**2) / len(whitener))
                amps.append(amp)
            amplitudes.append(np.array(amps))
            onset = int(schedule["window_onsets"][index])
            length = int(schedule["window_durations"][index])
            windows.append((slice(onset, onset + max(length, 1)), np.array(dipole_ms)))
        silent = np.abs(truth).max(axis=0) == 0 if truth.size else np.ones(n_times, bool)
        record = {
            "timing": "recording",
            "window_durations": [int(d) for d in schedule["window_durations"]],
            "sources": {
                "onsets": [[int(o) for o in on] for on in schedule["source_onsets"]],
                "durations": [[int(d) for d in du] for du in schedule["source_durations"]],
                "waveforms": schedule["waveforms"],
                "frequencies_hz": [[_round(f) for f in fr] for fr in schedule["frequencies_hz"]],
            },
            "noise": {
                "segments": [[int(a), int(b)] for a, b in schedule["segments"]],
                "kinds": schedule["noise_kinds"],
                "levels": [_round(v) for v in schedule["noise_levels"]],
            },
            "noise_only_share": {
                "setting": float(sim.NOISE_ONLY_SHARE),
                "reached": float(np.mean(silent)) if n_times else 0.0,
            },
            **self._patch_record(patches),
        }
        return signal, noise, truth, windows, amplitudes, record


    def _noise_std(self, info, ch_names):
        """Noise standard deviation per data channel (the diagonal ad-hoc covariance)."""
        import mne

        cov = mne.make_ad_hoc_cov(mne.pick_info(info, mne.pick_channels(info["ch_names"], ch_names, ordered=True)), verbose=False)
        order = [cov["names"].index(name) for name in ch_names]
        return np.sqrt(np.asarray(cov["data"], dtype=np.float64)[order])

    def _empty_room_covariance(self, info, rng):
        """Noise covariance from a simulated empty-room recording (noise only)."""
        import mne

        sim = self.config.simulation
        fwd = self.head_model.fwd_fixed
        names = fwd["sol"]["row_names"]
        picks = mne.pick_channels(info["ch_names"], names, ordered=True)
        n_times = int(round(sim.EMPTY_ROOM_DURATION * self.sfreq))
        data = np.zeros((len(info["ch_names"]), n_times))
        data[picks] = rng.standard_normal((len(picks), n_times)) * self._noise_std(
            info, names
        )[:, np.newaxis]
        empty_room = mne.io.RawArray(data, info.copy(), verbose=False)
        empty_room.info["bads"] = [b for b in sim.BAD_CHANNELS if b in info["ch_names"]]
        if self.config.simulation.PREPROCESS:
            self._filter(empty_room)
        return mne.compute_raw_covariance(
            empty_room, method="empirical", picks="data", verbose=False
        )

    def _filter(self, raw):
        """Mark bad channels and apply the thesis's notch and band-pass filters in place."""
        sim = self.config.simulation
        raw.info["bads"] = [b for b in sim.BAD_CHANNELS if b in raw.ch_names]
        notch = [f for f in sim.NOTCH_FREQS if f < raw.info["sfreq"] / 2]
        n_jobs = self.config.n_jobs
        if notch:
            raw.notch_filter(notch, picks="data", n_jobs=n_jobs, verbose=False)
        raw.filter(
            sim.L_FREQ,
            sim.H_FREQ,
            picks="data",
            fir_design=sim.FIR_DESIGN,
            n_jobs=n_jobs,
            verbose=False,
        )
        return {"bads": list(raw.info["bads"]), "notch_hz": notch,
                "band_hz": [sim.L_FREQ, sim.H_FREQ]}

    def _preprocess(self, raw, seed):
        """Add artifacts, then filter, ICA and SSP as in the thesis (in place)."""
        import mne

        sim = self.config.simulation
        n_jobs = self.config.n_jobs
        mne.simulation.add_ecg(raw, n_jobs=n_jobs, random_state=seed, verbose=False)
        mne.simulation.add_eog(raw, n_jobs=n_jobs, random_state=seed + 1, verbose=False)
        record = {"artifacts": ["ecg", "eog"]}
        if not sim.PREPROCESS:
            return record
        record.update(self._filter(raw))
        reject = {k: v for k, v in sim.REJECT.items() if k in raw}
        n_components = min(sim.ICA_N_COMPONENTS, len(mne.pick_types(raw.info, meg=True, eeg=True)) - 1)
        ica = mne.preprocessing.ICA(
            n_components=n_components,
            method=sim.ICA_METHOD,
            random_state=seed,
            max_iter="auto",
        )
        try:
            ica.fit(raw, picks="data", reject=reject, verbose=False)
        except RuntimeError as exc:
            if "No clean segment" not in str(exc):
                raise
            # Loud simulated windows (high SNR, several dipoles, the whole recording busy
            # with activations) can exceed REJECT in every segment; the thesis's thresholds
            # target real artifacts, so ICA then sees all the data rather than none.
            logger.warning(
                "every segment exceeds simulation.REJECT %s: fitting ICA and SSP without "
                "rejection", reject,
            )
            reject = None
            ica.fit(raw, picks="data", reject=None, verbose=False)
        record["reject"] = reject
        found = {}
        for name, find in (("ecg", lambda: ica.find_bads_ecg(raw, method="ctps", verbose=False)),
                           ("eog", lambda: ica.find_bads_eog(raw, verbose=False))):
            try:
                found[name] = find()[0]
            except (RuntimeError, ValueError) as exc:
                # A split of a second or two can hold no detectable heartbeat or blink.
                logger.warning("no %s components found: %s", name.upper(), exc)
                found[name] = []
        ecg_idx, eog_idx = found["ecg"], found["eog"]
        ica.exclude = sorted(set(ecg_idx) | set(eog_idx))
        ica.apply(raw, verbose=False)
        record["ica_excluded"] = {"ecg": [int(i) for i in ecg_idx], "eog": [int(i) for i in eog_idx]}
        projs = []
        for name, func in (
            ("ecg", mne.preprocessing.compute_proj_ecg),
            ("eog", mne.preprocessing.compute_proj_eog),
        ):
            try:
                new, _ = func(
                    raw, n_grad=1, n_mag=1, n_eeg=1 if "eeg" in raw else 0,
                    reject=reject, n_jobs=n_jobs, verbose=False,
                )
            except (RuntimeError, ValueError) as exc:
                # A short split can hold too few heartbeats or blinks for an average.
                logger.warning("no %s projectors: %s", name.upper(), exc)
                new = []
            projs.extend(new or [])
        raw.add_proj(projs)
        record["ssp_projectors"] = [p["desc"] for p in projs]
        return record

    def _inverse_solution(self, raw, inv, method, chunk=10_000):
        """One inverse method applied to the whole recording, for the simulated hemisphere(s).

        Applied ``chunk`` samples at a time: a loose-orientation solution holds three rows per
        source before they are combined, so one application to a whole split needs 3 x
        sources x samples floats at once (an ico4 split of the quick profile ran out of 24 GB).

        Returns
        -------
        solution : ndarray of float32, shape (n_hemisphere_rows, n_times)
        """
        import mne

        lambda2 = self.config.lambda2
        prepared = mne.minimum_norm.prepare_inverse_operator(inv, 1, lambda2, method,
                                                             verbose=False)
        label = None
        if self.config.hemisphere != "both":
            index = ("lh", "rh").index(self.config.hemisphere)
            label = mne.Label(vertices=inv["src"][index]["vertno"],
                              hemi=self.config.hemisphere)
        solution = np.empty((len(self.hemisphere_rows), raw.n_times), dtype=np.float32)
        for start in range(0, raw.n_times, chunk):
            stop = min(start + chunk, raw.n_times)
            solution[:, start:stop] = mne.minimum_norm.apply_inverse_raw(
                raw, prepared, lambda2, method, label=label, start=start, stop=stop,
                pick_ori=None, prepared=True, verbose=False).data
        return solution

    def _hemisphere_estimate(self, data, raw, rows_are_hemisphere=False):
        """A SourceEstimate of the simulated hemisphere(s) only, stored as float32."""
        import mne

        rows = slice(None) if rows_are_hemisphere else self.hemisphere_rows
        return mne.SourceEstimate(
            np.asarray(data[rows], dtype=np.float32),
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
        window_ratio = window_reached / snr_targets
        dipole_ratio = np.concatenate(
            [reached / target for reached, target in zip(snr_reached["dipoles"], snr_targets)]
        )
        counts = np.array([len(rows) for rows in activations])
        durations = timing.get("window_durations", [len(self.waveform)] * len(activations))
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
            "samples_per_activation": len(self.waveform),
            "gap_samples": self.gap,
            # the SNR setting: a number, or [low, high] when each window drew its own target
            "snr_target": _jsonable_range(config.snr),
            "snr_target_label": config.snr_label,
            "snr_reached": {
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
                    **_summary(window_ratio),
                },
            },
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
                "snr_target": [_round(v) for v in snr_targets],
                "snr_reached": [_round(v) for v in window_reached],
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


def _round(value, digits=4):
    """A float rounded to ``digits`` significant digits (manifest lists stay readable)."""
    return float(f"{float(value):.{digits}g}")


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
    for name, checksum in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file() or sha256sum(path) != checksum:
            logger.warning("%s: %s is missing or changed; the split will be rebuilt", directory, name)
            return "corrupt"
    return "complete"


def _mismatch_message(directory, config):
    manifest = read_json(Path(directory) / "manifest.json")
    old = data_part(manifest.get("config", {}))
    new = config.data_settings()
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    details = "; ".join(
        f"{k}: {old.get(k)!r} on disk, {new.get(k)!r} now"
        for k in differing
        if k != "RESOLVED_PARAMETERS"
    )
    if "RESOLVED_PARAMETERS" in differing:
        details += ("; " if details else "") + "simulation or head-model parameters differ"
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
