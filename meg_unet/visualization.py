"""Figures of a run's predictions: per-vertex heatmaps on the inflated cortex, kernel densities,
training curves and the multi-dipole localization errors.

Every ``plot_*`` function takes its data as explicit arguments, returns a
:class:`matplotlib.figure.Figure` and, given ``fname``, also writes it (PNG, plus PDF with
``pdf=True``). Figures are built with the object-oriented API (no :mod:`matplotlib.pyplot`, no
global backend), so they render headless and never accumulate in a pyplot figure list. Only
:func:`make_figures` reads a :class:`~meg_unet.config.Config`: it finds a run's files, draws
everything and writes ``RESULTS_DIR/<run>/figures/``.

Heatmaps are painted on the cortex by :mod:`meg_unet.cortex`.

Colour map of the heatmaps: ``'inferno'`` by default, the perceptually uniform relative of the
thesis's ``'hot'`` (both run black - red - yellow, dark = low = better for DLE, SD and OA).
``'hot'`` ends in white, which a reader cannot tell from the page or from the light grey of
vertices without data, and its lightness rises unevenly; pass ``cmap="hot"`` for the thesis's
look.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import HEMISPHERE_NAMES
from .cortex import (
    GYRUS_GREY,
    VIEWS,
    carry_to_mesh,
    draw_surface,
    load_surface,
    nearest_source,
)
from .io import Stage, atomic_path, file_checksums, read_history
from .tables import metric_label, method_display_name, order_methods, read_metrics

__all__ = [
    "HEATMAP_METRICS",
    "plot_sources",
    "make_figures",
    "method_colors",
    "per_vertex_means",
    "plot_density",
    "plot_heatmaps",
    "plot_multi_dipole_dle",
    "plot_training_curves",
    "save_figure",
]

logger = logging.getLogger("meg_unet")

#: Metrics drawn as heatmaps and density panels, with the short names used in file names.
HEATMAP_METRICS = {"dle_cm": "dle", "sd_cm": "sd", "oa": "oa"}

#: Resolution of the written PNG files (dots per inch); figure sizes are set in inches.
DPI = 150

_HEMIS = HEMISPHERE_NAMES
_HEMI_NAMES = {"lh": "left hemisphere", "rh": "right hemisphere"}
_SENSOR_NAMES = {"meg": "MEG", "meg+eeg": "MEG+EEG"}


# ---------------------------------------------------------------------------------------------
# Tables behind the figures


def per_vertex_means(df, metric, hemi="rh"):
    """Average a metric per true source vertex, per method.

    A row whose sample has several true sources (``true_vertices`` such as ``"12;40"``)
    contributes its value to each of its true vertices: a multi-dipole DLE is one number for
    all sources of the sample, so it is attributed to every one of them.

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`meg_unet.tables.read_metrics`), with the columns
        ``method``, ``true_vertices`` (vertex numbers joined by ``";"``) and ``metric``, and
        optionally ``hemi`` (``"lh"``/``"rh"`` per row, or one per true vertex joined by
        ``";"``).
    metric : str
        The metric column, e.g. ``"dle_cm"``.
    hemi : ``'lh'`` | ``'rh'``
        The hemisphere of the vertex numbers when ``df`` has no ``hemi`` column.

    Returns
    -------
    means : pandas.DataFrame
        Columns ``method``, ``hemi``, ``vertex`` (int), ``mean`` (float) and ``n`` (int, the
        number of rows averaged); one row per (method, hemi, vertex) that has at least one
        non-missing value, methods in :func:`~meg_unet.tables.order_methods` order, then by
        hemisphere and vertex number. Missing values (NaN) are left out.
    """
    _check_metric_column(df, metric)
    if hemi not in _HEMIS:
        raise ValueError(
            f"Invalid value for the 'hemi' parameter. Allowed values are 'lh' and 'rh', but got "
            f"{hemi!r} instead."
        )
    long = _explode_true_vertices(df[~df[metric].isna()], metric, hemi)
    grouped = long.groupby(["method", "hemi", "vertex"], sort=True)["value"]
    means = grouped.agg(mean="mean", n="size").reset_index()
    rank = {method: i for i, method in enumerate(order_methods(means["method"]))}
    means = means.sort_values(
        ["method", "hemi", "vertex"], key=lambda c: c.map(rank) if c.name == "method" else c
    )
    means = means.reset_index(drop=True)
    return means.astype({"vertex": np.int64, "mean": np.float64, "n": np.int64})


def _check_metric_column(df, metric):
    for column in ("method", "true_vertices", metric):
        if column not in df.columns:
            raise ValueError(
                f"the metrics table has no column {column!r} (found: {', '.join(df.columns)})"
            )


def _split_cell(text):
    text = str(text).strip()
    return [] if text in ("", "nan", "NA") else [part.strip() for part in text.split(";")]


def _explode_true_vertices(df, metric, default_hemi):
    """One row per (row of ``df``, true vertex): ``method``, ``hemi``, ``vertex``, ``value``."""
    vertex_lists = [_split_cell(cell) for cell in df["true_vertices"]]
    if "hemi" in df.columns:
        hemi_lists = []
        for vertices, cell in zip(vertex_lists, df["hemi"]):
            hemis = _split_cell(cell) or [default_hemi]
            if len(hemis) == 1:
                hemis = hemis * len(vertices)
            if len(hemis) != len(vertices):
                raise ValueError(
                    f"'hemi' {cell!r} does not match 'true_vertices' {';'.join(vertices)!r}: "
                    "give one hemisphere per row or one per true vertex"
                )
            hemi_lists.append(hemis)
    else:
        hemi_lists = [[default_hemi] * len(vertices) for vertices in vertex_lists]
    counts = np.array([len(vertices) for vertices in vertex_lists], dtype=np.int64)
    flat_vertices = [vertex for vertices in vertex_lists for vertex in vertices]
    try:
        vertex_numbers = np.array([int(vertex) for vertex in flat_vertices], dtype=np.int64)
    except ValueError:
        bad = next(v for v in flat_vertices if not v.lstrip("-").isdigit())
        raise ValueError(
            f"'true_vertices' must hold vertex numbers joined by ';', but has {bad!r}"
        ) from None
    hemis = np.array([h for hemis in hemi_lists for h in hemis], dtype=object)
    bad_hemis = sorted(set(hemis) - set(_HEMIS))
    if bad_hemis:
        raise ValueError(f"'hemi' must be 'lh' or 'rh', but has {bad_hemis[0]!r}")
    return pd.DataFrame(
        dict(
            method=np.repeat(df["method"].to_numpy(dtype=object), counts),
            hemi=hemis,
            vertex=vertex_numbers,
            value=np.repeat(df[metric].to_numpy(dtype=np.float64), counts),
        )
    )


def _n_sources(df):
    """Number of true sources per row: the ``n_sources`` column, else counted."""
    if "n_sources" in df.columns:
        values = pd.to_numeric(df["n_sources"], errors="coerce")
        if not values.isna().any():
            return values.to_numpy(dtype=np.int64)
    if "true_vertices" not in df.columns:
        return np.ones(len(df), dtype=np.int64)
    return np.array([len(_split_cell(cell)) for cell in df["true_vertices"]], dtype=np.int64)


def _n_samples(df):
    return int(len(df[["split", "sample"]].drop_duplicates()))


def method_colors(methods):
    """Return a colour per method, the same in every figure of a run.

    Parameters
    ----------
    methods : iterable of str
        Method names as in metrics.csv.

    Returns
    -------
    colors : dict of str to str
        Known methods keep fixed colours (MNE blue, dSPM orange, sLORETA green, U-Net black);
        others take the remaining colours of matplotlib's ``tab10`` cycle.
    """
    fixed = {"mne": "tab:blue", "dspm": "tab:orange", "sloreta": "tab:green", "unet": "black"}
    spare = ["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
             "tab:gray"]
    colors = {}
    n_spare_used = 0
    for method in order_methods(methods):
        if method in fixed:
            colors[method] = fixed[method]
        else:
            colors[method] = spare[n_spare_used % len(spare)]
            n_spare_used += 1
    return colors


# ---------------------------------------------------------------------------------------------
# Figures


def _wrap(text, width_inches, fontsize):
    """Break a title into lines that fit the figure (an average glyph is ~0.55 em wide)."""
    import textwrap

    n_chars = max(20, int(width_inches * 72 / (0.55 * fontsize)))
    # Keep "SNR 3" and "n = 19170" on one line: textwrap does not break at no-break spaces.
    text = re.sub(r"\b(SNR|n) (=? ?)(?=\S)", lambda m: m.group(0).replace(" ", "\u00a0"), text)
    return "\n".join(textwrap.wrap(text, n_chars))


def _new_figure(figsize, layout=None):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=DPI, layout=layout)


def plot_heatmaps(
    df,
    metric,
    surfaces,
    *,
    source_vertices=None,
    hemi="rh",
    cmap="inferno",
    vlim=None,
    percentiles=(2, 98),
    title=None,
    fname=None,
    pdf=False,
):
    """Paint a metric's per-vertex means on the inflated cortex, methods side by side.

    Columns are methods (:func:`~meg_unet.tables.order_methods` order), rows are the lateral
    and medial views of each hemisphere with data; all panels share one colour scale and one
    colour bar. Each source vertex's patch of cortex (the mesh vertices nearest to it on the
    sphere) shows the mean of the metric over the rows where it was a true source
    (:func:`per_vertex_means`); vertices that never were are grey (sulci darker than gyri).

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`meg_unet.tables.read_metrics`).
    metric : str
        The metric column, e.g. ``"dle_cm"``.
    surfaces : dict of str to CorticalSurface
        Surfaces by hemisphere (:func:`load_surface`); each hemisphere with data needs one.
    source_vertices : dict of str to array-like of int | None
        All vertex numbers of the source space per hemisphere, so that patches of sources
        without data stay grey; None paints each mesh vertex from the nearest vertex with data.
    hemi : ``'lh'`` | ``'rh'``
        Hemisphere of the vertex numbers when ``df`` has no ``hemi`` column.
    cmap : str | matplotlib.colors.Colormap
        Colour map (``'inferno'``; the thesis used ``'hot'``, see the module's notes).
    vlim : tuple of float | None
        Colour scale limits (vmin, vmax); None takes ``percentiles`` of all panels' values.
    percentiles : tuple of float
        Percentiles of the per-vertex means, over all methods, that bound the colour scale when
        ``vlim`` is None; values beyond them get the end colours (arrows on the colour bar).
    title : str | None
        Figure title.
    fname : path-like | None
        Where to write the PNG (:func:`save_figure`); None writes nothing.
    pdf : bool
        Also write a PDF beside the PNG.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure: one axes per (view, method) and one colour bar axes.
    """
    import matplotlib
    from matplotlib.colors import Normalize

    means = per_vertex_means(df, metric, hemi=hemi)
    if means.empty:
        raise ValueError(f"no values of {metric!r} to draw")
    methods = order_methods(means["method"].unique())
    hemis = [h for h in _HEMIS if h in set(means["hemi"])]
    missing = [h for h in hemis if h not in surfaces]
    if missing:
        raise ValueError(f"no surface given for hemisphere(s) {', '.join(missing)}")
    cmap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    if vlim is None:
        vmin, vmax = np.percentile(means["mean"], percentiles)
    else:
        vmin, vmax = vlim
    if not vmax > vmin:  # a constant metric still needs a scale
        vmin, vmax = vmin - 0.5, vmax + 0.5
    norm = Normalize(vmin=vmin, vmax=vmax)

    rows = [(h, view) for h in hemis for view in VIEWS]
    # The inflated hemisphere is about 1.5 times as long as it is high. The figure is at least
    # 9 inches wide, so that the notes, colour bar and legend below the panels never collide.
    panel_w, panel_h = 3.0, 2.05
    fig_w = max(9.0, 0.6 + panel_w * len(methods))
    title = _wrap(title, fig_w, 12) if title else None
    top = 0.55 + 0.2 * (title.count("\n") + 1 if title else 0)
    bottom = 1.05
    margin = (fig_w - panel_w * len(methods)) / 2
    fig_h = top + panel_h * len(rows) + bottom
    fig = _new_figure((fig_w, fig_h))
    grid = fig.add_gridspec(
        len(rows), len(methods),
        left=margin / fig_w, right=1 - margin / fig_w,
        top=1 - top / fig_h, bottom=bottom / fig_h,
        wspace=0.02, hspace=0.04,
    )
    axes, extents, any_blank = _heatmap_panels(fig, grid, rows, methods, means, surfaces,
                                               source_vertices, cmap, norm)
    # One scale for all panels, so that the brains have the same size everywhere.
    low = np.min([e[0] for e in extents], axis=0)
    high = np.max([e[1] for e in extents], axis=0)
    pad = 0.02 * (high - low)
    for ax in axes.ravel():
        ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
        ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
    for j, method in enumerate(methods):
        axes[0, j].set_title(method_display_name(method), fontsize=13, fontweight="bold")
    for i, (h, view) in enumerate(rows):
        label = view if len(hemis) == 1 else f"{h} {view}"
        axes[i, 0].text(-0.03, 0.5, label, transform=axes[i, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=11)

    _heatmap_notes(fig, (fig_w, fig_h), means["mean"], norm, cmap, metric, hemis, any_blank)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.08 / fig_h, va="top")
    if fname is not None:
        save_figure(fig, fname, pdf=pdf)
    return fig


def _heatmap_panels(fig, grid, rows, methods, means, surfaces, source_vertices, cmap, norm):
    """Draw one panel per (view, method) of the heatmaps.

    Returns the axes, each panel's extent and whether some mesh vertex had no value.
    """
    hemis = list(dict.fromkeys(h for h, _ in rows))
    any_blank = False
    extents = []
    axes = np.empty((len(rows), len(methods)), dtype=object)
    for h in hemis:
        sources = None if source_vertices is None else source_vertices.get(h)
        of_hemi = means[means["hemi"] == h]
        nearest, sources = nearest_source(surfaces[h], of_hemi["vertex"].to_numpy(), sources)
        for j, method in enumerate(methods):
            part = of_hemi[of_hemi["method"] == method]
            mesh_values = carry_to_mesh(nearest, sources, part["vertex"], part["mean"])
            any_blank |= bool(np.isnan(mesh_values).any())
            for i, (row_hemi, view) in enumerate(rows):
                if row_hemi == h:
                    axes[i, j] = ax = fig.add_subplot(grid[i, j])
                    xy = draw_surface(ax, surfaces[h], mesh_values, view, cmap, norm)
                    extents.append((xy.min(axis=0), xy.max(axis=0)))
    return axes, extents, any_blank


def _heatmap_notes(fig, size, values, norm, cmap, metric, hemis, any_blank):
    """The colour bar, the legend of grey patches and the orientation note of the heatmaps."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.patches import Patch

    fig_w, fig_h = size
    clipped_low = values.min() < norm.vmin
    clipped_high = values.max() > norm.vmax
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (clipped_low, clipped_high), "both"
    )
    bar_w = min(4.5, fig_w - 5.0) / fig_w  # leaves room for the notes and the legend
    cax = fig.add_axes([0.5 - bar_w / 2, 0.5 / fig_h, bar_w, 0.16 / fig_h])
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal",
                       extend=extend)
    bar.set_label(f"{metric_label(metric)}, mean per true source vertex", fontsize=11)
    bar.ax.tick_params(labelsize=10)
    if any_blank:
        fig.legend(
            handles=[Patch(facecolor=str(GYRUS_GREY), edgecolor="0.4", label="no true source")],
            loc="lower right", bbox_to_anchor=(1 - 0.1 / fig_w, 0.35 / fig_h),
            fontsize=10, frameon=False,
        )
    hemi_text = " and ".join(_HEMI_NAMES[h] for h in hemis)
    orientation = {
        ("rh",): "anterior: right in lateral,\nleft in medial views",
        ("lh",): "anterior: left in lateral,\nright in medial views",
    }.get(tuple(hemis), "anterior: right in rh lateral\nand lh medial views")
    fig.text(0.1 / fig_w, 0.5 / fig_h, f"{hemi_text}, inflated\n{orientation}",
             fontsize=9, color="0.3", va="center")


