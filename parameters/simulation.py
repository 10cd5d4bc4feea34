"""Simulation and inverse-solution settings (thesis section 3.3)."""

from typing import Annotated, Literal

from parameters import NON_NEGATIVE, POSITIVE, Data, Interval, Neutral

#: Sampling frequency of the simulated recordings in Hz.  The thesis simulated on top of the MNE
#: sample recording (600.614990234375 Hz); we keep it, so the 20-sample activation lasts 33 ms,
#: about a third of a 10 Hz cycle, exactly as in the thesis.
SFREQ: Data[Annotated[float, POSITIVE]] = 600.614990234375

#: Frequency of the sinusoidal source waveform in Hz (thesis 3.3: "time-staggered sinusoids at 10 Hz").
WAVEFORM_FREQ: Data[Annotated[float, POSITIVE]] = 10.0

#: Samples per activation (thesis 3.3: 20 samples per activation).
SAMPLES_PER_ACTIVATION: Data[Annotated[int, POSITIVE]] = 20

#: Silent gap after each activation as a fraction of SAMPLES_PER_ACTIVATION (2017 code:
#: EMPTY_SIGNAL = 0.5, i.e. 10 zero samples).
EMPTY_SIGNAL: Data[Annotated[float, NON_NEGATIVE]] = 0.5

#: Time course of the simulated data.  "thesis" (thesis 3.3): every activation is the same
#: SAMPLES_PER_ACTIVATION samples of a WAVEFORM_FREQ sinusoid followed by the same silent gap, a
#: fixed rhythm a network can learn instead of the signal.  "recording": data that look like a
#: recording: each source switches on at its own onset for its own duration (DURATION_MS) with
#: its own waveform (WAVEFORMS), the sources of a window overlap with different time courses,
#: silent stretches of random length make up NOISE_ONLY_SHARE of the samples, and the noise
#: varies in kind (NOISE_KINDS) and level (NOISE_LEVEL) from one window to the next.
TIMING: Data[Literal["thesis", "recording"]] = "thesis"

#: "recording" timing: range of a source's active duration in ms, drawn log-uniformly.
DURATION_MS: Data[tuple[float, float]] = (10.0, 300.0)

#: "recording" timing: waveforms drawn per source: "bump" (an evoked-like Gaussian deflection of
#: either sign), "damped" (a damped oscillation), "burst" (an oscillation under a smooth
#: envelope).  Oscillations draw their frequency log-uniformly from OSCILLATION_HZ.
WAVEFORMS: Data[tuple[Literal["bump", "damped", "burst"], ...]] = ("bump", "damped", "burst")
OSCILLATION_HZ: Data[tuple[float, float]] = (2.0, 40.0)

#: "recording" timing: the share of samples with no active source (0 <= share < 1), spread
#: over silent stretches of random length between the activation windows.
NOISE_ONLY_SHARE: Data[Annotated[float, Interval(ge=0, lt=1)]] = 0.3

#: "recording" timing: noise kinds drawn per window (with the silence after it): "white"
#: (the diagonal sensor noise of the noise covariance), "pink" (the same sensor noise, 1/f in
#: time), "brain" (background activity of BRAIN_NOISE_SOURCES random cortical sources with 1/f
#: time courses, spatially correlated, plus white sensor noise).  The inverse operators keep
#: the white noise covariance of the empty room, so "pink" and "brain" do not match it, as
#: real noise never quite does.
NOISE_KINDS: Data[tuple[Literal["white", "pink", "brain"], ...]] = ("white", "pink", "brain")
BRAIN_NOISE_SOURCES: Data[Annotated[int, POSITIVE]] = 100

#: "recording" timing: range of the noise level per window, a factor on the noise standard
#: deviation drawn log-uniformly.  Each window's sources are scaled to its SNR against its own
#: noise level, so the SNR stays honest while the noise floor moves against the covariance.
NOISE_LEVEL: Data[tuple[float, float]] = (0.7, 1.4)

#: Extent of each source: None for point dipoles at the source-space vertices (the thesis), or
#: a range (low, high) of cortical area in cm^2: each source is then a patch of cortex grown
#: around its drawn vertex (the nearest vertices along the source-space mesh) to an area drawn
#: log-uniformly from the range, with one time course and its moment spread over the patch in
#: proportion to each vertex's area, oriented along the local normals.  A benchmark's harder
#: condition (2-10 cm^2 on an ico4 source space inverted on ico3); no profile trains on it.
PATCH_AREA_CM2: Data[Annotated[tuple[float, float] | None, Neutral(None)]] = None

#: Number of passes over every vertex of the hemisphere in the single-dipole splits, per split.
#: (The thesis does not state it; profiles override these.)
PASSES: Data[dict[str, int]] = {"train": 1, "valid": 1, "test": 1}

#: Number of activation windows per split when config.py's N_DIPOLES is not 1 (a range such as
#: (1, 5), or a fixed count above 1); each window draws its own dipole count, and its own SNR
#: when SNR is a range.  Profiles override these.
N_WINDOWS: Data[dict[str, int]] = {"train": 642, "valid": 642, "test": 642}

#: Run the thesis's preprocessing on the simulated raw data: notch and band-pass filters, and,
#: when config.py's ARTIFACTS adds ECG/blink artifacts, ICA and SSP as well.
PREPROCESS: Data[bool] = True

#: Notch filter frequencies in Hz (thesis 3.3).
NOTCH_FREQS: Data[tuple[float, ...]] = (60.0, 120.0, 180.0, 240.0)

#: Band-pass filter edges in Hz and FIR design (thesis 3.3: 5-40 Hz, "firwin").
L_FREQ: Data[Annotated[float, POSITIVE]] = 5.0
H_FREQ: Data[Annotated[float, POSITIVE]] = 40.0
FIR_DESIGN: Data[Literal["firwin", "firwin2"]] = "firwin"

#: Peak-to-peak rejection thresholds (thesis 3.3: grad 4000e-13 T/m, mag 5e-12 T).
REJECT: Data[dict[str, float]] = {"grad": 4000e-13, "mag": 5e-12}

#: Channels marked bad, as in the MNE sample recording (thesis 3.3).  Names that a head model
#: does not have are ignored.
BAD_CHANNELS: Data[tuple[str, ...]] = ("MEG 2443", "EEG 053")

#: ICA settings (thesis 3.3: fastica, 25 components).
ICA_N_COMPONENTS: Data[Annotated[int, POSITIVE]] = 25
ICA_METHOD: Data[Literal["fastica", "infomax", "picard"]] = "fastica"

#: Inverse operator settings (thesis 3.3: depth weighting 0.8; 2017 code: loose 0.2).
DEPTH: Data[Annotated[float, NON_NEGATIVE] | None] = 0.8
LOOSE: Data[Annotated[float, Interval(ge=0, le=1)]] = 0.2

#: Duration in seconds of the simulated empty-room recording that gives the noise covariance.
EMPTY_ROOM_DURATION: Data[Annotated[float, POSITIVE]] = 60.0
