"""Head models of a real subject: the MNE sample subject or a user's own ("custom").

Both take a FreeSurfer subject (``surf/{lh,rh}.{white,sphere}``), a head<->MRI transformation,
a BEM (a solution ``-bem-sol.fif``, or surfaces ``-bem.fif`` whose solution is computed and
cached) and a recording whose sensors are simulated (any raw, epochs or evoked ``.fif``).
Every missing file raises :class:`FileNotFoundError` naming the file, what it is for and the
setting of ``config.py`` that points to it.

The cache of a subject lives in ``cache_dir/<kind>/<subject>-<hash of subjects_dir>/``;
its entries are keyed by the paths, sizes and modification times of the input files, so an
edited input file is picked up.
"""

import hashlib
import os
from pathlib import Path

import mne
import numpy as np
from mne.io.constants import FIFF
from mne.proj import make_eeg_average_ref_proj

from ._cache import Stage, atomic_path
from ._log import logger
from .base import HeadModel
from .fsaverage import ECG_NAME, EOG_NAME, orient_forward, sfreq_tag

#: Settings of config.py that point to each input of a custom head model.
_CUSTOM_SETTINGS = dict(
    subjects_dir="CUSTOM_SUBJECTS_DIR",
    subject="CUSTOM_SUBJECT",
    trans="CUSTOM_TRANS_FILE",
    bem="CUSTOM_BEM_FILE",
    info="CUSTOM_INFO_FILE",
)
_WHAT = dict(
    subjects_dir="the FreeSurfer subjects directory",
    subject="the FreeSurfer subject folder",
    trans="the head<->MRI transformation (-trans.fif)",
    bem="the BEM solution (-bem-sol.fif) or BEM surfaces (-bem.fif)",
    info="the recording whose sensors are simulated (raw/epochs/evoked .fif)",
)


def default_sample_data_path():
    """Where ``mne.datasets.sample.data_path()`` puts the sample data (nothing is created).

    ``MNE_DATASETS_SAMPLE_PATH`` or ``MNE_DATA`` from the MNE config, else ``~/mne_data``,
    then ``MNE-sample-data``.
    """
    base = mne.get_config("MNE_DATASETS_SAMPLE_PATH", mne.get_config("MNE_DATA"))
    if base is None:
        base = Path(os.getenv("_MNE_FAKE_HOME_DIR", "~")).expanduser() / "mne_data"
    return Path(base).expanduser() / "MNE-sample-data"


def _missing(kind, key, path, extra=""):
    what = _WHAT[key]
    if kind == "custom":
        hint = f"set {_CUSTOM_SETTINGS[key]} in config.py"
    else:
        hint = (
            "the MNE sample data set is needed for HEAD_MODEL = 'sample': download it with "
            "mne.datasets.sample.data_path() on a machine that is online (or point "
            "MNE_DATASETS_SAMPLE_PATH to it), or use HEAD_MODEL = 'fsaverage'"
        )
    return FileNotFoundError(f"{what}{extra} was not found at {path}; {hint}")