def plot_sources(surfaces, truth, estimate, *, source_vertices=None, cmap="viridis",
                 title=None, fname=None, pdf=False):
    """Draw the true and the estimated sources on the inflated cortex, one row each.

    Parameters
    ----------
    surfaces : dict of str to CorticalSurface
        Surfaces by hemisphere (:func:`load_surface`).
    truth, estimate : dict of str to (array of int, array of float)
        Per hemisphere, the vertex numbers with a source and their peak moments (nAm).
    source_vertices : dict of str to array-like of int | None
        All vertex numbers of the source space per hemisphere: each source paints only its own
        patch of cortex.
    cmap : str
        Colour map of the moments (one scale for both rows).
    title : str | None
        Figure title.
    fname : path-like | None
        Where to write the PNG (:func:`save_figure`).
    pdf : bool
        Also write a PDF.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib
    from matplotlib.colors import Normalize

    hemis = [h for h in _HEMIS if h in surfaces]
    values = [v for part in (truth, estimate) for _, v in part.values() if len(v)]
    top = max((float(np.max(v)) for v in values), default=1.0)
    norm = Normalize(0.0, top)
    cmap = matplotlib.colormaps[cmap]
    views = [(h, view) for h in hemis for view in ("lateral", "medial")]
    fig = _new_figure((2.4 * len(views) + 0.8, 4.6), layout="constrained")
    axes = fig.subplots(2, len(views), squeeze=False)
    for row, (label, part) in enumerate((("truth", truth), ("U-Net + refit", estimate))):
        for col, (hemi, view) in enumerate(views):
            ax = axes[row, col]
            vertices, moments = part.get(hemi, ((), ()))
            mesh_values = np.full(surfaces[hemi].n_vertices, np.nan)
            if len(vertices):
                nearest, sources = nearest_source(
                    surfaces[hemi], vertices, None if source_vertices is None
                    else source_vertices.get(hemi))
                mesh_values = carry_to_mesh(nearest, sources, vertices, moments)
            draw_surface(ax, surfaces[hemi], mesh_values, view, cmap, norm)
            ax.set_title(f"{label}: {hemi} {view} ({len(vertices)})", fontsize=8)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes,
                       shrink=0.8)
    bar.set_label("peak moment (nAm)")
    if title:
        fig.suptitle(_wrap(title, fig.get_figwidth(), 10), fontsize=10)
    if fname is not None:
        save_figure(fig, fname, pdf=pdf)
    return fig


def _first_seconds_sources(config, seconds=1.0):
    """Truth and U-Net sources of the first ``seconds`` of the run's test split, per hemi."""
    import mne

    from .sources import read_events

    predictions = config.run_results_dir / "predictions"
    events = read_events(predictions / "test-events.tsv")
    sparse = mne.read_source_estimate(predictions / "test-sources-stc.h5")
    truth = mne.read_source_estimate(config.run_data_dir / "test" / "test-truth-stc.h5")
    stop = int(round(seconds / truth.tstep))
    out = []
    for stc in (truth, sparse):
        peaks = {}
        for index, hemi in enumerate(_HEMIS):
            data = stc.lh_data if index == 0 else stc.rh_data
            peak = 1e9 * np.abs(data[:, :stop]).max(axis=1) if data.size else np.zeros(0)
            keep = peak > 0
            peaks[hemi] = (np.asarray(stc.vertices[index])[keep], peak[keep])
        out.append(peaks)
    in_window = int((events["onset_s"] < truth.tmin + seconds).sum())
    return out[0], out[1], in_window


