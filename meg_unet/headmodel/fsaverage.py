"""The embedded fsaverage head model, built offline from files inside the mne and nilearn wheels.

Pieces and where they come from:

- **Cortex**: nilearn's fsaverage5 meshes (``nilearn/datasets/data/fsaverage5``, an ico5
  subdivision with 10242 vertices per hemisphere, in fsaverage's MRI coordinates, mm) are
  written as a FreeSurfer subject ``<cache>/fsaverage/subjects/fsaverage/surf/{lh,rh}.{white,
  sphere,inflated}``, so that :func:`mne.setup_source_space` works on it. The sphere has
  FreeSurfer's radius of 100 mm. fsaverage's icosahedral subdivisions are nested: ``"icoN"``
  (N <= 5) picks vertices ``0 .. 10 * 4**N + 1`` (vertno == arange), ``"ico5"`` all of them.
  ``"oct5"``/``"oct6"`` (1026/4098 vertices per hemisphere) also work: MNE maps each point of
  the subdivided octahedron to the nearest ico5 vertex, without double occupation on this
  mesh, but the chosen vertices are off the ideal octahedral points by 0.7 degrees on average
  (at most 1.4 degrees, i.e. about 1.5 mm on the cortex), compared with an oct6 spacing of
  3.2 degrees; they are therefore slightly less regular than on the full fsaverage (ico7).
- **Conductor**: ``mne/data/fsaverage/fsaverage-inner_skull-bem.fif`` (10242 vertices) and the
  scalp ``fsaverage-head.fif`` (2033 vertices). There is no outer skull in the wheel; the
  3-layer model constructs one (see :func:`meg_unet.headmodel._geometry.make_three_layers`).
  All layers are resampled onto an icosahedron of grade ``bem_ico`` by radial projection from
  the inner skull's centroid (``bem_ico=5`` for MEG keeps the inner skull as shipped).
  Conductivities: 0.3 S/m (1 layer), (0.3, 0.006, 0.3) S/m (brain, skull, scalp).
- **Trans and fiducials**: ``fsaverage-trans.fif`` (head <-> MRI) and ``fsaverage-fiducials.fif``.
- **MEG**: the Neuromag Vectorview 306 array of :func:`mne.channels.read_meg_canonical_info`,
  placed by a ``dev_head_t`` derived from geometry (:func:`fsaverage_dev_head_t`).
- **EEG**: 60 electrodes of mne's ``fsaverage_1010`` montage (10-10 positions on the fsaverage
  scalp, in fsaverage MRI coordinates, mapped to the head frame with ``fsaverage-trans.fif``):
  all 70 of its electrodes except the 10 lowest ones (F9, F10, FT9, FT10, T9, T10,
  P9, P10, I1, I2). They are named ``"EEG 001" .. "EEG 060"`` like a Neuromag 60-channel cap;
  :data:`EEG_1010_LABELS` gives the 10-10 label of each.
"""

from functools import lru_cache
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from mne.io.constants import FIFF
from mne.proj import make_eeg_average_ref_proj
from mne.transforms import Transform, apply_trans, invert_transform

from . import _geometry
from ._cache import Stage, atomic_path, copy_atomic
from ._log import logger
from .base import HeadModel

SUBJECT = "fsaverage"
#: Conductivities (S/m): one-layer and three-layer (brain, skull, scalp) models.
CONDUCTIVITY_1 = (0.3,)
CONDUCTIVITY_3 = (0.3, 0.006, 0.3)
#: 10-10 labels dropped from mne's 70-electrode fsaverage_1010 montage to keep 60.
_DROPPED_1010 = ("F9", "F10", "FT9", "FT10", "T9", "T10", "P9", "P10", "I1", "I2")
#: Names of the artifact channels.
EOG_NAME = "EOG 061"
ECG_NAME = "ECG 063"
#: Grade of the icosahedron whose upper-scalp rays give the head-shape digitization points.
_HSP_GRADE = 2

