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

Every file opens with plain ``mne.read_*``.  The readers here name the file and the way out
when it cannot be read (:class:`meg_unet.errors.FileError`), instead of letting an h5py or MNE
traceback escape.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from .constants import ESTIMATE_KINDS  # noqa: F401  (re-exported)
from .errors import FileError, UserError

SPLITS = ("train", "valid", "test")
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


def read_json(path, remedy="rerun the step that wrote it"):
    """Read a JSON file; a damaged one raises a FileError that names it and ``remedy``."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FileError(f"{path} is not valid JSON ({exc}); {remedy}") from exc


def describe_exception(exc):
    """``"TypeName: message"``, or the type's name alone when the message is empty."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_with(reader, path, what, remedy, *args, **kwargs):
    """Call ``reader(path, *args, **kwargs)``; a failure of the reader names the file.

    Readers of h5py and MNE fail on a truncated, damaged or foreign file with messages that do
    not name it (``OSError: Unable to synchronously open file``, a bare ``AssertionError``).

    Parameters
    ----------
    reader : callable
        The reader, e.g. ``mne.read_source_estimate``.
    path : path-like
        The file.
    what : str
        What the file should be, with its article, e.g. ``"a source estimate"``.
    remedy : str
        How to get a readable file, e.g. ``"rerun simulate_data.py"``.
    *args, **kwargs
        Passed to ``reader``.

    Returns
    -------
    out
        What the reader returns.

    Raises
    ------
    FileError
        If the reader raises anything but a :class:`meg_unet.errors.UserError`.
    """
    try:
        return reader(path, *args, **kwargs)
    except UserError:
        raise
    except Exception as exc:  # any failure of a third-party reader means: this file is bad
        raise FileError(
            f"{path} cannot be read as {what} ({describe_exception(exc)}); {remedy}"
        ) from exc


def changed_files(directory, manifest, names):
    """Return those of ``names`` whose SHA-256 differs from the manifest's checksum.

    Parameters
    ----------
    directory : path-like
        The folder of the files and of the manifest.
    manifest : dict
        The manifest; its ``files`` entry maps file names to checksums.  A file it does not
        list is not checked.
    names : iterable of str
        File names in ``directory``.

    Returns
    -------
    changed : list of str
        The names whose file is missing or whose content changed since the manifest was
        written.
    """
    listed = manifest.get("files") or {}
    changed = []
    for name in names:
        if name not in listed:
            continue
        path = Path(directory) / name
        if not path.is_file() or sha256sum(path) != listed[name]:
            changed.append(name)
    return changed


def file_checksums(directory, names):
    """``{name: SHA-256}`` of files in ``directory`` (the ``files`` entry of a manifest)."""
    return {name: sha256sum(Path(directory) / name) for name in names}


class Stage:
    """A group of files built together, with a manifest that says whether they are current.

    The one up-to-date mechanism of the project's outputs that are rebuilt on demand (the
    head-model cache's surfaces, BEM, source spaces and forwards; the figures of a run).  The
    manifest holds the build parameters, the mne version and the SHA-256 of every file
    (:func:`file_checksums`, as a data split's manifest does); it is written last, so that
    files without a manifest are a partial build.  The stage is current when the manifest
    exists, its parameters and mne version are today's and no file changed
    (:func:`changed_files`).

    Parameters
    ----------
    root : path-like
        The folder the file names are relative to.
    name : str
        Stage name; the manifest is ``root / "manifests" / f"{name}.json"``.
    params : dict
        JSON-serialisable build parameters (for a figure: the checksums of its inputs); any
        change makes the stage stale.
    files : list of str
        Paths, relative to ``root``, of the files the stage writes.
    """

    #: Version of the manifest layout; a manifest of another version is stale.
    VERSION = 2

    def __init__(self, root, name, params, files):
        self.root = Path(root)
        self.name = name
        self.params = json.loads(json.dumps(params, sort_keys=True, default=str))
        self.files = list(files)
        self.manifest_path = self.root / "manifests" / f"{name}.json"

    def path(self, rel):
        """Absolute path of one of the stage's files."""
        return self.root / rel

    def problem(self):
        """Why the stage is not current, or None when it is complete, intact and current."""
        import mne

        if not self.manifest_path.is_file():
            present = [rel for rel in self.files if self.path(rel).exists()]
            if present:
                return f"partial build: {present[0]} exists but the manifest is missing"
            return "not built"
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as err:
            return f"unreadable manifest {self.manifest_path} ({err})"
        if not isinstance(manifest, dict) or manifest.get("manifest_version") != self.VERSION:
            return f"manifest {self.manifest_path} of another layout"
        if manifest.get("mne_version") != mne.__version__:
            return f"built with mne {manifest.get('mne_version')}, running mne {mne.__version__}"
        if manifest.get("params") != self.params:
            return "build parameters changed"
        if sorted(manifest.get("files") or {}) != sorted(self.files):
            return "the manifest lists other files"
        changed = changed_files(self.root, manifest, self.files)
        if changed:
            return f"checksum mismatch for {self.path(changed[0])} (missing or changed)"
        return None

    def invalidate(self):
        """Remove the manifest (before rebuilding files in place)."""
        self.manifest_path.unlink(missing_ok=True)

    def checksums(self):
        """``{relative path: SHA-256}`` of the stage's files, as its manifest records them."""
        return json.loads(self.manifest_path.read_text())["files"]

    def commit(self):
        """Record the files' checksums and the parameters; call after every file is written."""
        import mne

        missing = [rel for rel in self.files if not self.path(rel).is_file()]
        if missing:
            raise RuntimeError(f"stage {self.name!r} did not write {self.path(missing[0])}")
        write_json(self.manifest_path, dict(
            manifest_version=self.VERSION, stage=self.name, mne_version=mne.__version__,
            params=self.params, files=file_checksums(self.root, self.files),
        ))


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


