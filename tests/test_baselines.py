"""meg_unet.baselines (eLORETA, LCMV, MxNE, Gamma-MAP, L2 with a chosen lambda2) on tiny splits."""

import shutil

import numpy as np
import pandas as pd
import pytest

import meg_unet.baselines as baselines
from meg_unet.baselines import (
    BASELINES,
    DEFAULT_SETTINGS,
    METHODS,
    SETTING_DOCS,
    SLOW_BASELINES,
    apply_baseline,
    best_l2,
    evaluate_baselines,
    lambda2_grid_search,
    resolve_settings,
)
from meg_unet.config import validate_settings
from meg_unet.io import split_files
from meg_unet.prediction import _read_hemisphere_rows
from meg_unet.scoring import METRICS_COLUMNS, metrics_table
from meg_unet.tiles import tile_layout
from meg_unet.simulation import SimulationModel
from meg_unet.split_data import SplitData, activation_windows, choose_windows, load_split

#: Gamma-MAP stopped early: a third of the default's time on ico2, the same peaks here.
FAST_GAMMA = {"tol": 1e-3, "maxit": 50}

# Gamma-MAP stopped early says so
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*Convergence NOT reached:RuntimeWarning")


def _simulate(tmp_path_factory, head_model, name, **settings):
    tmp_path = tmp_path_factory.mktemp(name)
    values = {
        "PROFILE": "tiny",
        "SPACING": "ico2",
        "RUN_NAME": name,
        "DATA_DIR": tmp_path / "data",
        "RESULTS_DIR": tmp_path / "results",
    }
    values.update(settings)
    return SimulationModel(validate_settings(values), head_model).simulate_split("test")


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory, tiny_head_model):
    """A tiny single-dipole split at SNR 10 without artifacts (162 windows of 20 samples)."""
    return _simulate(tmp_path_factory, tiny_head_model, "clean", SNR=10.0, ARTIFACTS=False)


@pytest.fixture(scope="module")
def clean(clean_dir):
    return load_split(clean_dir)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, tiny_head_model):
    """A tiny split with ECG/EOG artifacts, ICA, SSP projectors and a bad channel."""
    return load_split(_simulate(tmp_path_factory, tiny_head_model, "preprocessed"))


# ---- windows -----------------------------------------------------------------------------------


def test_activation_windows_match_the_truth(clean):
    manifest = clean.manifest
    windows = activation_windows(manifest)
    assert len(windows) == manifest["n_activations"] == len(clean.windows)
    length = manifest["samples_per_activation"]
    for window, onset, rows in zip(windows, manifest["activations"]["onsets"],
                                   manifest["activations"]["rows"]):
        assert (window.start, window.stop - window.start, window.rows) == (
            onset, length, tuple(rows))
    # the true amplitudes are non-zero exactly on each window's rows, for all its samples
    for window in windows[:20]:
        active = np.abs(clean.amplitudes[:, window.start : window.stop]) > 0
        expected = np.zeros_like(active)
        expected[list(window.rows)] = True
        np.testing.assert_array_equal(active, expected)
    # a manifest's path works too; a manifest without activations says what it lacks
    assert activation_windows(clean.directory / "manifest.json") == windows
    with pytest.raises(ValueError, match="activations"):
        activation_windows({"samples_per_activation": 20})


def test_choose_windows_is_seeded_sorted_and_nested():
    first = choose_windows(642, 50, seed=3)
    np.testing.assert_array_equal(first, choose_windows(642, 50, seed=3))
    assert len(first) == len(np.unique(first)) == 50
    assert np.all(np.diff(first) > 0) and first.min() >= 0 and first.max() < 642
    assert not np.array_equal(first, choose_windows(642, 50, seed=4))
    # the same seed's smaller subset lies inside the larger one (slow solvers on fewer windows)
    assert set(choose_windows(642, 10, seed=3)) <= set(first)
    np.testing.assert_array_equal(choose_windows(7, None), np.arange(7))
    np.testing.assert_array_equal(choose_windows(7, 100), np.arange(7))
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_windows"):
            choose_windows(10, bad)


