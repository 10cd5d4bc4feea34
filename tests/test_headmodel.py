"""Tests of meg_unet.headmodel: geometry, physics sanity, cache, sample/custom subjects."""

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path

import mne
import numpy as np
import pytest
from mne.transforms import apply_trans
from scipy.spatial import cKDTree

from meg_unet.headmodel import (
    EEG_1010_LABELS,
    HeadModel,
    fsaverage_dev_head_t,
    load_head_model,
)
from meg_unet.headmodel import _geometry
from meg_unet.metrics import hemisphere_positions
from meg_unet.headmodel.fsaverage import (
    fsaverage_scalp,
    make_fsaverage_bem_surfaces,
    make_fsaverage_info,
)
from meg_unet.headmodel.subject import resolve_inputs

N_PER_HEMI = dict(ico1=42, ico2=162, ico3=642, ico4=2562, ico5=10242, oct5=1026, oct6=4098)


@contextlib.contextmanager
def captured_warnings():
    """Collect the warnings of the head-model logger (independent of its propagation)."""
    records = []

    class _Handler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = _Handler(level=logging.WARNING)
    log = logging.getLogger("meg_unet.headmodel")
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


def _sensor_pos_head(info, kind="meg"):
    picks = mne.pick_types(info, meg=kind == "meg", eeg=kind == "eeg")
    pos = np.array([info["chs"][p]["loc"][:3] for p in picks])
    if kind == "meg":
        pos = apply_trans(info["dev_head_t"], pos)
    return pos


def _source_pos_head(model):
    return model.fwd_fixed["source_rr"]


def _scalp_head():
    return fsaverage_scalp("head")


# ---------------------------------------------------------------------------------------------
# Source space
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", list(N_PER_HEMI))
def test_source_space_vertex_counts(head_model_cache, tiny_head_model, spacing):
    """Nested icosahedra: icoN is vertices 0..n-1 of fsaverage5; oct5/oct6 have no duplicates."""
    src = mne.setup_source_space(
        "fsaverage", spacing, subjects_dir=tiny_head_model.subjects_dir, add_dist=False,
        verbose="error",
    )
    for s in src:
        vertno = np.asarray(s["vertno"])
        assert s["nuse"] == N_PER_HEMI[spacing] == len(np.unique(vertno))
        if spacing.startswith("ico"):
            np.testing.assert_array_equal(vertno, np.arange(N_PER_HEMI[spacing]))


def test_model_vertices(tiny_head_model, head_model_ico3_meg):
    for model, spacing in ((tiny_head_model, "ico2"), (head_model_ico3_meg, "ico3")):
        assert isinstance(model, HeadModel)
        for hemi in ("lh", "rh"):
            assert model.n_vertices(hemi) == N_PER_HEMI[spacing]
            vertno = model.src[("lh", "rh").index(hemi)]["vertno"]
            pos = hemisphere_positions(model.src, hemi)
            np.testing.assert_array_equal(vertno, np.arange(N_PER_HEMI[spacing]))
            assert pos.shape == (N_PER_HEMI[spacing], 3)
            # meters, MRI coordinates of the fsaverage white surface
            assert 0.02 < np.abs(pos).max() < 0.12
            assert (pos[:, 0] < 0.005).all() if hemi == "lh" else (pos[:, 0] > -0.005).all()
        assert model.fwd_fixed["nsource"] == 2 * N_PER_HEMI[spacing]
        for index, s_fwd in enumerate(model.fwd_fixed["src"]):
            np.testing.assert_array_equal(s_fwd["vertno"], model.src[index]["vertno"])
    with pytest.raises(ValueError, match="'hemi' parameter"):
        tiny_head_model.n_vertices("both")


# ---------------------------------------------------------------------------------------------
# Sensors and geometry
# ---------------------------------------------------------------------------------------------