_HEMI_FILES = dict(lh="left", rh="right")
_SURFACES = dict(white="white_{}", sphere="sphere_{}", inflated="infl_{}")
_STAMP = "created by meg_unet from nilearn's fsaverage5"


def _mne_fsaverage_dir():
    return Path(mne.__file__).parent / "data" / "fsaverage"


def _nilearn_fsaverage5_dir():
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data" / "fsaverage5"


@lru_cache(maxsize=1)
def _eeg_labels():
    montage = mne.channels.make_standard_montage("fsaverage_1010")
    labels = tuple(ch for ch in montage.ch_names if ch not in _DROPPED_1010)
    assert len(labels) == 60, len(labels)
    return labels


#: 10-10 labels of "EEG 001" .. "EEG 060" of the embedded model, in channel order.
EEG_1010_LABELS = _eeg_labels()
EEG_NAMES = tuple(f"EEG {k:03d}" for k in range(1, 61))


# ---------------------------------------------------------------------------------------------
# Pure builders (no cache)
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _read_shipped():
    """The surfaces, trans and fiducials shipped with mne (MRI coordinates, m)."""
    mdir = _mne_fsaverage_dir()
    inner = mne.read_bem_surfaces(mdir / "fsaverage-inner_skull-bem.fif", verbose=False)[0]
    head = mne.read_bem_surfaces(mdir / "fsaverage-head.fif", verbose=False)[0]
    trans = mne.read_trans(mdir / "fsaverage-trans.fif")
    fids, _ = mne.io.read_fiducials(mdir / "fsaverage-fiducials.fif")
    fids = {int(f["ident"]): np.asarray(f["r"], float) for f in fids}
    return inner, head, trans, fids


def fsaverage_trans():
    """The fsaverage head -> MRI transformation shipped with mne."""
    return _read_shipped()[2].copy()


def fsaverage_scalp(coord_frame="mri"):
    """The fsaverage scalp shipped with mne (2033 vertices) as ``(rr, tris)`` in meters.

    Parameters
    ----------
    coord_frame : "mri" | "head"
        Coordinate frame of the returned vertices.
    """
    _, head, trans, _ = _read_shipped()
    rr = head["rr"].copy()
    if coord_frame == "head":
        rr = apply_trans(invert_transform(trans), rr)
    elif coord_frame != "mri":
        raise ValueError(
            "Invalid value for the 'coord_frame' parameter. Allowed values are 'mri' and "
            f"'head', but got {coord_frame!r} instead."
        )
    return rr, head["tris"].copy()


@lru_cache(maxsize=1)
def _dev_head_matrix():
    canonical = mne.channels.read_meg_canonical_info("neuromag")
    sensor_pos = np.array([ch["loc"][:3] for ch in canonical["chs"]])
    scalp_rr, scalp_tris = fsaverage_scalp("head")
    t = _geometry.place_head_in_helmet(sensor_pos, scalp_rr, scalp_tris)
    mat = np.eye(4)
    mat[:3, 3] = t
    return mat


def fsaverage_dev_head_t():
    """The device -> head transformation of the embedded model.

    Identity rotation and a translation found from geometry by
    :func:`meg_unet.headmodel._geometry.place_head_in_helmet`: the fsaverage scalp is seated
    in the Vectorview helmet with a 20 mm gap between the top of the scalp and the nearest
    sensors, centred front-to-back. The result is ``t = (-1.1, -8.8, 49.5) mm``
    (``head = device + t``); the scalp-to-sensor distance is then 20.0 mm at the top (the
    smallest anywhere) and at most 36.9 mm, no sensor is inside the scalp, and the median
    distance from a cortical (white-surface) vertex to its nearest MEG sensor is 59.6 mm
    (``python benchmarks/headmodel_build.py --no-timing`` reproduces these figures).

    Returns
    -------
    dev_head_t : mne.transforms.Transform
        MEG device -> head.
    """
    return Transform("meg", "head", _dev_head_matrix().copy())


