"""Load ``config.py`` by path, validate every value at once, and return a frozen :class:`Config`.

Nothing in :mod:`meg_unet` imports the user's ``config.py``: the scripts call
:func:`load_config` and pass the returned object on.  The module imports only the standard
library, :mod:`parameters` and :mod:`meg_unet.constants`, so a bad configuration is reported
in well under a second.  Checks that look at the disk are as cheap: DATA_DIR and RESULTS_DIR
must be folders (or creatable), and with ``HEAD_MODEL = "custom"`` the measurement info of
CUSTOM_INFO_FILE is read (MNE is imported for that only) to check that it has what SENSORS
and ARTIFACTS need.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import hashlib
import json
import re
import runpy
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import parameters.data_provider
import parameters.headmodel
import parameters.network
import parameters.profiles
import parameters.simulation

from .constants import HEAD_MODELS, HEMISPHERES, INVERSE_METHODS, SENSOR_SETS, SPACINGS
from .errors import UserError

ORIENTATIONS = ("loose", "fixed")
PROFILES = tuple(parameters.profiles.PROFILES)
# allowed values of hyperparameters in parameters/
TIMINGS = ("thesis", "recording")
WAVEFORM_KINDS = ("bump", "damped", "burst")
NOISE_KINDS = ("white", "pink", "brain")
NORMALIZE_OVER = ("sample", "channel", "noise")
CLASS_WEIGHTINGS = ("inverse_frequency", "sqrt_inverse_frequency", "none")
ROW_ORDERS = ("source_space", "mesh")

#: The parameter modules a profile or the PARAMETERS setting may override, by section name.
PARAMETER_MODULES = {
    "headmodel": parameters.headmodel,
    "simulation": parameters.simulation,
    "data_provider": parameters.data_provider,
    "network": parameters.network,
}


class ConfigError(UserError, ValueError):
    """A configuration with one or more invalid settings; the message lists every problem."""

    exit_status = 2

    def __init__(self, problems, source="config"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in {source}:\n{lines}"
        )


# --------------------------------------------------------------------------------------------
# The schema: one entry per setting of config.py
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Setting:
    default: Any
    check: Callable[[str, Any], tuple[Any, list[str]]]
    affects_results: bool = True


def _fmt(value):
    return repr(value)


def _one_of(allowed):
    def check(name, value):
        if value in allowed:
            return value, []
        return value, [
            f"{name}: allowed values are {', '.join(map(repr, allowed))}, "
            f"but got {_fmt(value)} instead"
        ]

    return check


def _positive_number(allow_none=False):
    def check(name, value):
        if value is None and allow_none:
            return None, []
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and value > 0 and value == value and value != float("inf"):
            return float(value), []
        what = "a positive finite number" + (" or None" if allow_none else "")
        return value, [f"{name}: must be {what}, but got {_fmt(value)} instead"]

    return check


def _integer(minimum=None, allow=()):
    def check(name, value):
        if value in allow and not isinstance(value, bool):
            return value, []
        if isinstance(value, int) and not isinstance(value, bool):
            if minimum is None or value >= minimum:
                return value, []
        extra = f" or one of {allow}" if allow else ""
        return value, [
            f"{name}: must be an integer >= {minimum}{extra}, but got {_fmt(value)} instead"
        ]

    return check


def _boolean(name, value):
    if isinstance(value, bool):
        return value, []
    return value, [f"{name}: must be True or False, but got {_fmt(value)} instead"]


def _run_name(name, value):
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        return value, []
    return value, [
        f"{name}: must be a non-empty name of letters, digits, '_', '-' or '.', "
        f"but got {_fmt(value)} instead"
    ]


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_positive_finite(value):
    return _is_number(value) and 0 < value < float("inf")


def _snr(name, value):
    """An SNR: one positive number, or a range (low, high) with 0 < low < high.

    A single value becomes a float; a range becomes a tuple of two floats (so that ``(1, 10)``
    and ``(1.0, 10.0)`` are the same setting with the same hash).
    """
    what = "a positive finite number or a range (low, high) with 0 < low < high"
    if _is_positive_finite(value):
        return float(value), []
    if not isinstance(value, (tuple, list)):
        return value, [f"{name}: must be {what}, but got {_fmt(value)} instead"]
    if len(value) != 2:
        return value, [
            f"{name}: a range must be a pair (low, high), but got {len(value)} value(s) "
            f"{_fmt(value)} instead"
        ]
    if not all(_is_number(v) for v in value):
        return value, [
            f"{name}: the bounds of a range (low, high) must be numbers, but got "
            f"{_fmt(value)} instead"
        ]
    if not all(_is_positive_finite(v) for v in value):
        return value, [
            f"{name}: the bounds of a range (low, high) must be positive and finite, but got "
            f"{_fmt(value)} instead"
        ]
    if not value[0] < value[1]:
        return value, [
            f"{name}: a range (low, high) needs low < high (write a single SNR as a number), "
            f"but got {_fmt(value)} instead"
        ]
    return (float(value[0]), float(value[1])), []


def format_snr(snr):
    """Format an SNR setting for titles and messages: ``"3"``, or ``"0.5–10"`` for a range.

    Parameters
    ----------
    snr : float | tuple of float | list of float
        One SNR, or the bounds (low, high) of a range (as in a manifest's ``snr_target``).

    Returns
    -------
    label : str
        The SNR in ``%g`` format; a range joins its bounds with an en dash.
    """
    if isinstance(snr, (tuple, list)):
        low, high = snr
        return f"{low:g}\u2013{high:g}"
    return f"{snr:g}"


def _matched_lambda2(snr):
    """``1 / SNR**2``; for a range, 1 over the squared geometric mean, ``1 / (low * high)``."""
    if isinstance(snr, tuple):
        return 1.0 / (snr[0] * snr[1])
    return 1.0 / snr**2


def _n_dipoles(name, value):
    allowed = "a positive integer or a range (low, high) of integers with 1 <= low <= high"
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return value, []
        return value, [
            f"{name}: an activation needs at least 1 dipole ({allowed}), but got "
            f"{_fmt(value)} instead"
        ]
    if not isinstance(value, (tuple, list)):
        return value, [f"{name}: must be {allowed}, but got {_fmt(value)} instead"]
    if len(value) != 2:
        return value, [
            f"{name}: a range must be a pair (low, high) ({allowed}), but got "
            f"{len(value)} value(s) {_fmt(value)} instead"
        ]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value, [
            f"{name}: the bounds of a range must be integers ({allowed}), but got "
            f"{_fmt(value)} instead"
        ]
    if value[0] < 1:
        return value, [
            f"{name}: an activation needs at least 1 dipole, so low must be >= 1 ({allowed}), "
            f"but got {_fmt(value)} instead"
        ]
    if value[0] > value[1]:
        return value, [
            f"{name}: a range needs low <= high ({allowed}), but got {_fmt(value)} instead"
        ]
    return tuple(value), []


def _channels(name, value):
    if isinstance(value, str):
        value = (value,)
    if (
        isinstance(value, (tuple, list))
        and len(value) > 0
        and all(v in INVERSE_METHODS for v in value)
        and len(set(value)) == len(value)
    ):
        return tuple(value), []
    return value, [
        f"{name}: must be a non-empty subset of {INVERSE_METHODS} without repeats, in the "
        f"order of the input channels, but got {_fmt(value)} instead"
    ]


def _path(allow_none):
    def check(name, value):
        if value is None and allow_none:
            return None, []
        if isinstance(value, (str, Path)) and str(value) != "":
            return Path(value), []
        what = "a path" + (" or None" if allow_none else "")
        return value, [f"{name}: must be {what}, but got {_fmt(value)} instead"]

    return check


def _optional_str(name, value):
    if value is None or (isinstance(value, str) and value):
        return value, []
    return value, [f"{name}: must be a non-empty string or None, but got {_fmt(value)} instead"]


def _parameter_overrides(name, value):
    if not isinstance(value, Mapping):
        return value, [
            f"{name}: must be a dict of 'section.NAME': value (sections: "
            f"{', '.join(PARAMETER_MODULES)}), but got {_fmt(value)} instead"
        ]
    return dict(value), []


SETTINGS: dict[str, _Setting] = {
    "RUN_NAME": _Setting("quick", _run_name),
    "HEAD_MODEL": _Setting("fsaverage", _one_of(HEAD_MODELS)),
    "SPACING": _Setting("ico3", _one_of(SPACINGS)),
    "SENSORS": _Setting("meg", _one_of(SENSOR_SETS)),
    "HEMISPHERE": _Setting("rh", _one_of(HEMISPHERES)),
    "SNR": _Setting(3.0, _snr),
    "LAMBDA2": _Setting(None, _positive_number(allow_none=True)),
    "N_DIPOLES": _Setting(1, _n_dipoles),
    "CHANNELS": _Setting(INVERSE_METHODS, _channels),
    "ORIENTATION": _Setting("loose", _one_of(ORIENTATIONS)),
    "ARTIFACTS": _Setting(True, _boolean),
    "PROFILE": _Setting("quick", _one_of(PROFILES)),
    "SEED": _Setting(42, _integer(minimum=0)),
    "PARAMETERS": _Setting({}, _parameter_overrides),
    "CUSTOM_SUBJECTS_DIR": _Setting(None, _path(allow_none=True)),
    "CUSTOM_SUBJECT": _Setting(None, _optional_str),
    "CUSTOM_TRANS_FILE": _Setting(None, _path(allow_none=True)),
    "CUSTOM_BEM_FILE": _Setting(None, _path(allow_none=True)),
    "CUSTOM_INFO_FILE": _Setting(None, _path(allow_none=True)),
    "DATA_DIR": _Setting(Path("data"), _path(allow_none=False), affects_results=False),
    "RESULTS_DIR": _Setting(Path("results"), _path(allow_none=False), affects_results=False),
    "N_JOBS": _Setting(1, _integer(minimum=1, allow=(-1,)), affects_results=False),
    "DASK_SCHEDULER": _Setting(None, _optional_str, affects_results=False),
}

_PATH_SETTINGS = (
    "DATA_DIR",
    "RESULTS_DIR",
    "CUSTOM_SUBJECTS_DIR",
    "CUSTOM_TRANS_FILE",
    "CUSTOM_BEM_FILE",
    "CUSTOM_INFO_FILE",
)


# --------------------------------------------------------------------------------------------
# The frozen object handed to the library
# --------------------------------------------------------------------------------------------


class FrozenNamespace(types.SimpleNamespace):
    """A read-only namespace of one parameter section (``config.network.N_LEVELS``)."""

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def as_dict(self):
        """Return a deep copy of the values as a plain dict."""
        return copy.deepcopy(dict(vars(self)))


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated, read-only configuration of one run.

    Attributes mirror the settings of ``config.py`` in lower case (``config.snr`` is ``SNR``);
    ``simulation``, ``data_provider``, ``network`` and ``tile`` hold the hyperparameters of
    ``parameters/`` after the profile's and the PARAMETERS overrides.

    ``snr`` is what the user wrote: one float, or a tuple ``(low, high)`` of floats when each
    activation window draws its SNR log-uniformly from that range (:attr:`snr_label` formats
    either).  ``lambda2`` is the resolved
    regularization: LAMBDA2 when set, else ``1 / SNR**2``, and for a range
    ``1 / (low * high)``, i.e. 1 over the squared geometric mean of the bounds.
    """

    run_name: str
    head_model: str
    spacing: str
    sensors: str
    hemisphere: str
    snr: float | tuple
    lambda2: float
    n_dipoles: Any
    channels: tuple
    orientation: str
    artifacts: bool
    profile: str
    seed: int
    parameters: Mapping
    custom_subjects_dir: Path | None
    custom_subject: str | None
    custom_trans_file: Path | None
    custom_bem_file: Path | None
    custom_info_file: Path | None
    data_dir: Path
    results_dir: Path
    n_jobs: int
    dask_scheduler: str | None
    headmodel: FrozenNamespace
    simulation: FrozenNamespace
    data_provider: FrozenNamespace
    network: FrozenNamespace
    tile: FrozenNamespace
    source: str = "defaults"

    @property
    def multi_dipole(self):
        """Whether the splits are made of activation windows (N_DIPOLES other than 1).

        N_DIPOLES = 1 visits every vertex once per pass (simulation.PASSES); any other value,
        a range or a fixed count above 1, draws simulation.N_WINDOWS windows.
        """
        return self.n_dipoles != 1

    @property
    def snr_label(self):
        """The SNR for titles and messages: ``"3"``, or ``"0.5–10"`` for a range."""
        return format_snr(self.snr)

    @property
    def run_data_dir(self):
        """Folder of this run's data splits: ``DATA_DIR/<RUN_NAME>``."""
        return self.data_dir / self.run_name

    @property
    def run_results_dir(self):
        """Folder of this run's model, predictions and figures: ``RESULTS_DIR/<RUN_NAME>``."""
        return self.results_dir / self.run_name

    @property
    def head_model_dir(self):
        """Cache of built head models, shared by all runs: ``DATA_DIR/headmodels``."""
        return self.data_dir / "headmodels"

    def result_settings(self):
        """Return the settings that change results, as JSON-ready values.

        Execution settings (paths, N_JOBS) are left out, so moving a run or using more cores
        does not invalidate it.
        """
        out = {}
        for name, setting in SETTINGS.items():
            if not setting.affects_results:
                continue
            value = getattr(self, name.lower())
            out[name] = _jsonable(value)
        out["RESOLVED_PARAMETERS"] = {
            section: _jsonable({
                name: value for name, value in getattr(self, section).as_dict().items()
                if _NEUTRAL_PARAMETERS.get(f"{section}.{name}", _MISSING) != value
            })
            for section in (*PARAMETER_MODULES, "tile")
        }
        # The lambda2 in use is derived, but recorded explicitly for readers of manifests.
        out["LAMBDA2"] = self.lambda2
        return out

    def result_hash(self):
        """Return a short hash of :meth:`result_settings` (identifies a run's contents)."""
        return _short_hash(self.result_settings())

    def data_settings(self):
        """Return the settings that change the simulated data, as JSON-ready values.

        :meth:`result_settings` without what only the network sees (``CHANNELS``, the
        profile's name, the ``network``, ``data_provider`` and ``tile`` parameters): a new
        number of epochs or learning rate must not make the simulated splits stale.
        """
        return data_part(self.result_settings())

    def data_hash(self):
        """Return a short hash of :meth:`data_settings` (identifies a simulated split)."""
        return _short_hash(self.data_settings())

    def replace(self, **changes):
        """Return a validated copy with some settings changed (names as in ``config.py``)."""
        values = {name: getattr(self, name.lower()) for name in SETTINGS}
        values["LAMBDA2"] = self.parameters_lambda2_setting
        values.update(changes)
        return validate_settings(values, source=self.source)

    # The LAMBDA2 *setting* (None means 1/SNR**2) is kept apart from the resolved value.
    parameters_lambda2_setting: float | None = None


#: Settings that only the network and its inputs see, left out of :meth:`Config.data_settings`
#: (the profile's effect on the data is in its resolved ``simulation`` parameters).
_NETWORK_ONLY_SETTINGS = ("CHANNELS", "PROFILE")
_DATA_PARAMETER_SECTIONS = ("headmodel", "simulation")


_MISSING = object()
#: Parameters added after data and models were made, with the value that reproduces them: at
#: that value they are left out of the settings that identify a split or a run, so that adding
#: them does not make every existing split and model stale.
_NEUTRAL_PARAMETERS = {"simulation.PATCH_AREA_CM2": None, "network.ROW_ORDER": "source_space"}


def data_part(result_settings):
    """Reduce :meth:`Config.result_settings` (e.g. a manifest's ``config``) to the data part.

    See :meth:`Config.data_settings`.
    """
    out = {k: v for k, v in result_settings.items() if k not in _NETWORK_ONLY_SETTINGS}
    out["PARAMETERS"] = {
        key: value for key, value in (out.get("PARAMETERS") or {}).items()
        if key.split(".")[0] in _DATA_PARAMETER_SECTIONS
    }
    out["RESOLVED_PARAMETERS"] = {
        section: values for section, values in (out.get("RESOLVED_PARAMETERS") or {}).items()
        if section in _DATA_PARAMETER_SECTIONS
    }
    return out


def _short_hash(settings):
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Parameters and profiles
# --------------------------------------------------------------------------------------------


def _module_defaults(module):
    return {
        name: copy.deepcopy(value)
        for name, value in vars(module).items()
        if name.isupper() and not name.startswith("_")
    }


def _same_kind(default, value):
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return not (isinstance(default, int) and isinstance(value, float) and not value.is_integer())
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        return True
    return isinstance(value, type(default))


def _resolve_parameters(profile, overrides):
    """Apply the profile's and the user's overrides to the parameter modules' defaults."""
    sections = {name: _module_defaults(mod) for name, mod in PARAMETER_MODULES.items()}
    sections["tile"] = copy.deepcopy(parameters.profiles.TILE_DEFAULTS)
    problems = []
    layers = [(f"profile {profile!r}", parameters.profiles.PROFILES.get(profile, {}))]
    layers.append(("PARAMETERS", overrides))
    for origin, layer in layers:
        for key, value in layer.items():
            section, _, name = str(key).partition(".")
            if section not in sections or name not in sections[section]:
                known = [f"{s}.{n}" for s in sections for n in sections[s]]
                hint = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(f"{origin}: unknown parameter {key!r}{hint}")
                continue
            default = sections[section][name]
            if not _same_kind(default, value):
                problems.append(
                    f"{origin}: parameter {key!r} must be like {default!r} "
                    f"({type(default).__name__}), but got {value!r} instead"
                )
                continue
            if isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            sections[section][name] = copy.deepcopy(value)
    problems.extend(_check_parameters(sections))
    frozen = {name: FrozenNamespace(**values) for name, values in sections.items()}
    return frozen, problems


def _check_parameters(sections):
    """Range checks of hyperparameters whose type alone does not make them valid."""
    problems = []
    net, dp, sim, tile = (
        sections["network"],
        sections["data_provider"],
        sections["simulation"],
        sections["tile"],
    )
    if sections["headmodel"]["BEM_ICO"] not in (3, 4, 5):
        problems.append(
            f"headmodel.BEM_ICO: allowed values are 3, 4, 5, but got {sections['headmodel']['BEM_ICO']!r}"
        )
    if not (isinstance(net["N_LEVELS"], int) and 1 <= net["N_LEVELS"] <= 8):
        problems.append(f"network.N_LEVELS: must be 1..8, but got {net['N_LEVELS']!r}")
    for key in ("FILTER_SIZE", "ROOT_FEATURES", "EPOCHS", "BATCH_SIZE", "POOL_SIZE"):
        if not (isinstance(net[key], int) and net[key] >= 1):
            problems.append(f"network.{key}: must be a positive integer, but got {net[key]!r}")
    if not 0 < net["DROPOUT_KEEP"] <= 1:
        problems.append(f"network.DROPOUT_KEEP: must be in (0, 1], but got {net['DROPOUT_KEEP']!r}")
    if not (isinstance(net["LEARNING_RATE"], (int, float)) and net["LEARNING_RATE"] > 0):
        problems.append(
            f"network.LEARNING_RATE: must be positive, but got {net['LEARNING_RATE']!r}"
        )
    if net["MAX_NORM"] is not None and not (
        isinstance(net["MAX_NORM"], (int, float)) and net["MAX_NORM"] > 0
    ):
        problems.append(
            f"network.MAX_NORM: must be positive or None (no clipping), but got {net['MAX_NORM']!r}"
        )
    for key in ("LR_DECAY", "MOMENTUM"):
        if not 0 <= net[key] <= 1:
            problems.append(f"network.{key}: must be in [0, 1], but got {net[key]!r}")
    if net["ROW_ORDER"] not in ROW_ORDERS:
        problems.append(f"network.ROW_ORDER: allowed values are {ROW_ORDERS}, but got "
                        f"{net['ROW_ORDER']!r}")
    if net["CLASS_WEIGHTING"] not in CLASS_WEIGHTINGS:
        problems.append(f"network.CLASS_WEIGHTING: allowed values are {CLASS_WEIGHTINGS}, but "
                        f"got {net['CLASS_WEIGHTING']!r}")
    if not (_is_number(net["DETECTION_GUARD_MS"]) and net["DETECTION_GUARD_MS"] >= 0):
        problems.append("network.DETECTION_GUARD_MS: must be a number of ms >= 0, but got "
                        f"{net['DETECTION_GUARD_MS']!r} instead")
    rate = net["DETECTION_FALSE_ALARM_RATE"]
    if not (_is_number(rate) and 0 < rate < 1):
        problems.append("network.DETECTION_FALSE_ALARM_RATE: must be a share in (0, 1), but "
                        f"got {rate!r} instead")
    if net["L1"] < 0:
        problems.append(f"network.L1: must be >= 0, but got {net['L1']!r}")
    if not (isinstance(tile["T_STEPS"], int) and tile["T_STEPS"] >= 2 * net["BORDER"] + 1):
        problems.append(f"tile.T_STEPS: must be an integer > 2 * BORDER, but got {tile['T_STEPS']!r}")
    allowed = ("normalize", "mean_subtraction", "zero_center", "nmf", "svd", "pca_whiten")
    if dp["INPUT_PREPROCESSING"] not in allowed:
        problems.append(
            f"data_provider.INPUT_PREPROCESSING: allowed values are {allowed}, "
            f"but got {dp['INPUT_PREPROCESSING']!r}"
        )
    if dp["NORMALIZE_OVER"] not in NORMALIZE_OVER:
        problems.append(
            f"data_provider.NORMALIZE_OVER: allowed values are {NORMALIZE_OVER}, "
            f"but got {dp['NORMALIZE_OVER']!r}"
        )
    if not (isinstance(dp["N_CLASSES"], int) and dp["N_CLASSES"] >= 2):
        problems.append(f"data_provider.N_CLASSES: must be >= 2, but got {dp['N_CLASSES']!r}")
    if not sim["L_FREQ"] < sim["H_FREQ"] < sim["SFREQ"] / 2:
        problems.append(
            "simulation.L_FREQ/H_FREQ: need L_FREQ < H_FREQ < SFREQ/2, but got "
            f"{sim['L_FREQ']!r}, {sim['H_FREQ']!r} at SFREQ {sim['SFREQ']!r}"
        )
    if not (isinstance(sim["SAMPLES_PER_ACTIVATION"], int) and sim["SAMPLES_PER_ACTIVATION"] >= 1):
        problems.append("simulation.SAMPLES_PER_ACTIVATION: must be a positive integer")
    if not sim["EMPTY_SIGNAL"] >= 0:
        problems.append("simulation.EMPTY_SIGNAL: must be >= 0")
    problems.extend(_check_recording_timing(sim))
    return problems


def _check_range(value, name, minimum=0.0):
    """Problems of a (low, high) range with minimum < low <= high (an empty list if fine)."""
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_is_number(v) for v in value)
        and minimum < value[0] <= value[1] < float("inf")
    ):
        return []
    return [f"{name}: must be a range (low, high) with {minimum:g} < low <= high, but got "
            f"{value!r} instead"]


