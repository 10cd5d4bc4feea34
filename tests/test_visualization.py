"""Figures of a run's predictions: heatmaps, densities, training curves, multi-dipole DLE.

The inputs are synthetic: a metrics.csv over vertex numbers of the ico3 source space of the
embedded fsaverage (right hemisphere, vertices 0..641) and a Keras-style history.csv. The
surfaces come straight from nilearn, so no head model is built.
"""

import logging
import os

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

import visualize_predictions
from meg_unet import cortex
from meg_unet import visualization as viz
from meg_unet.io import read_history
from meg_unet.tables import read_metrics

METHODS = ("mne", "dspm", "sloreta", "unet")
N_ICO3 = 642


def make_metrics(n_vertices=N_ICO3, skip_every=7, repeats=2, multi=True, seed=0):
    """A synthetic metrics.csv table: single-source samples at most vertices, some multi-source.

    Every ``skip_every``-th vertex is never a true source (its patch must stay grey). Values
    vary smoothly with the vertex's direction on the sphere, so heatmaps show a pattern.
    """
    rng = np.random.default_rng(seed)
    sphere = cortex.load_surface("rh").sphere[:n_vertices] / 100.0
    scale = {"mne": 1.3, "dspm": 1.1, "sloreta": 1.0, "unet": 0.6}
    rows = []
    sample = 0
    vertices = [v for v in range(n_vertices) if v % skip_every != 3]
    for _ in range(repeats):
        for vertex in vertices:
            base = 3.0 + 2.5 * sphere[vertex, 1] - 2.0 * sphere[vertex, 2]
            for method in METHODS:
                dle = max(0.0, scale[method] * base + rng.normal(0, 0.8))
                if rng.random() < 0.15:
                    dle = 0.0  # exact hits pile up at zero, as in the thesis
                rows.append(dict(
                    split="test", sample=sample, n_sources=1, true_vertices=str(vertex),
                    method=method, peak_vertices=str(vertex),
                    dle_cm=round(dle, 3),
                    sd_cm=round(2.0 + scale[method] * (1.5 + sphere[vertex, 0]) +
                                rng.normal(0, 0.2), 3),
                    oa=round(100 * scale[method] + 20 * sphere[vertex, 2] + rng.normal(0, 5), 2),
                    sd_thesis_sqrtcm=round(1.5 + rng.normal(0, 0.1), 3),
                ))
            sample += 1
    if multi:
        for _ in range(60):
            n = int(rng.integers(2, 5))
            chosen = rng.choice(vertices, size=n, replace=False)
            for method in METHODS:
                rows.append(dict(
                    split="test", sample=sample, n_sources=n,
                    true_vertices=";".join(map(str, chosen)), method=method,
                    peak_vertices=";".join(map(str, chosen)),
                    dle_cm=round(abs(rng.normal(scale[method] * (2 + n), 1)), 3),
                    sd_cm=round(3 + rng.normal(0, 0.3), 3), oa=round(110 + rng.normal(0, 9), 2),
                    sd_thesis_sqrtcm=1.6,
                ))
            sample += 1
    return pd.DataFrame(rows)


def make_history(n_epochs=25):
    """A Keras CSVLogger-like history: loss, pixel error, learning rate decayed per epoch."""
    epoch = np.arange(n_epochs)
    return pd.DataFrame(dict(
        epoch=epoch,
        learning_rate=0.02 * 0.95 ** epoch,
        loss=2.0 * np.exp(-epoch / 8) + 0.5,
        pixel_error=0.3 * np.exp(-epoch / 6) + 0.05,
        val_loss=2.1 * np.exp(-epoch / 8) + 0.6 + 0.02 * (epoch > 15) * (epoch - 15),
        val_pixel_error=0.32 * np.exp(-epoch / 6) + 0.07,
    ))


@pytest.fixture(scope="module")
def metrics_df(tmp_path_factory):
    path = tmp_path_factory.mktemp("metrics") / "metrics.csv"
    make_metrics().to_csv(path, index=False)
    return read_metrics(path)


@pytest.fixture(scope="module")
def surface_rh():
    return cortex.load_surface("rh")


def _png_shape(path):
    assert path.is_file() and path.stat().st_size > 0
    return imread(path).shape[:2]


def _expected_shape(fig):
    width, height = fig.get_size_inches() * viz.DPI
    return round(height), round(width)


def test_per_vertex_means_match_hand_computation():
    df = pd.DataFrame(dict(
        split="test", sample=[0, 1, 2, 0, 1, 2, 3, 3],
        method=["mne", "mne", "mne", "unet", "unet", "unet", "mne", "unet"],
        true_vertices=["5", "5", "9", "5", "9", "9", "5;9", "9;12"],
        dle_cm=[1.0, 3.0, 4.0, 0.5, np.nan, 2.0, 10.0, 6.0],
    ))
    means = viz.per_vertex_means(df, "dle_cm", hemi="rh")
    # by hand: a multi-source row counts for each of its true vertices; NaN is left out
    expected = pd.DataFrame(dict(
        method=["mne", "mne", "unet", "unet", "unet"],
        hemi="rh",
        vertex=[5, 9, 5, 9, 12],
        mean=[(1 + 3 + 10) / 3, (4 + 10) / 2, 0.5, (2 + 6) / 2, 6.0],
        n=[3, 2, 1, 2, 1],
    ))
    pd.testing.assert_frame_equal(means, expected, check_dtype=False)


