"""The head-model logger: a child of the project's ``meg_unet`` logger."""

import logging

logger = logging.getLogger("meg_unet.headmodel")