def _hsp_points(mri_head):
    """Head-shape points: the scalp along icosahedron rays above the fiducial plane."""
    inner, head, _, _ = _read_shipped()
    center = inner["rr"].mean(axis=0)
    dirs, _ = _geometry.ico_directions(_HSP_GRADE)
    radius, _ = _geometry.ray_radii(head["rr"], head["tris"], center, dirs)
    pts = apply_trans(mri_head, center + radius[:, np.newaxis] * dirs)
    return pts[pts[:, 2] > 0.01]


def make_fsaverage_info(sensors="meg", sfreq=600.614990234375):
    """Measurement info of the embedded model.

    Parameters
    ----------
    sensors : "meg" | "meg+eeg"
        Sensor set.
    sfreq : float
        Sampling frequency (Hz).

    Returns
    -------
    info : mne.Info
        306 Vectorview MEG channels (device coordinates), + 60 EEG channels ``"EEG 001" ..
        "EEG 060"`` for ``"meg+eeg"``, then ``"EOG 061"`` and ``"ECG 063"`` (no positions);
        digitization: the three fiducials, the EEG electrodes and head-shape points on the
        upper scalp (head coordinates); ``dev_head_t`` from :func:`fsaverage_dev_head_t`; the
        EEG average-reference projector (inactive) when EEG is present.
    """
    _check_sensors(sensors)
    _, _, trans, fids = _read_shipped()
    mri_head = invert_transform(trans)
    canonical = mne.channels.read_meg_canonical_info("neuromag")
    meg_names = list(canonical["ch_names"])
    meg_types = canonical.get_channel_types()
    eeg = sensors == "meg+eeg"
    names = meg_names + (list(EEG_NAMES) if eeg else []) + [EOG_NAME, ECG_NAME]
    types = meg_types + (["eeg"] * 60 if eeg else []) + ["eog", "ecg"]
    info = mne.create_info(names, float(sfreq), types)
    for ii, ch in enumerate(canonical["chs"]):
        info["chs"][ii] = dict(ch)
        info["chs"][ii]["loc"] = ch["loc"].copy()
    info["dev_head_t"] = fsaverage_dev_head_t()
    info["description"] = "meg-unet embedded fsaverage head model"

    fid_head = {k: apply_trans(mri_head, r) for k, r in fids.items()}
    ch_pos = {}
    if eeg:
        montage = mne.channels.make_standard_montage("fsaverage_1010")
        pos = montage.get_positions()
        # the positions are fsaverage MRI coordinates (mne labels the frame 'unknown')
        if pos["coord_frame"] not in ("mri", "unknown"):  # pragma: no cover
            raise RuntimeError(
                f"mne's fsaverage_1010 montage is in {pos['coord_frame']!r} coordinates, "
                "expected fsaverage MRI coordinates"
            )
        ch_pos = {
            name: apply_trans(mri_head, pos["ch_pos"][label])
            for name, label in zip(EEG_NAMES, EEG_1010_LABELS)
        }
    montage = mne.channels.make_dig_montage(
        ch_pos=ch_pos,
        nasion=fid_head[FIFF.FIFFV_POINT_NASION],
        lpa=fid_head[FIFF.FIFFV_POINT_LPA],
        rpa=fid_head[FIFF.FIFFV_POINT_RPA],
        hsp=_hsp_points(mri_head),
        coord_frame="head",
    )
    info.set_montage(montage, on_missing="ignore", verbose=False)
    if eeg:
        proj = make_eeg_average_ref_proj(info, activate=False, verbose=False)
        info["projs"].append(proj)
    return info


def _check_sensors(sensors):
    from mne.utils import _check_option

    from ..constants import SENSOR_SETS

    _check_option("sensors", sensors, SENSOR_SETS)


# ---------------------------------------------------------------------------------------------
# Cached stages
# ---------------------------------------------------------------------------------------------


def _surface_files():
    files = [f"subjects/{SUBJECT}/surf/{h}.{s}" for h in _HEMI_FILES for s in _SURFACES]
    files += [f"subjects/{SUBJECT}/bem/{SUBJECT}-{n}.fif" for n in ("head", "trans", "fiducials")]
    return files


