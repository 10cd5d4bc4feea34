"""Stronger baselines for the U-Net: eLORETA, LCMV, MxNE and Gamma-MAP, window by window.

The U-Net's ``metrics.csv`` compares it with the split's saved MNE, dSPM and sLORETA estimates.
This module adds the usual stronger inverse methods of MNE-Python, applied to the same simulated
split, one activation window at a time, and scores them with exactly the code that writes
``metrics.csv`` (:func:`meg_unet.scoring.metrics_table`), so that every method is compared on
the same samples and vertices::

    from meg_unet.baselines import evaluate_baselines
    metrics, timings = evaluate_baselines("data/quick/test", n_windows=50)

Methods
-------
``"eloreta"``
    :func:`mne.minimum_norm.apply_inverse` with ``method="eLORETA"``, on the split's own inverse
    operator (``<split>-inv.fif``: the simulation's loose/depth, noise covariance and
    projectors) and by default the split's lambda2.  The eLORETA weights are computed once per
    split (``prepare_inverse_operator``, timed as setup).
``"lcmv"``
    :func:`mne.beamformer.make_lcmv` (``pick_ori="max-power"``, ``weight_norm``, ``reg``, the
    noise covariance for whitening, ``rank="info"``) and :func:`mne.beamformer.apply_lcmv`.
    A window holds only ``samples_per_activation`` (20) samples, far too few for a covariance
    of 300 channels, so the **data covariance is computed once per split from the whole
    recording** (:func:`mne.compute_raw_covariance`, empirical: every activation window and the
    gaps between them).  It therefore contains every source of the split, as a beamformer's data
    covariance from a long recording would; it uses no ground truth.  The filter is made once
    per split (timed as setup) and applied to each window.  With ORIENTATION = "fixed" the
    forward is made fixed and ``pick_ori=None``.
``"mxne"``
    :func:`mne.inverse_sparse.mixed_norm` (L21 mixed norm, ``time_pca=True``) with a fixed
    ``alpha`` in percent of the window's ``alpha_max`` (0 = no regularization, 100 = no
    source); ``alpha="sure"`` would run the solver over a grid of alphas per window and is
    much slower.  ``debias=True`` re-estimates the amplitudes of the selected sources.
``"gamma_map"``
    :func:`mne.inverse_sparse.gamma_map` (sparse Bayesian learning, ``xyz_same_gamma=True``);
    ``alpha`` is the noise variance of the whitened data.  MNE's defaults (``tol=1e-6``,
    ``maxit=10000``) took about 9 s per window of the quick profile's ico3 split on one
    thread; ``tol=1e-4``, ``maxit=1000`` took a third of that with the same mean DLE and SD
    (8 windows of the valid split), leaving more small non-zero vertices (higher OA).
``"l2"``
    :func:`mne.minimum_norm.apply_inverse` with one of MNE, dSPM, sLORETA
    (``l2_method``) and a chosen ``lambda2``: with the lambda2 that :func:`lambda2_grid_search`
    finds best on the valid split, this is the "L2, best lambda2" row.  Applied with the
    split's ``lambda2`` it reproduces the split's saved estimates.

MxNE's ``alpha`` (40) and Gamma-MAP's (0.5, as in MNE's example) were chosen on the quick
profile's valid split, 40 and 8 windows: MxNE's mean DLE was 1.37 cm at alpha 40, 1.5-1.9 cm
at 20, 30, 50 and 60; Gamma-MAP's 1.28 cm at 0.5, 1.41 at 0.2, 1.59 at 1.0.  Time per window
on the quick profile's ico3 test split (one BLAS thread, 2-core CPU shared with a training
job): LCMV 6 ms, eLORETA 26 ms, L2 30 ms, MxNE 0.25 s, Gamma-MAP 3.4 s.

Loose and depth are never settings: MxNE and Gamma-MAP take the simulation's ``LOOSE`` (0 with
ORIENTATION = "fixed") and ``DEPTH`` from the split's manifest; eLORETA and L2 use the split's
inverse operator, made with them.  Every method sees both hemispheres' sources, as the split's
L2 estimates did (no method is told which hemisphere is active).  Every method's output is
reduced to one value per vertex like the split's L2 estimates (``pick_ori=None``): the norm
over the three orientations for loose orientation, the signed normal component for fixed (LCMV:
the max-power orientation's signed amplitude).  The sparse solvers return a few vertices; they
are scattered into the hemisphere's rows, zeros elsewhere.  Rows of the other hemisphere are
dropped.

The default settings are :data:`DEFAULT_SETTINGS`, documented one by one in
:data:`SETTING_DOCS`:

========== ================ ======================================================
method     setting          default
========== ================ ======================================================
eloreta    lambda2          None (the split's lambda2, 1 / SNR**2)
eloreta    max_iter         20
eloreta    eps              1e-6
lcmv       reg              0.05
lcmv       weight_norm      "unit-noise-gain"
mxne       alpha            40 (percent of alpha_max)
mxne       maxit            3000
mxne       tol              1e-4
mxne       active_set_size  10
mxne       debias           True
mxne       n_mxne_iter      1
gamma_map  alpha            0.5 (noise variance of the whitened data)
gamma_map  maxit            1000
gamma_map  tol              1e-4
gamma_map  xyz_same_gamma   True
l2         l2_method        "sLORETA"
l2         lambda2          None (the split's lambda2)
========== ================ ======================================================

Windows and metrics
-------------------
An activation window is the ``samples_per_activation`` samples from one onset of the manifest,
with its true rows (:func:`activation_windows`).  Each window's estimate is padded with
``border`` zero columns on each side and scored by :func:`meg_unet.scoring.metrics_table`
with ``border`` (the run's ``network.BORDER``, 2): the first and last ``border`` rows
(vertices) of the hemisphere are left out exactly as for the U-Net, and every sample of the
window gets one row per method.  ``sample`` is the sample index in the split's raw, so rows of
different methods for the same sample line up; the U-Net's metrics.csv also leaves out the
samples in the ``border`` columns of its tiles, so join on ``sample`` (and ``method``) to
compare on exactly the same samples.

Threads and timing
------------------
The solver calls run under ``threadpoolctl.threadpool_limits(n_jobs)`` (1 by default: on 2
cores BLAS threads fight other work).  Each window's call of
:func:`apply_baseline` (building the window's evoked, the solver, scattering into rows) is timed
with :func:`time.perf_counter`; the one-off work per split (eLORETA weights, prepared inverse
operators, LCMV data covariance and filter) is timed separately as window ``-1``, with the time
it took when it was made (a :class:`meg_unet.split_data.SplitData` reused between calls makes
it once).  MxNE and Gamma-MAP have no setup: they whiten the forward solution inside every
call, which is part of their time per window.
"""

