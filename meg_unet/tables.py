"""Statistics tables of the resolution metrics in ``metrics.csv`` (the thesis's Tables 5-11).

``predict.py`` writes ``metrics.csv`` in a tidy long format: one row per (time sample with an
active true source, method), with the columns ``split``, ``sample``, ``method`` and one column
per metric (see :data:`METRICS`). This module reads and checks that file, and computes

- the descriptive statistics of each metric per method (:func:`summary_table`), printed like
  the thesis's Table 5 (:func:`summary_markdown`);
- the correlations of each metric between methods, sample by sample, with their p-values
  (:func:`correlation_tables`), printed like the thesis's Tables 6-11
  (:func:`correlation_markdown`).

``analyze_results.r`` computes the same numbers in R, writes the same CSV columns and the same
Markdown, and draws the kernel density plots; the tests check that both agree.

Conventions shared with ``analyze_results.r``
---------------------------------------------
- Missing values (empty, ``NA``, ``NaN``, ``nan``, ...; see :data:`MISSING_STRINGS`) are
  allowed in metric columns and left out, per method for the descriptive statistics and per
  pair of methods for the correlations (pairwise complete samples, like ``Hmisc::rcorr`` used
  by the thesis). Other non-numeric values, and infinite values, are errors.
- St. Dev. divides by ``n - 1`` (R's ``sd``; ``ddof=1``).
- p-values are two-sided by default. The thesis reported one-tailed p-values; pass
  ``alternative="greater"`` (R: ``--one-tailed``) for the one-sided test of a positive
  correlation. Spearman's p-value uses the t approximation with ``n - 2`` degrees of freedom
  (:func:`scipy.stats.spearmanr`, ``Hmisc::rcorr``, R's ``cor.test(..., exact = FALSE)``).
- A correlation needs at least 3 pairs and neither method constant over them; otherwise it
  is NaN (so is its p-value).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from .io import atomic_path

__all__ = [
    "CorrelationMatrices",
    "METHOD_DISPLAY_NAMES",
    "METRICS",
    "MISSING_STRINGS",
    "REQUIRED_COLUMNS",
    "correlation_markdown",
    "correlation_tables",
    "correlations_long",
    "method_display_name",
    "metric_label",
    "order_methods",
    "read_metrics",
    "summary_markdown",
    "summary_table",
    "write_tables",
]

#: Metric columns in display order, with their labels (unit in parentheses where there is one).
#: A column of metrics.csv is a metric if and only if its name is a key here.
METRICS = {
    "dle_cm": "DLE (cm)",
    "sd_cm": "SD (cm)",
    "oa": "OA",
    "sd_thesis_sqrtcm": "SD, thesis (√cm)",
    "recall": "Recall",
    "ghosts": "Ghost peaks",
}

#: Columns every metrics.csv must have: the keys of a sample, the method and three metrics.
REQUIRED_COLUMNS = ("split", "sample", "method", "dle_cm", "sd_cm", "oa")

#: Methods in table order; any other method comes after these (alphabetically) and ``unet``
#: always comes last, so the U-Net sits next to the table's edge as in the thesis.
METHOD_ORDER = ("mne", "dspm", "sloreta", "eloreta", "lcmv", "mxne", "gamma_map", "l2_best")

#: How methods are spelled in tables; other methods are shown as they are.
METHOD_DISPLAY_NAMES = {
    "mne": "MNE",
    "dspm": "dSPM",
    "sloreta": "sLORETA",
    "eloreta": "eLORETA",
    "lcmv": "LCMV",
    "mxne": "MxNE",
    "gamma_map": "Gamma-MAP",
    "l2_best": "best L2",
    "unet": "U-Net",
}

#: Cell values that mean "missing" in a metric column (the same list in analyze_results.r).
MISSING_STRINGS = ("", "NA", "NaN", "nan", "NAN", "N/A", "n/a", "NULL", "null", "None")

_ALTERNATIVES = ("two-sided", "greater", "less")
_CORRELATION_METHODS = ("pearson", "spearman")
# text for a missing number in the Markdown tables (an en dash)
_MISSING_CELL = "\u2013"
# p-values below this are printed as "<0.0001", as in the thesis
_P_FLOOR = 1e-4


# ---------------------------------------------------------------------------------------------
# Reading


def read_metrics(path):
    """Read and check a metrics.csv written by ``predict.py``.

    Parameters
    ----------
    path : path-like
        The CSV file.

    Returns
    -------
    df : pandas.DataFrame
        One row per (sample, method). ``split`` and ``method`` are str, ``sample`` is int, and
        each metric column present (the keys of :data:`METRICS`) is float64 with NaN where
        the file has a missing value. Other columns are kept as str.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty or has no data rows, lacks any of :data:`REQUIRED_COLUMNS`, has a
        metric value that is neither a finite number nor missing, a ``sample`` that is not an
        integer, an empty ``method``, or two rows for the same (split, sample, method). The
        message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metrics file")
    try:
        # everything as text, so that the checks below see exactly what the file says
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (expected a header and data rows)") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    raw.columns = [str(column).strip() for column in raw.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise ValueError(
            f"{path}: missing required column(s): {', '.join(missing)} "
            f"(found: {', '.join(raw.columns)})"
        )
    if len(raw) == 0:
        raise ValueError(f"{path}: no data rows (only a header)")

    df = raw.copy()
    for column in ("split", "method"):
        df[column] = raw[column].str.strip()
    if (df["method"] == "").any():
        row = int(np.flatnonzero(df["method"] == "")[0])
        raise ValueError(f"{path}: empty 'method' on line {row + 2}")

    sample = pd.to_numeric(raw["sample"].str.strip(), errors="coerce")
    bad = sample.isna() | ~np.isfinite(sample) | (sample != np.round(sample))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: 'sample' must be an integer on every row; line {row + 2} has "
            f"{raw['sample'].iloc[row]!r}"
        )
    df["sample"] = sample.astype(np.int64)

    for column in _metric_columns(raw):
        df[column] = _parse_metric_column(path, column, raw[column])

    duplicated = df.duplicated(["split", "sample", "method"], keep=False)
    if duplicated.any():
        first = df.loc[duplicated].iloc[0]
        raise ValueError(
            f"{path}: {int(duplicated.sum())} rows repeat a (split, sample, method), e.g. "
            f"split={first['split']!r}, sample={first['sample']}, method={first['method']!r}"
        )
    return df


