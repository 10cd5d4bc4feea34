"""meg_unet.tables: reading metrics.csv, descriptive statistics, correlations and their files."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from meg_unet import tables

DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "metrics_tiny.csv"  # 2 methods x 4 samples, numbers checked by hand below
FIXTURE = DATA / "metrics_fixture.csv"  # 4 methods x 30 samples, rows shuffled, 2 missing values

HEADER = "split,sample,method,dle_cm,sd_cm,oa\n"


def _write(tmp_path, text, name="metrics.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _row(summary, method, metric):
    rows = summary[(summary["method"] == method) & (summary["metric"] == metric)]
    assert len(rows) == 1
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------
# read_metrics


def test_read_metrics_types_and_missing_values():
    df = tables.read_metrics(FIXTURE)
    assert len(df) == 120
    assert df["sample"].dtype == np.int64
    for metric in tables.METRICS:  # the fixture has all six metrics
        assert df[metric].dtype == np.float64
    # one empty OA cell and one "NaN" SD cell in the file
    assert df["oa"].isna().sum() == 1
    assert df["sd_cm"].isna().sum() == 1
    assert set(df["method"]) == {"mne", "dspm", "sloreta", "unet"}


@pytest.mark.parametrize("missing", ["", "NA", "nan", "NaN", " NA "])
def test_read_metrics_accepts_missing_spellings(tmp_path, missing):
    path = _write(tmp_path, HEADER + f"test,0,mne,1.5,{missing},3\ntest,1,mne,2,2,3\n")
    df = tables.read_metrics(path)
    assert math.isnan(df["sd_cm"].iloc[0]) and df["dle_cm"].iloc[0] == 1.5


def test_read_metrics_missing_file(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        tables.read_metrics(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        (HEADER, "no data rows"),
        ("split,sample,method,dle_cm\ntest,0,mne,1\n", r"missing required column\(s\): sd_cm, oa"),
        (HEADER + "test,0,mne,1,abc,3\n", r"column 'sd_cm' .* numbers \(line 2: 'abc'\)"),
        (HEADER + "test,0,mne,1,2,inf\n", "column 'oa' .* not finite numbers"),
        (HEADER + "test,0.5,mne,1,2,3\n", "'sample' must be an integer"),
        (HEADER + "test,,mne,1,2,3\n", "'sample' must be an integer"),
        (HEADER + "test,0,,1,2,3\n", "empty 'method'"),
        (HEADER + "test,0,mne,1,2,3\ntest,0,mne,2,2,3\n", "repeat a \\(split, sample, method\\)"),
    ],
    ids=[
        "empty", "blank-lines", "header-only", "missing-columns", "non-numeric", "infinite",
        "fractional-sample", "missing-sample", "empty-method", "duplicate",
    ],
)
def test_read_metrics_rejects_bad_files(tmp_path, text, message):
    path = _write(tmp_path, text, name="bad_metrics.csv")
    with pytest.raises(ValueError, match=message) as info:
        tables.read_metrics(path)
    assert "bad_metrics.csv" in str(info.value)  # the message names the file


# ---------------------------------------------------------------------------------------------
# summary_table and summary_markdown


def test_summary_known_numbers():
    summary = tables.summary_table(tables.read_metrics(TINY))
    assert list(summary.columns) == ["method", "metric", "n", "mean", "sd", "min", "max"]
    assert list(summary["metric"]) == ["dle_cm"] * 2 + ["sd_cm"] * 2 + ["oa"] * 2
    assert list(summary["method"]) == ["mne", "unet"] * 3

    mne_dle = _row(summary, "mne", "dle_cm")  # 1, 2, 3, 4
    assert mne_dle["n"] == 4
    assert mne_dle["mean"] == 2.5
    assert mne_dle["sd"] == pytest.approx(1.2909944487358056, rel=1e-12)  # sqrt(5 / 3)
    assert (mne_dle["min"], mne_dle["max"]) == (1.0, 4.0)

    mne_oa = _row(summary, "mne", "oa")  # 10, 20, (missing), 40
    assert mne_oa["n"] == 3
    assert mne_oa["mean"] == pytest.approx(70 / 3, rel=1e-12)
    assert mne_oa["sd"] == pytest.approx(math.sqrt(700 / 3), rel=1e-12)

    assert _row(summary, "mne", "sd_cm")["sd"] == 0.0  # a constant column
    unet_dle = _row(summary, "unet", "dle_cm")  # 1, 3, 2, 5
    assert unet_dle["mean"] == 2.75
    assert unet_dle["sd"] == pytest.approx(math.sqrt(8.75 / 3), rel=1e-12)


def test_summary_with_too_few_values(tmp_path):
    text = "split,sample,method,dle_cm,sd_cm,oa,ghosts\ntest,0,mne,1,2,,\ntest,1,mne,3,2,,\n"
    text += "test,0,unet,1,2,7,\n"
    summary = tables.summary_table(tables.read_metrics(_write(tmp_path, text)))
    oa_mne = _row(summary, "mne", "oa")
    assert oa_mne["n"] == 0 and np.isnan(oa_mne[["mean", "sd", "min", "max"]].astype(float)).all()
    oa_unet = _row(summary, "unet", "oa")
    assert oa_unet["n"] == 1 and oa_unet["mean"] == 7 and np.isnan(oa_unet["sd"])
    assert (summary.loc[summary["metric"] == "ghosts", "n"] == 0).all()


def test_summary_agrees_with_pandas_on_fixture():
    df = tables.read_metrics(FIXTURE)
    summary = tables.summary_table(df)
    grouped = df.groupby("method")["sd_cm"]
    for method in ("mne", "dspm", "sloreta", "unet"):
        row = _row(summary, method, "sd_cm")
        assert row["n"] == grouped.count()[method]
        assert row["sd"] == pytest.approx(grouped.std()[method], rel=1e-12)  # ddof=1


def test_order_methods():
    methods = ["unet", "zeta", "sloreta", "mne", "alpha", "dspm", "lcmv"]
    assert tables.order_methods(methods) == [
        "mne", "dspm", "sloreta", "lcmv", "alpha", "zeta", "unet"
    ]
    assert [tables.method_display_name(m) for m in ("mne", "dspm", "sloreta", "unet", "x")] == [
        "MNE", "dSPM", "sLORETA", "U-Net", "x"
    ]


def test_summary_markdown_layout():
    summary = tables.summary_table(tables.read_metrics(FIXTURE))
    text = tables.summary_markdown(summary, title="Table 5")
    lines = text.splitlines()
    assert lines[0] == "## Table 5"
    header = lines[2]
    for statistic in ("Mean", "St. Dev.", "Min", "Max", "n"):
        assert f"| {statistic} |" in header
    table_rows = [line for line in lines[4:] if line.startswith("| ")]
    assert len(table_rows) == len(summary)  # one row per (metric, method)
    for name in ("MNE", "dSPM", "sLORETA", "U-Net"):
        assert sum(f"| {name} |" in row for row in table_rows) == 6  # once per metric
    # one block per metric: its label on the block's first row only
    assert table_rows[0].startswith("| DLE (cm) | MNE | ")
    assert table_rows[1].startswith("|  | dSPM | ")
    assert table_rows[4].startswith("| SD (cm) | MNE | ")
    assert table_rows[8].startswith("| OA | MNE | ")
    mne_dle = _row(summary, "mne", "dle_cm")
    assert f"| {mne_dle['mean']:.3f} | {mne_dle['sd']:.3f} |" in table_rows[0]


def test_summary_markdown_reference_column():
    summary = tables.summary_table(tables.read_metrics(TINY))
    text = tables.summary_markdown(summary, reference={("dle_cm", "unet"): 3.587})
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0].endswith("| n | Thesis mean |")
    assert lines[2].endswith("| 4 |  |")  # DLE, MNE: no published number
    assert lines[3].endswith("| 4 | 3.587 |")  # DLE, U-Net


# ---------------------------------------------------------------------------------------------
# correlation_tables


def test_correlations_known_numbers():
    df = tables.read_metrics(TINY)
    pearson = tables.correlation_tables(df, "pearson")
    # x = 1, 2, 3, 4 and y = 1, 3, 2, 5: r = sum(dx dy) / sqrt(sum dx^2 sum dy^2)
    r = 5.5 / math.sqrt(5 * 8.75)
    t = r * math.sqrt(2 / (1 - r**2))
    dle = pearson["dle_cm"]
    assert dle.r.loc["mne", "unet"] == pytest.approx(r, rel=1e-12)
    assert dle.p.loc["mne", "unet"] == pytest.approx(2 * stats.t.sf(t, df=2), rel=1e-9)
    assert dle.n.loc["mne", "unet"] == 4
    # symmetric, 1 on the diagonal, no p-value for a method against itself
    assert dle.r.loc["unet", "mne"] == dle.r.loc["mne", "unet"]
    assert (np.diag(dle.r) == 1).all() and np.isnan(np.diag(dle.p)).all()

    spearman = tables.correlation_tables(df, "spearman")["dle_cm"]
    rho = 1 - 6 * 2 / (4 * (4**2 - 1))  # rank differences 0, 1, -1, 0
    assert spearman.r.loc["mne", "unet"] == pytest.approx(rho, rel=1e-12)
    t = rho * math.sqrt(2 / (1 - rho**2))
    assert spearman.p.loc["mne", "unet"] == pytest.approx(2 * stats.t.sf(t, df=2), rel=1e-9)

    # the thesis's one-tailed test of a positive correlation halves a positive r's p-value
    greater = tables.correlation_tables(df, "pearson", alternative="greater")["dle_cm"]
    assert greater.p.loc["mne", "unet"] == pytest.approx(dle.p.loc["mne", "unet"] / 2, rel=1e-9)


def test_correlations_missing_and_constant():
    df = tables.read_metrics(TINY)
    pearson = tables.correlation_tables(df, "pearson")
    # MNE's SD is constant: no correlation, no p-value, and NaN on its own diagonal
    sd = pearson["sd_cm"]
    assert np.isnan(sd.r.loc["mne", "unet"]) and np.isnan(sd.p.loc["mne", "unet"])
    assert np.isnan(sd.r.loc["mne", "mne"]) and sd.r.loc["unet", "unet"] == 1
    # OA: MNE misses sample 2, so the pair has 3 samples (pairwise complete)
    oa = pearson["oa"]
    assert oa.n.loc["mne", "unet"] == 3 and oa.n.loc["unet", "unet"] == 4
    expected = stats.pearsonr([10, 20, 40], [12, 18, 41])
    assert oa.r.loc["mne", "unet"] == pytest.approx(expected.statistic, rel=1e-12)


def test_correlations_pair_rows_by_split_and_sample():
    df = tables.read_metrics(FIXTURE)
    shuffled = tables.correlation_tables(df, "spearman")
    ordered = tables.correlation_tables(
        df.sort_values(["method", "split", "sample"]), "spearman"
    )
    for metric in shuffled:
        pd.testing.assert_frame_equal(shuffled[metric].r, ordered[metric].r)
    # an independent computation of one pair
    wide = df.pivot(index=["split", "sample"], columns="method", values="dle_cm")
    expected = stats.spearmanr(wide["dspm"], wide["unet"])
    assert shuffled["dle_cm"].r.loc["dspm", "unet"] == pytest.approx(expected.statistic)
    assert shuffled["dle_cm"].p.loc["dspm", "unet"] == pytest.approx(expected.pvalue)
    assert list(shuffled) == list(tables.METRICS)
    assert list(shuffled["oa"].r.columns) == ["mne", "dspm", "sloreta", "unet"]


def test_correlations_reject_bad_arguments():
    df = tables.read_metrics(TINY)
    with pytest.raises(ValueError, match="method must be one of"):
        tables.correlation_tables(df, "kendall")
    with pytest.raises(ValueError, match="alternative must be one of"):
        tables.correlation_tables(df, alternative="one-sided")
    with pytest.raises(ValueError, match="repeat a"):
        tables.correlation_tables(pd.concat([df, df.iloc[:1]]))


def test_correlations_long_and_markdown():
    df = tables.read_metrics(FIXTURE)
    matrices = tables.correlation_tables(df, "pearson")
    long = tables.correlations_long(matrices)
    assert list(long.columns) == ["metric", "method_1", "method_2", "n", "r", "p", "alternative"]
    assert len(long) == 6 * 6  # 6 metrics x 6 pairs of 4 methods
    first = long.iloc[0]
    assert (first["method_1"], first["method_2"]) == ("mne", "dspm")
    assert first["r"] == matrices["dle_cm"].r.loc["mne", "dspm"]

    text = tables.correlation_markdown(matrices, "pearson", title="Tables 6-11")
    assert "### DLE (cm)" in text and "### OA" in text and "two-sided" in text
    assert "| r | MNE | dSPM | sLORETA | U-Net |" in text
    assert "| p | MNE | dSPM | sLORETA | U-Net |" in text
    assert f"| MNE | 1.00 | {matrices['dle_cm'].r.loc['mne', 'dspm']:.2f} |" in text
    assert "n = 29\u201330" in text  # OA and SD each miss one sample
    spearman_text = tables.correlation_markdown(
        tables.correlation_tables(df, "spearman", alternative="greater"), "spearman", "greater"
    )
    assert "| \u03c1 | MNE |" in spearman_text and "one-sided" in spearman_text


# ---------------------------------------------------------------------------------------------
# write_tables


def test_write_tables(tmp_path):
    df = tables.read_metrics(FIXTURE)
    out_dir = tmp_path / "statistics"
    paths = tables.write_tables(df, out_dir, title="fixture")
    names = sorted(path.name for path in paths)
    assert names == sorted(
        [
            "summary.csv",
            "summary.md",
            "correlations_pearson.csv",
            "correlations_pearson.md",
            "correlations_spearman.csv",
            "correlations_spearman.md",
        ]
    )
    assert sorted(p.name for p in out_dir.iterdir()) == names  # no temporary files left
    written = pd.read_csv(out_dir / "summary.csv")
    pd.testing.assert_frame_equal(written, tables.summary_table(df), check_exact=True)
    long = pd.read_csv(out_dir / "correlations_spearman.csv")
    expected = tables.correlations_long(tables.correlation_tables(df, "spearman"))
    pd.testing.assert_frame_equal(long, expected, check_exact=True)
    assert (out_dir / "summary.md").read_text(encoding="utf-8").startswith("## fixture\n")
