"""Head model settings of the embedded fsaverage model (see meg_unet.headmodel)."""

from typing import Literal

from parameters import Data

#: Icosahedral grade of the BEM layers: 3 (642 vertices per layer), 4 (2562) or 5 (10242, the
#: inner skull as shipped with mne; MEG only).  Grade 4 reproduces the forward solution of the
#: full inner skull within about 2 percent and builds in seconds instead of ~100 s.
BEM_ICO: Data[Literal[3, 4, 5]] = 4