def _parse_metric_column(path, column, values):
    """Return a metric column as float64, NaN where missing; raise on anything else."""
    text = values.str.strip()
    is_missing = text.isin(MISSING_STRINGS)
    numbers = pd.to_numeric(text.where(~is_missing), errors="coerce").astype(np.float64)
    bad = (numbers.isna() & ~is_missing) | np.isinf(numbers)
    if bad.any():
        rows = np.flatnonzero(bad)
        examples = ", ".join(
            f"line {row + 2}: {values.iloc[row]!r}" for row in rows[:3]
        )
        raise ValueError(
            f"{path}: column '{column}' has {len(rows)} value(s) that are not finite numbers "
            f"({examples})"
        )
    return numbers


def _metric_columns(df):
    """The metric columns of ``df``, in display order."""
    return [metric for metric in METRICS if metric in df.columns]


# ---------------------------------------------------------------------------------------------
# Names and order


def order_methods(methods):
    """Sort method names into table order.

    Parameters
    ----------
    methods : iterable of str
        Method names as in metrics.csv (duplicates are dropped).

    Returns
    -------
    ordered : list of str
        ``mne``, ``dspm``, ``sloreta``, the other known methods of :data:`METHOD_ORDER`, then
        unknown methods in code-point order, then ``unet``.
    """
    methods = set(methods)
    known = [method for method in METHOD_ORDER if method in methods]
    others = sorted(methods - set(METHOD_ORDER) - {"unet"})
    return known + others + (["unet"] if "unet" in methods else [])


def method_display_name(method):
    """Return how a method is spelled in tables (e.g. ``'dspm'`` -> ``'dSPM'``)."""
    return METHOD_DISPLAY_NAMES.get(method, method)


def metric_label(metric):
    """Return a metric's table label with its unit (e.g. ``'dle_cm'`` -> ``'DLE (cm)'``)."""
    return METRICS.get(metric, metric)


# ---------------------------------------------------------------------------------------------
# Descriptive statistics (Table 5)