# ---- the methods ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_each_method_returns_one_value_per_vertex_and_sample(preprocessed, method):
    settings = FAST_GAMMA if method == "gamma_map" else {}
    window = preprocessed.windows[5]
    estimate = apply_baseline(method, preprocessed, window, **settings)
    assert estimate.shape == (preprocessed.n_vertices, window.stop - window.start)
    assert np.all(np.isfinite(estimate))
    assert np.any(estimate != 0)
    if method != "lcmv":  # loose orientation: the norm over orientations, as the L2 estimates
        assert estimate.min() >= 0
    if method == "mxne":  # sparse: a few of the 162 vertices
        assert np.count_nonzero(np.abs(estimate).max(axis=1)) < preprocessed.n_vertices / 2
    # a window index works as well as a Window
    np.testing.assert_allclose(apply_baseline(method, preprocessed, 5, **settings), estimate)


def test_l2_reproduces_the_split_estimates(preprocessed):
    """Evoked windows, bads and SSP projectors are handled as the simulation's inverse did."""
    assert preprocessed.info["bads"] and preprocessed.info["projs"]
    files = split_files(preprocessed.directory)
    for method in ("mne", "dspm", "sloreta"):
        stored = _read_hemisphere_rows(files[method], preprocessed.vertices)
        for window in (preprocessed.windows[0], preprocessed.windows[-1]):
            estimate = apply_baseline("l2", preprocessed, window, l2_method=method)
            reference = stored[:, window.start : window.stop]
            np.testing.assert_allclose(estimate, reference, rtol=0,
                                       atol=1e-5 * np.abs(reference).max())


def test_high_snr_single_dipoles_are_localized(clean):
    """At SNR 10 the baselines find single dipoles (ico2: neighbouring vertices about 2 cm apart).

    Random peaks would be about 7 cm away; the first samples of a window, where the 10 Hz
    sinusoid starts near zero, are the hardest for the methods that work sample by sample.
    """
    methods = ("eloreta", "lcmv", "mxne", "gamma_map")
    metrics, timings = evaluate_baselines(
        clean, methods, n_windows=8, seed=1, settings={"gamma_map": FAST_GAMMA},
        progress=False,
    )
    median = metrics.groupby("method")["dle_cm"].median()
    mean = metrics.groupby("method")["dle_cm"].mean()
    for method in methods:  # measured: median 0, mean 0.3 (MxNE) to 2.3 cm (eLORETA)
        assert median[method] < 1.0, (method, median[method])
        assert mean[method] < 3.0, (method, mean[method])
    # the last samples of the windows (the sinusoid's peak) are found by every method
    starts = np.array([w.start for w in clean.windows])
    position = metrics["sample"] - starts[np.searchsorted(starts, metrics["sample"], "right") - 1]
    late = metrics[position >= 10].groupby("method")["dle_cm"].mean()
    assert late.max() < 1.0, late  # measured: 0.2 to 0.25 cm
    # the sparse solvers' estimates are compact: much smaller spatial dispersion
    sd = metrics.groupby("method")["sd_cm"].mean()
    assert sd["mxne"] < sd["eloreta"] and sd["gamma_map"] < sd["eloreta"]


def test_metrics_have_the_schema_and_samples_of_metrics_csv(clean):
    metrics, timings = evaluate_baselines(
        clean, ("eloreta", "l2"), n_windows=4, seed=0, names={"l2": "l2_best"},
        progress=False,
    )
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    reference = metrics_table(
        {"x": np.ones((clean.n_vertices, 8))}, np.ones((clean.n_vertices, 8)),
        clean.positions, tile_layout(8, 8), clean.vertno, adjacency=clean.adjacency,
        border=2,
    )
    assert metrics.dtypes.to_dict() == reference.dtypes.to_dict()
    windows = [clean.windows[i] for i in choose_windows(len(clean.windows), 4, 0)]
    samples = np.concatenate([w.samples for w in windows])
    for method in ("eloreta", "l2_best"):
        rows = metrics[metrics["method"] == method]
        np.testing.assert_array_equal(rows["sample"], samples)
        expected = [str(clean.vertno[w.rows[0]]) for w in windows for _ in w.samples]
        assert rows["true_vertices"].tolist() == expected
    assert metrics["method"].tolist()[:2] == ["eloreta", "l2_best"]  # by sample, then method
    assert set(metrics["split"]) == {"test"} and set(metrics["n_sources"]) == {1}
    # timings: one setup row (window -1) and one row per window and method
    assert list(timings.columns) == ["method", "window", "seconds"]
    for method in ("eloreta", "l2_best"):
        rows = timings[timings["method"] == method]
        assert rows["window"].tolist() == [-1] + [w.index for w in windows]
        assert np.all(rows["seconds"] > 0)
    # a reused split keeps its setup, and reports the time it took when it was made
    _, again = evaluate_baselines(clean, ("eloreta",), n_windows=1, progress=False)
    setup = timings[(timings["method"] == "eloreta") & (timings["window"] == -1)]["seconds"]
    assert again["seconds"].iloc[0] == setup.iloc[0]


