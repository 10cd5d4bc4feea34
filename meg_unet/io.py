"""The on-disk layout of runs, manifests, checksums and atomic writes.

A run's data split lives in ``DATA_DIR/<run>/<split>/``::

    <split>_raw.fif             simulated (and preprocessed) recording
    <split>-src.fif             source space (vertex numbers and positions, both hemispheres)
    <split>-fwd.fif             forward solution (free orientation, as MNE writes it)
    <split>-cov.fif             noise covariance (from a simulated empty-room recording)
    <split>-inv.fif             inverse operator
    <split>-<method>-stc.h5     source estimates: method in mne, dspm, sloreta, truth
    manifest.json               settings, seeds, versions, sfreq, SNR reached, lambda2,
                                vertex numbers, activation windows, sample counts, checksums

Every file opens with plain ``mne.read_*``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")
ESTIMATE_KINDS = ("mne", "dspm", "sloreta", "truth")
MANIFEST = "manifest.json"


def split_dir(data_dir, run_name, split):
    """Return ``data_dir/run_name/split`` as a Path."""
    return Path(data_dir) / run_name / split


def split_files(directory, split=None):
    """Return the paths of one split's files by role.

    Parameters
    ----------
    directory : path-like
        The split's folder (``DATA_DIR/<run>/<split>``).
    split : str | None
        The split's name; None takes the folder's name.

    Returns
    -------
    files : dict of str to Path
        Keys ``raw``, ``src``, ``fwd``, ``cov``, ``inv``, ``manifest`` and one per estimate kind
        (``mne``, ``dspm``, ``sloreta``, ``truth``).
    """
    directory = Path(directory)
    split = directory.name if split is None else split
    files = {
        "raw": directory / f"{split}_raw.fif",
        "src": directory / f"{split}-src.fif",
        "fwd": directory / f"{split}-fwd.fif",
        "cov": directory / f"{split}-cov.fif",
        "inv": directory / f"{split}-inv.fif",
        "manifest": directory / MANIFEST,
    }
    for kind in ESTIMATE_KINDS:
        files[kind] = directory / f"{split}-{kind}-stc.h5"
    return files


def sha256sum(path, chunk_size=1 << 20):
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fid:
        for block in iter(lambda: fid.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    The temporary name keeps the final suffix (MNE checks file endings such as ``-stc.h5`` or
    ``_raw.fif``), and is removed if the block raises, so an interrupted write never leaves a
    file that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path, data):
    """Write ``data`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path):
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_cov(fname, verbose=None):
    """Read a noise covariance with native-endian float64 data.

    ``mne.read_cov`` (mne 1.13) returns a diagonal covariance as big-endian ``>f8``;
    ``make_inverse_operator``, ``mixed_norm`` and ``gamma_map`` then fail with a bare
    AssertionError.  Every covariance read by meg-unet goes through here.
    """
    import mne

    cov = mne.read_cov(fname, verbose=verbose)
    cov["data"] = np.asarray(cov["data"], dtype=np.float64)
    return cov


def read_forward(fname, fixed, verbose=None):
    """Read a forward solution and apply the orientation choice again.

    ``mne.write_forward_solution`` writes the free solution even after a fixed-orientation
    conversion, so the conversion is redone after reading.
    """
    import mne

    fwd = mne.read_forward_solution(fname, verbose=verbose)
    if fixed:
        fwd = mne.convert_forward_solution(
            fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose=verbose
        )
    return fwd