def test_info_megeeg(head_model_ico3_megeeg):
    model = head_model_ico3_megeeg
    info = model.info
    assert info["sfreq"] == 600.614990234375
    types = info.get_channel_types()
    assert types.count("grad") == 204 and types.count("mag") == 102
    assert types.count("eeg") == 60 and types.count("eog") == 1 and types.count("ecg") == 1
    assert "EOG 061" in info["ch_names"] and "ECG 063" in info["ch_names"]
    assert info["ch_names"][306:366] == [f"EEG {k:03d}" for k in range(1, 61)]
    assert len(EEG_1010_LABELS) == 60 and "Cz" in EEG_1010_LABELS
    kinds = [d["kind"] for d in info["dig"]]
    assert kinds.count(mne.io.constants.FIFF.FIFFV_POINT_CARDINAL) == 3
    assert kinds.count(mne.io.constants.FIFF.FIFFV_POINT_EEG) == 60
    assert kinds.count(mne.io.constants.FIFF.FIFFV_POINT_EXTRA) >= 30
    assert len(info["projs"]) == 1 and not info["projs"][0]["active"]
    assert "average" in info["projs"][0]["desc"].lower()
    np.testing.assert_allclose(info["dev_head_t"]["trans"], fsaverage_dev_head_t()["trans"])
    # forward: data channels only
    n_data = 306 + 60
    assert model.fwd_fixed["sol"]["data"].shape == (n_data, model.n_sources)
    assert model.fwd_free["sol"]["data"].shape == (n_data, 3 * model.n_sources)
    assert model.fwd_free["surf_ori"] and model.fwd_fixed["surf_ori"]
    assert "EOG 061" not in model.fwd_fixed["info"]["ch_names"]
    assert len(model.bem["surfs"]) == 3
    # electrodes on the scalp
    rr, tris = _scalp_head()
    dist = _geometry.distance_to_surface(_sensor_pos_head(info, "eeg"), rr, tris)
    assert np.median(dist) < 0.005


def test_info_meg_only(tiny_head_model):
    info = tiny_head_model.info
    assert len(info["ch_names"]) == 308
    assert mne.pick_types(info, eeg=True, meg=False).size == 0
    assert info["projs"] == []
    assert tiny_head_model.fwd_fixed["sol"]["data"].shape[0] == 306
    assert len(tiny_head_model.bem["surfs"]) == 1


def test_make_info_sfreq():
    info = make_fsaverage_info("meg", sfreq=250.0)
    assert info["sfreq"] == 250.0 and info["lowpass"] == 125.0


def test_no_meg_sensor_inside_scalp(tiny_head_model):
    from mne.surface import _CheckInside

    rr, tris = _scalp_head()
    pos = _sensor_pos_head(tiny_head_model.info)
    inside = _CheckInside(dict(rr=rr, tris=tris))(pos)
    assert not inside.any()
    dist = _geometry.distance_to_surface(pos, rr, tris)
    assert dist.min() > 0.015  # 2 cm at the top, at least that elsewhere
    assert 0.019 < dist.min() < 0.021


def test_cortex_to_sensor_distance(head_model_ico3_meg):
    sensors = _sensor_pos_head(head_model_ico3_meg.info)
    dist = cKDTree(sensors).query(_source_pos_head(head_model_ico3_meg))[0]
    assert 0.03 < np.median(dist) < 0.07


def test_gain_falls_with_depth(head_model_ico3_meg):
    model = head_model_ico3_meg
    sensors = _sensor_pos_head(model.info)
    dist = cKDTree(sensors).query(_source_pos_head(model))[0]
    gain = model.fwd_free["sol"]["data"]
    mags = mne.pick_types(model.fwd_free["info"], meg="mag")
    norms = np.linalg.norm(gain[mags].reshape(len(mags), -1, 3), axis=(0, 2))
    assert np.corrcoef(np.log(norms), dist)[0, 1] < -0.5


def test_meg_blind_to_radial_sources(head_model_ico3_meg):
    model = head_model_ico3_meg
    fwd = model.fwd_free
    n_src = fwd["nsource"]
    # back to Cartesian orientations: columns are G @ [t1, t2, n] of each source
    ori = fwd["source_nn"].reshape(n_src, 3, 3)
    gain = fwd["sol"]["data"].reshape(-1, n_src, 3)
    cart = np.einsum("cso,sok->csk", gain, ori)
    _, center, _ = mne.bem.fit_sphere_to_headshape(model.info, units="m", verbose="error")
    radial = _geometry.unit_vectors(fwd["source_rr"] - center)
    tang1 = _geometry.unit_vectors(np.cross(radial, [0.0, 0.0, 1.0]))
    tang2 = np.cross(radial, tang1)
    mags = mne.pick_types(fwd["info"], meg="mag")

    def norm(direction):
        return np.linalg.norm(np.einsum("csk,sk->cs", cart[mags], direction), axis=0)

    ratio = norm(radial) / (0.5 * (norm(tang1) + norm(tang2)))
    assert np.median(ratio) < 0.25
    assert np.mean(norm(radial)) < 0.25 * np.mean(norm(tang1) + norm(tang2)) / 2