def summary_table(df):
    """Compute n, mean, standard deviation, minimum and maximum per method and metric.

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`read_metrics`).

    Returns
    -------
    summary : pandas.DataFrame
        Columns ``method``, ``metric``, ``n``, ``mean``, ``sd``, ``min``, ``max``; one row
        per (metric, method), metrics in the order of :data:`METRICS` and methods in
        :func:`order_methods` order. ``n`` counts the non-missing values; ``sd`` divides by
        ``n - 1`` (like R's ``sd``) and is NaN for ``n < 2``; all statistics are NaN for
        ``n = 0``.
    """
    metrics = _metric_columns(df)
    long = df.melt(id_vars="method", value_vars=metrics, var_name="metric")
    stats = long.groupby(["metric", "method"])["value"].agg(
        n="count", mean="mean", sd="std", min="min", max="max"
    )
    order = pd.MultiIndex.from_product(
        [metrics, order_methods(df["method"].unique())], names=["metric", "method"]
    )
    summary = stats.reindex(order).reset_index()
    return summary[["method", "metric", "n", "mean", "sd", "min", "max"]].astype({"n": np.int64})


def summary_markdown(summary, title=None, reference=None, digits=3):
    """Format :func:`summary_table` as a Markdown table in the layout of the thesis's Table 5.

    One row per (metric, method), grouped in one block per metric (the metric's label on the
    block's first row), with the columns Mean, St. Dev., Min, Max and n.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`summary_table`.
    title : str | None
        A level-2 heading above the table.
    reference : dict | None
        Published means to compare with, ``{(metric, method): mean}`` (e.g. the thesis's
        Table 5), shown in an extra column "Thesis mean"; blank where a pair has none.
    digits : int
        Decimals of the statistics (the thesis printed 3).

    Returns
    -------
    text : str
        The Markdown, ending with a newline.
    """
    columns = ["Metric", "Method", "Mean", "St. Dev.", "Min", "Max", "n"]
    if reference is not None:
        columns.append("Thesis mean")
    lines = [] if title is None else [f"## {title}", ""]
    lines += [_markdown_row(columns), _markdown_rule(2, len(columns) - 2)]
    previous_metric = None
    for row in summary.itertuples(index=False):
        cells = [
            metric_label(row.metric) if row.metric != previous_metric else "",
            method_display_name(row.method),
            *(_format_number(value, digits) for value in (row.mean, row.sd, row.min, row.max)),
            str(int(row.n)),
        ]
        if reference is not None:
            published = reference.get((row.metric, row.method))
            cells.append("" if published is None else _format_number(published, digits))
        lines.append(_markdown_row(cells))
        previous_metric = row.metric
    lines += [
        "",
        "n: samples with a value; St. Dev. divides by n \u2212 1 (like R's sd).",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Correlations between methods (Tables 6-11)


class CorrelationMatrices(NamedTuple):
    """The correlations of one metric between methods (rows and columns: methods).

    Attributes
    ----------
    r : pandas.DataFrame
        Correlation coefficients (Pearson's r or Spearman's rho); 1 on the diagonal.
    p : pandas.DataFrame
        p-values; NaN on the diagonal.
    n : pandas.DataFrame of int
        Number of samples where both methods have a value (on the diagonal: where the method
        has one).
    """

    r: pd.DataFrame
    p: pd.DataFrame
    n: pd.DataFrame


def correlation_tables(df, method="pearson", alternative="two-sided"):
    """Correlate each metric between methods, sample by sample.

    The rows of ``df`` are paired across methods on (``split``, ``sample``); each pair of
    methods uses the samples where both have a value (pairwise complete, like the thesis's
    ``Hmisc::rcorr``).

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`read_metrics`), at most one row per
        (split, sample, method).
    method : ``'pearson'`` | ``'spearman'``
        Pearson's r (:func:`scipy.stats.pearsonr`) or Spearman's rho
        (:func:`scipy.stats.spearmanr`, p-value from the t approximation).
    alternative : ``'two-sided'`` | ``'greater'`` | ``'less'``
        The alternative hypothesis of the p-values. Two-sided by default; the thesis reported
        one-tailed p-values, which is ``'greater'`` (a positive correlation).

    Returns
    -------
    tables : dict of str to CorrelationMatrices
        One entry per metric column of ``df``, in the order of :data:`METRICS`; methods in
        :func:`order_methods` order. A pair with fewer than 3 common samples, or with a method
        constant over them, has r and p NaN.
    """
    if method not in _CORRELATION_METHODS:
        raise ValueError(f"method must be one of {_CORRELATION_METHODS}, got {method!r}")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    duplicated = df.duplicated(["split", "sample", "method"])
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} rows repeat a (split, sample, method); "
            "correlations need one value per method and sample"
        )
    methods = order_methods(df["method"].unique())
    tables = {}
    for metric in _metric_columns(df):
        wide = df.pivot(index=["split", "sample"], columns="method", values=metric)
        wide = wide.reindex(columns=methods).to_numpy(dtype=np.float64)
        k = len(methods)
        r = np.full((k, k), np.nan)
        p = np.full((k, k), np.nan)
        n = np.zeros((k, k), dtype=np.int64)
        for i in range(k):
            for j in range(i, k):
                r[i, j], p[i, j], n[i, j] = _correlate(
                    wide[:, i], wide[:, j], method, alternative
                )
                if i == j:
                    p[i, j] = np.nan  # testing a method against itself says nothing
                else:
                    r[j, i], p[j, i], n[j, i] = r[i, j], p[i, j], n[i, j]
        tables[metric] = CorrelationMatrices(
            r=pd.DataFrame(r, index=methods, columns=methods),
            p=pd.DataFrame(p, index=methods, columns=methods),
            n=pd.DataFrame(n, index=methods, columns=methods),
        )
    return tables