def resolve_inputs(kind, *, subjects_dir=None, subject=None, trans=None, bem=None, info=None):
    """Resolve and check the input files of a sample or custom head model.

    Parameters
    ----------
    kind : "sample" | "custom"
        For ``"sample"``, missing arguments default to the sample data set's files:
        ``subjects_dir = <data_path>/subjects`` (``<data_path>`` as
        :func:`default_sample_data_path`), subject ``"sample"``, and relative to
        ``subjects_dir.parent``: ``MEG/sample/sample_audvis_raw-trans.fif``,
        ``MEG/sample/sample_audvis_raw.fif``; the BEM is
        ``subjects/sample/bem/sample-5120-5120-5120-bem-sol.fif``, or the surfaces
        ``sample-5120-5120-5120-bem.fif`` when there is no solution. For ``"custom"`` all are
        required.
    subjects_dir, subject, trans, bem, info : path-like | str | None
        See :func:`meg_unet.headmodel.load_head_model`.

    Returns
    -------
    inputs : dict
        Resolved absolute paths (``subjects_dir``, ``trans``, ``bem``, ``info``,
        ``surfaces``: the four white/sphere files) and ``subject``.
    """
    if kind == "custom":
        given = dict(subjects_dir=subjects_dir, subject=subject, trans=trans, bem=bem, info=info)
        absent = [k for k, v in given.items() if v is None]
        if absent:
            names = ", ".join(f"{k} ({_CUSTOM_SETTINGS[k]})" for k in absent)
            raise ValueError(f"kind='custom' needs {names}; set them in config.py")
        subjects_dir = Path(subjects_dir).expanduser()
    else:
        if subjects_dir is None:
            subjects_dir = default_sample_data_path() / "subjects"
        subjects_dir = Path(subjects_dir).expanduser()
        subject = "sample" if subject is None else subject
        data_path = subjects_dir.parent
        if trans is None:
            trans = data_path / "MEG" / "sample" / "sample_audvis_raw-trans.fif"
        if info is None:
            info = data_path / "MEG" / "sample" / "sample_audvis_raw.fif"
        if bem is None:
            bem_dir = subjects_dir / subject / "bem"
            bem = bem_dir / f"{subject}-5120-5120-5120-bem-sol.fif"
            if not bem.is_file() and (bem_dir / f"{subject}-5120-5120-5120-bem.fif").is_file():
                bem = bem_dir / f"{subject}-5120-5120-5120-bem.fif"
    if not subjects_dir.is_dir():
        raise _missing(kind, "subjects_dir", subjects_dir)
    subject = str(subject)
    if not (subjects_dir / subject).is_dir():
        raise _missing(kind, "subject", subjects_dir / subject, f" of {subject!r}")
    surfaces = {}
    for hemi in ("lh", "rh"):
        for name in ("white", "sphere"):
            path = subjects_dir / subject / "surf" / f"{hemi}.{name}"
            if not path.is_file():
                raise _missing(
                    kind, "subject", path, f" (its {hemi}.{name} surface, for the source space)"
                )
            surfaces[f"{hemi}.{name}"] = path.resolve()
    out = dict(kind=kind, subjects_dir=subjects_dir.resolve(), subject=subject, surfaces=surfaces)
    for key, path in dict(trans=trans, bem=bem, info=info).items():
        path = Path(path).expanduser()
        if not path.is_file():
            raise _missing(kind, key, path)
        out[key] = path.resolve()
    return out


def _stat_key(path):
    st = Path(path).stat()
    return dict(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns)


def _read_trans(path):
    trans = mne.read_trans(path)
    if trans["from"] == FIFF.FIFFV_COORD_MRI and trans["to"] == FIFF.FIFFV_COORD_HEAD:
        trans = mne.transforms.invert_transform(trans)
    if not (trans["from"] == FIFF.FIFFV_COORD_HEAD and trans["to"] == FIFF.FIFFV_COORD_MRI):
        raise ValueError(f"{path} is not a head<->MRI transformation")
    return trans


