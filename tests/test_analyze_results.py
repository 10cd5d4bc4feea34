"""analyze_results.r: the same numbers and Markdown as meg_unet.tables, plots, readable errors."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meg_unet import tables

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "analyze_results.r"
DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "metrics_tiny.csv"  # 2 methods x 4 samples, numbers checked by hand
FIXTURE = DATA / "metrics_fixture.csv"  # 4 methods x 30 samples, rows shuffled, 2 missing values

RSCRIPT = shutil.which("Rscript")
pytestmark = pytest.mark.skipif(
    RSCRIPT is None,
    reason="Rscript not found: install R to test analyze_results.r (Debian: apt-get install "
    "r-base-core)",
)

# descriptive.csv equals summary_table, and r equals scipy's, to this relative tolerance;
# p-values (scipy's beta distribution against R's t distribution) to P_RTOL. ATOL is for
# statistics that are 0 in exact arithmetic (a correlation of 0 comes out as 0 or as 1e-17)
RTOL = 1e-9
P_RTOL = 1e-6
ATOL = 1e-12


def run_r(*args, cwd=None):
    return subprocess.run(
        [RSCRIPT, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd,
        timeout=60,
    )


@pytest.fixture(scope="module")
def fixture_outputs(tmp_path_factory):
    """R's outputs on the fixture: two-sided with LaTeX, and one-tailed."""
    out = {}
    for name, flags in (("two_sided", ["--latex"]), ("one_tailed", ["--one-tailed"])):
        out_dir = tmp_path_factory.mktemp(name)
        proc = run_r(*flags, FIXTURE, out_dir)
        assert proc.returncode == 0, proc.stderr
        assert "Warning" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
        out[name] = out_dir
    return out


def _assert_same_table(r_table, python_table, keys, exact, close, p_columns=()):
    merged = python_table.merge(r_table, on=keys, suffixes=("_py", "_r"), validate="1:1")
    assert len(merged) == len(python_table) == len(r_table)
    for column in exact:
        assert (merged[f"{column}_py"] == merged[f"{column}_r"]).all(), column
    for column in close:
        rtol, atol = (P_RTOL, 0.0) if column in p_columns else (RTOL, ATOL)
        np.testing.assert_allclose(
            merged[f"{column}_r"], merged[f"{column}_py"], rtol=rtol, atol=atol,
            equal_nan=True, err_msg=column,
        )


def test_descriptive_equals_summary_table(fixture_outputs):
    df = tables.read_metrics(FIXTURE)
    r_table = pd.read_csv(fixture_outputs["two_sided"] / "descriptive.csv")
    python_table = tables.summary_table(df)
    assert list(r_table.columns) == list(python_table.columns)
    # same rows in the same order (metric blocks, methods in table order)
    assert list(zip(r_table["metric"], r_table["method"])) == list(
        zip(python_table["metric"], python_table["method"])
    )
    _assert_same_table(
        r_table, python_table, ["method", "metric"], ["n"], ["mean", "sd", "min", "max"]
    )


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("sides", ["two_sided", "one_tailed"])
def test_correlations_equal_scipy(fixture_outputs, method, sides):
    df = tables.read_metrics(FIXTURE)
    alternative = "two-sided" if sides == "two_sided" else "greater"
    python_table = tables.correlations_long(
        tables.correlation_tables(df, method, alternative=alternative), alternative
    )
    r_table = pd.read_csv(fixture_outputs[sides] / f"{method}.csv")
    assert list(r_table.columns) == list(python_table.columns)
    _assert_same_table(
        r_table,
        python_table,
        ["metric", "method_1", "method_2"],
        ["n", "alternative"],
        ["r", "p"],
        p_columns=("p",),
    )
    # the fixture is not all trivial: some p-values are large, some tiny
    assert python_table["p"].max() > 0.1 and python_table["p"].min() < 1e-4


def test_markdown_same_as_python(fixture_outputs):
    df = tables.read_metrics(FIXTURE)
    out_dir = fixture_outputs["two_sided"]
    expected = tables.summary_markdown(
        tables.summary_table(df), title=f"Descriptive statistics: {FIXTURE}"
    )
    assert (out_dir / "descriptive.md").read_text(encoding="utf-8") == expected
    for method, name in (("pearson", "Pearson"), ("spearman", "Spearman")):
        expected = tables.correlation_markdown(
            tables.correlation_tables(df, method), method, title=f"{name} correlations: {FIXTURE}"
        )
        assert (out_dir / f"{method}.md").read_text(encoding="utf-8") == expected


