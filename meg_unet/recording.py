"""Predict a real recording: the L2 inverse solutions of a raw or evoked file, through the U-Net.

:func:`predict_recording` computes MNE, dSPM and sLORETA of a real recording (raw or evoked) with
the model's settings, preprocesses them as in training and writes the U-Net's estimate of the
whole recording as a ``-stc.h5`` file, in chunks of whole tiles so that long recordings fit in
memory, and beside it the recording's table of events and sparse estimate.
"""

import logging
from pathlib import Path

import numpy as np

from .calibration import apply_calibration
from .constants import HEMISPHERE_NAMES, INVERSE_METHOD_NAMES
from .data_provider import network_inputs
from .errors import check_int
from .io import read_evoked_recording, read_inverse, read_raw_recording
from .prediction import (
    UNET,
    MismatchError,
    _load_model,
    _same_rate,
    _save_stc,
    _source_geometry,
    _vertex_summary,
    _write_sources,
)
from .tiles import predict_in_chunks, tile_layout

logger = logging.getLogger("meg_unet")

__all__ = ["predict_recording"]

# --------------------------------------------------------------------------------------------
# Predicting a real recording
# --------------------------------------------------------------------------------------------


def predict_recording(model_dir, inverse_fname, raw_fname=None, evoked_fname=None,
                      out_fname=None, config=None, *, which="best", chunk_tiles=20,
                      overwrite=False, progress=True):
    """Estimate the active sources of a real recording with a trained U-Net.

    MNE, dSPM and sLORETA (those the model's input channels name) are computed with the
    model's lambda2 and ``pick_ori=None`` as for the training data, for the model's
    hemisphere; they are preprocessed with the model folder's saved preprocessing and run
    through the network.  The raw file is read chunk by chunk (not preloaded): the inverse
    solutions of ``chunk_tiles`` tiles at a time, predicted into one preallocated float32
    array.  For a 10-minute raw at 600 Hz that array takes 0.9 GB on 642 vertices (ico3); a
    chunk of 20 such tiles a few hundred MB more.  Tiles are laid as for a data split (see
    the module docstring).  The BLAS threads of the inverse solutions are limited to N_JOBS
    (1 unless ``config`` says otherwise).

    Parameters
    ----------
    model_dir : path-like
        A trained run, ``RESULTS_DIR/<run>`` (or its ``model/`` folder).
    inverse_fname : path-like
        An inverse operator (``-inv.fif``) of the recording's subject on the model's source
        space.
    raw_fname, evoked_fname : path-like | None
        The recording: a raw file (any format ``mne.io.read_raw`` reads) or an evoked file
        (``-ave.fif``, its first condition); exactly one of them.
    out_fname : path-like | None
        The ``-stc.h5`` file to write; None writes
        ``RESULTS_DIR/<run>/predictions/<recording name>-unet-stc.h5``.
    config : meg_unet.config.Config | None
        If given, the model must have been trained with its settings.
    which : "best" | "last"
        The checkpoint to use.
    chunk_tiles : int
        Tiles whose inverse solutions are computed and predicted at a time.
    overwrite : bool
        Replace an existing ``out_fname`` (the default file in the predictions folder is
        predict.py's own and always replaced).
    progress : bool
        Show a progress bar over the tiles.

    Returns
    -------
    out_fname : Path
        The written source estimate: the probability of "active" per vertex of the model's
        hemisphere and sample of the recording, with the recording's tmin and sampling
        interval and the inverse operator's subject (``mne.read_source_estimate`` reads it,
        ``stc.plot`` draws it).  With a calibrated model, the sources extracted from it
        (:mod:`meg_unet.sources`) are written beside it: ``<stem>-events.tsv``, the table of
        events, and ``<stem>-sources-stc.h5``, their refitted moments (A m) as a sparse
        estimate, where ``<stem>`` is ``out_fname`` without ``-unet-stc.h5``.

    Raises
    ------
    MismatchError
        If the inverse operator's source space (vertex numbers) or orientation, its sensor
        types (MEG vs MEG+EEG) or the recording's sampling rate differ from what the model
        was trained on; the message says what differs and what to do.
    meg_unet.errors.FileError
        If the recording or the inverse operator cannot be read (a format that the reader of
        its extension does not take, a truncated or damaged file).
    """
    from threadpoolctl import threadpool_limits

    out_fname = _check_files(inverse_fname, raw_fname, evoked_fname, out_fname, overwrite)
    chunk_tiles = check_int(chunk_tiles, "chunk_tiles", 1)
    recording_fname = Path(raw_fname if raw_fname is not None else evoked_fname)
    # the user's files first: an unreadable or truncated one is refused before the model loads
    inv = read_inverse(inverse_fname)
    if raw_fname is not None:
        recording = read_raw_recording(raw_fname)
        kind = "raw"
    else:
        recording = read_evoked_recording(evoked_fname)
        kind = "evoked"
    trained = _load_model(model_dir, which, config)
    _check_recording(trained, inv, recording, kind, recording_fname, inverse_fname)

    if out_fname is None:
        stem = _recording_stem(recording_fname)
        out_fname = trained.run_dir / "predictions" / f"{stem}-unet-stc.h5"
    model_config = trained.config
    hemis = trained.hemispheres
    src = inv["src"]
    vertices = [np.asarray(src[i]["vertno"]) if h in hemis else np.array([], dtype=np.int64)
                for i, h in enumerate(HEMISPHERE_NAMES)]
    positions = _mri_positions(inv, hemis)
    n_vertices = sum(len(v) for v in vertices)
    layout = tile_layout(len(recording.times), model_config.tile.T_STEPS)
    logger.info(
        "predicting %s (%d samples, %d tiles of %d; %s) with %s; computing %s with "
        "lambda2=%g, %d tiles at a time",
        recording_fname, layout.n_times, layout.n_tiles, layout.t_steps,
        layout.describe()["remainder"], trained.describe(), ", ".join(trained.methods),
        model_config.lambda2, chunk_tiles,
    )
    # on 2 cores shared with the network, one BLAS thread was measured 1.6x faster than two
    blas_threads = None if model_config.n_jobs == -1 else model_config.n_jobs
    with threadpool_limits(limits=blas_threads):
        estimator = _InverseEstimates(inv, recording, kind, trained.methods,
                                      model_config.lambda2, hemis)

    def inputs_of(start, stop):
        with threadpool_limits(limits=blas_threads):
            estimates = {m: estimator(m, start, stop) for m in trained.methods}
        return network_inputs(model_config, trained.preprocessing, estimates, positions)

    active = np.empty((n_vertices, layout.n_times), dtype=np.float32)
    predict_in_chunks(trained.model, layout, inputs_of, active, chunk_tiles=chunk_tiles,
                      batch_size=model_config.network.BATCH_SIZE,
                      desc=f"predict {recording_fname.name}", progress=progress)
    detection = trained.sidecar.get("detection", {}).get(which)
    if detection is None:
        logger.warning("%s has no calibration (train_network.py writes it): the estimate is "
                       "the network's uncalibrated probability", trained.describe())
    active = apply_calibration(active, detection)
    subject = src[0].get("subject_his_id")
    tmin, sfreq = float(recording.times[0]), recording.info["sfreq"]
    _save_stc(active, vertices, tmin, 1.0 / sfreq, subject, out_fname)
    if detection is not None:
        _, adjacency, _ = _source_geometry(src, model_config.hemisphere)
        if kind == "raw":
            def data_of(start, stop):
                return recording.get_data(start=start, stop=stop)
        else:
            def data_of(start, stop):
                return recording.data[:, start:stop]
        name = out_fname.name
        stem = out_fname.with_name(name[: -len("-unet-stc.h5" if name.endswith(
            "-unet-stc.h5") else "-stc.h5")])
        _write_sources(
            active, inv, data_of, recording.ch_names, vertices, positions, adjacency,
            detection["thresholds"][UNET], sfreq, tmin, subject, stem,
            nave=getattr(recording, "nave", 1), progress=progress,
        )
    return out_fname


