"""Hyperparameters of meg-unet, one module per concern.

The defaults are the thesis's (its Table 1 and section 3.3); each value carries a comment that
cites where it comes from.  ``config.py`` chooses *what* to run (SNR, source space, sensors,
profile); these modules say *how*.  The library reads them through the frozen
:class:`meg_unet.config.Config` object, never by mutating them.
"""