from __future__ import annotations

import copy
import difflib
import logging
import numbers
import time

import numpy as np

from .constants import HEMISPHERE_NAMES, INVERSE_METHOD_NAMES
from .errors import check_int, is_number
from .split_data import SplitData, Window, choose_windows, load_split

logger = logging.getLogger("meg_unet")

__all__ = [
    "BASELINES",
    "DEFAULT_LAMBDA2_GRID",
    "DEFAULT_SETTINGS",
    "L2_METHODS",
    "L2_METHOD_NAMES",
    "METHODS",
    "SETTING_DOCS",
    "SLOW_BASELINES",
    "apply_baseline",
    "best_l2",
    "evaluate_baselines",
    "lambda2_grid_search",
    "resolve_settings",
]

#: The stronger baselines, in table order.
BASELINES = ("eloreta", "lcmv", "mxne", "gamma_map")

#: Baselines that take seconds per window on an ico3 split (iterative sparse solvers).
SLOW_BASELINES = ("mxne", "gamma_map")

#: Every method :func:`apply_baseline` takes: the baselines and ``"l2"`` (MNE/dSPM/sLORETA with
#: a chosen lambda2).
METHODS = (*BASELINES, "l2")

#: The L2 methods of ``"l2"``, as MNE spells them (``l2_method`` also takes them in lower case).
L2_METHODS = tuple(INVERSE_METHOD_NAMES.values())

