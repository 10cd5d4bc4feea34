"""The sensor-level stages of a simulated split: noise, empty room, artifacts, cleaning, inverse.

The stages after the sources are projected to the sensors (see :mod:`meg_unet.simulation`):
the white sensor noise (the diagonal of MNE's ad-hoc covariance), the noise covariance of a
simulated empty-room recording, the thesis's artifacts and cleaning (ECG and EOG, notch and
band-pass filters, ICA and SSP, thesis section 3.3) and the inverse solutions of the simulated
hemisphere(s).
"""

import logging

import numpy as np

from .constants import HEMISPHERE_NAMES

logger = logging.getLogger("meg_unet")

__all__ = ["add_artifacts_and_clean", "empty_room_covariance", "filter_raw",
           "inverse_solution", "noise_std"]


def noise_std(info, ch_names):
    """Noise standard deviation per data channel (the diagonal ad-hoc covariance)."""
    import mne

    picks = mne.pick_channels(info["ch_names"], ch_names, ordered=True)
    cov = mne.make_ad_hoc_cov(mne.pick_info(info, picks), verbose=False)
    order = [cov["names"].index(name) for name in ch_names]
    return np.sqrt(np.asarray(cov["data"], dtype=np.float64)[order])


def empty_room_covariance(info, fwd, sim, n_jobs, rng):
    """Noise covariance from a simulated empty-room recording (noise only).

    Parameters
    ----------
    info : mne.Info
        The recording's measurement info.
    fwd : mne.Forward
        The forward solution, whose channels carry noise.
    sim : FrozenNamespace
        The ``simulation`` parameters (EMPTY_ROOM_DURATION, BAD_CHANNELS, PREPROCESS, filters).
    n_jobs : int
        Jobs of the filters.
    rng : numpy.random.Generator
        The split's random generator.

    Returns
    -------
    cov : mne.Covariance
        The empirical covariance of the (filtered) empty room.
    """
    import mne

    names = fwd["sol"]["row_names"]
    picks = mne.pick_channels(info["ch_names"], names, ordered=True)
    n_times = int(round(sim.EMPTY_ROOM_DURATION * info["sfreq"]))
    data = np.zeros((len(info["ch_names"]), n_times))
    data[picks] = rng.standard_normal((len(picks), n_times)) * noise_std(info, names)[:, None]
    empty_room = mne.io.RawArray(data, info.copy(), verbose=False)
    empty_room.info["bads"] = [b for b in sim.BAD_CHANNELS if b in info["ch_names"]]
    if sim.PREPROCESS:
        filter_raw(empty_room, sim, n_jobs)
    return mne.compute_raw_covariance(
        empty_room, method="empirical", picks="data", verbose=False
    )


def filter_raw(raw, sim, n_jobs):
    """Mark bad channels and apply the thesis's notch and band-pass filters in place.

    Returns the manifest's record of what was done (bads, notch and band frequencies).
    """
    raw.info["bads"] = [b for b in sim.BAD_CHANNELS if b in raw.ch_names]
    notch = [f for f in sim.NOTCH_FREQS if f < raw.info["sfreq"] / 2]
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


def add_artifacts_and_clean(raw, sim, seed, n_jobs):
    """Add ECG and EOG artifacts, then filter, ICA and SSP as in the thesis (in place).

    Returns the manifest's record of what was done.
    """
    import mne

    mne.simulation.add_ecg(raw, n_jobs=n_jobs, random_state=seed, verbose=False)
    mne.simulation.add_eog(raw, n_jobs=n_jobs, random_state=seed + 1, verbose=False)
    record = {"artifacts": ["ecg", "eog"]}
    if not sim.PREPROCESS:
        return record
    record.update(filter_raw(raw, sim, n_jobs))
    reject = {k: v for k, v in sim.REJECT.items() if k in raw}
    n_data = len(mne.pick_types(raw.info, meg=True, eeg=True))
    n_components = min(sim.ICA_N_COMPONENTS, n_data - 1)
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
    record["ica_excluded"] = {"ecg": [int(i) for i in ecg_idx],
                              "eog": [int(i) for i in eog_idx]}
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


def inverse_solution(raw, inv, method, lambda2, hemisphere, chunk=10_000):
    """One inverse method applied to the whole recording, for the simulated hemisphere(s).

    Applied ``chunk`` samples at a time: a loose-orientation solution holds three rows per
    source before they are combined, so one application to a whole split needs 3 x
    sources x samples floats at once (an ico4 split of the quick profile ran out of 24 GB).

    Parameters
    ----------
    raw : mne.io.Raw
        The recording.
    inv : mne.minimum_norm.InverseOperator
        The inverse operator.
    method : "MNE" | "dSPM" | "sLORETA"
        The method, in MNE's spelling.
    lambda2 : float
        The regularization.
    hemisphere : "lh" | "rh" | "both"
        The hemisphere(s) kept.
    chunk : int
        Samples per application.

    Returns
    -------
    solution : ndarray of float32, shape (n_hemisphere_rows, n_times)
    """
    import mne

    prepared = mne.minimum_norm.prepare_inverse_operator(inv, 1, lambda2, method,
                                                         verbose=False)
    label = None
    if hemisphere == "both":
        n_rows = sum(len(s["vertno"]) for s in inv["src"])
    else:
        index = HEMISPHERE_NAMES.index(hemisphere)
        label = mne.Label(vertices=inv["src"][index]["vertno"], hemi=hemisphere)
        n_rows = len(label.vertices)
    solution = np.empty((n_rows, raw.n_times), dtype=np.float32)
    for start in range(0, raw.n_times, chunk):
        stop = min(start + chunk, raw.n_times)
        solution[:, start:stop] = mne.minimum_norm.apply_inverse_raw(
            raw, prepared, lambda2, method, label=label, start=start, stop=stop,
            pick_ori=None, prepared=True, verbose=False).data
    return solution