def _check_kinds(value, name, allowed):
    if (
        isinstance(value, (tuple, list))
        and len(value) > 0
        and all(v in allowed for v in value)
    ):
        return []
    return [f"{name}: must be a non-empty tuple of {', '.join(map(repr, allowed))}, but got "
            f"{value!r} instead"]


def _check_recording_timing(sim):
    """Problems of the "recording" timing settings of parameters/simulation.py."""
    problems = []
    if sim["TIMING"] not in TIMINGS:
        problems.append(f"simulation.TIMING: allowed values are {TIMINGS}, but got "
                        f"{sim['TIMING']!r}")
    problems += _check_range(sim["DURATION_MS"], "simulation.DURATION_MS")
    problems += _check_range(sim["OSCILLATION_HZ"], "simulation.OSCILLATION_HZ")
    if not problems and sim["OSCILLATION_HZ"][1] >= sim["SFREQ"] / 2:
        problems.append("simulation.OSCILLATION_HZ: must stay below the Nyquist frequency "
                        f"{sim['SFREQ'] / 2:g} Hz, but got {sim['OSCILLATION_HZ']!r}")
    problems += _check_range(sim["NOISE_LEVEL"], "simulation.NOISE_LEVEL")
    problems += _check_kinds(sim["WAVEFORMS"], "simulation.WAVEFORMS", WAVEFORM_KINDS)
    problems += _check_kinds(sim["NOISE_KINDS"], "simulation.NOISE_KINDS", NOISE_KINDS)
    share = sim["NOISE_ONLY_SHARE"]
    if not (_is_number(share) and 0 <= share < 1):
        problems.append(f"simulation.NOISE_ONLY_SHARE: must be a share in [0, 1), but got "
                        f"{share!r} instead")
    if sim["PATCH_AREA_CM2"] is not None:
        problems += _check_range(sim["PATCH_AREA_CM2"], "simulation.PATCH_AREA_CM2")
    sources = sim["BRAIN_NOISE_SOURCES"]
    if not (isinstance(sources, int) and not isinstance(sources, bool) and sources >= 1):
        problems.append("simulation.BRAIN_NOISE_SOURCES: must be a positive integer, but got "
                        f"{sources!r} instead")
    return problems


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def validate_settings(values, source="config", base_dir=None):
    """Validate a dict of settings (names as in ``config.py``) and return a :class:`Config`.

    Parameters
    ----------
    values : dict
        Settings by name; missing ones take their defaults.
    source : str
        Where the values came from, for messages.
    base_dir : path-like | None
        Relative paths are resolved against this folder (the config file's folder); None keeps
        them as given.

    Returns
    -------
    config : Config
        The validated configuration.

    Raises
    ------
    ConfigError
        If any setting is unknown or invalid; the message lists every problem at once.
    """
    problems = []
    resolved = {}
    for name, value in values.items():
        if name not in SETTINGS:
            hint = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(
                f"{name}: unknown setting{hint}; known settings are {', '.join(SETTINGS)}"
            )
    for name, setting in SETTINGS.items():
        value = values.get(name, copy.deepcopy(setting.default))
        value, errors = setting.check(name, value)
        problems.extend(errors)
        resolved[name] = value

    if base_dir is not None:
        for name in _PATH_SETTINGS:
            if isinstance(resolved[name], Path) and not resolved[name].is_absolute():
                resolved[name] = (Path(base_dir) / resolved[name]).resolve()

    # Checks across settings, each saying what to change.
    if resolved["HEAD_MODEL"] == "custom":
        for name in (
            "CUSTOM_SUBJECTS_DIR",
            "CUSTOM_SUBJECT",
            "CUSTOM_TRANS_FILE",
            "CUSTOM_BEM_FILE",
            "CUSTOM_INFO_FILE",
        ):
            if resolved[name] is None:
                problems.append(f"{name}: must be set when HEAD_MODEL = 'custom'")
    for name in ("DATA_DIR", "RESULTS_DIR"):
        problems.extend(_folder_problems(name, resolved[name]))
    if resolved["HEAD_MODEL"] == "custom":
        problems.extend(_custom_file_problems(resolved))
    params, param_problems = _resolve_parameters(
        resolved["PROFILE"] if resolved["PROFILE"] in PROFILES else "quick",
        resolved["PARAMETERS"] if isinstance(resolved["PARAMETERS"], Mapping) else {},
    )
    problems.extend(param_problems)
    if problems:
        raise ConfigError(problems, source=source)

    lambda2 = resolved["LAMBDA2"]
    if lambda2 is None:
        lambda2 = _matched_lambda2(resolved["SNR"])
    kwargs = {name.lower(): value for name, value in resolved.items()}
    kwargs["lambda2"] = lambda2
    return Config(
        **kwargs,
        **params,
        source=str(source),
        parameters_lambda2_setting=resolved["LAMBDA2"],
    )


