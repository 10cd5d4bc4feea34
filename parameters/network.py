"""U-Net and training settings (thesis sections 3.5-3.6 and Table 1).

The values here are the thesis's; the profiles in :mod:`parameters.profiles` scale the network
and the data down for machines without a GPU.
"""

from typing import Annotated, Literal

from parameters import (
    NON_NEGATIVE,
    POSITIVE,
    SHARE,
    Interval,
    Model,
    Neutral,
    Resumable,
    Training,
)

#: Network levels (Table 1: 5 layers).
N_LEVELS: Model[Annotated[int, Interval(ge=1, le=8)]] = 5

#: Convolution filter size (Table 1: 4, i.e. 4x4).
FILTER_SIZE: Model[Annotated[int, POSITIVE]] = 4

#: Feature channels of the first level, doubled per level (Table 1: 64).
ROOT_FEATURES: Model[Annotated[int, POSITIVE]] = 64

#: Max pooling and transposed-convolution size (thesis 3.5: 2x2).
POOL_SIZE: Model[Annotated[int, Interval(ge=2)]] = 2

#: Batch normalization after each convolution (thesis 3.5).
BATCH_NORM: Model[bool] = True

#: Dropout keep probability (thesis 3.6: 0.80), i.e. a dropout rate of 0.2.
DROPOUT_KEEP: Model[Annotated[float, Interval(gt=0, le=1)]] = 0.8

#: L1 regularization of the convolution kernels (Table 1: lambda1 0.005).
L1: Training[Annotated[float, NON_NEGATIVE]] = 0.005

#: Momentum SGD (thesis 3.6: initial learning rate 0.02, momentum 0.9).
LEARNING_RATE: Training[Annotated[float, POSITIVE]] = 0.02
MOMENTUM: Training[Annotated[float, Interval(ge=0, le=1)]] = 0.9

#: Learning rate multiplied by this after each epoch (Table 1: 0.95).
LR_DECAY: Training[Annotated[float, Interval(ge=0, le=1)]] = 0.95

#: Gradient norm clipping threshold (Table 1: max norm 0.01); None applies gradients unclipped
#: (what the 2017 code did in effect: it discarded its clipped gradients).  The quick profile
#: trains unclipped (see :mod:`parameters.profiles`).
MAX_NORM: Training[Annotated[float, POSITIVE] | None] = 0.01

#: Maximum number of epochs (Table 1: up to 300) and early-stopping patience on the validation
#: loss (the thesis stopped manually when the loss plateaued).
EPOCHS: Resumable[Annotated[int, POSITIVE]] = 300
EARLY_STOPPING_PATIENCE: Resumable[Annotated[int, NON_NEGATIVE]] = 20

#: Class weights of the loss: "inverse_frequency" (thesis 3.5: the rare active pixels weigh
#: count(silent) / count(active), about 960 on ico3), "sqrt_inverse_frequency" (its square root)
#: or "none" (plain cross-entropy).  The probabilities are calibrated on the validation split
#: after training in every case (see meg_unet.detection).
CLASS_WEIGHTING: Training[Literal["inverse_frequency", "sqrt_inverse_frequency", "none"]] = (
    "inverse_frequency"
)

#: Weight of a second loss term that asks which vertex is active in each sample (a softmax
#: over the vertices of the log-odds of "active", see
#: :class:`meg_unet.network.training.WeightedCategoricalCrossentropy`); 0 trains on the
#: thesis's weighted cross-entropy alone.
LOCALIZATION_LOSS: Training[Annotated[float, NON_NEGATIVE, Neutral(0.0)]] = 0.0

#: False-alarm rate for which each method's detection threshold is chosen on the validation
#: split: the share of noise-only samples (no active source) allowed to carry a detection.
DETECTION_FALSE_ALARM_RATE: Resumable[Annotated[float, SHARE]] = 0.05

#: None: the thresholds meet DETECTION_FALSE_ALARM_RATE on the validation split itself, and
#: on new data exceed it about half the time (a split measures a rate of 5 % only to within
#: about 2 points).  A level such as 0.95: they meet it with this confidence, resampling the
#: validation split's stretches of noise (see meg_unet.detection.false_alarm_threshold), and
#: a rate of about 3 % is reached for 5 %.
DETECTION_CONFIDENCE: Resumable[Annotated[float, Interval(gt=0, lt=1)] | None] = None

#: Silent samples closer than this (ms) to an active source are not "noise only" for the
#: false-alarm rate and the thresholds: the 5-40 Hz band-pass spreads a source's signal over
#: them.  Where no sample lies that far from a source (the thesis's 10-sample gaps), every
#: silent sample counts.
DETECTION_GUARD_MS: Resumable[Annotated[float, NON_NEGATIVE]] = 50.0

#: Border pixels of each tile left out of predictions and metrics (thesis 3.5: 2).
BORDER: Model[Annotated[int, NON_NEGATIVE]] = 2

#: Order of the vertices along the rows of a tile, as the network sees them.  "source_space"
#: (the thesis): the source space's own order, in which most of a vertex's mesh neighbours lie
#: far away (on ico3 a median 194 rows), beyond the reach of a 4 x 4 convolution; "mesh": the
#: reverse Cuthill-McKee order of the mesh, which brings every neighbour within 41 rows (median
#: 28).  The model reorders its input and restores the output itself, so its files and maps
#: stay in the source space's order.
ROW_ORDER: Model[Annotated[Literal["source_space", "mesh"], Neutral("source_space")]] = (
    "source_space"
)

#: Compare each vertex with its mesh neighbours inside the network
#: (:class:`meg_unet.network.unet.MeshContext`): the input and the last features before the
#: class scores are given, per channel, how far each vertex stands above its highest mesh
#: neighbour.  False builds the thesis's network, whose convolutions see rows, not mesh
#: neighbours, and so cannot tell an inverse solution's peak from the vertices around it.
MESH_CONTEXT: Model[Annotated[bool, Neutral(False)]] = False

#: Tiles per optimizer step (thesis: one 642x642 tile per step).
BATCH_SIZE: Training[Annotated[int, POSITIVE]] = 1

#: Validation batches evaluated after each epoch; None evaluates the whole validation split
#: every epoch (a stable val_loss for early stopping).  The thesis evaluated "the next
#: mini-batch from the verification data set" (section 3.6), i.e. 1, moving on each epoch.
VALIDATION_STEPS: Training[Annotated[int, POSITIVE] | None] = None
