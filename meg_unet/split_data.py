"""A simulated split as the per-window methods see it: its files, geometry and activations.

:func:`load_split` reads everything a method that works window by window needs (the raw
recording, forward, noise covariance, inverse operator, source space, true amplitudes and the
split's settings) into a :class:`SplitData`; :func:`activation_windows` lists the split's
activations as :class:`Window` objects, and :func:`choose_windows` picks a seeded subset of
them.  The baselines (:mod:`meg_unet.baselines`) and the sources benchmark score methods on
these windows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .constants import HEMISPHERE_NAMES
from .errors import check_int, is_number
from .io import read_cov, read_forward, read_json, split_files

_HEMIS = HEMISPHERE_NAMES


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """One activation window of a split.

    Attributes
    ----------
    index : int
        Position of the activation in the manifest (0-based).
    start, stop : int
        The window is the raw's samples ``start:stop``.
    rows : tuple of int
        The true sources, as rows of the hemisphere (source-space order).
    """

    index: int
    start: int
    stop: int
    rows: tuple

    @property
    def samples(self):
        """The window's sample indices, ``arange(start, stop)``."""
        return np.arange(self.start, self.stop)


def activation_windows(manifest):
    """Return a split's activation windows.

    Parameters
    ----------
    manifest : dict | path-like
        A split's manifest (``manifest.json``), or the path of one.

    Returns
    -------
    windows : list of Window
        One per activation, in the manifest's order: from each onset, the window's
        ``activations.durations`` samples (``samples_per_activation`` in manifests without
        them), and the activation's true rows.
    """
    if not isinstance(manifest, dict):
        manifest = read_json(manifest)
    try:
        activations = manifest["activations"]
        onsets, rows = activations["onsets"], activations["rows"]
        length = manifest["samples_per_activation"]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"the manifest lacks {exc}: it needs activations.onsets, activations.rows and "
            "samples_per_activation (written by simulate_data.py)"
        ) from None
    if len(onsets) != len(rows):
        raise ValueError(
            f"the manifest lists {len(onsets)} onsets but {len(rows)} sets of active rows"
        )
    length = check_int(length, "samples_per_activation", 1)
    # "recording" timing: each window lasts from its first source's onset to its last's offset
    lengths = activations.get("durations") or [length] * len(onsets)
    if len(lengths) != len(onsets):
        raise ValueError(
            f"the manifest lists {len(onsets)} onsets but {len(lengths)} durations"
        )
    return [
        Window(index, int(onset), int(onset) + int(duration), tuple(int(r) for r in active))
        for index, (onset, duration, active) in enumerate(zip(onsets, lengths, rows))
    ]


def choose_windows(n_total, n=None, seed=0):
    """Pick a fixed, seeded subset of window indices.

    Parameters
    ----------
    n_total : int
        Number of windows to choose from.
    n : int | None
        How many; None (or ``n >= n_total``) takes all of them.
    seed : int
        Seed of :func:`numpy.random.default_rng`: the same seed gives the same subset.

    Returns
    -------
    indices : ndarray of int, shape (min(n, n_total),)
        Sorted window indices: the first ``n`` of a seeded permutation, so that with the same
        ``seed`` a smaller subset is contained in a larger one (e.g. the slow solvers' windows
        in the fast ones').
    """
    n_total = check_int(n_total, "n_total", 0)
    if n is None:
        return np.arange(n_total)
    n = check_int(n, "n_windows", 1)
    if n >= n_total:
        return np.arange(n_total)
    # the first n of one seeded permutation: a smaller subset is part of a larger one
    order = np.random.default_rng(seed).permutation(n_total)
    return np.sort(order[:n])