def _folder_problems(name, path):
    """A folder setting that points to a file, or below one (it could never be created)."""
    if not isinstance(path, Path):
        return []
    for existing in (path, *path.parents):
        if existing.exists():
            break
    else:
        return []
    if existing.is_dir():
        return []
    if existing == path:
        return [
            f"{name}: {str(path)!r} is a file, not a folder; set {name} to a folder (it is "
            "created if missing)"
        ]
    return [
        f"{name}: {str(path)!r} cannot be created because {str(existing)!r} is a file; set "
        f"{name} to a folder"
    ]


def _custom_file_problems(resolved):
    """Check the inputs of a custom head model that can be checked at once.

    Paths must be of the right kind (a folder, or files); CUSTOM_INFO_FILE must be a FIF file
    with MEG channels, EEG channels for ``SENSORS = "meg+eeg"``, and digitized head points for
    ``ARTIFACTS = True`` (the simulated ECG and EOG need a head shape, ``mne.simulation.add_ecg``
    fits a sphere to it).  A file that does not exist is left to the head-model step, which
    names it at its start: the scripts after the simulation do not need these files.
    """
    problems = []
    folder = resolved["CUSTOM_SUBJECTS_DIR"]
    if isinstance(folder, Path) and folder.exists() and not folder.is_dir():
        problems.append(
            f"CUSTOM_SUBJECTS_DIR: {str(folder)!r} is a file; set it to the FreeSurfer "
            "subjects folder"
        )
    for name in ("CUSTOM_TRANS_FILE", "CUSTOM_BEM_FILE", "CUSTOM_INFO_FILE"):
        path = resolved[name]
        if isinstance(path, Path) and path.is_dir():
            problems.append(f"{name}: {str(path)!r} is a folder; set it to a .fif file")
    path = resolved["CUSTOM_INFO_FILE"]
    if problems or not isinstance(path, Path) or not path.is_file():
        return problems
    return _custom_info_problems(path, resolved["SENSORS"], resolved["ARTIFACTS"] is True)