def _check_files(inverse_fname, raw_fname, evoked_fname, out_fname, overwrite):
    """Refuse missing inputs and an output that exists or is misnamed; return the output."""
    if (raw_fname is None) == (evoked_fname is None):
        raise ValueError("give exactly one of raw_fname and evoked_fname")
    for name, value in (("inverse_fname", inverse_fname), ("raw_fname", raw_fname),
                        ("evoked_fname", evoked_fname)):
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"{name}: {value} does not exist")
    if out_fname is None:
        return None
    out_fname = Path(out_fname)
    if not out_fname.name.endswith("-stc.h5"):
        raise ValueError(f"out_fname must end with -stc.h5, but got {out_fname.name!r}")
    if out_fname.exists() and not overwrite:
        raise FileExistsError(f"{out_fname} exists; pass overwrite=True (--overwrite) to "
                              "replace it")
    return out_fname


def _recording_stem(path):
    name = Path(path).name
    for suffix in (".fif.gz", ".fif"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _inverse_sensors(inv):
    """``"meg"``, ``"meg+eeg"`` or another description of the inverse's channel types."""
    import mne

    info = inv["info"]
    types = {
        mne.channel_type(info, info["ch_names"].index(name))
        for name in inv["eigen_fields"]["col_names"]
    }
    has_meg = bool(types & {"mag", "grad"})
    has_eeg = "eeg" in types
    if has_meg and has_eeg:
        return "meg+eeg"
    if has_meg:
        return "meg"
    return "+".join(sorted(types))


def _sensor_text(sensors):
    return {"meg": "MEG", "meg+eeg": "MEG+EEG"}.get(sensors, sensors.upper())


def _check_recording(trained, inv, recording, kind, recording_fname, inverse_fname):
    """Refuse a recording or inverse that differ from what the model was trained on."""
    from mne.io.constants import FIFF

    problems = []
    src = inv["src"]
    for hemi in trained.hemispheres:
        ours = trained.vertices(hemi)
        theirs = np.asarray(src[HEMISPHERE_NAMES.index(hemi)]["vertno"])
        if not np.array_equal(ours, theirs):
            problems.append(
                f"source space: the inverse operator's {hemi} hemisphere has {len(theirs)} "
                f"vertices ({_vertex_summary(theirs)}, subject "
                f"{src[0].get('subject_his_id')!r}), the model was trained on {len(ours)} "
                f"({_vertex_summary(ours)}: {trained.config.head_model} "
                f"{trained.config.spacing}); compute the inverse on that source space"
            )
    sensors = _inverse_sensors(inv)
    if sensors != trained.config.sensors:
        problems.append(
            f"sensors: the model was trained on {_sensor_text(trained.config.sensors)} data, "
            f"the inverse operator uses {_sensor_text(sensors)} channels; use an inverse "
            f"operator made from {_sensor_text(trained.config.sensors)} channels"
        )
    free = inv["source_ori"] == FIFF.FIFFV_MNE_FREE_ORI
    if free != (trained.config.orientation == "loose"):
        problems.append(
            f"orientation: the model was trained on {trained.config.orientation}-orientation "
            f"inverse solutions, the inverse operator has {'free or loose' if free else 'fixed'}"
            " orientations; make it with "
            + (f"loose={trained.config.simulation.LOOSE:g}"
               if trained.config.orientation == "loose" else "fixed=True")
        )
    sfreq = float(recording.info["sfreq"])
    if not _same_rate(sfreq, trained.sfreq):
        problems.append(
            f"sampling rate: the model was trained at {trained.sfreq:.1f} Hz, the recording is "
            f"sampled at {sfreq:g} Hz; resample it with {kind}.resample({trained.sfreq:.3f})"
        )
    if problems:
        raise MismatchError(
            f"{recording_fname} with {inverse_fname} does not match what "
            f"{trained.describe()} was trained on:\n  - " + "\n  - ".join(problems)
        )


def _mri_positions(inv, hemis):
    """Vertex positions of the hemispheres in MRI coordinates, as in the training splits."""
    import mne
    from mne.io.constants import FIFF

    from .metrics import hemisphere_positions

    src = inv["src"]
    positions = np.concatenate([hemisphere_positions(src, h) for h in hemis])
    if src[0]["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        trans = inv["mri_head_t"]
        if trans["from"] == FIFF.FIFFV_COORD_MRI:
            trans = mne.transforms.invert_transform(trans)
        positions = mne.transforms.apply_trans(trans, positions)
    return positions


class _InverseEstimates:
    """Inverse solutions of a recording's samples ``start:stop`` for the model's hemisphere.

    With ``pick_ori=None``, dSPM and sLORETA are the MNE solution times a noise normalization
    per source (MNE-Python applies the same kernel, then scales), so the MNE kernel is applied
    once per chunk and scaled for each method: a third of the work of three applications.
    """

    def __init__(self, inv, recording, kind, methods, lambda2, hemis):
        import mne

        self.kind = kind
        self.recording = recording
        self.lambda2 = lambda2
        nave = 1 if kind == "raw" else recording.nave
        # prepared once per method, not once per chunk
        self.operators = {
            m: mne.minimum_norm.prepare_inverse_operator(
                inv, nave, lambda2, INVERSE_METHOD_NAMES[m], verbose=False
            )
            for m in {"mne", *methods}
        }
        self.label = None
        if len(hemis) == 1:  # compute one hemisphere only
            index = HEMISPHERE_NAMES.index(hemis[0])
            self.label = mne.Label(vertices=inv["src"][index]["vertno"], hemi=hemis[0])
        self.scales = self._noise_normalizations(methods)
        self._base, self._base_span = None, None
        self._evoked = {}

    def _noise_normalizations(self, methods):
        """Each method's noise normalization per source (None for MNE), or None if MNE-Python's
        kernel assembly (a private function) cannot be used: then each method is applied."""
        try:
            from mne.minimum_norm.inverse import _assemble_kernel

            scales = {}
            for method in methods:
                _, noise_norm, _, _ = _assemble_kernel(
                    self.operators[method], self.label, INVERSE_METHOD_NAMES[method], None,
                    verbose=False)
                scales[method] = None if noise_norm is None else np.ravel(noise_norm)
            return scales
        except Exception as exc:  # a future MNE-Python: fall back to its public functions
            logger.debug("applying each inverse method on its own: %s", exc)
            return None

    def _apply(self, method, start, stop):
        import mne

        kwargs = dict(label=self.label, pick_ori=None, prepared=True, verbose=False)
        if self.kind == "raw":
            return mne.minimum_norm.apply_inverse_raw(
                self.recording, self.operators[method], self.lambda2, INVERSE_METHOD_NAMES[method],
                start=start, stop=stop, **kwargs,
            ).data
        return mne.minimum_norm.apply_inverse(
            self.recording, self.operators[method], self.lambda2, INVERSE_METHOD_NAMES[method],
            **kwargs,
        ).data

    def __call__(self, method, start, stop):
        if self.kind == "raw":
            return self._solution(method, start, stop).astype(np.float32)
        if method not in self._evoked:  # evoked data are short: solved once, then sliced
            self._evoked[method] = self._solution(method, None, None).astype(np.float32)
        return self._evoked[method][:, start:stop]

    def _solution(self, method, start, stop):
        if self.scales is None:
            return self._apply(method, start, stop)
        if self._base_span != (start, stop):  # the MNE solution of these samples, once
            self._base, self._base_span = self._apply("mne", start, stop), (start, stop)
        scale = self.scales[method]
        return self._base if scale is None else self._base * scale[:, np.newaxis]