def _correlate(x, y, method, alternative):
    """Return (r, p, n) over the pairs where both ``x`` and ``y`` have a value."""
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    n = int(both.sum())
    # same rule as analyze_results.r: cor.test needs 3 pairs; a constant has no correlation
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan, n
    test = stats.pearsonr if method == "pearson" else stats.spearmanr
    result = test(x, y, alternative=alternative)
    return float(result.statistic), float(result.pvalue), n


def correlations_long(tables, alternative="two-sided"):
    """Flatten :func:`correlation_tables` to one row per metric and pair of methods.

    Parameters
    ----------
    tables : dict of str to CorrelationMatrices
        Output of :func:`correlation_tables`.
    alternative : str
        The alternative the p-values were computed with (written to each row).

    Returns
    -------
    long : pandas.DataFrame
        Columns ``metric``, ``method_1``, ``method_2``, ``n``, ``r``, ``p``, ``alternative``;
        each unordered pair of different methods once (``method_1`` before ``method_2`` in
        table order).
    """
    rows = []
    for metric, matrices in tables.items():
        methods = list(matrices.r.index)
        for i, first in enumerate(methods):
            for second in methods[i + 1 :]:
                rows.append(
                    dict(
                        metric=metric,
                        method_1=first,
                        method_2=second,
                        n=int(matrices.n.loc[first, second]),
                        r=matrices.r.loc[first, second],
                        p=matrices.p.loc[first, second],
                        alternative=alternative,
                    )
                )
    columns = ["metric", "method_1", "method_2", "n", "r", "p", "alternative"]
    return pd.DataFrame(rows, columns=columns).astype({"n": np.int64})


def correlation_markdown(tables, method="pearson", alternative="two-sided", title=None, digits=2):
    """Format :func:`correlation_tables` like the thesis's Tables 6-11.

    Per metric: the upper triangle of the correlation matrix (the thesis printed 2 decimals),
    the upper triangle of the p-values, and a line with n and the largest p-value.

    Parameters
    ----------
    tables : dict of str to CorrelationMatrices
        Output of :func:`correlation_tables`.
    method : ``'pearson'`` | ``'spearman'``
        The correlation the tables hold (for the caption).
    alternative : str
        The alternative the p-values were computed with (for the caption).
    title : str | None
        A level-2 heading above the tables.
    digits : int
        Decimals of the correlations.

    Returns
    -------
    text : str
        The Markdown, ending with a newline.
    """
    lines = [] if title is None else [f"## {title}", ""]
    lines += [_correlation_caption(method, alternative)]
    for metric, matrices in tables.items():
        methods = list(matrices.r.index)
        names = [method_display_name(m) for m in methods]
        lines += ["", f"### {metric_label(metric)}", ""]
        r_symbol = "r" if method == "pearson" else "\u03c1"
        lines += _upper_triangle(
            r_symbol, names, matrices.r, lambda value: _format_number(value, digits), True
        )
        lines += _upper_triangle("p", names, matrices.p, _format_p, False)
        lines.append(_correlation_footer(matrices))
    return "\n".join(lines) + "\n"