def prepare_info(fname, sensors, sfreq):
    """Measurement info of a recording, reduced to what the simulation needs.

    Keeps the MEG channels (+ EEG for ``"meg+eeg"``), the first EOG and the first ECG channel
    (adding ``"EOG 061"`` / ``"ECG 063"`` without positions where the recording has none),
    the digitization, ``dev_head_t``, bad channels and the projectors that only involve the
    kept channels; adds an (inactive) EEG average-reference projector if EEG is kept and none
    is present; sets the sampling frequency to ``sfreq``.

    Parameters
    ----------
    fname : path-like
        Raw, epochs or evoked ``.fif`` file.
    sensors : "meg" | "meg+eeg"
        Sensor set.
    sfreq : float
        Sampling frequency of the returned info (Hz).

    Returns
    -------
    info : mne.Info
    """
    raw_info = mne.io.read_info(fname, verbose=False)
    eeg = sensors == "meg+eeg"
    meg_picks = mne.pick_types(raw_info, meg=True, ref_meg=False, exclude=[])
    if len(meg_picks) == 0:
        raise ValueError(f"{fname} has no MEG channels")
    eeg_picks = mne.pick_types(raw_info, meg=False, eeg=True, exclude=[]) if eeg else []
    if eeg and len(eeg_picks) == 0:
        raise ValueError(f"{fname} has no EEG channels, so sensors='meg+eeg' is impossible")
    eog = mne.pick_types(raw_info, meg=False, eog=True, exclude=[])[:1]
    ecg = mne.pick_types(raw_info, meg=False, ecg=True, exclude=[])[:1]
    picks = np.concatenate([meg_picks, eeg_picks, eog, ecg]).astype(int)
    info = mne.pick_info(raw_info, picks, verbose=False)
    kept = set(info["ch_names"])
    with info._unlock():
        info["projs"] = [
            p for p in info["projs"] if set(p["data"]["col_names"]) <= kept
        ]
        info["bads"] = [b for b in info["bads"] if b in kept]
    add = [(EOG_NAME, "eog")] * (len(eog) == 0) + [(ECG_NAME, "ecg")] * (len(ecg) == 0)
    if add:
        base = mne.io.RawArray(np.zeros((len(info["ch_names"]), 1)), info, verbose=False)
        extra_info = mne.create_info([n for n, _ in add], info["sfreq"], [t for _, t in add])
        extra = mne.io.RawArray(np.zeros((len(add), 1)), extra_info, verbose=False)
        base.add_channels([extra], force_update_info=True)
        info = base.info
    with info._unlock():
        info["sfreq"] = float(sfreq)
        info["lowpass"] = min(float(info["lowpass"]), float(sfreq) / 2.0)
    if eeg and not any(
        p["desc"] == "Average EEG reference" or "average" in p["desc"].lower()
        for p in info["projs"]
    ):
        info["projs"].append(make_eeg_average_ref_proj(info, activate=False))
    return info


def _load_bem(root, inputs, sensors, overwrite):
    """The BEM solution: read, or computed from surfaces and cached."""
    path = inputs["bem"]
    try:
        bem = mne.read_bem_solution(path, verbose=False)
        key = _stat_key(path)
    except RuntimeError:
        # a surfaces-only file (-bem.fif): compute and cache its solution
        stage = Stage(root, "bem-sol", dict(bem=_stat_key(path)), ["bem/bem-sol.fif"])
        if not stage.is_valid(overwrite=overwrite):
            stage.invalidate()
            surfs = mne.read_bem_surfaces(path, verbose=False)
            logger.info(f"Computing the BEM solution of {path}")
            bem = mne.make_bem_solution(surfs)
            with atomic_path(stage.path("bem/bem-sol.fif")) as tmp:
                mne.write_bem_solution(tmp, bem, overwrite=True, verbose=False)
            stage.commit()
        bem = mne.read_bem_solution(stage.path("bem/bem-sol.fif"), verbose=False)
        key = stage.checksums()
    if sensors == "meg+eeg" and len(bem["surfs"]) != 3:
        raise ValueError(
            f"sensors='meg+eeg' needs a 3-layer BEM, but {path} has {len(bem['surfs'])} layer"
        )
    return bem, key


def _restrict_src(src, fwd_src):
    """Restrict a source space (MRI coordinates) to the sources a forward kept."""
    src = src.copy()
    for s, f in zip(src, fwd_src):
        s["inuse"] = np.asarray(f["inuse"]).copy()
        s["vertno"] = np.asarray(f["vertno"]).copy()
        s["nuse"] = int(f["nuse"])
    return src


