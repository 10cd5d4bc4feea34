"""The :class:`HeadModel` container and the values its parameters may take."""

from dataclasses import dataclass
from pathlib import Path

from ..constants import HEMISPHERE_NAMES as _HEMIS

#: Icosahedral grades of the embedded model's BEM surfaces (5 = the inner skull as shipped).
BEM_ICOS = (3, 4, 5)


@dataclass(frozen=True, eq=False)
class HeadModel:
    """Everything a simulation needs about one head: sources, conductor, sensors.

    Build it with :func:`meg_unet.headmodel.load_head_model`.

    Attributes
    ----------
    kind : str
        ``"fsaverage"``, ``"sample"`` or ``"custom"``.
    subject : str
        FreeSurfer subject name.
    subjects_dir : Path
        FreeSurfer subjects directory holding ``subject`` (for the embedded model, inside the
        cache).
    spacing : str
        Source-space subdivision (``"ico3"`` ...).
    sensors : str
        ``"meg"`` or ``"meg+eeg"``.
    info : mne.Info
        Measurement info: the MEG channels (+ EEG for ``"meg+eeg"``), one EOG and one ECG
        channel, digitization, ``dev_head_t``, the EEG average-reference projector (added, not
        applied) when EEG is present, and the requested sampling frequency.
    src : mne.SourceSpaces
        Cortical source space, both hemispheres, MRI coordinates.
    bem : mne.bem.ConductorModel
        BEM solution (1 layer for ``"meg"`` on the embedded model, 3 layers with EEG).
    trans : mne.transforms.Transform
        The head -> MRI transformation.
    fwd_free : mne.Forward
        Free-orientation forward solution in surface-oriented coordinates
        (``surf_ori=True``: per source two tangential columns, then the normal one). Only
        the data channels (MEG, + EEG), not EOG/ECG.
    fwd_fixed : mne.Forward
        Fixed-orientation forward solution (normal to the cortex, cortical patch statistics:
        ``convert_forward_solution(force_fixed=True, surf_ori=True, use_cps=True)``).
    cache_path : Path | None
        Folder of the cached forward solution and info, None if nothing was cached.
    params : dict
        The build parameters (bem_ico, sfreq, file paths ...), for manifests.
    """

    kind: str
    subject: str
    subjects_dir: Path
    spacing: str
    sensors: str
    info: object
    src: object
    bem: object
    trans: object
    fwd_free: object
    fwd_fixed: object
    cache_path: Path | None = None
    params: dict | None = None

    def _hemi_index(self, hemi):
        if hemi not in _HEMIS:
            raise ValueError(
                f"Invalid value for the 'hemi' parameter. Allowed values are 'lh' and 'rh', "
                f"but got {hemi!r} instead."
            )
        return _HEMIS.index(hemi)

    def n_vertices(self, hemi):
        """Number of sources in one hemisphere (``"lh"`` or ``"rh"``)."""
        return int(self.src[self._hemi_index(hemi)]["nuse"])

    @property
    def n_sources(self):
        """Number of sources in both hemispheres."""
        return sum(int(s["nuse"]) for s in self.src)

    def __repr__(self):
        n_ch = len(self.fwd_fixed["info"]["ch_names"])
        return (
            f"<HeadModel | {self.kind} ({self.subject}), {self.spacing}: "
            f"{self.n_vertices('lh')}+{self.n_vertices('rh')} sources, {self.sensors}: "
            f"{n_ch} channels, {len(self.bem['surfs'])}-layer BEM>"
        )