# --------------------------------------------------------------------------------------------
# Recordings given by the user
# --------------------------------------------------------------------------------------------

_RAW_REMEDY = (
    "give a raw recording in a format that mne.io.read_raw reads by its file extension (a FIF "
    "file such as rec_raw.fif, or EDF, BrainVision, CTF, ...), or read it with MNE's reader "
    "for its format and save it as FIF (raw.save('rec_raw.fif'))"
)


def _raw_reader_names(fname):
    """The MNE readers that ``mne.io.read_raw`` picks for a file's extension, as text."""
    try:  # a private table of mne; without it the message just leaves the readers out
        from mne.io._read_raw import _get_readers, split_name_ext

        readers = _get_readers().get(split_name_ext(fname)[1], {})
    except Exception:
        return ""
    return " or ".join(f"mne.io.{func.__name__} ({kind})" for kind, func in readers.items())


def read_raw_recording(fname):
    """Open a raw recording with the reader its extension names, and check that it is whole.

    The data stay on disk (``preload=False``); the last sample is read once, so that a
    truncated file is refused here, not after most of a long computation.

    Parameters
    ----------
    fname : path-like
        The recording.

    Returns
    -------
    raw : mne.io.BaseRaw
        The recording.

    Raises
    ------
    FileError
        If no reader takes the file, the reader fails, or its last sample cannot be read.
    """
    import mne

    fname = Path(fname)
    readers = _raw_reader_names(fname)
    what = "a raw recording" + (f" by {readers}, the reader of its extension" if readers else "")
    raw = read_with(mne.io.read_raw, fname, what, _RAW_REMEDY, preload=False, verbose=False)
    try:
        raw.get_data(start=raw.n_times - 1, stop=raw.n_times)
    except Exception as exc:  # a reader failing on the file's data: truncated or damaged
        raise FileError(
            f"{fname} is truncated or damaged: its last sample (number {raw.n_times - 1}) "
            f"cannot be read ({describe_exception(exc)}); copy or export the recording again"
        ) from exc
    return raw


def read_evoked_recording(fname):
    """Read the first condition of an evoked file (``-ave.fif``); a bad file is named."""
    import mne

    return read_with(
        mne.read_evokeds,
        fname,
        "an evoked response (-ave.fif)",
        "give an evoked file that mne.read_evokeds reads (evoked.save('rec-ave.fif'))",
        condition=0,
        verbose=False,
    )


def read_inverse(fname):
    """Read an inverse operator (``-inv.fif``); a bad file is named."""
    import mne

    return read_with(
        mne.minimum_norm.read_inverse_operator,
        fname,
        "an inverse operator (-inv.fif)",
        "give a file written by mne.minimum_norm.write_inverse_operator",
        verbose=False,
    )


def read_history(path):
    """Read a training history written by Keras's ``CSVLogger`` (``history.csv``).

    Parameters
    ----------
    path : path-like
        The CSV file (columns ``epoch``, ``loss``, ``val_loss`` and maybe others).

    Returns
    -------
    history : pandas.DataFrame
        The numeric columns, one row per epoch, sorted by epoch (the row number when there is
        no ``epoch`` column).  An epoch logged twice, as when a training resumed after a
        crash redid it, counts once, with its last values.  Empty when the file is missing
        or empty (a training stopped before its first epoch ended).
    """
    import pandas as pd

    path = Path(path)
    try:
        history = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame({"epoch": np.zeros(0, dtype=int)})
    history.columns = [str(c).strip() for c in history.columns]
    history = history.apply(pd.to_numeric, errors="coerce")
    if "epoch" not in history.columns:
        history.insert(0, "epoch", np.arange(len(history)))
    history = history.drop_duplicates("epoch", keep="last")
    return history.sort_values("epoch").reset_index(drop=True)