def _surfaces_stage(root, overwrite):
    """Write the FreeSurfer-like fsaverage subject (cortex, scalp, trans, fiducials)."""
    import nilearn

    stage = Stage(root, "subject", dict(nilearn_version=nilearn.__version__), _surface_files())
    if stage.is_valid(overwrite=overwrite):
        return stage
    stage.invalidate()
    src_dir = _nilearn_fsaverage5_dir()
    surf_dir = root / "subjects" / SUBJECT / "surf"
    surf_dir.mkdir(parents=True, exist_ok=True)
    for hemi, side in _HEMI_FILES.items():
        for fs_name, nl_name in _SURFACES.items():
            gii = nib.load(src_dir / f"{nl_name.format(side)}.gii.gz")
            rr = np.asarray(gii.darrays[0].data, np.float64)  # mm, like FreeSurfer
            tris = np.asarray(gii.darrays[1].data, np.int32)
            if fs_name == "sphere":
                radius = np.linalg.norm(rr, axis=1)
                if not np.allclose(radius, 100.0, rtol=1e-3):
                    raise RuntimeError(
                        f"nilearn's {side} sphere has radius {radius.mean():.2f}, expected 100 mm"
                    )
            with atomic_path(surf_dir / f"{hemi}.{fs_name}") as tmp:
                nib.freesurfer.write_geometry(str(tmp), rr, tris, create_stamp=_STAMP)
    for name in ("head", "trans", "fiducials"):
        copy_atomic(
            _mne_fsaverage_dir() / f"{SUBJECT}-{name}.fif",
            root / "subjects" / SUBJECT / "bem" / f"{SUBJECT}-{name}.fif",
        )
    stage.commit()
    return stage


def _bem_name(bem_ico, n_layers):
    return f"{SUBJECT}-ico{bem_ico}-{n_layers}layer"


def make_fsaverage_bem_surfaces(n_layers, bem_ico):
    """BEM surfaces of the embedded model, checked by mne's topology checks.

    Parameters
    ----------
    n_layers : 1 | 3
        1: the inner skull (MEG); 3: inner skull, constructed outer skull, scalp (EEG).
    bem_ico : 3 | 4 | 5
        Icosahedral grade of every layer (642, 2562, 10242 vertices). For one layer, 5 is the
        inner skull as shipped (already an ico5 mesh); three layers need 3 or 4.

    Returns
    -------
    surfs : list of dict
        mne BEM surfaces (MRI coordinates, m), ordered outside-in as mne expects.
    """
    from mne.bem import _check_bem_size, _surfaces_to_bem

    inner, head, _, _ = _read_shipped()
    center = inner["rr"].mean(axis=0)
    if n_layers == 1:
        if bem_ico == 5:
            layers = [(inner["rr"].copy(), inner["tris"].copy())]
        else:
            layers = [_geometry.resample_star_shaped(inner["rr"], inner["tris"], center, bem_ico)]
        ids = [FIFF.FIFFV_BEM_SURF_ID_BRAIN]
        sigmas = list(CONDUCTIVITY_1)
    else:
        layers = _geometry.make_three_layers(
            inner["rr"], inner["tris"], head["rr"], head["tris"], bem_ico
        )
        ids = [FIFF.FIFFV_BEM_SURF_ID_BRAIN, FIFF.FIFFV_BEM_SURF_ID_SKULL,
               FIFF.FIFFV_BEM_SURF_ID_HEAD]
        sigmas = list(CONDUCTIVITY_3)
    surfs = [
        dict(rr=np.array(rr, float), tris=np.array(tris, int), coord_frame=FIFF.FIFFV_COORD_MRI)
        for rr, tris in layers
    ]
    surfs = _surfaces_to_bem(surfs, ids, sigmas, ico=None, rescale=False)
    _check_bem_size(surfs)
    return surfs