def test_per_vertex_means_hemi_column():
    df = pd.DataFrame(dict(
        method="mne", true_vertices=["3", "3", "4;3"], hemi=["lh", "rh", "lh;rh"],
        oa=[1.0, 2.0, 3.0],
    ))
    means = viz.per_vertex_means(df, "oa")
    assert list(zip(means["hemi"], means["vertex"], means["mean"], means["n"])) == [
        ("lh", 3, 1.0, 1), ("lh", 4, 3.0, 1), ("rh", 3, 2.5, 2)
    ]


def test_per_vertex_means_against_synthetic_table(metrics_df):
    means = viz.per_vertex_means(metrics_df, "sd_cm")
    single = metrics_df[metrics_df["n_sources"] == "1"]
    hand = single[single["method"] == "dspm"].groupby("true_vertices")["sd_cm"].mean()
    got = viz.per_vertex_means(single, "sd_cm")
    got = got[got["method"] == "dspm"].set_index("vertex")["mean"]
    np.testing.assert_allclose(got.loc[hand.index.astype(int)].to_numpy(), hand.to_numpy())
    assert set(means["method"]) == set(METHODS)
    assert list(dict.fromkeys(means["method"])) == ["mne", "dspm", "sloreta", "unet"]


def test_values_on_surface_keep_blank_sources_grey(surface_rh):
    sources = np.arange(N_ICO3)
    values = cortex.values_on_surface(surface_rh, [0, 1], [2.0, 5.0], source_vertices=sources)
    assert values.shape == (surface_rh.n_vertices,)
    # source vertices are mesh vertices of their own patch
    assert values[0] == 2.0 and values[1] == 5.0 and np.isnan(values[2])
    assert 0 < np.isfinite(values).sum() < 100
    filled = cortex.values_on_surface(surface_rh, [0, 1], [2.0, 5.0])
    assert np.isfinite(filled).all()
    with pytest.raises(ValueError, match="not on the rh surface"):
        cortex.values_on_surface(surface_rh, [10242], [1.0])


def test_plot_heatmaps(metrics_df, surface_rh, tmp_path):
    single = metrics_df[metrics_df["n_sources"] == "1"]
    fig = viz.plot_heatmaps(
        single, "dle_cm", {"rh": surface_rh}, source_vertices={"rh": np.arange(N_ICO3)},
        title="test", fname=tmp_path / "heatmap_dle.png",
    )
    # 4 methods x (lateral, medial) + the colour bar
    assert len(fig.axes) == 4 * 2 + 1
    assert _png_shape(tmp_path / "heatmap_dle.png") == _expected_shape(fig)
    image = imread(tmp_path / "heatmap_dle.png")
    assert image[..., :3].std() > 0.1  # something was drawn


def test_plot_density(metrics_df, tmp_path):
    fig = viz.plot_density(metrics_df, fname=tmp_path / "density.png")
    assert len(fig.axes) == 3
    assert all(len(ax.get_lines()) == len(METHODS) for ax in fig.axes)
    assert _png_shape(tmp_path / "density.png") == _expected_shape(fig)


def test_plot_density_constant_method():
    df = pd.DataFrame(dict(method=["mne"] * 3 + ["unet"] * 3, dle_cm=[0, 1, 2, 0, 0, 0.0]))
    fig = viz.plot_density(df, ["dle_cm"])
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2


def test_plot_training_curves(tmp_path):
    path = tmp_path / "history.csv"
    make_history().to_csv(path, index=False)
    history = read_history(path)
    fig = viz.plot_training_curves(history, fname=tmp_path / "training_curves.png", pdf=True)
    assert len(fig.axes) == 3  # loss, pixel error, learning rate
    assert fig.axes[2].get_yscale() == "log"
    assert _png_shape(tmp_path / "training_curves.png") == _expected_shape(fig)
    assert (tmp_path / "training_curves.pdf").read_bytes().startswith(b"%PDF")
    # a history with loss only still draws
    fig = viz.plot_training_curves(history[["epoch", "loss", "val_loss"]])
    assert len(fig.axes) == 1


def test_read_history_counts_a_redone_epoch_once(tmp_path):
    path = tmp_path / "history.csv"
    assert read_history(path).empty  # no training yet
    path.write_text("")
    assert read_history(path).empty  # stopped before the first epoch ended
    # a training resumed after a crash appends the epoch it redid
    path.write_text("epoch,loss,val_loss\n0,1.0,1.2\n1,0.8,1.1\n1,0.7,1.0\n2,0.6,0.9\n")
    history = read_history(path)
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["loss"].tolist() == [1.0, 0.7, 0.6]
    with pytest.raises(ValueError, match="nothing to draw"):
        viz.plot_training_curves(read_history(tmp_path / "missing.csv"))