def test_three_layer_bem_surfaces():
    surfs = make_fsaverage_bem_surfaces(3, 3)  # runs mne's topology and nesting checks
    ids = [s["id"] for s in surfs]
    fiff = mne.io.constants.FIFF
    assert ids == [fiff.FIFFV_BEM_SURF_ID_HEAD, fiff.FIFFV_BEM_SURF_ID_SKULL,
                   fiff.FIFFV_BEM_SURF_ID_BRAIN]
    head, skull, brain = (s["rr"] for s in surfs)
    assert all(len(s["rr"]) == 642 for s in surfs)
    shipped = Path(mne.__file__).parent / "data/fsaverage/fsaverage-inner_skull-bem.fif"
    center = mne.read_bem_surfaces(shipped, verbose="error")[0]["rr"].mean(axis=0)
    r_b, r_s, r_h = (np.linalg.norm(x - center, axis=1) for x in (brain, skull, head))
    # same rays for all three layers
    np.testing.assert_allclose(
        _geometry.unit_vectors(skull - center), _geometry.unit_vectors(brain - center),
        atol=1e-9,
    )
    thick = r_s - r_b
    assert thick.min() > 0.003 and thick.max() <= _geometry.MAX_SKULL_THICKNESS + 1e-9
    assert (r_h - r_s).min() > 0.003
    assert [s["sigma"] for s in surfs] == pytest.approx([0.3, 0.006, 0.3])


def test_ray_radii_sphere():
    sphere = mne.surface._get_ico_surface(4)
    dirs, _ = _geometry.ico_directions(2)
    center = np.array([0.1, -0.2, 0.05])
    rr = sphere["rr"] * 0.09 + center + [0.01, 0.0, 0.0]
    radius, hits = _geometry.ray_radii(rr, sphere["tris"], center, dirs)
    assert (hits == 1).all()
    offset = np.array([0.01, 0.0, 0.0])
    proj = dirs @ offset
    exact = proj + np.sqrt(proj**2 - offset @ offset + 0.09**2)  # ray-sphere intersection
    assert (radius <= exact + 1e-9).all() and (radius > exact * 0.99).all()


def test_distance_to_surface_exact():
    sphere = mne.surface._get_ico_surface(3)
    rr = sphere["rr"] * 0.1
    pts = np.array([[0.0, 0.0, 0.15], [0.0, 0.0, 0.0], [0.0, 0.2, 0.0]])
    dist = _geometry.distance_to_surface(pts, rr, sphere["tris"])
    np.testing.assert_allclose(dist, [0.05, 0.1, 0.1], atol=0.002)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def test_cache_round_trip(head_model_cache, head_model_ico3_meg):
    t0 = time.perf_counter()
    again = load_head_model(
        "fsaverage", "ico3", "meg", head_model_cache, bem_ico=3, verbose="error"
    )
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0  # about 1 s on 2 cores
    assert again.cache_path == head_model_ico3_meg.cache_path
    np.testing.assert_array_equal(
        again.fwd_fixed["sol"]["data"], head_model_ico3_meg.fwd_fixed["sol"]["data"]
    )
    np.testing.assert_array_equal(
        again.fwd_free["sol"]["data"], head_model_ico3_meg.fwd_free["sol"]["data"]
    )
    assert again.fwd_fixed["source_ori"] == mne.io.constants.FIFF.FIFFV_MNE_FIXED_ORI
    assert again.info["ch_names"] == head_model_ico3_meg.info["ch_names"]
    np.testing.assert_allclose(again.info["dev_head_t"]["trans"],
                               head_model_ico3_meg.info["dev_head_t"]["trans"])
    root = Path(head_model_cache) / "fsaverage"
    assert (root / "subjects/fsaverage/surf/lh.white").is_file()
    assert (root / "subjects/fsaverage/bem/fsaverage-ico3-src.fif").is_file()
    manifest = json.loads(next((root / "manifests").glob("model-fsaverage-ico3-meg-*")).read_text())
    assert manifest["mne_version"] == mne.__version__
    assert manifest["params"]["bem_ico"] == 3
    assert all(len(sha256) == 64 for sha256 in manifest["files"].values())
    assert not list(root.rglob(".tmp-*"))


