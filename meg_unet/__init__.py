"""meg-unet: a U-Net that post-processes MNE, dSPM and sLORETA inverse solutions.

The library behind the four scripts ``simulate_data.py``, ``train_network.py``, ``predict.py``
and ``visualize_predictions.py``.  Every function takes its settings as arguments (usually the
frozen :class:`meg_unet.config.Config`); nothing here reads ``config.py`` by itself.
"""

__version__ = "0.1.0"