def _custom_info_problems(path, sensors, artifacts):
    """What CUSTOM_INFO_FILE lacks for SENSORS and ARTIFACTS (reads its measurement info)."""
    import warnings

    import mne

    try:
        with warnings.catch_warnings():  # naming conventions; the problem is reported below
            warnings.simplefilter("ignore")
            info = mne.io.read_info(path, verbose=False)
    except Exception as exc:  # any failure of MNE's reader: not a readable FIF file
        return [
            f"CUSTOM_INFO_FILE: {str(path)!r} cannot be read as a FIF recording "
            f"({type(exc).__name__}: {exc}); set it to a raw, epochs or evoked .fif file of "
            "the subject (read another format with MNE and save it as FIF)"
        ]
    problems = []
    if len(mne.pick_types(info, meg=True, ref_meg=False, exclude=[])) == 0:
        problems.append(
            f"CUSTOM_INFO_FILE: {str(path)!r} has no MEG channels, whose positions the "
            "simulation needs; set it to a recording of the subject with MEG channels"
        )
    if sensors == "meg+eeg" and len(mne.pick_types(info, meg=False, eeg=True, exclude=[])) == 0:
        problems.append(
            f"CUSTOM_INFO_FILE: {str(path)!r} has no EEG channels, but SENSORS = 'meg+eeg'; "
            "set SENSORS = 'meg', or use a recording with EEG"
        )
    if artifacts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "fitting may be inaccurate" is not a problem
                mne.bem.get_fitting_dig(info, verbose=False)  # as add_ecg/add_eog fit them
        except (ValueError, RuntimeError) as exc:
            problems.append(
                f"CUSTOM_INFO_FILE: {str(path)!r} has no usable digitized head points "
                f"(MNE: {exc}), but ARTIFACTS = True places the simulated ECG and EOG with a "
                "sphere fitted to the head shape; add the digitized head points to the "
                "recording (e.g. the Polhemus head shape with raw.set_montage, then raw.save), "
                "or set ARTIFACTS = False"
            )
    return problems


