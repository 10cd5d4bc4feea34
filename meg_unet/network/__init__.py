"""The U-Net (:mod:`.unet`) and its training (:mod:`.training`).

Importing this package imports Keras (and its backend) and registers the custom loss and
metric, so that ``keras.saving.load_model("best.keras")`` works after ``import
meg_unet.network``.  The scripts import it only after their arguments are parsed, so ``--help``
stays fast.
"""

from .training import (
    WeightedCategoricalCrossentropy,
    load_trained_model,
    pixel_error,
    train,
)
from .unet import build_unet, forward_flops

__all__ = [
    "WeightedCategoricalCrossentropy",
    "build_unet",
    "forward_flops",
    "load_trained_model",
    "pixel_error",
    "train",
]
