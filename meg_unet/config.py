"""Load ``config.py`` by path, validate every value at once, and return a frozen :class:`Config`.

Nothing in :mod:`meg_unet` imports the user's ``config.py``: the scripts call
:func:`load_config` and pass the returned object on.  The module imports only the standard
library, :mod:`parameters`, :mod:`meg_unet.schema` and :mod:`meg_unet.constants`, so a bad
configuration is reported in well under a second.  Checks that look at the disk are as cheap:
DATA_DIR and RESULTS_DIR must be folders (or creatable), and with ``HEAD_MODEL = "custom"`` the
measurement info of CUSTOM_INFO_FILE is read (MNE is imported for that only) to check that it
has what SENSORS and ARTIFACTS need.
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
from typing import Annotated, Any, Callable, Literal

import parameters.profiles
from parameters import DATA_ROLES, POSITIVE, Interval, Role

from . import schema
from .constants import HEAD_MODELS, HEMISPHERES, INVERSE_METHODS, SENSOR_SETS, SPACINGS
from .errors import UserError, is_number

ORIENTATIONS = ("loose", "fixed")
PROFILES = tuple(parameters.profiles.PROFILES)

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
    """One setting of ``config.py``: its default, its check and what it shapes.

    ``check(name, value)`` returns the value in its canonical form and a list of problems.
    The documentation of each setting is its comment in ``config.py``.
    """

    default: Any
    check: Callable[[str, Any], tuple[Any, list[str]]]
    role: Role


def _fmt(value):
    return repr(value)


def _typed(hint):
    """Check a setting against a type, as every hyperparameter is checked (schema.conform)."""
    def check(name, value):
        try:
            return schema.conform(value, hint), []
        except schema.Mismatch:
            return value, [
                f"{name}: must be {schema.describe(hint)}, but got {_fmt(value)} instead"]

    return check


def _run_name(name, value):
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        return value, []
    return value, [
        f"{name}: must be a non-empty name of letters, digits, '_', '-' or '.', "
        f"but got {_fmt(value)} instead"
    ]


def _is_positive_finite(value):
    return is_number(value) and 0 < value < float("inf")


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
    if not all(is_number(v) for v in value):
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
            f"{', '.join(schema.PARAMETER_MODULES)}), but got {_fmt(value)} instead"
        ]
    return dict(value), []


#: Every setting of config.py, with its default, its check and its role (see
#: :class:`parameters.Role`): the role decides which hashes and comparisons see it.
SETTINGS: dict[str, _Setting] = {
    "RUN_NAME": _Setting("quick", _run_name, Role.DATA),
    "HEAD_MODEL": _Setting("fsaverage", _typed(Literal[HEAD_MODELS]), Role.GEOMETRY),
    "SPACING": _Setting("ico3", _typed(Literal[SPACINGS]), Role.GEOMETRY),
    "SENSORS": _Setting("meg", _typed(Literal[SENSOR_SETS]), Role.GEOMETRY),
    "HEMISPHERE": _Setting("rh", _typed(Literal[HEMISPHERES]), Role.GEOMETRY),
    "SNR": _Setting(3.0, _snr, Role.DATA),
    "LAMBDA2": _Setting(None, _typed(Annotated[float, POSITIVE] | None), Role.DATA),
    "N_DIPOLES": _Setting(1, _n_dipoles, Role.DATA),
    "CHANNELS": _Setting(INVERSE_METHODS, _channels, Role.MODEL),
    "ORIENTATION": _Setting("loose", _typed(Literal[ORIENTATIONS]), Role.GEOMETRY),
    "ARTIFACTS": _Setting(True, _typed(bool), Role.DATA),
    "PROFILE": _Setting("quick", _typed(Literal[PROFILES]), Role.TRAINING),
    "SEED": _Setting(42, _typed(Annotated[int, Interval(ge=0)]), Role.DATA),
    "PARAMETERS": _Setting({}, _parameter_overrides, Role.DATA),
    "CUSTOM_SUBJECTS_DIR": _Setting(None, _path(allow_none=True), Role.DATA),
    "CUSTOM_SUBJECT": _Setting(None, _optional_str, Role.DATA),
    "CUSTOM_TRANS_FILE": _Setting(None, _path(allow_none=True), Role.DATA),
    "CUSTOM_BEM_FILE": _Setting(None, _path(allow_none=True), Role.DATA),
    "CUSTOM_INFO_FILE": _Setting(None, _path(allow_none=True), Role.DATA),
    "DATA_DIR": _Setting(Path("data"), _path(allow_none=False), Role.RUN),
    "RESULTS_DIR": _Setting(Path("results"), _path(allow_none=False), Role.RUN),
    "N_JOBS": _Setting(1, _typed(Annotated[int, POSITIVE] | Literal[-1]), Role.RUN),
    "DASK_SCHEDULER": _Setting(None, _optional_str, Role.RUN),
}


# --------------------------------------------------------------------------------------------
# The frozen object handed to the library
# --------------------------------------------------------------------------------------------


class _ConfigMethods:
    """What :class:`Config` derives from its settings (its fields are made from the schema)."""

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
        """Return the recorded settings (every role but :attr:`Role.RUN`), JSON-ready.

        Paths and N_JOBS are left out, so moving a run or using more cores does not
        invalidate it.  ``RESOLVED_PARAMETERS`` holds every hyperparameter after the profile
        and the overrides, ``LAMBDA2`` the regularization in use.
        """
        out = {
            name: _jsonable(getattr(self, name.lower()))
            for name, setting in SETTINGS.items() if setting.role is not Role.RUN
        }
        resolved = {}
        for key, parameter in schema.PARAMETER_SCHEMA.items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            if parameter.role is not Role.RUN and parameter.neutral != (value,):
                resolved.setdefault(section, {})[name] = _jsonable(value)
        out["RESOLVED_PARAMETERS"] = resolved
        # The lambda2 in use is derived, but recorded explicitly for readers of manifests.
        out["LAMBDA2"] = self.lambda2
        return out

    def result_hash(self):
        """Return a short hash of :meth:`result_settings` (identifies a run's contents)."""
        return _short_hash(self.result_settings())

    def data_settings(self):
        """Return the settings that change the simulated data, as JSON-ready values.

        :meth:`result_settings` reduced to the roles in :data:`parameters.DATA_ROLES`: a new
        number of epochs, learning rate or CHANNELS must not make the simulated splits stale.
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


#: A validated, read-only configuration of one run, with one field per setting.
Config = dataclasses.make_dataclass(
    "Config",
    [(name.lower(), Any) for name in SETTINGS]
    + [(section, schema.FrozenNamespace) for section in schema.PARAMETER_MODULES]
    + [("source", str, dataclasses.field(default="defaults")),
       # the LAMBDA2 *setting* (None means 1/SNR**2), kept apart from the resolved value
       ("parameters_lambda2_setting", Any, dataclasses.field(default=None))],
    bases=(_ConfigMethods,),
    frozen=True,
)
Config.__module__ = __name__
Config.__doc__ = """A validated, read-only configuration of one run.

    Attributes mirror the settings of ``config.py`` in lower case (``config.snr`` is ``SNR``);
    ``headmodel``, ``simulation``, ``data_provider``, ``network`` and ``tile`` hold the
    hyperparameters of ``parameters/`` after the profile's and the PARAMETERS overrides.

    ``snr`` is what the user wrote: one float, or a tuple ``(low, high)`` of floats when each
    activation window draws its SNR log-uniformly from that range (:attr:`snr_label` formats
    either).  ``lambda2`` is the resolved regularization: LAMBDA2 when set, else
    ``1 / SNR**2``, and for a range ``1 / (low * high)``, i.e. 1 over the squared geometric
    mean of the bounds.
    """


def settings_of_roles(settings, roles, keep_overrides=False):
    """Reduce recorded settings (:meth:`Config.result_settings`, e.g. a manifest's) to roles.

    Parameters
    ----------
    settings : dict
        Recorded settings, with ``RESOLVED_PARAMETERS`` by section.
    roles : iterable of Role
        The roles to keep.  Names the schema does not know (removed since they were
        recorded) are dropped: they cannot change what the code does now.
    keep_overrides : bool
        Keep the raw ``PARAMETERS`` overrides of those roles too; comparisons leave them out,
        as their effect is in ``RESOLVED_PARAMETERS``.

    Returns
    -------
    settings : dict
        The settings of those roles.
    """
    roles = tuple(roles)

    def kept(role):
        return role is not None and role in roles

    out = {
        name: value for name, value in settings.items()
        if name not in ("PARAMETERS", "RESOLVED_PARAMETERS")
        and kept(getattr(SETTINGS.get(name), "role", None))
    }
    if keep_overrides:
        out["PARAMETERS"] = {
            key: value for key, value in (settings.get("PARAMETERS") or {}).items()
            if kept(getattr(schema.PARAMETER_SCHEMA.get(key), "role", None))
        }
    resolved = {}
    for section, values in (settings.get("RESOLVED_PARAMETERS") or {}).items():
        for name, value in values.items():
            if kept(getattr(schema.PARAMETER_SCHEMA.get(f"{section}.{name}"), "role", None)):
                resolved.setdefault(section, {})[name] = value
    out["RESOLVED_PARAMETERS"] = resolved
    return out


def settings_differences(old, new, where):
    """List what differs between two (nested) dicts of settings, one line per value.

    Parameters
    ----------
    old, new : dict
        The recorded and the current settings.
    where : str
        Where the old ones are, e.g. ``"on disk"``: lines read
        ``"SNR: 3.0 on disk, 1.0 now"``, with nested keys joined by dots.

    Returns
    -------
    lines : list of str
        The differences, sorted by key.
    """
    def short(value, limit=60):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines.extend(f"{key}.{line}" for line in settings_differences(a, b, where))
        elif a != b:
            lines.append(f"{key}: {short(a)} {where}, {short(b)} now")
    return lines


def data_part(result_settings):
    """Reduce :meth:`Config.result_settings` (e.g. a manifest's ``config``) to the data part.

    See :meth:`Config.data_settings`.
    """
    return settings_of_roles(result_settings, DATA_ROLES, keep_overrides=True)


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
        # the path settings are those whose check returned a Path
        for name, value in resolved.items():
            if isinstance(value, Path) and not value.is_absolute():
                resolved[name] = (Path(base_dir) / value).resolve()

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
    params, param_problems = schema.resolve_parameters(
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
        raise ConfigError([f"the configuration file {str(path)!r} does not exist"],
                          source=str(path))
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


def split_overrides(texts):
    """Parse ``--set`` texts into settings and dotted hyperparameters.

    Parameters
    ----------
    texts : iterable of str
        ``KEY=VALUE`` strings; a dotted key such as ``network.EPOCHS`` names a hyperparameter.

    Returns
    -------
    settings : dict
        The overrides of settings of ``config.py``.
    hyperparameters : dict
        The overrides of hyperparameters, by ``"section.NAME"``.
    problems : list of str
        The texts that are not ``KEY=VALUE``.
    """
    settings, hyperparameters, problems = {}, {}, []
    for text in texts:
        try:
            key, value = parse_override(text)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        (hyperparameters if "." in key else settings)[key] = value
    return settings, hyperparameters, problems


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
    settings, hyperparameters, problems = split_overrides(overrides)
    values.update(settings)
    if hyperparameters:
        values["PARAMETERS"] = {**(values.get("PARAMETERS") or {}), **hyperparameters}
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