# --------------------------------------------------------------------------------------------
# A split
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class SplitData:
    """What the baselines need of one simulated split; make it with :func:`load_split`.

    Attributes
    ----------
    directory : Path
        The split's folder.
    split : str
        The split's name (``metrics.csv``'s ``split`` column).
    manifest : dict
        The split's manifest.
    raw : mne.io.Raw
        The preprocessed recording (preloaded; projectors and bads as simulated).
    fwd : mne.Forward
        The free-orientation forward solution.
    cov : mne.Covariance
        The noise covariance (native float64, :func:`meg_unet.io.read_cov`).
    inv : mne.minimum_norm.InverseOperator
        The split's inverse operator (the simulation's).
    src : mne.SourceSpaces
        The source space (MRI coordinates).
    hemisphere : str
        ``"lh"``, ``"rh"`` or ``"both"``.
    vertices : list of ndarray of int
        ``[lh_vertno, rh_vertno]`` of the hemisphere's rows (the other hemisphere empty).
    vertno : ndarray of int, shape (n_vertices,)
        Vertex number of each row.
    positions : ndarray, shape (n_vertices, 3)
        Vertex positions in meters.
    adjacency : scipy sparse array, shape (n_vertices, n_vertices)
        Mesh adjacency of the rows.
    hemis : ndarray of str | None
        Hemisphere of each row with HEMISPHERE = "both", else None.
    amplitudes : ndarray of float32, shape (n_vertices, n_times)
        True amplitudes (A m) from ``<split>-truth-stc.h5``.
    active_threshold : float
        A source is active where ``|amplitude|`` exceeds it (the run's ACTIVE_THRESHOLD).
    border : int
        Rows left out at each edge of the hemisphere in the metrics.
    lambda2 : float
        The split's lambda2.
    orientation : str
        ``"loose"`` or ``"fixed"``.
    loose, depth : float
        The simulation's LOOSE (0 for fixed orientation) and DEPTH.
    windows : list of Window
        The activation windows.
    cache : dict
        Per-split setup (prepared inverse operators, LCMV filters), filled on first use.
    setup_seconds : dict
        The time each entry of ``cache`` took to make.
    """

    directory: Path
    split: str
    manifest: dict
    raw: object
    fwd: object
    cov: object
    inv: object
    src: object
    hemisphere: str
    vertices: list
    vertno: np.ndarray
    positions: np.ndarray
    adjacency: object
    hemis: object
    amplitudes: np.ndarray
    active_threshold: float
    border: int
    lambda2: float
    orientation: str
    loose: float
    depth: float
    windows: list
    cache: dict = dataclasses.field(default_factory=dict)
    setup_seconds: dict = dataclasses.field(default_factory=dict)

    @property
    def info(self):
        """The recording's measurement info (bads and projectors included)."""
        return self.raw.info

    @property
    def n_vertices(self):
        """Rows of the hemisphere (the estimates' first axis)."""
        return len(self.vertno)

    @property
    def hemispheres(self):
        """The simulated hemispheres, ``("lh",)``, ``("rh",)`` or ``("lh", "rh")``."""
        return _HEMIS if self.hemisphere == "both" else (self.hemisphere,)


def _parameter(manifest, section, name, default=None):
    """A resolved hyperparameter of the manifest's configuration."""
    value = manifest.get("config", {}).get("RESOLVED_PARAMETERS", {}).get(section, {}).get(name)
    if value is None:
        if default is None:
            raise ValueError(
                f"the manifest lacks config.RESOLVED_PARAMETERS.{section}.{name} (written by "
                "simulate_data.py)"
            )
        return default
    return value


