"""Write small fake data splits in the on-disk layout of :mod:`meg_unet.io`, from random data.

For tests that need a split on disk but not a real simulation (seconds instead of minutes).  A
fake split has a real source space (pass one, e.g. ``tiny_head_model.src``), the four
``-stc.h5`` source estimates and a ``manifest.json`` with the entries that readers check.  Its
estimates are not inverse solutions: each is the true activity, blurred to the neighbouring
rows, scaled to the method's typical magnitude and buried in noise, which is enough for a
network to learn something in a few steps.

Example
-------
>>> config = validate_settings({"PROFILE": "tiny", "SPACING": "ico2", "DATA_DIR": tmp, ...})
>>> write_fake_run(config, tiny_head_model.src, n_samples=1200)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np

from meg_unet.io import SPLITS, sha256sum, split_files, write_json

#: Typical magnitudes of the estimates: MNE in A m, dSPM and sLORETA unitless.
METHOD_SCALES = {"mne": 1e-10, "dspm": 5.0, "sloreta": 2.0}

#: The thesis's sampling rate (simulation.SFREQ).
SFREQ = 600.614990234375


def fake_truth(n_rows, n_samples, active_rows, samples_per_activation=20, gap=10,
               amplitude=1e-8, rng=None):
    """Return a truth array with one dipole at a time, and the activations' onsets and rows.

    Each activation is a half sine over ``samples_per_activation`` samples at a random row of
    ``active_rows``, followed by ``gap`` silent samples; the last window may be cut off.
    """
    rng = np.random.default_rng(rng)
    truth = np.zeros((n_rows, n_samples))
    window = samples_per_activation + gap
    waveform = amplitude * np.sin(np.pi * (np.arange(samples_per_activation) + 0.5)
                                  / samples_per_activation)
    onsets, rows = [], []
    for onset in range(0, n_samples, window):
        row = int(rng.choice(active_rows))
        stop = min(onset + samples_per_activation, n_samples)
        truth[row, onset:stop] = waveform[: stop - onset]
        onsets.append(onset)
        rows.append(row)
    return truth, onsets, rows


def write_fake_split(
    directory,
    src,
    split=None,
    *,
    hemisphere="rh",
    channels=("mne", "dspm", "sloreta"),
    n_samples=600,
    head_model="fsaverage",
    spacing="ico2",
    sensors="meg",
    orientation="loose",
    sfreq=SFREQ,
    noise=0.3,
    whole_source_space=True,
    config_hash="fake",
    random_state=0,
):
    """Write one fake split into ``directory`` and return its files by role.

    Parameters
    ----------
    directory : path-like
        The split's folder (created).
    src : mne.SourceSpaces
        A surface source space with both hemispheres.
    split : str | None
        The split's name (file names); None takes the folder's name.
    hemisphere : "rh" | "lh" | "both"
        Where dipoles are placed (and the manifest's HEMISPHERE).
    channels : sequence of str
        The manifest's CHANNELS; estimates of all three methods are written regardless (as the
        simulation does).
    n_samples : int
        Time samples.
    head_model, spacing, sensors, orientation : str
        What the manifest says the split was simulated with.
    sfreq : float
        Sampling rate in Hz.
    noise : float
        Noise level relative to an active source's peak.
    whole_source_space : bool
        Write estimates of both hemispheres (True) or of the simulated hemisphere(s) only, as
        :mod:`meg_unet.simulation` does (False).
    config_hash : str
        The manifest's config_hash.
    random_state : int | None
        Seed of the sources and the noise.

    Returns
    -------
    files : dict of str to Path
        As :func:`meg_unet.io.split_files`.
    """
    rng = np.random.default_rng(random_state)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = split_files(directory, split)
    split = directory.name if split is None else split

    vertno = {"lh": np.asarray(src[0]["vertno"]), "rh": np.asarray(src[1]["vertno"])}
    n_lh, n_rh = len(vertno["lh"]), len(vertno["rh"])
    hemi_rows = {
        "lh": np.arange(n_lh),
        "rh": n_lh + np.arange(n_rh),
        "both": np.arange(n_lh + n_rh),
    }[hemisphere]
    truth, onsets, rows = fake_truth(n_lh + n_rh, n_samples, hemi_rows, rng=rng)

    peak = np.abs(truth).max() or 1.0
    signal = truth / peak
    blurred = signal + 0.5 * (np.roll(signal, 1, axis=0) + np.roll(signal, -1, axis=0))
    if whole_source_space:
        kept = np.arange(n_lh + n_rh)
        vertices = [vertno["lh"], vertno["rh"]]
    else:
        kept = hemi_rows
        vertices = [
            vertno["lh"] if hemisphere in ("lh", "both") else np.array([], int),
            vertno["rh"] if hemisphere in ("rh", "both") else np.array([], int),
        ]

    def save(kind, data):
        stc = mne.SourceEstimate(
            np.asarray(data[kept], dtype=np.float32), vertices, tmin=0.0, tstep=1.0 / sfreq
        )
        stc.save(files[kind], ftype="h5", overwrite=True, verbose=False)

    for method, scale in METHOD_SCALES.items():
        if orientation == "loose":  # norms of three orientations: non-negative
            data = np.abs(blurred) + noise * np.abs(rng.standard_normal(blurred.shape))
        else:
            data = blurred + noise * rng.standard_normal(blurred.shape)
        save(method, scale * data)
    save("truth", truth)
    mne.write_source_spaces(files["src"], src, overwrite=True, verbose=False)

    manifest = {
        "split": split,
        "head_model": head_model,
        "spacing": spacing,
        "sensors": sensors,
        "hemisphere": hemisphere,
        "channels": list(channels),
        "orientation": orientation,
        "sfreq": float(sfreq),
        "n_samples": int(n_samples),
        "vertices": {
            "lh": [int(v) for v in vertices[0]],
            "rh": [int(v) for v in vertices[1]],
        },
        "activations": {"onsets": onsets, "rows": [[r] for r in rows]},
        "config_hash": config_hash,
        "files": {
            path.name: sha256sum(path)
            for role, path in files.items()
            if role != "manifest" and path.exists()
        },
    }
    write_json(files["manifest"], manifest)
    return files


def write_fake_run(config, src, n_samples=600, splits=SPLITS, random_state=0, **kwargs):
    """Write fake splits that match ``config`` under ``DATA_DIR/<RUN_NAME>/``.

    Parameters
    ----------
    config : meg_unet.config.Config
        Gives the folder and the manifest's head model, spacing, sensors, hemisphere,
        channels, orientation and config hash.
    src : mne.SourceSpaces
        The source space.
    n_samples : int | dict of str to int
        Samples per split (one number for all, or by split name).
    splits : sequence of str
        Which splits to write.
    random_state : int
        Seed; each split gets its own seed derived from it.
    **kwargs
        Passed to :func:`write_fake_split` (e.g. ``noise``, ``whole_source_space``).

    Returns
    -------
    run_dir : Path
        ``DATA_DIR/<RUN_NAME>``.
    """
    for index, split in enumerate(splits):
        samples = n_samples[split] if isinstance(n_samples, dict) else n_samples
        settings = dict(
            hemisphere=config.hemisphere,
            channels=config.channels,
            n_samples=samples,
            head_model=config.head_model,
            spacing=config.spacing,
            sensors=config.sensors,
            orientation=config.orientation,
            config_hash=config.result_hash(),
            random_state=[random_state, index],
        )
        settings.update(kwargs)
        write_fake_split(config.run_data_dir / split, src, split, **settings)
    return config.run_data_dir


def refresh_checksums(directory):
    """Write the current checksums of a split's files into its manifest.

    For tests that change a file on purpose and want it read, as if the simulation had
    written it so (a damaged file keeps its old checksum and is refused before it is read).
    """
    path = Path(directory) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {
        name: sha256sum(Path(directory) / name) for name in manifest.get("files", {})
    }
    write_json(path, manifest)