def test_plot_multi_dipole_dle(metrics_df, tmp_path):
    fig = viz.plot_multi_dipole_dle(metrics_df, fname=tmp_path / "multi_dipole_dle.png")
    assert len(fig.axes) == 1
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert [label.split()[0] for label in labels] == ["1", "2", "3", "4"]
    assert _png_shape(tmp_path / "multi_dipole_dle.png") == _expected_shape(fig)


def test_save_figure_is_atomic(tmp_path):
    fig = viz.plot_training_curves(make_history(3))
    paths = viz.save_figure(fig, tmp_path / "sub" / "curves.png", pdf=True)
    assert [p.name for p in paths] == ["curves.png", "curves.pdf"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["curves.pdf", "curves.png"]


def _write_config(tmp_path, run="vis"):
    config = tmp_path / "config.py"
    config.write_text(
        'PROFILE = "tiny"\nSPACING = "ico3"\n'
        f'RESULTS_DIR = {str(tmp_path / "results")!r}\nDATA_DIR = {str(tmp_path / "data")!r}\n'
        f'RUN_NAME = {run!r}\n'
    )
    return config, tmp_path / "results" / run


def test_script_end_to_end(tmp_path):
    config, run_dir = _write_config(tmp_path)
    (run_dir / "predictions").mkdir(parents=True)
    (run_dir / "model").mkdir()
    make_metrics(n_vertices=162, skip_every=5, repeats=1).to_csv(
        run_dir / "predictions" / "metrics.csv", index=False
    )
    make_history().to_csv(run_dir / "model" / "history.csv", index=False)

    assert visualize_predictions.main(["--config", str(config), "--pdf"]) == 0
    figures = run_dir / "figures"
    stems = ["heatmap_dle", "heatmap_sd", "heatmap_oa", "density", "training_curves",
             "multi_dipole_dle"]
    expected = sorted(f"{stem}{suffix}" for stem in stems for suffix in (".png", ".pdf"))
    assert sorted(p.name for p in figures.iterdir()) == expected
    assert all((figures / name).stat().st_size > 0 for name in expected)

    # up to date: nothing is drawn again; --overwrite redraws
    before = (figures / "density.png").stat().st_mtime_ns
    assert visualize_predictions.main(["--config", str(config)]) == 0
    assert (figures / "density.png").stat().st_mtime_ns == before
    assert visualize_predictions.main(["--config", str(config), "--overwrite", "--pdf"]) == 0
    assert (figures / "density.png").stat().st_mtime_ns != before

    # a changed input is redrawn even when its file time is older than the figure's (a copy
    # that kept the time); so is a deleted figure; the others are kept
    history = run_dir / "model" / "history.csv"
    make_history(4).to_csv(history, index=False)
    os.utime(history, ns=(0, 0))
    (figures / "heatmap_sd.pdf").unlink()
    drawn = {name: (figures / name).stat().st_mtime_ns
             for name in expected if name != "heatmap_sd.pdf"}
    assert visualize_predictions.main(["--config", str(config), "--pdf"]) == 0
    redrawn = {name for name, ns in drawn.items() if (figures / name).stat().st_mtime_ns != ns}
    assert redrawn == {"training_curves.png", "training_curves.pdf", "heatmap_sd.png"}
    assert (figures / "heatmap_sd.pdf").is_file()
    assert sorted(p.name for p in (run_dir / "manifests").iterdir()) == sorted(
        f"figure-{stem}.json" for stem in stems)


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_script_without_history_draws_the_rest(tmp_path):
    config, run_dir = _write_config(tmp_path)
    (run_dir / "predictions").mkdir(parents=True)
    make_metrics(n_vertices=42, skip_every=100, repeats=1, multi=False).to_csv(
        run_dir / "predictions" / "metrics.csv", index=False
    )
    handler = _ListHandler()
    logging.getLogger("meg_unet").addHandler(handler)
    try:
        assert visualize_predictions.main(["--config", str(config)]) == 0
    finally:
        logging.getLogger("meg_unet").removeHandler(handler)
    names = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert names == ["density.png", "heatmap_dle.png", "heatmap_oa.png", "heatmap_sd.png"]
    assert any("history.csv not found" in message for message in handler.messages)


def test_script_missing_metrics(tmp_path, capsys):
    config, run_dir = _write_config(tmp_path)
    with pytest.raises(SystemExit) as excinfo:
        visualize_predictions.main(["--config", str(config)])
    assert excinfo.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(run_dir / "predictions" / "metrics.csv") in err


def test_script_malformed_metrics(tmp_path, capsys):
    config, run_dir = _write_config(tmp_path)
    (run_dir / "predictions").mkdir(parents=True)
    (run_dir / "predictions" / "metrics.csv").write_text("split,sample,method\ntest,0,mne\n")
    with pytest.raises(SystemExit) as excinfo:
        visualize_predictions.main(["--config", str(config)])
    assert excinfo.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "metrics.csv" in err and "missing required column" in err