def _bem_stage(root, n_layers, bem_ico, overwrite):
    name = _bem_name(bem_ico, n_layers)
    files = [f"subjects/{SUBJECT}/bem/{name}-bem.fif", f"subjects/{SUBJECT}/bem/{name}-bem-sol.fif"]
    params = dict(
        n_layers=n_layers,
        bem_ico=bem_ico,
        conductivity=CONDUCTIVITY_1 if n_layers == 1 else CONDUCTIVITY_3,
        skull_fraction=_geometry.SKULL_FRACTION,
        max_skull_thickness=_geometry.MAX_SKULL_THICKNESS,
    )
    stage = Stage(root, f"bem-ico{bem_ico}-{n_layers}layer", params, files)
    if not stage.is_valid(overwrite=overwrite):
        _build_bem(stage, files, n_layers, bem_ico)
    # always the solution as stored, so that a fresh build equals a later load
    return stage, mne.read_bem_solution(stage.path(files[1]), verbose=False)


def _build_bem(stage, files, n_layers, bem_ico):
    stage.invalidate()
    surfs = make_fsaverage_bem_surfaces(n_layers, bem_ico)
    with atomic_path(stage.path(files[0])) as tmp:
        mne.write_bem_surfaces(tmp, surfs, overwrite=True, verbose=False)
    logger.info(
        f"Computing the {n_layers}-layer BEM solution "
        f"({sum(len(s['rr']) for s in surfs)} vertices)"
    )
    bem = mne.make_bem_solution(surfs)
    with atomic_path(stage.path(files[1])) as tmp:
        mne.write_bem_solution(tmp, bem, overwrite=True, verbose=False)
    stage.commit()


#: add_dist of setup_source_space: patch information only (cheap), used by use_cps.
ADD_DIST = "patch"


def _src_stage(root, spacing, subject_stage, n_jobs, overwrite):
    rel = f"subjects/{SUBJECT}/bem/{SUBJECT}-{spacing}-src.fif"
    white = {k: v for k, v in subject_stage.checksums().items() if ".white" in k or ".sphere" in k}
    params = dict(spacing=spacing, add_dist=ADD_DIST, surfaces=white)
    stage = Stage(root, f"src-{spacing}", params, [rel])
    if not stage.is_valid(overwrite=overwrite):
        stage.invalidate()
        src = mne.setup_source_space(
            SUBJECT, spacing, subjects_dir=root / "subjects", add_dist=ADD_DIST, n_jobs=n_jobs
        )
        _check_src(src, spacing)
        with atomic_path(stage.path(rel)) as tmp:
            mne.write_source_spaces(tmp, src, overwrite=True, verbose=False)
        stage.commit()
    return stage, mne.read_source_spaces(stage.path(rel), verbose=False)


def _check_src(src, spacing):
    n_expected = dict(ico1=42, ico2=162, ico3=642, ico4=2562, ico5=10242, oct5=1026, oct6=4098)
    for s in src:
        vertno = np.asarray(s["vertno"])
        if len(np.unique(vertno)) != n_expected[spacing] or s["nuse"] != n_expected[spacing]:
            raise RuntimeError(
                f"the {spacing} source space of the embedded fsaverage has {s['nuse']} "
                f"sources per hemisphere, expected {n_expected[spacing]}"
            )
        if spacing.startswith("ico") and not np.array_equal(vertno, np.arange(len(vertno))):
            raise RuntimeError(f"{spacing} vertices of fsaverage5 are not nested (0..n-1)")


def sfreq_tag(sfreq):
    """A file-name friendly rendering of a sampling frequency."""
    return f"{float(sfreq):.4f}".rstrip("0").rstrip(".").replace(".", "p")


def _model_tag(spacing, sensors, bem_ico, sfreq):
    sens = "meg" if sensors == "meg" else "megeeg"
    return f"{SUBJECT}-{spacing}-{sens}-bemico{bem_ico}-sfreq{sfreq_tag(sfreq)}"


