"""The sources of a simulated split: where, when and how strong, and their sensor data.

Stages 1 and 2 of a split (see :mod:`meg_unet.simulation`): the activations drawn per window
(:func:`draw_activations`, :func:`draw_snrs`), the thesis's fixed rhythm or the
recording-like timing (:func:`draw_recording_schedule`), point dipoles or patches of cortex
(:func:`grow_patch`), amplitudes scaled to each window's SNR (:func:`dipole_amplitudes`), and
their projection to the sensors with noise added (:func:`sensor_data`).  Every draw comes from
the split's seeded generator, in a fixed order, so a split is reproduced exactly.
"""

import dataclasses

import numpy as np

from .sensor_processing import noise_std as sensor_noise_std

__all__ = [
    "SourceSetup",
    "activation_waveform",
    "dipole_amplitudes",
    "draw_activations",
    "draw_recording_schedule",
    "draw_snrs",
    "grow_patch",
    "mesh_geometry",
    "recording_sources",
    "round_significant",
    "segment_noise",
    "sensor_data",
    "source_setup",
    "source_waveform",
    "thesis_sources",
]


@dataclasses.dataclass(frozen=True)
class SourceSetup:
    """Where and how the sources of a run are drawn (build it with :func:`source_setup`).

    Attributes
    ----------
    sim : FrozenNamespace
        The ``simulation`` parameters.
    sfreq : float
        The sampling rate (Hz).
    hemisphere_rows : ndarray of int
        Columns of the forward solution (source-space order, lh then rh) where dipoles go.
    vertices : dict
        Vertex numbers of the simulated hemisphere(s): ``{"lh": ..., "rh": ...}`` (the other
        hemisphere empty unless HEMISPHERE = "both").
    waveform : ndarray
        The thesis's activation waveform.
    gap : int
        The silent samples after each of the thesis's activations.
    patch_geometry : tuple | None
        Vertex areas and mesh edges of the hemisphere rows (:func:`mesh_geometry`) when
        sources are patches (``simulation.PATCH_AREA_CM2``), else None.
    """

    sim: object
    sfreq: float
    hemisphere_rows: np.ndarray
    vertices: dict
    waveform: np.ndarray
    gap: int
    patch_geometry: tuple | None


def source_setup(config, head_model):
    """Return the :class:`SourceSetup` of a run's configuration and head model."""
    sim = config.simulation
    sfreq = float(head_model.info["sfreq"])
    if abs(sfreq - sim.SFREQ) > 1e-6:
        raise ValueError(
            f"the head model's sampling rate is {sfreq} Hz, but simulation.SFREQ is "
            f"{sim.SFREQ} Hz"
        )
    src = head_model.src
    n_lh = len(src[0]["vertno"])
    lh_vertno, rh_vertno = src[0]["vertno"], src[1]["vertno"]
    empty = np.array([], int)
    if config.hemisphere == "lh":
        rows, vertices = np.arange(n_lh), {"lh": lh_vertno, "rh": empty}
    elif config.hemisphere == "rh":
        rows, vertices = n_lh + np.arange(len(rh_vertno)), {"lh": empty, "rh": rh_vertno}
    else:
        rows, vertices = np.arange(n_lh + len(rh_vertno)), {"lh": lh_vertno, "rh": rh_vertno}
    return SourceSetup(
        sim=sim,
        sfreq=sfreq,
        hemisphere_rows=rows,
        vertices=vertices,
        waveform=activation_waveform(sfreq, sim.SAMPLES_PER_ACTIVATION, sim.WAVEFORM_FREQ),
        gap=int(round(sim.EMPTY_SIGNAL * sim.SAMPLES_PER_ACTIVATION)),
        patch_geometry=mesh_geometry(src, rows) if sim.PATCH_AREA_CM2 is not None else None,
    )


def round_significant(value, digits=4):
    """A float rounded to ``digits`` significant digits (manifest lists stay readable)."""
    return float(f"{float(value):.{digits}g}")


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
# Sources to sensors
# --------------------------------------------------------------------------------------------


def sensor_data(setup, fwd, info, activations, snr_targets, rng):
    """Project the activations through the forward model and add noise.

    Each window's dipoles are scaled to that window's entry of ``snr_targets``.  Returns
    the raw data, the true source time courses, the SNR reached (a dict of arrays:
    ``"window"``, per window, of the summed signal; ``"dipoles"``, per window, of each
    dipole's own signal), the onsets and the amplitudes (Am), and what the
    ``"recording"`` timing drew (a dict for the manifest; empty for ``"thesis"``).
    """
    import mne

    data_picks = mne.pick_channels(info["ch_names"], fwd["sol"]["row_names"], ordered=True)
    gain = fwd["sol"]["data"]
    noise_std = sensor_noise_std(info, fwd["sol"]["row_names"])
    whitener = 1.0 / noise_std
    if setup.sim.TIMING == "recording":
        signal, noise, truth, windows, amplitudes, record = recording_sources(
            setup, gain, noise_std, activations, snr_targets, rng
        )
    else:
        signal, noise, truth, windows, amplitudes, record = thesis_sources(
            setup, gain, noise_std, activations, snr_targets, rng
        )
    snr_reached = _snr_reached(signal, noise, whitener, windows)
    data = np.zeros((len(info["ch_names"]), signal.shape[1]))
    data[data_picks] = signal + noise
    raw = mne.io.RawArray(data, info, verbose=False)
    onsets = np.array([window.start for window, _ in windows], dtype=np.int64)
    return raw, truth, snr_reached, onsets, amplitudes, record


