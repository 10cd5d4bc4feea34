"""The one file a user edits: what meg-unet simulates, trains and evaluates.

Every script reads it (``--config FILE`` picks another one, ``--set KEY=VALUE`` overrides a
value for one call, e.g. ``python simulate_data.py --set SNR=1 --set RUN_NAME=meg2``).  All
values are validated together before any work starts.  Relative paths are taken relative to
the folder of this file, not to the current working directory.

Hyperparameters (filters, ICA, U-Net sizes, learning rate ...) live in ``parameters/``; the
PROFILE below picks how big the job is.
"""

# ----------------------------------------------------------------------------------------------
# What to run (these settings change the results and are recorded in every manifest)
# ----------------------------------------------------------------------------------------------

#: Name of the run: data go to DATA_DIR/<RUN_NAME>, results to RESULTS_DIR/<RUN_NAME>.
RUN_NAME = "quick"

#: Head model: "fsaverage" (embedded, built offline from files inside the mne and nilearn
#: wheels), "sample" (the MNE sample subject; needs the sample data set downloaded) or "custom"
#: (your own subject: set the CUSTOM_* paths below).
HEAD_MODEL = "fsaverage"

#: Source-space subdivision: "ico1".."ico5", "oct5", "oct6" (thesis: "ico3", 642 vertices per
#: hemisphere).
SPACING = "ico3"

#: Sensors: "meg" (306 Vectorview channels) or "meg+eeg" (plus 60 EEG electrodes).
SENSORS = "meg"

#: Hemisphere(s) where dipoles are placed and that the network sees: "rh" (thesis), "lh", "both".
HEMISPHERE = "rh"

#: Signal-to-noise ratio of the simulated data (RMS whitened signal over RMS whitened noise of
#: each dipole, see meg_unet.simulation): the thesis used 3 (MEG1) and 1 (MEG2, M/EEG1).  A
#: range (low, high) with 0 < low < high, e.g. (0.5, 10), draws each activation window's SNR
#: log-uniformly between the bounds (training data with hard cases); LAMBDA2 = None then means
#: 1 / (low * high), i.e. 1 over the squared geometric mean of the bounds.
SNR = 3.0

#: Regularization of the inverse operators; None means 1 / SNR**2 (thesis).
LAMBDA2 = None

#: Simultaneous dipoles per activation: 1 (every vertex once per pass), or a count drawn
#: uniformly per activation window from a range (low, high) with 1 <= low <= high (thesis
#: multi-dipole set: (2, 5); e.g. (1, 5) mixes single and multiple dipoles for training).
N_DIPOLES = 1

#: Input channels of the network, a subset of ("mne", "dspm", "sloreta") in the order given.
CHANNELS = ("mne", "dspm", "sloreta")

#: Source orientation of the inverse operators: "loose" (loose=0.2, thesis) or "fixed"
#: (normal to the cortex).
ORIENTATION = "loose"

#: Add simulated ECG and blink artifacts and run the thesis's preprocessing (filters, ICA, SSP).
ARTIFACTS = True

#: Size of the job: "tiny" (tests, seconds), "quick" (2 CPU cores, minutes), "thesis" (the
#: thesis's Table 1; a GPU job).
PROFILE = "quick"

#: Seed of every random draw (source order, noise, network initialization); the splits use
#: independent seeds derived from it.
SEED = 42

# ----------------------------------------------------------------------------------------------
# Custom head model (HEAD_MODEL = "custom" only)
# ----------------------------------------------------------------------------------------------

#: FreeSurfer subjects directory.
CUSTOM_SUBJECTS_DIR = None

#: FreeSurfer subject name (a folder of CUSTOM_SUBJECTS_DIR).
CUSTOM_SUBJECT = None

#: head<->MRI transformation (-trans.fif).
CUSTOM_TRANS_FILE = None

#: BEM solution or surfaces (-bem-sol.fif or -bem.fif); 3 layers when SENSORS = "meg+eeg".
CUSTOM_BEM_FILE = None

#: A recording (raw, epochs or evoked .fif) whose sensors are simulated; with ARTIFACTS = True
#: it needs digitized head points (the ECG and EOG artifacts are placed on the head shape).
CUSTOM_INFO_FILE = None

# ----------------------------------------------------------------------------------------------
# How to run (these do not change the results)
# ----------------------------------------------------------------------------------------------

#: Where data sets and the head-model cache are written.
DATA_DIR = "data"

#: Where trained models, predictions and figures are written.
RESULTS_DIR = "results"

#: Parallel jobs (-1: all cores): worker processes of simulate_data.py (one split each, one
#: BLAS thread per worker) and threads of the other steps' linear algebra.
N_JOBS = 1

#: Address of a dask.distributed scheduler (e.g. "tcp://10.0.0.5:8786") whose workers
#: simulate the splits instead of local processes; they must see DATA_DIR at the same path.
#: None: local workers (N_JOBS).
DASK_SCHEDULER = None
