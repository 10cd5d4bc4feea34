"""Data provider settings (thesis section 3.4)."""

from typing import Annotated, Literal

from parameters import NON_NEGATIVE, POSITIVE, Interval, Model, Resumable

#: Input preprocessing, one of "normalize" (thesis default: each channel scaled to [0, 1]),
#: "mean_subtraction", "zero_center", "nmf", "svd", "pca_whiten".
INPUT_PREPROCESSING: Model[Literal["normalize", "mean_subtraction", "zero_center", "nmf", "svd",
                                    "pca_whiten"]] = "normalize"

#: What "normalize" scales: "sample" divides every time column by its maximum over the
#: vertices, per channel (the 2017 code: a noise-only sample then looks like an active one);
#: "channel" divides by the maximum of the whole channel; "noise" divides the whole channel by
#: its RMS over the training split's samples with no active source (inputs in units of the
#: noise floor, so a sample keeps how far it stands above the noise).
NORMALIZE_OVER: Model[Literal["sample", "channel", "noise"]] = "sample"

#: Components kept by "nmf", "svd" and "pca_whiten".
N_COMPONENTS: Model[Annotated[int, POSITIVE]] = 32

#: Add the vertex x, y, z coordinates as three more input channels (thesis 3.4: 6 channels in all).
COORDINATE_CHANNELS: Model[bool] = False

#: Number of target classes and the amplitude threshold of the "active" class
#: (thesis 3.4: two classes, threshold 1e-20).
N_CLASSES: Model[Annotated[int, Interval(ge=2)]] = 2
ACTIVE_THRESHOLD: Model[Annotated[float, NON_NEGATIVE]] = 1e-20

#: Worker threads that cut tiles, and the size of their queue.
N_WORKERS: Resumable[Annotated[int, POSITIVE]] = 2
MAX_QUEUE_SIZE: Resumable[Annotated[int, POSITIVE]] = 8