def build_fsaverage(cache_dir, spacing, sensors, *, bem_ico, sfreq, n_jobs, overwrite):
    """Load the embedded model from ``cache_dir``, building what is missing.

    See :func:`meg_unet.headmodel.load_head_model` for the parameters and the cache layout.
    """
    root = Path(cache_dir).expanduser().resolve() / SUBJECT
    n_layers = 3 if sensors == "meg+eeg" else 1
    subject_stage = _surfaces_stage(root, overwrite)
    src_stage, src = _src_stage(root, spacing, subject_stage, n_jobs, overwrite)
    bem_stage, bem = _bem_stage(root, n_layers, bem_ico, overwrite)
    trans = mne.read_trans(root / "subjects" / SUBJECT / "bem" / f"{SUBJECT}-trans.fif")

    tag = _model_tag(spacing, sensors, bem_ico, sfreq)
    info_rel = f"models/{tag}/{tag}-info.fif"
    fwd_rel = f"models/{tag}/{tag}-fwd.fif"
    params = dict(
        spacing=spacing,
        sensors=sensors,
        bem_ico=bem_ico,
        sfreq=float(sfreq),
        src=src_stage.checksums(),
        bem=bem_stage.checksums(),
        trans=subject_stage.checksums()[f"subjects/{SUBJECT}/bem/{SUBJECT}-trans.fif"],
        eeg_labels=list(EEG_1010_LABELS) if sensors == "meg+eeg" else [],
    )
    stage = Stage(root, f"model-{tag}", params, [info_rel, fwd_rel])
    if not stage.is_valid(overwrite=overwrite):
        stage.invalidate()
        with atomic_path(stage.path(info_rel)) as tmp:
            mne.io.write_info(tmp, make_fsaverage_info(sensors, sfreq))
        # the forward uses the info as stored (float32 positions), like any later rebuild
        info = mne.io.read_info(stage.path(info_rel), verbose=False)
        fwd = compute_forward(info, trans, src, bem, sensors, n_jobs=n_jobs)
        with atomic_path(stage.path(fwd_rel)) as tmp:
            mne.write_forward_solution(tmp, fwd, overwrite=True, verbose=False)
        stage.commit()
    # always what is stored (float32 on disk), so that a fresh build equals a later load
    info = mne.io.read_info(stage.path(info_rel), verbose=False)
    fwd = mne.read_forward_solution(stage.path(fwd_rel), verbose=False)
    fwd_free, fwd_fixed = orient_forward(fwd)
    return HeadModel(
        kind="fsaverage",
        subject=SUBJECT,
        subjects_dir=root / "subjects",
        spacing=spacing,
        sensors=sensors,
        info=info,
        src=src,
        bem=bem,
        trans=trans,
        fwd_free=fwd_free,
        fwd_fixed=fwd_fixed,
        cache_path=stage.path(fwd_rel).parent,
        params=dict(bem_ico=bem_ico, sfreq=float(sfreq), add_dist=ADD_DIST),
    )


def compute_forward(info, trans, src, bem, sensors, *, n_jobs=1):
    """Forward solution of the data channels (MEG, + EEG), checking no source is dropped.

    Returns the free-orientation solution as computed by :func:`mne.make_forward_solution`
    (Cartesian orientations, head coordinates).
    """
    eeg = sensors == "meg+eeg"
    fwd = mne.make_forward_solution(
        info, trans=trans, src=src, bem=bem, meg=True, eeg=eeg, mindist=0.0, n_jobs=n_jobs
    )
    n_src = sum(int(s["nuse"]) for s in src)
    if fwd["nsource"] != n_src:
        raise RuntimeError(
            f"the forward solution kept {fwd['nsource']} of {n_src} sources: some cortical "
            "sources lie outside the inner skull of the BEM"
        )
    return fwd


def orient_forward(fwd):
    """The free (surface-oriented) and fixed (normal, cortical patch) forward solutions.

    ``mne.write_forward_solution`` stores the free solution whatever the conversion, so the
    cache keeps the free one and both orientations are derived here on every load.
    """
    fwd_free = mne.convert_forward_solution(
        fwd, surf_ori=True, force_fixed=False, use_cps=True, copy=True, verbose=False
    )
    fwd_fixed = mne.convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True, copy=True, verbose=False
    )
    return fwd_free, fwd_fixed