#: The L2 methods' names in metrics.csv (lower case) and as MNE spells them.
L2_METHOD_NAMES = INVERSE_METHOD_NAMES

#: The default settings of each method (see the module docstring).  ``None`` for ``lambda2``
#: takes the split's lambda2.  Loose and depth are the simulation's, never settings.
DEFAULT_SETTINGS = {
    "eloreta": {"lambda2": None, "max_iter": 20, "eps": 1e-6},
    "lcmv": {"reg": 0.05, "weight_norm": "unit-noise-gain"},
    "mxne": {
        "alpha": 40.0,
        "maxit": 3000,
        "tol": 1e-4,
        "active_set_size": 10,
        "debias": True,
        "n_mxne_iter": 1,
    },
    "gamma_map": {"alpha": 0.5, "maxit": 1000, "tol": 1e-4, "xyz_same_gamma": True},
    "l2": {"l2_method": "sLORETA", "lambda2": None},
}

#: What each setting means, by method and name.
SETTING_DOCS = {
    "eloreta": {
        "lambda2": "regularization of the inverse operator; None: the split's lambda2 "
        "(1 / SNR**2)",
        "max_iter": "iterations of the eLORETA weight fit (method_params['max_iter'])",
        "eps": "convergence tolerance of the eLORETA weight fit (method_params['eps'])",
    },
    "lcmv": {
        "reg": "regularization of the data covariance, fraction of its mean eigenvalue",
        "weight_norm": "'unit-noise-gain', 'unit-noise-gain-invariant' or 'nai' (the "
        "filter's normalization)",
    },
    "mxne": {
        "alpha": "regularization in percent of the window's alpha_max, in [0, 100)",
        "maxit": "maximum iterations of the solver",
        "tol": "tolerance on the duality gap",
        "active_set_size": "sources added to the active set at a time",
        "debias": "re-estimate the selected sources' amplitudes without the penalty",
        "n_mxne_iter": "reweighting iterations (> 1: irMxNE)",
    },
    "gamma_map": {
        "alpha": "noise variance of the whitened data (regularization)",
        "maxit": "maximum iterations",
        "tol": "convergence tolerance on the relative change of the gammas",
        "xyz_same_gamma": "one gamma for the three orientations of a vertex",
    },
    "l2": {
        "l2_method": "'MNE', 'dSPM' or 'sLORETA' (also in lower case)",
        "lambda2": "regularization; None: the split's lambda2",
    },
}

#: The lambda2 values :func:`lambda2_grid_search` tries by default: 1 / SNR**2 for SNR in
#: 0.5, 1, 2, 3, 5, 10 and 30 (on 20 windows of the quick profile's valid split, SNR 3,
#: sLORETA was best at lambda2 = 1: 1.19 cm mean DLE, 1.22 at 4, 1.32 at 1/9).
DEFAULT_LAMBDA2_GRID = tuple(1.0 / snr**2 for snr in (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0))

_HEMIS = HEMISPHERE_NAMES
_LCMV_WEIGHT_NORMS = ("unit-noise-gain", "unit-noise-gain-invariant", "nai")
_SETUP_WINDOW = -1


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _allowed(name, value, allowed):
    return ValueError(
        f"Invalid value for the {name!r} parameter. Allowed values are "
        f"{', '.join(repr(a) for a in allowed)}, but got {value!r} instead."
    )


def _check_method(method, allowed=METHODS):
    if not isinstance(method, str) or method not in allowed:
        raise _allowed("method", method, allowed)
    return method


def _check_methods(methods, allowed=METHODS):
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods must name at least one method")
    for method in methods:
        _check_method(method, allowed)
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat a method, but got {methods}")
    return methods


