"""Names the whole project shares: head models, spacings, sensors, hemispheres, methods.

Kept free of imports so that :mod:`meg_unet.config` can check a configuration without
loading the science stack.
"""

#: Head models: the embedded fsaverage (offline), the MNE sample subject, a user's own.
HEAD_MODELS = ("fsaverage", "sample", "custom")

#: Source-space subdivisions.
SPACINGS = ("ico1", "ico2", "ico3", "ico4", "ico5", "oct5", "oct6")

#: Sensor sets.
SENSOR_SETS = ("meg", "meg+eeg")

#: The two hemispheres of a source space, in MNE's order (``src[0]`` is the left one).
HEMISPHERE_NAMES = ("lh", "rh")

#: The hemisphere settings: one hemisphere, or both.
HEMISPHERES = ("rh", "lh", "both")

#: The L2 inverse methods, by the project's name, with MNE-Python's spelling.
INVERSE_METHOD_NAMES = {"mne": "MNE", "dspm": "dSPM", "sloreta": "sLORETA"}

#: The project's names of the L2 inverse methods (the network's possible input channels).
INVERSE_METHODS = tuple(INVERSE_METHOD_NAMES)

#: What a simulated split stores per sample: each method's estimate and the true sources.
ESTIMATE_KINDS = (*INVERSE_METHODS, "truth")