def test_rows_and_border_are_treated_as_in_metrics_csv(clean):
    """sLORETA at the split's lambda2, scored window by window, gives the rows that
    metrics_table gives on the split's saved estimate (same kept vertices, same peaks)."""
    metrics, _ = evaluate_baselines(
        clean, ("l2",), n_windows=5, seed=2, settings={"l2": {"l2_method": "sLORETA"}},
        progress=False,
    )
    stored = _read_hemisphere_rows(split_files(clean.directory)["sloreta"], clean.vertices)
    n_times = stored.shape[1]
    whole = metrics_table(
        {"l2": stored}, clean.amplitudes, clean.positions, tile_layout(n_times, n_times),
        clean.vertno, adjacency=clean.adjacency, border=clean.border,
    ).set_index("sample")
    ours = metrics.set_index("sample")
    assert ours.index.isin(whole.index).all()
    whole = whole.loc[ours.index]
    assert ours["peak_vertices"].tolist() == whole["peak_vertices"].tolist()
    for column in ("dle_cm", "sd_cm", "oa", "recall"):
        np.testing.assert_allclose(ours[column], whole[column], rtol=1e-4, atol=1e-6)
    # no peak ever lies on the border rows (the first and last 2 vertices)
    border_vertices = {str(v) for v in (*clean.vertno[:2], *clean.vertno[-2:])}
    assert not set(metrics["peak_vertices"]) & border_vertices


def test_fixed_orientation_and_both_hemispheres(tmp_path_factory, tiny_head_model):
    """Rows of both hemispheres (lh then rh), a ``hemi`` column, signed fixed estimates."""
    data = load_split(_simulate(tmp_path_factory, tiny_head_model, "fixedboth", SNR=10.0,
                                ARTIFACTS=False, ORIENTATION="fixed", HEMISPHERE="both"))
    assert data.n_vertices == 324 and data.loose == 0.0 and data.hemis is not None
    metrics, _ = evaluate_baselines(data, BASELINES, n_windows=2, seed=0,
                                    settings={"gamma_map": FAST_GAMMA}, progress=False)
    assert list(metrics.columns) == [*METRICS_COLUMNS, "hemi"]
    assert len(metrics) == 2 * 20 * len(BASELINES)
    windows = [data.windows[i] for i in choose_windows(len(data.windows), 2, 0)]
    expected = ["lh" if w.rows[0] < 162 else "rh" for w in windows for _ in w.samples]
    assert metrics[metrics["method"] == "mxne"]["hemi"].tolist() == expected
    median = metrics.groupby("method")["dle_cm"].median()
    assert median["mxne"] < 1.0  # measured: 0 (eLORETA 8.3 cm: a window's source is deep)
    estimate = apply_baseline("eloreta", data, windows[0])
    assert estimate.shape == (324, 20) and estimate.min() < 0 < estimate.max()


# ---- lambda2 ----------------------------------------------------------------------------------


def test_lambda2_grid_search_and_best_l2(clean):
    grid = (0.01, 1 / 9, 1.0)
    table = lambda2_grid_search(clean, methods=("mne", "sLORETA"), grid=grid, n_windows=3,
                                progress=False)
    assert list(table.columns) == ["method", "lambda2", "dle_cm", "sd_cm", "n"]
    assert table[["method", "lambda2"]].values.tolist() == [
        [m, g] for m in ("mne", "sloreta") for g in grid]
    assert np.all(np.isfinite(table["dle_cm"])) and set(table["n"]) == {60}
    best = best_l2(table)
    row = table.loc[table["dle_cm"].idxmin()]
    assert (best["method"], best["lambda2"]) == (row["method"], row["lambda2"])
    assert best["l2_method"] == {"mne": "MNE", "sloreta": "sLORETA"}[best["method"]]
    # the grid's score of a pair is what evaluate_baselines gives with that pair
    metrics, _ = evaluate_baselines(
        clean, ("l2",), n_windows=3, progress=False,
        settings={"l2": {"l2_method": best["l2_method"], "lambda2": best["lambda2"]}},
    )
    assert metrics["dle_cm"].mean() == pytest.approx(best["dle_cm"])