def _check_setting(method, name, value):
    """Refuse a setting's value that the solver would not take; return it normalized."""
    where = f"{method}.{name}"

    def fail(what):
        raise ValueError(f"Invalid value for the setting {where!r}: it must be {what}, but "
                         f"got {value!r} instead.")

    if name == "lambda2":
        if value is None:
            return None
        if not is_number(value) or not value > 0:
            fail("None or a number > 0")
        return float(value)
    if name == "l2_method":
        spelled = L2_METHOD_NAMES
        if not isinstance(value, str) or value.lower() not in spelled:
            fail(f"one of {', '.join(L2_METHODS)}")
        return spelled[value.lower()]
    if name == "weight_norm":
        if value not in _LCMV_WEIGHT_NORMS:
            fail(f"one of {', '.join(_LCMV_WEIGHT_NORMS)}")
        return value
    if name in ("debias", "xyz_same_gamma"):
        if not isinstance(value, bool):
            fail("True or False")
        return value
    if name in ("max_iter", "maxit", "active_set_size", "n_mxne_iter"):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            fail("an integer >= 1")
        return int(value)
    if name == "alpha" and method == "mxne":
        if not is_number(value) or not 0 <= value < 100:
            fail("a number in [0, 100) (percent of alpha_max)")
        return float(value)
    if name == "reg":
        if not is_number(value) or value < 0:
            fail("a number >= 0")
        return float(value)
    # alpha (gamma_map), eps, tol
    if not is_number(value) or not value > 0:
        fail("a number > 0")
    return float(value)


def resolve_settings(method, settings=None):
    """Return one method's settings: the defaults, updated with ``settings`` and checked.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    settings : dict | None
        Settings to change (names of :data:`DEFAULT_SETTINGS` ``[method]``).

    Returns
    -------
    resolved : dict
        Every setting of the method.

    Raises
    ------
    ValueError
        For an unknown method, an unknown setting (with a "did you mean" hint) or a value the
        solver does not take.
    """
    _check_method(method)
    resolved = copy.deepcopy(DEFAULT_SETTINGS[method])
    for name, value in (settings or {}).items():
        if name not in resolved:
            hint = difflib.get_close_matches(str(name), list(resolved), n=1)
            hint = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"unknown setting {name!r} for the {method!r} baseline{hint}; its settings are "
                f"{', '.join(resolved)}"
            )
        resolved[name] = _check_setting(method, name, value)
    return resolved


def _check_settings(methods, settings):
    """Resolve the settings of ``methods`` from ``{method: {name: value}}``."""
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise ValueError(
            f"settings must be a dict of method name to a dict of settings, but got "
            f"{type(settings).__name__}"
        )
    for method in settings:
        _check_method(method)
    return {method: resolve_settings(method, settings.get(method)) for method in methods}


# --------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------


def _cached(data, key, make):
    """``data.cache[key]``, made by ``make()`` on first use; its making time is kept."""
    if key not in data.cache:
        started = time.perf_counter()
        data.cache[key] = make()
        data.setup_seconds[key] = time.perf_counter() - started
    return data.cache[key]


def _setup(method, data, settings):
    """Do (or fetch from the cache) the one-off work of ``method`` on a split.

    Returns
    -------
    prepared : object
        What :func:`_solve` needs: (prepared inverse operator, method, lambda2), LCMV
        filters, or None.
    seconds : float
        The time it took to make (when it was first made, even if taken from the cache now).
    """
    import mne

    if method in ("eloreta", "l2"):
        l2_method = "eLORETA" if method == "eloreta" else settings["l2_method"]
        lambda2 = data.lambda2 if settings["lambda2"] is None else settings["lambda2"]
        params = None
        if method == "eloreta":
            params = {"max_iter": settings["max_iter"], "eps": settings["eps"]}
        key = ("inverse", l2_method, lambda2, tuple(sorted((params or {}).items())))
        inverse = _cached(data, key, lambda: mne.minimum_norm.prepare_inverse_operator(
            data.inv, nave=1, lambda2=lambda2, method=l2_method, method_params=params,
            verbose=False,
        ))
        return (inverse, l2_method, lambda2), data.setup_seconds[key]
    if method == "lcmv":
        data_cov = _cached(data, "lcmv_data_cov", lambda: mne.compute_raw_covariance(
            data.raw, method="empirical", picks="data", verbose=False
        ))
        fixed = data.orientation == "fixed"

        def make_filter():
            fwd = data.fwd
            if fixed:
                fwd = mne.convert_forward_solution(
                    fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
                )
            return mne.beamformer.make_lcmv(
                data.info,
                fwd,
                data_cov,
                reg=settings["reg"],
                noise_cov=data.cov,
                pick_ori=None if fixed else "max-power",
                weight_norm=settings["weight_norm"],
                rank="info",
                verbose=False,
            )

        key = ("lcmv", settings["reg"], settings["weight_norm"])
        filters = _cached(data, key, make_filter)
        return filters, data.setup_seconds["lcmv_data_cov"] + data.setup_seconds[key]
    return None, 0.0


