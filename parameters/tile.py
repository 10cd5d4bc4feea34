"""Tile settings (thesis section 3.4): how the network cuts the data into images.

The profiles in :mod:`parameters.profiles` set both to the size of the job.
"""

from typing import Annotated

from parameters import POSITIVE, Model, Training

#: Tile width in samples (thesis 3.4: t_steps = 642, the "batch size" of Table 1); more than
#: twice network.BORDER.
T_STEPS: Model[Annotated[int, POSITIVE]] = 642

#: Optimizer steps per epoch; None: one pass over the training tiles.
STEPS_PER_EPOCH: Training[Annotated[int, POSITIVE] | None] = None