def test_known_numbers(tmp_path):
    proc = run_r(TINY, tmp_path)
    assert proc.returncode == 0, proc.stderr
    descriptive = pd.read_csv(tmp_path / "descriptive.csv").set_index(["metric", "method"])
    mne_dle = descriptive.loc[("dle_cm", "mne")]  # 1, 2, 3, 4
    assert mne_dle["n"] == 4 and mne_dle["mean"] == 2.5
    assert mne_dle["sd"] == pytest.approx(1.2909944487358056, rel=1e-12)
    assert (mne_dle["min"], mne_dle["max"]) == (1, 4)
    assert descriptive.loc[("oa", "mne"), "n"] == 3  # one missing value
    assert descriptive.loc[("oa", "mne"), "mean"] == pytest.approx(70 / 3, rel=1e-12)

    pearson = pd.read_csv(tmp_path / "pearson.csv").set_index("metric")
    assert pearson.loc["dle_cm", "r"] == pytest.approx(5.5 / np.sqrt(5 * 8.75), rel=1e-12)
    assert np.isnan(pearson.loc["sd_cm", "r"])  # MNE's SD is constant
    assert pearson.loc["oa", "n"] == 3
    spearman = pd.read_csv(tmp_path / "spearman.csv").set_index("metric")
    assert spearman.loc["dle_cm", "r"] == pytest.approx(0.8, rel=1e-12)

    markdown = (tmp_path / "descriptive.md").read_text(encoding="utf-8")
    assert "| DLE (cm) | MNE | 2.500 | 1.291 | 1.000 | 4.000 | 4 |" in markdown


def test_density_plots_and_latex(fixture_outputs):
    out_dir = fixture_outputs["two_sided"]
    for metric in tables.METRICS:
        png = out_dir / f"density_{metric}.png"
        assert png.is_file() and png.stat().st_size > 1000, png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("descriptive", "pearson", "spearman"):
        text = (out_dir / f"{name}.tex").read_text(encoding="utf-8")
        assert "\\begin{tabular}" in text and "\\end{table}" in text
    assert not (fixture_outputs["one_tailed"] / "descriptive.tex").exists()
    # nothing but the outputs: no temporary files left behind
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]


def test_default_output_folder(tmp_path):
    csv = tmp_path / "metrics.csv"
    shutil.copy(TINY, csv)
    proc = run_r(csv)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "statistics" / "descriptive.csv").is_file()
    assert (tmp_path / "statistics" / "density_dle_cm.png").is_file()


def test_help():
    proc = run_r("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: Rscript analyze_results.r")
    assert "--one-tailed" in proc.stdout and "density_<metric>.png" in proc.stdout


HEADER = "split,sample,method,dle_cm,sd_cm,oa\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "no such metrics file"),
        ("", "the file is empty"),
        (HEADER, "no data rows"),
        ("split,sample,method,dle_cm\ntest,0,mne,1\n", "missing required column(s): sd_cm, oa"),
        (HEADER + "test,0,mne,1,abc,3\n", "column 'sd_cm' has 1 value(s) that are not finite"),
        (HEADER + "test,0,mne,1,2,3\ntest,0,mne,2,2,3\n", "repeat a (split, sample, method)"),
    ],
    ids=["missing-file", "empty", "header-only", "missing-columns", "non-numeric", "duplicate"],
)
def test_errors_are_readable(tmp_path, text, message):
    csv = tmp_path / "bad_metrics.csv"
    if text is not None:
        csv.write_text(text)
    proc = run_r(csv, tmp_path / "out")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert lines[0].startswith("analyze_results.r: error: ") and str(csv) in lines[0]
    assert message in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("args", [[], ["--bogus", "x.csv"], ["a.csv", "out", "extra"]])
def test_usage_errors(args):
    proc = run_r(*args)
    assert proc.returncode == 2
    assert "Usage: Rscript analyze_results.r" in proc.stderr
    assert "Execution halted" not in proc.stderr