def _window_evoked(data, window):
    """The raw's samples of one window as an Evoked (nave=1, the raw's bads and projectors)."""
    import mne

    return mne.EvokedArray(
        data.raw.get_data(start=window.start, stop=window.stop),
        data.info,
        tmin=float(data.raw.times[window.start]),
        nave=1,
        verbose=False,
    )


def _solve(method, data, evoked, settings, prepared):
    """Run one method on one window's evoked; return its SourceEstimate."""
    import mne

    if method in ("eloreta", "l2"):
        inverse, l2_method, lambda2 = prepared
        return mne.minimum_norm.apply_inverse(
            evoked, inverse, lambda2=lambda2, method=l2_method, pick_ori=None, prepared=True,
            verbose=False,
        )
    if method == "lcmv":
        return mne.beamformer.apply_lcmv(evoked, prepared, verbose=False)
    if method == "mxne":
        return mne.inverse_sparse.mixed_norm(
            evoked,
            data.fwd,
            data.cov,
            alpha=settings["alpha"],
            loose=data.loose,
            depth=data.depth,
            maxit=settings["maxit"],
            tol=settings["tol"],
            active_set_size=settings["active_set_size"],
            debias=settings["debias"],
            n_mxne_iter=settings["n_mxne_iter"],
            time_pca=True,
            pick_ori=None,
            verbose=False,
        )
    return mne.inverse_sparse.gamma_map(
        evoked,
        data.fwd,
        data.cov,
        alpha=settings["alpha"],
        loose=data.loose,
        depth=data.depth,
        xyz_same_gamma=settings["xyz_same_gamma"],
        maxit=settings["maxit"],
        tol=settings["tol"],
        pick_ori=None,
        verbose=False,
    )


def _hemisphere_rows(stc, data, n_times):
    """Scatter a SourceEstimate (any subset of vertices) into the hemisphere's rows."""
    out = np.zeros((data.n_vertices, n_times))
    values = np.asarray(stc.data)
    if values.ndim != 2 or values.shape[1] != n_times:
        raise RuntimeError(
            f"the solver returned data of shape {values.shape}; expected (n_sources, {n_times})"
        )
    offset, row_offset = 0, 0
    for index, hemi in enumerate(_HEMIS):
        stc_vertno = np.asarray(stc.vertices[index])
        block = values[offset : offset + len(stc_vertno)]
        offset += len(stc_vertno)
        if hemi not in data.hemispheres:
            continue
        ours = data.vertices[index]
        position = np.searchsorted(ours, stc_vertno)
        inside = position < len(ours)
        if not np.all(inside) or not np.array_equal(ours[position], stc_vertno):
            raise RuntimeError(
                f"the solver returned {hemi} vertices that are not in the split's source space"
            )
        out[row_offset + position] = block
        row_offset += len(ours)
    return out


