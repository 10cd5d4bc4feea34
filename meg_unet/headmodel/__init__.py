"""Head models: source space, BEM, sensors and trans, built offline or read from a subject.

``load_head_model`` is the one entry point: the embedded ``"fsaverage"`` model (the default,
built from files inside the mne and nilearn wheels, no download), the MNE ``"sample"``
subject, or a ``"custom"`` subject. Everything it computes is cached under ``cache_dir``.
"""

import numbers
from pathlib import Path

from mne.utils import _check_option, verbose

from ._log import logger
from ..constants import HEAD_MODELS as KINDS
from ..constants import SENSOR_SETS, SPACINGS
from .base import BEM_ICOS, HeadModel
from .fsaverage import EEG_1010_LABELS, build_fsaverage, fsaverage_dev_head_t
from .subject import build_subject, resolve_inputs

__all__ = [
    "BEM_ICOS",
    "EEG_1010_LABELS",
    "KINDS",
    "SENSOR_SETS",
    "SPACINGS",
    "HeadModel",
    "fsaverage_dev_head_t",
    "head_model_from_config",
    "load_head_model",
]


@verbose
def load_head_model(
    kind,
    spacing,
    sensors,
    cache_dir,
    *,
    subjects_dir=None,
    subject=None,
    trans=None,
    bem=None,
    info=None,
    sfreq=600.614990234375,
    bem_ico=4,
    n_jobs=1,
    overwrite=False,
    verbose=None,
):
    """Load a head model, building (and caching) what is not cached yet.

    Parameters
    ----------
    kind : "fsaverage" | "sample" | "custom"
        ``"fsaverage"``: the embedded model (see :mod:`meg_unet.headmodel.fsaverage`), built
        offline. ``"sample"``: the MNE sample subject (files default to the sample data set,
        see :func:`meg_unet.headmodel.subject.resolve_inputs`). ``"custom"``: your own subject;
        ``subjects_dir``, ``subject``, ``trans``, ``bem`` and ``info`` are then required.
    spacing : str
        Source-space subdivision: ``"ico1"`` .. ``"ico5"`` (42, 162, 642, 2562, 10242 sources
        per hemisphere), ``"oct5"`` (1026) or ``"oct6"`` (4098).
    sensors : "meg" | "meg+eeg"
        306 Vectorview MEG channels, or these plus the EEG channels (60 on fsaverage).
    cache_dir : path-like
        Cache folder (e.g. ``DATA_DIR/headmodels``); created if needed.
    subjects_dir : path-like | None
        FreeSurfer subjects directory (sample/custom only).
    subject : str | None
        FreeSurfer subject (sample/custom only; sample: ``"sample"``).
    trans : path-like | None
        Head<->MRI transformation ``-trans.fif`` (sample/custom only).
    bem : path-like | None
        BEM solution ``-bem-sol.fif`` or BEM surfaces ``-bem.fif`` (sample/custom only; a
        solution is computed from surfaces and cached). With EEG it must have 3 layers.
    info : path-like | None
        A raw, epochs or evoked ``.fif`` file with the sensors (sample/custom only).
    sfreq : float
        Sampling frequency of ``HeadModel.info`` (Hz); default: the sample data's.
    bem_ico : 3 | 4 | 5
        Icosahedral grade of the embedded model's BEM layers (642, 2562, 10242 vertices per
        layer). For MEG, the ico3-source gain matrix with ``bem_ico=4`` differs from the one
        with the inner skull as shipped by 0.7 percent (Frobenius norm; per source: median
        0.4, 95th percentile 2.7 percent), with ``bem_ico=3`` by 3.1 percent (median 1.6,
        95th percentile 10.8 percent); ``benchmarks/headmodel_build.py --accuracy`` measures
        it. 5 (MEG only) is the inner skull as shipped (its BEM solution takes minutes and
        a 400 MB file). Ignored for sample/custom, whose BEM is used as given.
    n_jobs : int
        Jobs for :func:`mne.make_forward_solution` and :func:`mne.setup_source_space`.
    overwrite : bool
        Rebuild every cached piece, even when the cache is valid.
    verbose : bool | str | int | None
        MNE's log level for this call (see :func:`mne.verbose`); None uses MNE's global level.

    Returns
    -------
    model : HeadModel
        The head model; see :class:`HeadModel`.

    Notes
    -----
    Cache layout of the embedded model, under ``cache_dir/fsaverage/``::

        subjects/fsaverage/surf/{lh,rh}.{white,sphere,inflated}   cortex (FreeSurfer format)
        subjects/fsaverage/bem/fsaverage-{head,trans,fiducials}.fif
        subjects/fsaverage/bem/fsaverage-ico{G}-{1,3}layer-bem.fif      BEM surfaces
        subjects/fsaverage/bem/fsaverage-ico{G}-{1,3}layer-bem-sol.fif  BEM solutions
        subjects/fsaverage/bem/fsaverage-{spacing}-src.fif              source spaces
        models/<tag>/<tag>-info.fif, <tag>-fwd.fif   info and free forward solution, with
            <tag> = fsaverage-{spacing}-{meg|megeeg}-bemico{G}-sfreq{sfreq}
        manifests/<stage>.json   build parameters, mne version, SHA-256 of every file

    A sample/custom subject is cached under ``cache_dir/<kind>/<subject>-<hash>/`` with the
    same manifests. Each file is written under a temporary name and renamed when complete;
    on load every checksum is verified, and a stage whose files are missing, truncated or
    altered (or whose parameters changed) is rebuilt with a logged warning. The forward
    solution is stored with free orientations and both orientations are derived on load
    (``mne.write_forward_solution`` would store the free one anyway).
    """
    _check_option("kind", kind, KINDS)
    _check_option("spacing", spacing, SPACINGS)
    _check_option("sensors", sensors, SENSOR_SETS)
    if isinstance(bem_ico, bool) or not isinstance(bem_ico, numbers.Integral):
        raise TypeError(f"bem_ico must be an int, got {type(bem_ico).__name__}")
    bem_ico = int(bem_ico)
    _check_option("bem_ico", bem_ico, BEM_ICOS)
    if kind == "fsaverage" and sensors == "meg+eeg" and bem_ico == 5:
        raise ValueError(
            "bem_ico=5 is only available for sensors='meg': a 3-layer BEM with 3 x 10242 "
            "vertices needs a 7.5 GB matrix. Use bem_ico=4 (the default) or 3."
        )
    sfreq = float(sfreq)
    if not sfreq > 0:
        raise ValueError(f"sfreq must be positive, got {sfreq}")
    if cache_dir is None:
        raise ValueError("cache_dir is required (e.g. DATA_DIR/headmodels)")
    cache_dir = Path(cache_dir).expanduser()
    if kind == "fsaverage":
        given = dict(subjects_dir=subjects_dir, subject=subject, trans=trans, bem=bem, info=info)
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ValueError(
                f"{', '.join(extra)} can only be given with kind='sample' or 'custom'; the "
                "embedded fsaverage model builds its own"
            )
        logger.info(f"Head model: embedded fsaverage, {spacing}, {sensors}, BEM ico{bem_ico}")
        return build_fsaverage(
            cache_dir, spacing, sensors, bem_ico=bem_ico, sfreq=sfreq, n_jobs=n_jobs,
            overwrite=overwrite,
        )
    inputs = resolve_inputs(
        kind, subjects_dir=subjects_dir, subject=subject, trans=trans, bem=bem, info=info
    )
    logger.info(f"Head model: {kind} subject {inputs['subject']}, {spacing}, {sensors}")
    return build_subject(
        inputs, spacing, sensors, cache_dir, sfreq=sfreq, n_jobs=n_jobs, overwrite=overwrite
    )


def head_model_from_config(config, overwrite=False):
    """Load (or build and cache) the head model that a configuration names.

    Parameters
    ----------
    config : meg_unet.config.Config
        The validated configuration: HEAD_MODEL, SPACING, SENSORS, the CUSTOM_* paths,
        ``simulation.SFREQ``, ``headmodel.BEM_ICO``, N_JOBS; cached under
        ``DATA_DIR/headmodels``.
    overwrite : bool
        Rebuild every cached piece.

    Returns
    -------
    model : HeadModel
        The head model.
    """
    kwargs = {}
    if config.head_model == "custom":
        kwargs = dict(
            subjects_dir=config.custom_subjects_dir,
            subject=config.custom_subject,
            trans=config.custom_trans_file,
            bem=config.custom_bem_file,
            info=config.custom_info_file,
        )
    return load_head_model(
        config.head_model,
        config.spacing,
        config.sensors,
        config.head_model_dir,
        sfreq=config.simulation.SFREQ,
        bem_ico=config.headmodel.BEM_ICO,
        n_jobs=config.n_jobs,
        overwrite=overwrite,
        **kwargs,
    )