def _upper_triangle(symbol, names, values, format_cell, diagonal):
    """Markdown rows of a matrix's upper triangle (as in the thesis), then a blank line."""
    lines = [_markdown_row([symbol, *names]), _markdown_rule(1, len(names))]
    for i, name in enumerate(names):
        cells = [
            format_cell(values.iloc[i, j]) if j > i or (j == i and diagonal) else ""
            for j in range(len(names))
        ]
        lines.append(_markdown_row([name, *cells]))
    return lines + [""]


def _correlation_caption(method, alternative):
    if method == "pearson":
        what = "Pearson's r between methods (scipy.stats.pearsonr; R's cor.test)"
    else:
        what = (
            "Spearman's rank correlation \u03c1 between methods; p from the t approximation "
            "with n \u2212 2 degrees of freedom (scipy.stats.spearmanr; "
            "R's cor.test with exact = FALSE)"
        )
    sides = {
        "two-sided": "two-sided p-values",
        "greater": "one-sided p-values (alternative: positive correlation)",
        "less": "one-sided p-values (alternative: negative correlation)",
    }[alternative]
    return f"{what}; {sides}; samples paired on (split, sample), pairwise complete."


def _correlation_footer(matrices):
    """``n = ...; p ...`` over the pairs of different methods, as under the thesis's tables."""
    upper = np.triu_indices(len(matrices.r), k=1)
    if upper[0].size == 0:
        return "(one method: nothing to correlate)"
    n = matrices.n.to_numpy()[upper]
    n_text = f"n = {n.min()}" if n.min() == n.max() else f"n = {n.min()}\u2013{n.max()}"
    p = matrices.p.to_numpy()[upper]
    p = p[~np.isnan(p)]
    if p.size == 0:
        p_text = "no p-values"
    elif p.max() < _P_FLOOR:
        p_text = f"p < {_P_FLOOR:.4f}"
    else:
        p_text = f"largest p = {p.max():.4f}"
    return f"{n_text}; {p_text}"


# ---------------------------------------------------------------------------------------------
# Markdown helpers (analyze_results.r formats numbers the same way)


def _format_number(value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING_CELL
    return f"{float(value):.{digits}f}"


def _format_p(value):
    if math.isnan(value):
        return _MISSING_CELL
    return f"<{_P_FLOOR:.4f}" if value < _P_FLOOR else f"{value:.4f}"


def _markdown_row(cells):
    return "| " + " | ".join(cells) + " |"


def _markdown_rule(n_left, n_right):
    """Header rule with ``n_left`` left-aligned then ``n_right`` right-aligned columns."""
    return "|" + "|".join([":--"] * n_left + ["--:"] * n_right) + "|"


# ---------------------------------------------------------------------------------------------
# Files


def write_tables(df, out_dir, *, alternative="two-sided", title=None, reference=None):
    """Write the descriptive statistics and both correlation tables of ``df``.

    Writes, in ``out_dir`` (created if needed): ``summary.csv`` (:func:`summary_table`),
    ``summary.md`` (:func:`summary_markdown`), and for ``<method>`` in ``pearson`` and
    ``spearman``: ``correlations_<method>.csv`` (:func:`correlations_long`) and
    ``correlations_<method>.md`` (:func:`correlation_markdown`). Each file is written to a
    temporary name in ``out_dir`` and renamed, so a reader never sees a half-written file.

    Parameters
    ----------
    df : pandas.DataFrame
        Metrics in long format (:func:`read_metrics`).
    out_dir : path-like
        Output folder.
    alternative : ``'two-sided'`` | ``'greater'`` | ``'less'``
        Alternative hypothesis of the correlation p-values.
    title : str | None
        Heading of the Markdown files.
    reference : dict | None
        Published means for :func:`summary_markdown`.

    Returns
    -------
    paths : list of pathlib.Path
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_table(df)
    contents = {
        "summary.csv": summary.to_csv(index=False),
        "summary.md": summary_markdown(summary, title=title, reference=reference),
    }
    for method in _CORRELATION_METHODS:
        tables = correlation_tables(df, method=method, alternative=alternative)
        contents[f"correlations_{method}.csv"] = correlations_long(tables, alternative).to_csv(
            index=False
        )
        contents[f"correlations_{method}.md"] = correlation_markdown(
            tables, method=method, alternative=alternative, title=title
        )
    paths = []
    for name, text in contents.items():
        paths.append(_write_atomically(out_dir / name, text))
    return paths


def _write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file (see :func:`meg_unet.io.atomic_path`)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as file:
            file.write(text)
    return path