def apply_baseline(method, split_data, window, **settings):
    """Estimate one activation window's sources with one baseline.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`: ``"eloreta"``, ``"lcmv"``, ``"mxne"``, ``"gamma_map"`` or
        ``"l2"``.
    split_data : SplitData
        The split (:func:`meg_unet.split_data.load_split`); the per-split setup (eLORETA
        weights, prepared inverse operators, LCMV filter) is made on the first call and kept in
        ``split_data.cache``.
    window : Window | int
        The window, or its index in ``split_data.windows``.
    **settings
        Settings of ``method`` (see :data:`DEFAULT_SETTINGS`, :data:`SETTING_DOCS`); the
        others keep their defaults.

    Returns
    -------
    estimate : ndarray of float, shape (n_vertices, stop - start)
        One value per vertex of the hemisphere (rows as ``split_data.vertno``) and sample of
        the window: the norm over orientations for loose orientation, the signed amplitude
        for fixed (and for LCMV's max-power orientation); zeros where a sparse solver found
        no source.  Units follow the method: A m for MNE, eLORETA, MxNE and Gamma-MAP; no
        unit for dSPM, sLORETA and LCMV's unit-noise-gain output.

    Raises
    ------
    ValueError
        For an unknown method or setting, or a window outside the split.
    """
    _check_method(method)
    if not isinstance(split_data, SplitData):
        raise ValueError(
            f"split_data must be a SplitData (from load_split), but got "
            f"{type(split_data).__name__}"
        )
    settings = resolve_settings(method, settings)
    window = _check_window(window, split_data)
    prepared, _ = _setup(method, split_data, settings)
    evoked = _window_evoked(split_data, window)
    stc = _solve(method, split_data, evoked, settings, prepared)
    return _hemisphere_rows(stc, split_data, window.stop - window.start)


def _check_window(window, data):
    if isinstance(window, numbers.Integral) and not isinstance(window, bool):
        if not 0 <= window < len(data.windows):
            raise ValueError(
                f"window {window} is out of range: the split has {len(data.windows)} windows"
            )
        return data.windows[int(window)]
    if not isinstance(window, Window):
        raise ValueError(
            f"window must be a Window or a window index, but got {type(window).__name__}"
        )
    if not 0 <= window.start < window.stop <= data.raw.n_times:
        raise ValueError(
            f"window samples {window.start}:{window.stop} are outside the recording "
            f"(0:{data.raw.n_times})"
        )
    return window


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _window_metrics(data, windows, estimates):
    """The metrics.csv rows of ``estimates`` ({name: [window estimate, ...]}) on ``windows``.

    Each window's estimate is padded with ``border`` zero columns on each side and the padded
    windows are laid side by side as tiles of one :func:`meg_unet.scoring.metrics_table`
    call, whose ``border`` then leaves out exactly the padding columns and the hemisphere's
    edge rows; the samples are mapped back to the raw's sample indices.
    """
    from .scoring import metrics_table
    from .tiles import tile_layout

    border = data.border
    lengths = {w.stop - w.start for w in windows}
    if len(lengths) != 1:
        raise ValueError(f"the windows must all have the same length, but got {sorted(lengths)}")
    width = lengths.pop() + 2 * border
    n_columns = width * len(windows)
    sample_of = np.full(n_columns, -1, dtype=np.int64)
    amplitudes = np.zeros((data.n_vertices, n_columns), dtype=np.float32)
    padded = {name: np.zeros((data.n_vertices, n_columns), dtype=np.float32)
              for name in estimates}
    for k, window in enumerate(windows):
        columns = slice(k * width + border, (k + 1) * width - border)
        sample_of[columns] = window.samples
        amplitudes[:, columns] = data.amplitudes[:, window.start : window.stop]
        for name, values in estimates.items():
            padded[name][:, columns] = values[k]
    table = metrics_table(
        padded,
        amplitudes,
        data.positions,
        tile_layout(n_columns, width),
        data.vertno,
        adjacency=data.adjacency,
        border=border,
        active_threshold=data.active_threshold,
        split=data.split,
        hemis=data.hemis,
    )
    table["sample"] = sample_of[table["sample"].to_numpy()]
    return table


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _as_split_data(split_dir):
    return split_dir if isinstance(split_dir, SplitData) else load_split(split_dir)