def _kde(values, non_negative):
    """A density function of ``values`` and its bandwidth, or None for constant values.

    Gaussian kernels with Silverman's bandwidth; reflected at 0 for a metric that is never
    negative, which keeps the mass that a kernel would put below 0 (where DLE = 0 piles up).
    """
    from scipy.stats import gaussian_kde

    if values.size < 2 or np.ptp(values) == 0:
        return None, 0.0
    kde = gaussian_kde(values, bw_method="silverman")
    bandwidth = float(np.sqrt(kde.covariance[0, 0]))
    if non_negative:
        return (lambda x: kde(x) + kde(-x)), bandwidth
    return kde, bandwidth


def plot_density(df, metrics=tuple(HEATMAP_METRICS), *, title=None, fname=None, pdf=False):
    """Draw kernel density estimates of metrics, one panel per metric, one line per method.

    Gaussian kernels with Silverman's bandwidth (close to R's ``density`` default used by the
    thesis); a metric that is never negative is reflected at zero, so the peak of exact zeros
    (DLE) is not smeared into negative values. A method whose values are all equal is drawn
    as a vertical line.

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`meg_unet.tables.read_metrics`).
    metrics : sequence of str
        Metric columns, one panel each; columns that ``df`` lacks are left out.
    title : str | None
        Figure title.
    fname : path-like | None
        Where to write the PNG; None writes nothing.
    pdf : bool
        Also write a PDF.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, one axes per metric present.
    """
    metrics = [m for m in metrics if m in df.columns and df[m].notna().any()]
    if not metrics:
        raise ValueError("none of the metrics to draw has a value")
    methods = order_methods(df["method"].unique())
    colors = method_colors(methods)
    fig = _new_figure((4.6 * len(metrics), 4.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    handles = {}
    for ax, metric in zip(axes, metrics):
        all_values = df[metric].dropna().to_numpy(dtype=np.float64)
        non_negative = bool(all_values.min() >= 0)
        curves = {}
        for method in methods:
            values = df.loc[df["method"] == method, metric].dropna().to_numpy(dtype=np.float64)
            if values.size:
                curves[method] = (values, *_kde(values, non_negative))
        # Like R's density(): the curves run 3 bandwidths beyond the data (not below 0).
        reach = 3 * max(bw for _, _, bw in curves.values()) or 0.05 * (np.ptp(all_values) or 1)
        low = max(0.0, all_values.min() - reach) if non_negative else all_values.min() - reach
        grid = np.linspace(low, all_values.max() + reach, 512)
        for method, (values, density, _) in curves.items():
            style = dict(color=colors[method], lw=2.2 if method == "unet" else 1.6)
            if density is None:  # constant: no spread to estimate a density from
                ax.axvline(values[0], ls="--", **style)
                continue
            (handles[method],) = ax.plot(grid, density(grid), **style)
        ax.set_xlim(grid[0], grid[-1])
        ax.set_ylim(bottom=0)
        ax.set_xlabel(metric_label(metric), fontsize=11)
        ax.set_ylabel("density", fontsize=11)
        ax.grid(alpha=0.3)
    # One legend for all panels (below them), so that no legend hides a curve.
    labels = []
    for method in methods:
        counts = [int(df.loc[df["method"] == method, m].notna().sum()) for m in metrics]
        n = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}\u2013{max(counts)}"
        labels.append(f"{method_display_name(method)} (n = {n})")
        if method not in handles:  # constant everywhere: a dashed line stands for it
            from matplotlib.lines import Line2D

            handles[method] = Line2D([], [], color=colors[method], ls="--")
    fig.legend([handles[m] for m in methods], labels, loc="outside lower center",
               ncols=len(methods), fontsize=10, frameon=False)
    if title:
        fig.suptitle(_wrap(title, fig.get_figwidth(), 12), fontsize=12)
    if fname is not None:
        save_figure(fig, fname, pdf=pdf)
    return fig


_LEARNING_RATE_COLUMNS = ("learning_rate", "lr")


def plot_training_curves(history, *, title=None, fname=None, pdf=False):
    """Draw a training history: loss, each other logged metric, and the learning rate.

    One panel per quantity logged for training (``loss``, ``pixel_error``, ...), with its
    validation counterpart (``val_*``) as a dashed line, and the learning rate on its own panel
    (log scale). A dotted vertical line marks the epoch with the lowest ``val_loss``.

    Parameters
    ----------
    history : pandas.DataFrame
        The history (:func:`meg_unet.io.read_history`).
    title : str | None
        Figure title.
    fname : path-like | None
        Where to write the PNG; None writes nothing.
    pdf : bool
        Also write a PDF.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, one axes per panel.
    """
    from matplotlib.ticker import MaxNLocator

    epochs = history["epoch"].to_numpy()
    learning_rate = next((c for c in _LEARNING_RATE_COLUMNS if c in history.columns), None)
    quantities = ["loss"] if "loss" in history.columns else []
    quantities += [
        c for c in history.columns
        if c not in ("epoch", "loss", *_LEARNING_RATE_COLUMNS) and not c.startswith("val_")
        and history[c].notna().any()
    ]
    quantities += [
        c for c in history.columns  # validation-only columns have no training counterpart
        if c.startswith("val_") and c[4:] not in history.columns and history[c].notna().any()
    ]
    panels = quantities + ([learning_rate] if learning_rate else [])
    if not panels or len(history) == 0:
        raise ValueError("the training history has nothing to draw")
    fig = _new_figure((4.4 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    best = None
    if "val_loss" in history.columns and history["val_loss"].notna().any():
        best = epochs[int(np.nanargmin(history["val_loss"].to_numpy()))]
    marker = "o" if len(history) <= 30 else None
    for ax, name in zip(axes, panels):
        label = name.replace("_", " ")
        if name == learning_rate:
            ax.plot(epochs, history[name], color="tab:purple", marker=marker, ms=3)
            if (history[name] > 0).all():
                ax.set_yscale("log")
            ax.set_ylabel("learning rate", fontsize=11)
            ax.set_title("learning rate", fontsize=11)
        else:
            if not name.startswith("val_"):
                ax.plot(epochs, history[name], color="tab:blue", marker=marker, ms=3,
                        label="training")
            val = name if name.startswith("val_") else f"val_{name}"
            if val in history.columns:
                ax.plot(epochs, history[val], color="tab:orange", ls="--", marker=marker, ms=3,
                        label="validation")
            ax.set_ylabel(label, fontsize=11)
            ax.set_title(label.removeprefix("val "), fontsize=11)
            curves = history[[c for c in (name, val) if c in history.columns]].to_numpy()
            curves = curves[np.isfinite(curves)]
            # A first epoch far above the rest would flatten the curve: use a log scale then.
            if curves.size and curves.min() > 0 and curves.max() / curves.min() > 30:
                ax.set_yscale("log")
        if best is not None:
            ax.axvline(best, color="0.4", ls=":", lw=1.2, label=f"lowest val loss (epoch {best:g})")
        ax.set_xlabel("epoch (Keras numbering, 0 = first)", fontsize=11)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9)
    if title:
        fig.suptitle(_wrap(title, fig.get_figwidth(), 12), fontsize=12)
    if fname is not None:
        save_figure(fig, fname, pdf=pdf)
    return fig


def plot_multi_dipole_dle(df, metric="dle_cm", *, title=None, fname=None, pdf=False):
    """Box plots of a metric per number of simultaneous sources, one box per method.

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`meg_unet.tables.read_metrics`); the number of sources
        per row comes from ``n_sources`` (or is counted in ``true_vertices``).
    metric : str
        The metric column (DLE by default).
    title : str | None
        Figure title.
    fname : path-like | None
        Where to write the PNG; None writes nothing.
    pdf : bool
        Also write a PDF.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure (one axes).
    """
    from matplotlib.patches import Patch

    if metric not in df.columns:
        raise ValueError(f"the metrics table has no column {metric!r}")
    data = pd.DataFrame(
        dict(
            method=df["method"].to_numpy(),
            n_sources=_n_sources(df),
            value=df[metric].to_numpy(dtype=np.float64),
            sample=(df["split"].astype(str) + "/" + df["sample"].astype(str)).to_numpy()
            if {"split", "sample"} <= set(df.columns) else np.arange(len(df)),
        )
    ).dropna(subset=["value"])
    if data.empty:
        raise ValueError(f"no values of {metric!r} to draw")
    methods = order_methods(data["method"].unique())
    colors = method_colors(methods)
    counts = sorted(data["n_sources"].unique())
    fig = _new_figure((max(6.0, 1.2 + 0.45 * len(methods) * len(counts)), 4.6),
                      layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        positions, groups = [], []
        for i, count in enumerate(counts):
            values = data.loc[(data["method"] == method) & (data["n_sources"] == count), "value"]
            if len(values):
                positions.append(i - 0.4 + width * (j + 0.5))
                groups.append(values.to_numpy(dtype=np.float64))
        if not groups:
            continue
        boxes = ax.boxplot(
            groups, positions=positions, widths=width * 0.85, patch_artist=True,
            showfliers=True, flierprops=dict(marker=".", ms=2, alpha=0.4),
            medianprops=dict(color="white" if method == "unet" else "black", lw=1.5),
        )
        for box in boxes["boxes"]:
            box.set(facecolor=colors[method], alpha=0.85)
    n_per_count = data.groupby("n_sources")["sample"].nunique()
    ax.set_xticks(range(len(counts)))
    ax.set_xticklabels(
        [f"{c} source{'s' if c != 1 else ''}\n(n = {n_per_count[c]})" for c in counts],
        fontsize=10,
    )
    ax.set_xlim(-0.6, len(counts) - 0.4)
    ax.set_ylabel(metric_label(metric), fontsize=11)
    ax.set_xlabel("simultaneous true sources", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(
        handles=[Patch(facecolor=colors[m], label=method_display_name(m)) for m in methods],
        fontsize=10, loc="outside lower center", ncols=len(methods), frameon=False,
    )
    if title:
        fig.suptitle(_wrap(title, fig.get_figwidth(), 12), fontsize=12)
    if fname is not None:
        save_figure(fig, fname, pdf=pdf)
    return fig


# ---------------------------------------------------------------------------------------------
# Files


def save_figure(fig, fname, pdf=False):
    """Write a figure as PNG (and PDF) atomically: a temporary name beside it, then a rename.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    fname : path-like
        The PNG's path (any suffix is replaced by ``.png``); the folder is created if needed.
    pdf : bool
        Also write the same figure as ``.pdf`` beside it.

    Returns
    -------
    paths : list of pathlib.Path
        The files written.
    """
    fname = Path(fname).with_suffix(".png")
    paths = []
    for suffix in (".png", ".pdf") if pdf else (".png",):
        path = fname.with_suffix(suffix)
        # atomic_path: a temporary name in the same folder, renamed on success (and created
        # by savefig itself, so the file gets the usual permissions, not mkstemp's 0600)
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format=suffix[1:], dpi=DPI)
        paths.append(path)
    return paths


def _source_vertices(config, df):
    """All source vertex numbers per hemisphere, or None when they are not known cheaply.

    From the data split's ``<split>-src.fif`` when it is there, else from the rule of the
    embedded fsaverage's ico spacings (vertices ``0 .. 10 * 4**N + 1``).
    """
    for split in sorted(df["split"].unique()):
        path = config.run_data_dir / split / f"{split}-src.fif"
        if path.is_file():
            import mne

            src = mne.read_source_spaces(path, verbose=False)
            return {"lh": np.asarray(src[0]["vertno"]), "rh": np.asarray(src[1]["vertno"])}
    if config.head_model == "fsaverage" and config.spacing.startswith("ico"):
        n = 10 * 4 ** int(config.spacing[3:]) + 2
        return {"lh": np.arange(n), "rh": np.arange(n)}
    return None


def make_figures(config, pdf=False, overwrite=False, progress=True):
    """Draw every figure of a run into ``RESULTS_DIR/<run>/figures/``.

    Reads ``predictions/metrics.csv`` and ``model/history.csv`` of the run and writes
    ``heatmap_dle.png``, ``heatmap_sd.png``, ``heatmap_oa.png`` (:func:`plot_heatmaps`),
    ``density.png`` (:func:`plot_density`), ``training_curves.png``
    (:func:`plot_training_curves`; skipped with a warning without a history) and, when some
    samples have several true sources, ``multi_dipole_dle.png``
    (:func:`plot_multi_dipole_dle`). Heatmaps use the single-source rows when there are any,
    else all rows (a multi-source row counts for each of its true vertices).

    A figure is drawn again only when its inputs or its files changed since it was drawn, or
    with ``overwrite``: ``manifests/figure-<name>.json`` records their checksums
    (:class:`meg_unet.io.Stage`, as the head-model cache does).

    Parameters
    ----------
    config : meg_unet.config.Config
        The run's configuration.
    pdf : bool
        Also write each figure as PDF.
    overwrite : bool
        Redraw figures that are up to date.
    progress : bool
        Show a progress bar over the figures.

    Returns
    -------
    paths : list of pathlib.Path
        The files written (empty when everything was up to date).

    Raises
    ------
    FileNotFoundError
        If the run has no metrics.csv.
    ValueError
        If metrics.csv is malformed (the message names the file).
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    metrics_path = config.run_results_dir / "predictions" / "metrics.csv"
    history_path = config.run_results_dir / "model" / "history.csv"
    out_dir = config.run_results_dir / "figures"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path}: no metrics file (predict.py writes it)")
    tasks = _figure_tasks(config, read_metrics(metrics_path), metrics_path, history_path)
    written = []
    run_dir = config.run_results_dir
    stale = []
    # a figure drawn with its PDF is current for a run that asks for the PNG only
    accepted = [(".png", ".pdf")] if pdf else [(".png", ".pdf"), (".png",)]
    for stem, inputs, draw in tasks:
        params = dict(inputs=file_checksums(run_dir, [str(p.relative_to(run_dir))
                                                      for p in inputs]))
        stages = [Stage(run_dir, f"figure-{stem}", params,
                        [f"figures/{stem}{suffix}" for suffix in suffixes])
                  for suffixes in accepted]
        if overwrite or all(stage.problem() is not None for stage in stages):
            stale.append((stem, draw, stages[-1]))  # the last: the formats asked for
    if len(stale) < len(tasks):
        kept = sorted(set(t[0] for t in tasks) - set(t[0] for t in stale))
        logger.info(
            "kept %d figure(s) drawn from the same inputs in %s: %s (--overwrite redraws them)",
            len(kept), out_dir, ", ".join(kept),
        )
    # Log lines go through tqdm, so that they do not break the progress bar.
    with logging_redirect_tqdm(loggers=[logger]):
        bar = tqdm(stale, desc="figures", unit="figure", disable=not progress or not stale)
        for stem, draw, stage in bar:
            start = time.perf_counter()
            fig = draw()
            if fig is None:
                continue
            stage.invalidate()
            written += save_figure(fig, out_dir / f"{stem}.png", pdf=pdf)
            stage.commit()
            logger.info(
                "wrote %s (%.1f s)", out_dir / f"{stem}.png", time.perf_counter() - start
            )
    return written


def _figure_tasks(config, df, metrics_path, history_path):
    """The figures a run's metrics and history allow: ``(file stem, inputs, drawing function)``."""
    n_sources = _n_sources(df)
    sensors = _SENSOR_NAMES.get(config.sensors, config.sensors)
    context = f"run {config.run_name}, SNR {config.snr_label}, {sensors}"

    tasks = []  # (file stem, inputs, drawing function)
    single = df[n_sources == 1] if (n_sources == 1).any() else df
    heat_rows = "single-source samples" if (n_sources == 1).any() else (
        "multi-source samples, each row counted at every true source")
    default_hemi = config.hemisphere if config.hemisphere in _HEMIS else None
    if default_hemi is None and "hemi" not in df.columns:
        logger.warning(
            "%s has no 'hemi' column but HEMISPHERE is 'both': the vertex numbers do not say "
            "their hemisphere, so the heatmaps are skipped", metrics_path,
        )
    else:
        tasks += _heatmap_tasks(config, single, default_hemi or "rh", context, heat_rows,
                                metrics_path)
    present = [m for m in HEATMAP_METRICS if m in df.columns and df[m].notna().any()]
    if present:
        tasks.append((
            "density", [metrics_path],
            lambda: plot_density(
                df, present,
                title=f"Resolution metrics, {context}, n = {_n_samples(df)} samples",
            ),
        ))
    if history_path.is_file():
        tasks.append((
            "training_curves", [history_path],
            lambda: plot_training_curves(
                read_history(history_path), title=f"Training history, run {config.run_name}, "
                f"SNR {config.snr_label}, {sensors}",
            ),
        ))
    else:
        logger.warning("%s not found: skipping the training curves", history_path)
    events_path = config.run_results_dir / "predictions" / "test-events.tsv"
    if events_path.is_file() and default_hemi is not None:
        tasks.append(("sources", [events_path], _sources_drawer(config, context)))
    if (n_sources > 1).any() and "dle_cm" in df.columns:
        tasks.append((
            "multi_dipole_dle", [metrics_path],
            lambda: plot_multi_dipole_dle(
                df, title=f"DLE per number of simultaneous sources, {context}, "
                f"n = {_n_samples(df)} samples",
            ),
        ))

    return tasks


def _sources_drawer(config, context, seconds=1.0):
    """The drawing task of ``sources.png``: the first second of the test split."""
    def draw():
        try:
            truth, estimate, n_events = _first_seconds_sources(config, seconds)
        except FileNotFoundError as exc:
            logger.warning("skipping sources: %s", exc)
            return None
        hemis = [h for h in _HEMIS if len(truth[h][0]) or len(estimate[h][0])] or [
            config.hemisphere]
        surfaces = {h: load_surface(h, config.head_model,
                                    subjects_dir=config.custom_subjects_dir,
                                    subject=config.custom_subject) for h in hemis}
        src_path = config.run_data_dir / "test" / "test-src.fif"
        source_vertices = None
        if src_path.is_file():
            import mne

            src = mne.read_source_spaces(src_path, verbose=False)
            source_vertices = {h: np.asarray(src[i]["vertno"]) for i, h in enumerate(_HEMIS)}
        return plot_sources(
            surfaces, truth, estimate, source_vertices=source_vertices,
            title=f"Sources of the first {seconds:g} s of the test split ({n_events} events): "
            f"simulated (top) and found by the U-Net and the refit (bottom), {context}",
        )

    return draw


def _heatmap_tasks(config, df, default_hemi, context, rows_text, metrics_path):
    """Heatmap drawing tasks; the surfaces are read once, on first use."""
    cache = {}

    def surfaces_and_sources():
        if not cache:
            hemis = sorted(set(df["hemi"])) if "hemi" in df.columns else [default_hemi]
            cache["surfaces"] = {
                h: load_surface(
                    h, config.head_model, subjects_dir=config.custom_subjects_dir,
                    subject=config.custom_subject,
                )
                for h in hemis
            }
            cache["sources"] = _source_vertices(config, df)
        return cache["surfaces"], cache["sources"]

    def drawer(metric, short):
        def draw():
            try:
                surfaces, sources = surfaces_and_sources()
            except FileNotFoundError as exc:
                logger.warning("skipping heatmap_%s: %s", short, exc)
                return None
            name = metric_label(metric).split(" (")[0]
            return plot_heatmaps(
                df, metric, surfaces, source_vertices=sources, hemi=default_hemi,
                title=f"Mean {name} per true source vertex ({config.head_model} "
                f"{config.spacing}), {context}, n = {_n_samples(df)} {rows_text}",
            )

        return draw

    return [
        (f"heatmap_{short}", [metrics_path], drawer(metric, short))
        for metric, short in HEATMAP_METRICS.items()
        if metric in df.columns and df[metric].notna().any()
    ]