def thesis_sources(setup, gain, noise_std, activations, snr_targets, rng):
    """The thesis's rhythm: the same waveform and gap in every window, white noise."""
    whitener = 1.0 / noise_std
    n_active = len(setup.waveform)
    period = n_active + setup.gap
    n_times = period * len(activations)
    signal = np.zeros((gain.shape[0], n_times))
    truth = np.zeros((len(setup.hemisphere_rows), n_times), dtype=np.float32)
    onsets = np.arange(len(activations)) * period
    amplitudes, windows, patches = [], [], []
    waveform_ms = np.mean(setup.waveform**2)
    for onset, rows, snr in zip(onsets, activations, snr_targets):
        patches.append([])
        sources = [_source_gain(setup, gain, row, rng, patches[-1]) for row in rows]
        columns = np.stack([column for column, _, _ in sources], axis=1)
        amps = dipole_amplitudes(columns, np.arange(len(sources)), whitener, snr,
                                 setup.waveform)
        amplitudes.append(amps)
        moments = amps[:, np.newaxis] * setup.waveform[np.newaxis, :]
        signal[:, onset : onset + n_active] += columns @ moments
        for (_, source_rows, weights), moment in zip(sources, moments):
            truth[source_rows, onset : onset + n_active] += np.outer(weights, moment)
        # one dipole's whitened signal is (W g) a s(t): its mean square over channels and
        # samples is ||W g||^2 a^2 mean(s^2) / n_channels
        norms = np.linalg.norm(columns * whitener[:, None], axis=0)
        windows.append((slice(onset, onset + n_active),
                        norms**2 * amps**2 * waveform_ms / len(whitener)))
    noise = rng.standard_normal(signal.shape) * noise_std[:, np.newaxis]
    return signal, noise, truth, windows, amplitudes, _patch_record(setup, patches)


def _source_gain(setup, gain, row, rng, patches):
    """The gain column of the source drawn at ``row``, and its rows and weights in the truth.

    A point dipole is the row's own column.  With ``simulation.PATCH_AREA_CM2`` the source
    is a patch grown around the row (its area drawn here and appended to ``patches``):
    the area-weighted sum of its rows' columns, one moment spread over the patch.
    """
    if setup.patch_geometry is None:
        return gain[:, setup.hemisphere_rows[row]], np.array([row]), np.ones(1)
    areas, edges = setup.patch_geometry
    area_cm2 = float(_log_uniform(rng, *setup.sim.PATCH_AREA_CM2))
    rows, weights = grow_patch(row, area_cm2 * 1e-4, areas, edges)
    patches.append((rows, area_cm2, float(areas[rows].sum() * 1e4)))
    return gain[:, setup.hemisphere_rows[rows]] @ weights, rows, weights


def _patch_record(setup, patches):
    """The manifest's record of the patches drawn per window (empty for point dipoles)."""
    if setup.patch_geometry is None:
        return {}
    return {"patches": {
        "area_cm2_drawn": [[round_significant(drawn) for _, drawn, _ in window]
                           for window in patches],
        "area_cm2": [[round_significant(area) for _, _, area in window] for window in patches],
        "rows": [[[int(r) for r in rows] for rows, _, _ in window] for window in patches],
    }}


def recording_sources(setup, gain, noise_std, activations, snr_targets, rng):
    """Recording-like data: own onsets, durations and waveforms, silences, varied noise.

    See :func:`draw_recording_schedule`.  Each window's dipoles are scaled to its SNR
    against its own noise level (the noise's whitened RMS is the drawn level).
    """
    sim = setup.sim
    whitener = 1.0 / noise_std
    schedule = draw_recording_schedule(activations, setup.sfreq, sim, rng)
    n_times = schedule["n_times"]
    signal = np.zeros((gain.shape[0], n_times))
    noise = np.zeros_like(signal)
    truth = np.zeros((len(setup.hemisphere_rows), n_times), dtype=np.float32)
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
            waveform = source_waveform(kind, int(length), setup.sfreq, freq, rng)
            column, source_rows, weights = _source_gain(setup, gain, row, rng, patches[-1])
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
            "frequencies_hz": [[round_significant(f) for f in fr]
                               for fr in schedule["frequencies_hz"]],
        },
        "noise": {
            "segments": [[int(a), int(b)] for a, b in schedule["segments"]],
            "kinds": schedule["noise_kinds"],
            "levels": [round_significant(v) for v in schedule["noise_levels"]],
        },
        "noise_only_share": {
            "setting": float(sim.NOISE_ONLY_SHARE),
            "reached": float(np.mean(silent)) if n_times else 0.0,
        },
        **_patch_record(setup, patches),
    }
    return signal, noise, truth, windows, amplitudes, record