def evaluate_baselines(split_dir, methods=BASELINES, n_windows=None, seed=0, settings=None,
                       progress=True, *, names=None, n_jobs=1):
    """Run baselines over a split's activation windows and compute their metrics.csv rows.

    Parameters
    ----------
    split_dir : path-like | SplitData
        A split folder (``DATA_DIR/<run>/<split>``), or one loaded with
        :func:`meg_unet.split_data.load_split` (its per-split setup is then reused between
        calls).
    methods : str | sequence of str
        Methods of :data:`METHODS`, in table order.
    n_windows : int | None
        Evaluate a seeded subset of this many windows (:func:`choose_windows`), the same for
        every method; None evaluates all.
    seed : int
        Seed of the subset.
    settings : dict | None
        ``{method: {setting: value}}`` changes to :data:`DEFAULT_SETTINGS`.
    progress : bool
        Show one progress bar per method.
    names : dict | None
        ``{method: name}`` for the ``method`` column (e.g. ``{"l2": "l2_best"}``); by default
        the method's own name.
    n_jobs : int
        BLAS threads of the solvers (``threadpoolctl.threadpool_limits``); -1 leaves them
        unlimited.

    Returns
    -------
    metrics : pandas.DataFrame
        One row per (sample of an evaluated window, method) in the schema of ``metrics.csv``
        (:data:`meg_unet.scoring.METRICS_COLUMNS`, plus ``hemi`` with HEMISPHERE =
        "both"), sorted by sample, then method in the order of ``methods``.
    timings : pandas.DataFrame
        Columns ``method`` (as in ``metrics``), ``window`` (the window's index, -1 for the
        one-off setup of the split, 0 s for MxNE and Gamma-MAP) and ``seconds`` (wall clock,
        :func:`time.perf_counter`).

    Raises
    ------
    ValueError
        For an unknown method or setting, ``n_windows < 1`` or bad ``names``.
    FileNotFoundError
        If the split or one of its files is missing.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    methods = _check_methods(methods)
    if n_windows is not None:
        n_windows = check_int(n_windows, "n_windows", 1)
    resolved = _check_settings(methods, settings)
    names = _check_names(names, methods)
    n_jobs = _check_n_jobs(n_jobs)
    data = _as_split_data(split_dir)
    if not data.windows:
        raise ValueError(f"the split in {data.directory} has no activation windows")
    windows = [data.windows[i] for i in choose_windows(len(data.windows), n_windows, seed)]
    logger.info(
        "baselines %s on %d of %d windows of %s", ", ".join(methods), len(windows),
        len(data.windows), data.directory,
    )
    estimates, rows = {}, []
    blas_threads = None if n_jobs == -1 else n_jobs
    for method in methods:
        name = names[method]
        with threadpool_limits(limits=blas_threads):
            _, seconds = _setup(method, data, resolved[method])
            rows.append((name, _SETUP_WINDOW, seconds))
            values = []
            for window in tqdm(windows, desc=name, unit="window", disable=not progress):
                started = time.perf_counter()
                estimate = apply_baseline(method, data, window, **resolved[method])
                rows.append((name, window.index, time.perf_counter() - started))
                values.append(estimate.astype(np.float32))  # as the split's saved estimates
        estimates[name] = values
    metrics = _window_metrics(data, windows, estimates)
    timings = pd.DataFrame(rows, columns=["method", "window", "seconds"])
    timings = timings.astype({"window": np.int64, "seconds": np.float64})
    return metrics, timings


def _check_names(names, methods):
    names = dict(names or {})
    unknown = [m for m in names if m not in methods]
    if unknown:
        raise ValueError(f"names gives names for {unknown}, which are not among the methods "
                         f"{list(methods)}")
    out = {m: names.get(m, m) for m in methods}
    if any(not isinstance(n, str) or not n for n in out.values()):
        raise ValueError(f"names must be non-empty strings, but got {out}")
    if len(set(out.values())) != len(out):
        raise ValueError(f"names must differ between methods, but got {out}")
    return out


def _check_n_jobs(n_jobs):
    if n_jobs == -1:
        return -1
    return check_int(n_jobs, "n_jobs", 1)


# --------------------------------------------------------------------------------------------
# The best lambda2 of the L2 methods
# --------------------------------------------------------------------------------------------


def lambda2_grid_search(split_dir, methods=("mne", "dspm", "sloreta"), grid=None,
                        n_windows=None, seed=0, progress=True, *, n_jobs=1):
    """Score MNE, dSPM and sLORETA over a grid of lambda2 values, window by window.

    Run it on the valid split and apply the best pair (:func:`best_l2`) to the test split, so
    that the test data never choose lambda2.

    Parameters
    ----------
    split_dir : path-like | SplitData
        A split folder (usually the valid split), or one loaded with
        :func:`meg_unet.split_data.load_split`.
    methods : sequence of str
        Among ``"mne"``, ``"dspm"``, ``"sloreta"`` (or as MNE spells them).
    grid : sequence of float | None
        lambda2 values (> 0); None takes :data:`DEFAULT_LAMBDA2_GRID`.
    n_windows : int | None
        A seeded subset of windows (:func:`choose_windows`), the same for every pair.
    seed : int
        Seed of the subset.
    progress : bool
        Show progress bars.
    n_jobs : int
        BLAS threads (see :func:`evaluate_baselines`).

    Returns
    -------
    table : pandas.DataFrame
        One row per (method, lambda2), in the order of ``methods`` and ``grid``: ``method``
        (lower case), ``lambda2``, ``dle_cm`` (mean DLE over the rows of metrics.csv that
        have one), ``sd_cm`` (mean SD), ``n`` (rows averaged).
    """
    import pandas as pd

    if isinstance(methods, str):
        methods = (methods,)
    spelled = L2_METHOD_NAMES
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods must name at least one L2 method")
    for method in methods:
        if not isinstance(method, str) or method.lower() not in spelled:
            raise _allowed("methods", method, tuple(spelled))
    grid = DEFAULT_LAMBDA2_GRID if grid is None else tuple(grid)
    if not grid:
        raise ValueError("grid must hold at least one lambda2 value")
    grid = [_check_setting("l2", "lambda2", value) for value in grid]
    if any(value is None for value in grid):
        raise ValueError("grid values must be numbers > 0, not None")
    if n_windows is not None:
        n_windows = check_int(n_windows, "n_windows", 1)
    data = _as_split_data(split_dir)
    rows = []
    for method in methods:
        for lambda2 in grid:
            metrics, _ = evaluate_baselines(
                data, ("l2",), n_windows=n_windows, seed=seed,
                settings={"l2": {"l2_method": method, "lambda2": lambda2}},
                progress=progress, names={"l2": f"{method.lower()} lambda2={lambda2:.4g}"},
                n_jobs=n_jobs,
            )
            dle = metrics["dle_cm"].dropna()
            rows.append((method.lower(), lambda2, float(dle.mean()) if len(dle) else np.nan,
                         float(metrics["sd_cm"].mean()), int(len(dle))))
            # each prepared operator is used for one pair only
            for key in [k for k in data.cache if isinstance(k, tuple) and k[0] == "inverse"
                        and k[2] == lambda2]:
                del data.cache[key]
    return pd.DataFrame(rows, columns=["method", "lambda2", "dle_cm", "sd_cm", "n"])


def best_l2(grid_table):
    """Return the (method, lambda2) of a grid search with the lowest mean DLE.

    Parameters
    ----------
    grid_table : pandas.DataFrame
        The output of :func:`lambda2_grid_search` (columns ``method``, ``lambda2``,
        ``dle_cm``).

    Returns
    -------
    best : dict
        ``method`` (lower case, e.g. ``"sloreta"``), ``l2_method`` (as MNE spells it, e.g.
        ``"sLORETA"``), ``lambda2`` and ``dle_cm``; on a tie, the first row.  Use it as
        ``settings={"l2": {"l2_method": best["l2_method"], "lambda2": best["lambda2"]}}``.
    """
    missing = [c for c in ("method", "lambda2", "dle_cm") if c not in getattr(
        grid_table, "columns", ())]
    if missing:
        raise ValueError(f"grid_table lacks the columns {missing} (use lambda2_grid_search)")
    scores = grid_table["dle_cm"].to_numpy(dtype=float)
    if not np.any(np.isfinite(scores)):
        raise ValueError("no (method, lambda2) of the grid has a finite mean DLE")
    best = grid_table.iloc[int(np.nanargmin(scores))]
    spelled = L2_METHOD_NAMES
    method = str(best["method"]).lower()
    return {
        "method": method,
        "l2_method": spelled.get(method, str(best["method"])),
        "lambda2": float(best["lambda2"]),
        "dle_cm": float(best["dle_cm"]),
    }