def load_split(split_dir, border=None):
    """Read what the baselines need of a simulated split.

    Parameters
    ----------
    split_dir : path-like
        A split folder, ``DATA_DIR/<run>/<split>``.
    border : int | None
        Rows left out at each edge of the hemisphere in the metrics; None takes the run's
        ``network.BORDER`` from the manifest (2 when it has none).

    Returns
    -------
    data : SplitData
        The recording (preloaded), forward, noise covariance, inverse operator, source
        geometry, true amplitudes and activation windows.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing (the message names it).
    """
    import mne

    from .prediction import _read_hemisphere_rows, _source_geometry

    directory = Path(split_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a data split folder (it does not exist)")
    files = split_files(directory)
    for role in ("manifest", "raw", "fwd", "cov", "inv", "src", "truth"):
        if not files[role].is_file():
            raise FileNotFoundError(
                f"{files[role]} is missing: the baselines need the split's {role} file "
                "(simulate the split with simulate_data.py)"
            )
    manifest = read_json(files["manifest"])
    hemisphere, orientation, lambda2 = _check_split_manifest(manifest, files["manifest"])
    if border is None:
        border = _parameter(manifest, "network", "BORDER", default=2)
    border = check_int(border, "border", 0)

    raw = mne.io.read_raw_fif(files["raw"], preload=True, verbose=False)
    fwd = read_forward(files["fwd"], fixed=False, verbose=False)
    cov = read_cov(files["cov"], verbose=False)
    inv = mne.minimum_norm.read_inverse_operator(files["inv"], verbose=False)
    src = mne.read_source_spaces(files["src"], verbose=False)

    hemis_in_use = _HEMIS if hemisphere == "both" else (hemisphere,)
    vertices = [
        np.asarray(src[i]["vertno"] if h in hemis_in_use else [], dtype=np.int64)
        for i, h in enumerate(_HEMIS)
    ]
    listed = manifest.get("vertices", {})
    for index, hemi in enumerate(_HEMIS):
        if hemi in listed and not np.array_equal(listed[hemi], vertices[index]):
            raise ValueError(
                f"{files['manifest']}: its {hemi} vertices are not those of {files['src']}"
            )
    vertno = np.concatenate(vertices)
    positions, adjacency, hemis = _source_geometry(src, hemisphere)
    amplitudes = _read_hemisphere_rows(files["truth"], vertices)
    if amplitudes.shape[1] != raw.n_times:
        raise ValueError(
            f"{files['truth']} has {amplitudes.shape[1]} samples, but {files['raw']} has "
            f"{raw.n_times}"
        )
    windows = activation_windows(manifest)
    if windows and windows[-1].stop > raw.n_times:
        raise ValueError(
            f"{files['manifest']}: the last activation ends at sample {windows[-1].stop}, "
            f"after the end of {files['raw']} ({raw.n_times} samples)"
        )
    return SplitData(
        directory=directory, split=manifest.get("split") or directory.name, manifest=manifest,
        raw=raw, fwd=fwd, cov=cov, inv=inv, src=src, hemisphere=hemisphere, vertices=vertices,
        vertno=vertno, positions=positions, adjacency=adjacency, hemis=hemis,
        amplitudes=amplitudes,
        active_threshold=float(
            _parameter(manifest, "data_provider", "ACTIVE_THRESHOLD", default=1e-20)),
        border=border, lambda2=lambda2, orientation=orientation,
        loose=0.0 if orientation == "fixed" else float(
            _parameter(manifest, "simulation", "LOOSE")),
        depth=float(_parameter(manifest, "simulation", "DEPTH")), windows=windows,
    )


def _check_split_manifest(manifest, path):
    """The hemisphere, orientation and lambda2 of a split's manifest, checked."""
    hemisphere = manifest.get("hemisphere")
    if hemisphere not in ("lh", "rh", "both"):
        raise ValueError(f"{path}: unknown hemisphere {hemisphere!r}")
    orientation = manifest.get("orientation", "loose")
    if orientation not in ("loose", "fixed"):
        raise ValueError(f"{path}: unknown orientation {orientation!r}")
    lambda2 = manifest.get("lambda2")
    if not is_number(lambda2) or not lambda2 > 0:
        raise ValueError(
            f"{path}: lambda2 must be a number > 0 (written by simulate_data.py), "
            f"but got {lambda2!r}"
        )
    return hemisphere, orientation, float(lambda2)