def build_subject(inputs, spacing, sensors, cache_dir, *, sfreq, n_jobs, overwrite):
    """Load (or build and cache) the head model of a real subject.

    Parameters
    ----------
    inputs : dict
        As returned by :func:`resolve_inputs`.
    spacing, sensors, cache_dir, sfreq, n_jobs, overwrite
        See :func:`meg_unet.headmodel.load_head_model`.

    Returns
    -------
    model : HeadModel
    """
    kind, subject = inputs["kind"], inputs["subject"]
    digest = hashlib.sha256(str(inputs["subjects_dir"]).encode()).hexdigest()[:8]
    root = Path(cache_dir).expanduser().resolve() / kind / f"{subject}-{digest}"

    src_stage, src = _load_source_space(root, inputs, spacing, n_jobs, overwrite)
    bem, bem_key = _load_bem(root, inputs, sensors, overwrite)
    trans = _read_trans(inputs["trans"])

    sens = "meg" if sensors == "meg" else "megeeg"
    tag = f"{subject}-{spacing}-{sens}-sfreq{sfreq_tag(sfreq)}"
    info_rel, fwd_rel, src_used_rel = (
        f"models/{tag}/{tag}-info.fif",
        f"models/{tag}/{tag}-fwd.fif",
        f"models/{tag}/{tag}-src.fif",
    )
    params = dict(spacing=spacing, sensors=sensors, sfreq=float(sfreq),
                  src=src_stage.checksums(), bem=bem_key, trans=_stat_key(inputs["trans"]),
                  info=_stat_key(inputs["info"]))
    stage = Stage(root, f"model-{tag}", params, [info_rel, fwd_rel, src_used_rel])
    if not stage.is_valid(overwrite=overwrite):
        stage.invalidate()
        with atomic_path(stage.path(info_rel)) as tmp:
            mne.io.write_info(tmp, prepare_info(inputs["info"], sensors, sfreq))
        info = mne.io.read_info(stage.path(info_rel), verbose=False)
        fwd = mne.make_forward_solution(
            info, trans=trans, src=src, bem=bem, meg=True, eeg=sensors == "meg+eeg",
            mindist=0.0, n_jobs=n_jobs,
        )
        if fwd["nsource"] != sum(int(s["nuse"]) for s in src):
            logger.warning(
                f"{sum(int(s['nuse']) for s in src) - fwd['nsource']} sources of the "
                f"{spacing} source space lie outside the inner skull of {inputs['bem']} and "
                "were dropped"
            )
        src = _restrict_src(src, fwd["src"])
        with atomic_path(stage.path(fwd_rel)) as tmp:
            mne.write_forward_solution(tmp, fwd, overwrite=True, verbose=False)
        with atomic_path(stage.path(src_used_rel)) as tmp:
            mne.write_source_spaces(tmp, src, overwrite=True, verbose=False)
        stage.commit()
    # always what is stored (float32 on disk), so that a fresh build equals a later load
    info = mne.io.read_info(stage.path(info_rel), verbose=False)
    fwd = mne.read_forward_solution(stage.path(fwd_rel), verbose=False)
    src = mne.read_source_spaces(stage.path(src_used_rel), verbose=False)
    fwd_free, fwd_fixed = orient_forward(fwd)
    return HeadModel(
        kind=kind, subject=subject, subjects_dir=inputs["subjects_dir"], spacing=spacing,
        sensors=sensors, info=info, src=src, bem=bem, trans=trans, fwd_free=fwd_free,
        fwd_fixed=fwd_fixed, cache_path=stage.path(fwd_rel).parent,
        params=dict(sfreq=float(sfreq), trans_file=str(inputs["trans"]),
                    bem_file=str(inputs["bem"]), info_file=str(inputs["info"])),
    )


def _load_source_space(root, inputs, spacing, n_jobs, overwrite):
    """Load (or build and cache) the subject's source space; return its stage and itself."""
    rel = f"src/{inputs['subject']}-{spacing}-src.fif"
    surfaces = {k: _stat_key(v) for k, v in inputs["surfaces"].items()}
    stage = Stage(root, f"src-{spacing}", dict(spacing=spacing, surfaces=surfaces), [rel])
    if not stage.is_valid(overwrite=overwrite):
        stage.invalidate()
        src = mne.setup_source_space(inputs["subject"], spacing,
                                     subjects_dir=inputs["subjects_dir"], add_dist="patch",
                                     n_jobs=n_jobs)
        with atomic_path(stage.path(rel)) as tmp:
            mne.write_source_spaces(tmp, src, overwrite=True, verbose=False)
        stage.commit()
    return stage, mne.read_source_spaces(stage.path(rel), verbose=False)