def read_config_file(path):
    """Execute a ``config.py`` file and return its upper-case names as a dict.

    Parameters
    ----------
    path : path-like
        The configuration file.

    Returns
    -------
    values : dict
        The settings it defines.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"the configuration file {str(path)!r} does not exist"], source=str(path))
    try:
        namespace = runpy.run_path(str(path))
    except Exception as exc:  # report the user's syntax or runtime error with the file name
        raise ConfigError(
            [f"the configuration file could not be executed: {type(exc).__name__}: {exc}"],
            source=str(path),
        ) from exc
    return {
        name: value
        for name, value in namespace.items()
        if name.isupper() and not name.startswith("_")
        and not isinstance(value, types.ModuleType)
    }


def parse_override(text):
    """Split a ``KEY=VALUE`` override; VALUE is a Python literal or else a plain string.

    Examples
    --------
    >>> parse_override("SNR=1")
    ('SNR', 1)
    >>> parse_override("CHANNELS=('mne','dspm')")
    ('CHANNELS', ('mne', 'dspm'))
    >>> parse_override("RUN_NAME=meg2")
    ('RUN_NAME', 'meg2')
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError([f"--set {text!r}: expected KEY=VALUE"], source="--set")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


def load_config(path="config.py", overrides=()):
    """Load, override and validate a configuration file.

    Parameters
    ----------
    path : path-like
        The ``config.py`` to read.  Relative paths inside it are resolved against its folder.
    overrides : iterable of str
        ``KEY=VALUE`` strings (``--set``) applied after the file.  A dotted key such as
        ``network.EPOCHS=5`` overrides one hyperparameter of ``parameters/``.

    Returns
    -------
    config : Config
        The validated, frozen configuration.
    """
    path = Path(path)
    values = read_config_file(path)
    problems = []
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if "." in key:
            params = dict(values.get("PARAMETERS", {}) or {})
            params[key] = value
            values["PARAMETERS"] = params
        else:
            values[key] = value
    source = str(path) + (" with --set " + " ".join(overrides) if overrides else "")
    try:
        config = validate_settings(values, source=source, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems, source=source) from None
    if problems:
        raise ConfigError(problems, source=source)
    return config


# --------------------------------------------------------------------------------------------
# Command-line helpers shared by the scripts
# --------------------------------------------------------------------------------------------


def add_config_arguments(parser):
    """Add ``--config`` and ``--set`` to an :class:`argparse.ArgumentParser`."""
    parser.add_argument(
        "--config",
        default="config.py",
        metavar="FILE",
        help="configuration file to read (default: ./config.py)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the configuration file for this call, e.g. "
        "--set SNR=1 --set RUN_NAME=meg2 (repeatable; network.EPOCHS=5 overrides a "
        "hyperparameter of parameters/)",
    )
    return parser


def config_from_args(args):
    """Load the configuration named by parsed ``--config``/``--set`` arguments."""
    return load_config(args.config, args.overrides)