def test_cache_keyed_by_sfreq(head_model_cache, tiny_head_model):
    other = load_head_model(
        "fsaverage", "ico2", "meg", head_model_cache, bem_ico=3, sfreq=500.0, verbose="error"
    )
    assert other.info["sfreq"] == 500.0
    assert other.cache_path != tiny_head_model.cache_path
    np.testing.assert_allclose(
        other.fwd_fixed["sol"]["data"], tiny_head_model.fwd_fixed["sol"]["data"], rtol=1e-6
    )


def test_corrupt_cache_is_rebuilt(tmp_path):
    kwargs = dict(bem_ico=3, verbose="error")
    first = load_head_model("fsaverage", "ico1", "meg", tmp_path, **kwargs)
    fwd_file = next(Path(first.cache_path).glob("*-fwd.fif"))
    # truncated forward
    data = fwd_file.read_bytes()
    fwd_file.write_bytes(data[: len(data) // 2])
    with captured_warnings() as warnings:
        second = load_head_model("fsaverage", "ico1", "meg", tmp_path, **kwargs)
    assert any("unusable" in w and "model-" in w for w in warnings), warnings
    np.testing.assert_allclose(second.fwd_fixed["sol"]["data"], first.fwd_fixed["sol"]["data"])
    assert fwd_file.stat().st_size == len(data)
    # altered source space (same size): the source space and the forward are rebuilt
    src_file = tmp_path / "fsaverage/subjects/fsaverage/bem/fsaverage-ico1-src.fif"
    raw = bytearray(src_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    src_file.write_bytes(bytes(raw))
    with captured_warnings() as warnings:
        third = load_head_model("fsaverage", "ico1", "meg", tmp_path, **kwargs)
    assert any("src-ico1" in w and "checksum" in w for w in warnings), warnings
    np.testing.assert_allclose(third.fwd_fixed["sol"]["data"], first.fwd_fixed["sol"]["data"])
    # partial build: files without a manifest
    (tmp_path / "fsaverage/manifests/bem-ico3-1layer.json").unlink()
    with captured_warnings() as warnings:
        load_head_model("fsaverage", "ico1", "meg", tmp_path, **kwargs)
    assert any("partial build" in w for w in warnings), warnings
    # intact cache: no warning
    with captured_warnings() as warnings:
        load_head_model("fsaverage", "ico1", "meg", tmp_path, **kwargs)
    assert warnings == []


def test_overwrite_rebuilds(tmp_path):
    kwargs = dict(bem_ico=3, verbose="error")
    load_head_model("fsaverage", "ico1", "meg", tmp_path, **kwargs)
    manifest = next((tmp_path / "fsaverage/manifests").glob("model-*.json"))
    before = manifest.stat().st_mtime_ns
    time.sleep(0.01)
    load_head_model("fsaverage", "ico1", "meg", tmp_path, overwrite=True, **kwargs)
    assert manifest.stat().st_mtime_ns > before


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(spacing="ico6"), "Invalid value for the 'spacing' parameter. Allowed values are"),
        (dict(spacing="oct4"), "'spacing' parameter"),
        (dict(sensors="eeg"), "Invalid value for the 'sensors' parameter"),
        (dict(kind="colin"), "Invalid value for the 'kind' parameter"),
        (dict(bem_ico=2), "Invalid value for the 'bem_ico' parameter"),
        (dict(sensors="meg+eeg", bem_ico=5), "only available for sensors='meg'"),
        (dict(trans="x-trans.fif"), "only be given with kind='sample' or 'custom'"),
        (dict(kind="custom"), "CUSTOM_SUBJECTS_DIR"),
        (dict(sfreq=0), "sfreq must be positive"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    args = dict(kind="fsaverage", spacing="ico3", sensors="meg", cache_dir=tmp_path)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        load_head_model(**args)
    assert not (tmp_path / "fsaverage").exists()


# ---------------------------------------------------------------------------------------------
# Sample and custom subjects (a fake sample data set made of the fsaverage pieces)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_sample_data(tmp_path_factory, head_model_ico3_megeeg, tiny_head_model):
    """A directory laid out like the MNE sample data set, made of the fsaverage pieces.

    The recording has MEG, EEG and EOG but no ECG channel (like the real sample data).
    """
    root = tmp_path_factory.mktemp("sample") / "MNE-sample-data"
    fs_dir = Path(head_model_ico3_megeeg.subjects_dir) / "fsaverage"
    surf = root / "subjects/sample/surf"
    surf.mkdir(parents=True)
    for hemi in ("lh", "rh"):
        for name in ("white", "sphere", "inflated"):
            shutil.copy(fs_dir / "surf" / f"{hemi}.{name}", surf / f"{hemi}.{name}")
    bem_dir = root / "subjects/sample/bem"
    bem_dir.mkdir()
    shutil.copy(fs_dir / "bem/fsaverage-ico3-3layer-bem-sol.fif",
                bem_dir / "sample-5120-5120-5120-bem-sol.fif")
    shutil.copy(fs_dir / "bem/fsaverage-ico3-1layer-bem.fif", bem_dir / "sample-1layer-bem.fif")
    shutil.copy(fs_dir / "bem/fsaverage-ico3-1layer-bem-sol.fif",
                bem_dir / "sample-1layer-bem-sol.fif")
    meg_dir = root / "MEG/sample"
    meg_dir.mkdir(parents=True)
    mne.write_trans(meg_dir / "sample_audvis_raw-trans.fif", head_model_ico3_megeeg.trans)
    info = head_model_ico3_megeeg.info.copy()
    raw = mne.io.RawArray(np.zeros((len(info["ch_names"]), 20)), info, verbose="error")
    raw.drop_channels(["ECG 063"])
    raw.save(meg_dir / "sample_audvis_raw.fif", verbose="error")
    return root


def test_sample_kind(fake_sample_data, tmp_path, tiny_head_model):
    subjects_dir = fake_sample_data / "subjects"
    # the sample data set's files are found from subjects_dir
    inputs = resolve_inputs("sample", subjects_dir=subjects_dir)
    assert inputs["subject"] == "sample"
    assert inputs["bem"].name == "sample-5120-5120-5120-bem-sol.fif"
    assert inputs["trans"] == (fake_sample_data / "MEG/sample/sample_audvis_raw-trans.fif").resolve()
    assert inputs["info"].name == "sample_audvis_raw.fif"
    # with the 1-layer BEM of the embedded model, to compare with it (and for speed)
    kwargs = dict(subjects_dir=subjects_dir, bem=subjects_dir / "sample/bem/sample-1layer-bem-sol.fif",
                  verbose="error")
    model = load_head_model("sample", "ico2", "meg", tmp_path, **kwargs)
    assert model.kind == "sample" and model.subject == "sample"
    assert model.n_vertices("lh") == model.n_vertices("rh") == 162
    info = model.info
    assert info.get_channel_types().count("eeg") == 0
    assert "EOG 061" in info["ch_names"] and "ECG 063" in info["ch_names"]  # ECG added
    assert info["sfreq"] == 600.614990234375
    assert model.fwd_fixed["sol"]["data"].shape == (306, 324)
    # the same head, BEM and sensors as the embedded tiny model
    np.testing.assert_allclose(model.fwd_fixed["sol"]["data"],
                               tiny_head_model.fwd_fixed["sol"]["data"], rtol=1e-5, atol=1e-14)
    # cached
    t0 = time.perf_counter()
    again = load_head_model("sample", "ico2", "meg", tmp_path, **kwargs)
    assert time.perf_counter() - t0 < 10
    np.testing.assert_array_equal(again.fwd_fixed["sol"]["data"], model.fwd_fixed["sol"]["data"])


def test_custom_kind_reproduces_fsaverage(fake_sample_data, tmp_path, head_model_ico3_megeeg):
    fs = head_model_ico3_megeeg
    model = load_head_model(
        "custom", "ico3", "meg+eeg", tmp_path,
        subjects_dir=fake_sample_data / "subjects", subject="sample",
        trans=fake_sample_data / "MEG/sample/sample_audvis_raw-trans.fif",
        bem=fake_sample_data / "subjects/sample/bem/sample-5120-5120-5120-bem-sol.fif",
        info=fake_sample_data / "MEG/sample/sample_audvis_raw.fif",
        verbose="error",
    )
    assert model.kind == "custom"
    assert model.info["ch_names"][:366] == fs.info["ch_names"][:366]
    assert len(model.info["projs"]) == 1  # the average reference, kept
    np.testing.assert_allclose(
        model.fwd_fixed["sol"]["data"], fs.fwd_fixed["sol"]["data"], rtol=1e-5, atol=1e-12
    )


def test_custom_kind_bem_surfaces(fake_sample_data, tmp_path):
    """A -bem.fif with surfaces only: the solution is computed and cached."""
    kwargs = dict(
        subjects_dir=fake_sample_data / "subjects", subject="sample",
        trans=fake_sample_data / "MEG/sample/sample_audvis_raw-trans.fif",
        bem=fake_sample_data / "subjects/sample/bem/sample-1layer-bem.fif",
        info=fake_sample_data / "MEG/sample/sample_audvis_raw.fif",
        verbose="error",
    )
    model = load_head_model("custom", "ico1", "meg", tmp_path, **kwargs)
    assert len(model.bem["surfs"]) == 1 and model.n_sources == 84
    assert list(tmp_path.glob("custom/*/bem/bem-sol.fif"))
    with pytest.raises(ValueError, match="needs a 3-layer BEM"):
        load_head_model("custom", "ico1", "meg+eeg", tmp_path, **kwargs)


@pytest.mark.parametrize(
    "missing, what, setting",
    [
        ("trans", "head<->MRI transformation", "CUSTOM_TRANS_FILE"),
        ("bem", "BEM solution", "CUSTOM_BEM_FILE"),
        ("info", "recording", "CUSTOM_INFO_FILE"),
        ("subjects_dir", "subjects directory", "CUSTOM_SUBJECTS_DIR"),
        ("subject", "subject folder", "CUSTOM_SUBJECT"),
        ("lh.white", "lh.white surface", "CUSTOM_SUBJECT"),
    ],
)
def test_custom_missing_file(fake_sample_data, tmp_path, missing, what, setting):
    data = tmp_path / "data"
    shutil.copytree(fake_sample_data, data)
    kwargs = dict(
        subjects_dir=data / "subjects", subject="sample",
        trans=data / "MEG/sample/sample_audvis_raw-trans.fif",
        bem=data / "subjects/sample/bem/sample-5120-5120-5120-bem-sol.fif",
        info=data / "MEG/sample/sample_audvis_raw.fif",
    )
    if missing == "lh.white":
        path = data / "subjects/sample/surf/lh.white"
        path.unlink()
    elif missing == "subject":
        kwargs["subject"] = "nobody"
        path = data / "subjects/nobody"
    else:
        path = Path(str(kwargs[missing]) + ".missing")
        kwargs[missing] = path
    with pytest.raises(FileNotFoundError) as err:
        load_head_model("custom", "ico1", "meg", tmp_path / "cache", **kwargs)
    message = str(err.value)
    assert str(path) in message and what in message and setting in message
    assert not (tmp_path / "cache").exists()


def test_sample_missing_files(fake_sample_data, tmp_path, monkeypatch):
    # no sample data set at all: the default location is reported
    monkeypatch.setenv("MNE_DATASETS_SAMPLE_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere.*sample data set"):
        load_head_model("sample", "ico1", "meg", tmp_path / "cache")
    # a sample data set without its recording
    data = tmp_path / "data"
    shutil.copytree(fake_sample_data, data)
    (data / "MEG/sample/sample_audvis_raw.fif").unlink()
    with pytest.raises(FileNotFoundError, match="recording.*was not found at .*sample_audvis_raw.fif"):
        load_head_model("sample", "ico1", "meg", tmp_path / "cache",
                        subjects_dir=data / "subjects")


# ---------------------------------------------------------------------------------------------
# Slow checks
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ico5_model(head_model_cache):
    model = load_head_model("fsaverage", "ico5", "meg", head_model_cache, bem_ico=3,
                            verbose="error")
    assert model.n_vertices("lh") == model.n_vertices("rh") == 10242
    assert model.fwd_fixed["nsource"] == 20484


@pytest.mark.slow
def test_bem_ico4_matches_full_inner_skull(tmp_path):
    """The ico4 BEM forward agrees with the full (10242-vertex) inner skull within a few %."""
    gains = {}
    for bem_ico in (4, 5):
        model = load_head_model("fsaverage", "ico2", "meg", tmp_path, bem_ico=bem_ico,
                                verbose="error")
        gains[bem_ico] = model.fwd_fixed["sol"]["data"]
    rel = np.linalg.norm(gains[4] - gains[5]) / np.linalg.norm(gains[5])
    assert rel < 0.05