def test_best_l2_picks_the_lowest_mean_dle():
    table = pd.DataFrame({
        "method": ["mne", "dspm", "sloreta", "sloreta"],
        "lambda2": [0.1, 0.1, 0.1, 0.01],
        "dle_cm": [2.0, np.nan, 1.5, 1.5],
    })
    assert best_l2(table) == {"method": "sloreta", "l2_method": "sLORETA", "lambda2": 0.1,
                              "dle_cm": 1.5}  # a tie: the first row
    with pytest.raises(ValueError, match="finite"):
        best_l2(table.assign(dle_cm=np.nan))
    with pytest.raises(ValueError, match="dle_cm"):
        best_l2(table.drop(columns="dle_cm"))


# ---- settings and bad input -------------------------------------------------------------------


def test_settings_are_documented():
    assert set(BASELINES) | {"l2"} == set(METHODS) == set(DEFAULT_SETTINGS)
    assert set(SLOW_BASELINES) <= set(BASELINES)
    for method, settings in DEFAULT_SETTINGS.items():
        assert set(settings) == set(SETTING_DOCS[method]), method
        for name in settings:
            assert f"{method:<10} {name}" in baselines.__doc__, (method, name)
        assert resolve_settings(method) == settings


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="did you mean 'alpha'"):
        resolve_settings("mxne", {"alhpa": 30})
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        resolve_settings("mxne", {"alpha": 100})
    with pytest.raises(ValueError, match="MNE, dSPM, sLORETA"):
        resolve_settings("l2", {"l2_method": "eLORETA"})
    assert resolve_settings("l2", {"l2_method": "dspm"})["l2_method"] == "dSPM"
    with pytest.raises(ValueError, match="integer >= 1"):
        resolve_settings("gamma_map", {"maxit": 0})


def test_bad_input_is_refused(clean, clean_dir, tmp_path):
    with pytest.raises(ValueError, match="Allowed values are 'eloreta', 'lcmv', 'mxne'"):
        apply_baseline("beamformer", clean, 0)
    with pytest.raises(ValueError, match="Allowed values"):
        evaluate_baselines(clean, ("eloreta", "sloreta"), progress=False)
    with pytest.raises(ValueError, match="Allowed values"):
        evaluate_baselines(clean, settings={"lcmv_": {}}, progress=False)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="n_windows"):
            evaluate_baselines(clean, ("eloreta",), n_windows=bad, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        apply_baseline("eloreta", clean, len(clean.windows))
    with pytest.raises(ValueError, match="SplitData"):
        apply_baseline("eloreta", str(clean_dir), 0)
    with pytest.raises(ValueError, match="'mne', 'dspm', 'sloreta'"):
        lambda2_grid_search(clean, methods=("eloreta",))
    # a split folder missing a file: the message names it
    broken = tmp_path / "test"
    shutil.copytree(clean_dir, broken)
    (broken / "test-cov.fif").unlink()
    with pytest.raises(FileNotFoundError, match="test-cov.fif"):
        evaluate_baselines(broken, ("eloreta",), progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_split(tmp_path / "nowhere")


def test_split_data_describes_the_split(clean):
    assert isinstance(clean, SplitData)
    assert clean.hemisphere == "rh" and clean.hemispheres == ("rh",)
    assert clean.n_vertices == 162 == len(clean.vertices[1]) and len(clean.vertices[0]) == 0
    assert clean.border == 2 and clean.orientation == "loose"
    assert (clean.loose, clean.depth) == (0.2, 0.8)
    assert clean.lambda2 == pytest.approx(1 / 100)  # 1 / SNR**2
    assert clean.cov["data"].dtype == np.float64
    assert clean.positions.shape == (162, 3) and clean.adjacency.shape == (162, 162)
