"""The schema of the hyperparameters in ``parameters/``, read from their declarations.

Each hyperparameter is declared once, ``NAME: Role[type] = default`` (see
:mod:`parameters`).  :data:`PARAMETER_SCHEMA` holds every declaration by ``"section.NAME"``;
:func:`conform` checks a value against its declared type (and returns it in canonical form),
:func:`describe` says the type in words for error messages, and :func:`resolve_parameters`
applies a profile's and the user's overrides to the defaults, as :mod:`meg_unet.config` does
for every configuration it loads.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import parameters.data_provider
import parameters.headmodel
import parameters.network
import parameters.profiles
import parameters.simulation
import parameters.tile
from parameters import Interval, Neutral, Role

#: The parameter modules a profile or the PARAMETERS setting may override, by section name.
PARAMETER_MODULES = {
    "headmodel": parameters.headmodel,
    "simulation": parameters.simulation,
    "data_provider": parameters.data_provider,
    "network": parameters.network,
    "tile": parameters.tile,
}



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
class Parameter:
    """One hyperparameter of ``parameters/``: its default, type and role.

    ``neutral`` is ``(value,)`` for a parameter declared with :class:`parameters.Neutral`
    (at that value it is not recorded), else ``()``.
    """

    default: Any
    type: Any
    role: Role
    neutral: tuple = ()


def read_schema():
    """Read every hyperparameter's declaration (``NAME: Role[type] = default``) by key."""
    schema = {}
    for section, module in PARAMETER_MODULES.items():
        for name, hint in typing.get_type_hints(module, include_extras=True).items():
            extras = typing.get_args(hint)[1:] if typing.get_origin(hint) is Annotated else ()
            roles = [extra for extra in extras if isinstance(extra, Role)]
            if len(roles) != 1:
                raise TypeError(f"parameters/{section}.py: {name} needs one role, e.g. "
                                f"'{name}: Model[int] = ...' (see parameters/__init__.py)")
            try:
                default = conform(getattr(module, name), hint)
            except Mismatch:
                raise TypeError(f"parameters/{section}.py: the default of {name} must be "
                                f"{describe(hint)}") from None
            neutral = tuple(extra.value for extra in extras if isinstance(extra, Neutral))
            schema[f"{section}.{name}"] = Parameter(default, hint, roles[0], neutral)
    return schema


def parameter_choices(key):
    """Return the allowed values of a ``Literal`` hyperparameter, e.g. ``"network.ROW_ORDER"``."""
    hint = PARAMETER_SCHEMA[key].type
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return typing.get_args(hint)


class Mismatch(Exception):
    pass


def conform(value, hint):
    """Return ``value`` in its canonical form for the type ``hint``; raise Mismatch if not.

    Lists become tuples, integers become floats where a float is declared, and every
    :class:`parameters.Interval` in the type is checked.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        value = conform(value, args[0])
        if any(isinstance(b, Interval) and not b.contains(value) for b in args[1:]):
            raise Mismatch
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return conform(value, option)
            except Mismatch:
                pass
        raise Mismatch
    if origin is Literal:
        for allowed in args:
            if value == allowed and isinstance(value, bool) == isinstance(allowed, bool):
                return allowed
        raise Mismatch
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise Mismatch
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(conform(v, args[0]) for v in value)
        if len(value) != len(args):
            raise Mismatch
        return tuple(conform(v, a) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise Mismatch
        return {conform(k, args[0]): conform(v, args[1]) for k, v in value.items()}
    if hint is type(None):
        if value is None:
            return None
        raise Mismatch
    if isinstance(value, bool) != (hint is bool):
        raise Mismatch
    if hint is float and isinstance(value, (int, float)) and abs(value) < float("inf"):
        return float(value)
    if hint in (int, str, bool) and isinstance(value, hint):
        return value
    raise Mismatch


def describe(hint):
    """A type in words for messages: ``"an integer >= 1 and <= 8"``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        bounds = [b.describe() for b in args[1:] if isinstance(b, Interval)]
        return " ".join([describe(args[0]), *bounds])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of ({describe(args[0])})"
        return f"a tuple ({', '.join(describe(a) for a in args)})"
    if origin is dict:
        return f"a dict of {describe(args[0])}: {describe(args[1])}"
    names = {int: "an integer", float: "a number", bool: "True or False", str: "a string",
             type(None): "None"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


#: Every hyperparameter by ``"section.NAME"``, its default in its declared form.
PARAMETER_SCHEMA = read_schema()


def resolve_parameters(profile, overrides):
    """Apply the profile's and the user's overrides to the declared defaults, checking types."""
    values = {key: copy.deepcopy(parameter.default) for key, parameter in PARAMETER_SCHEMA.items()}
    problems = []
    layers = [(f"profile {profile!r}", parameters.profiles.PROFILES.get(profile, {})),
              ("PARAMETERS", overrides)]
    for origin, layer in layers:
        for key, value in layer.items():
            if key not in PARAMETER_SCHEMA:
                hint = difflib.get_close_matches(str(key), PARAMETER_SCHEMA, n=1)
                hint = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(f"{origin}: unknown parameter {key!r}{hint}")
                continue
            try:
                values[key] = conform(copy.deepcopy(value), PARAMETER_SCHEMA[key].type)
            except Mismatch:
                problems.append(
                    f"{origin}: {key} must be {describe(PARAMETER_SCHEMA[key].type)}, but got "
                    f"{value!r} instead"
                )
    sections = {section: {} for section in PARAMETER_MODULES}
    for key, value in values.items():
        section, name = key.split(".")
        sections[section][name] = value
    problems.extend(_check_parameters(sections))  # a value of the wrong type kept its default
    frozen = {name: FrozenNamespace(**values) for name, values in sections.items()}
    return frozen, problems


def _check_parameters(sections):
    """Checks across hyperparameters, or of ranges, that their types cannot express."""
    problems = []
    net, sim, tile = sections["network"], sections["simulation"], sections["tile"]
    if not tile["T_STEPS"] > 2 * net["BORDER"]:
        problems.append(f"tile.T_STEPS: must be > 2 * network.BORDER = {2 * net['BORDER']}, "
                        f"but got {tile['T_STEPS']!r}")
    if not sim["L_FREQ"] < sim["H_FREQ"] < sim["SFREQ"] / 2:
        problems.append(
            "simulation.L_FREQ/H_FREQ: need L_FREQ < H_FREQ < SFREQ/2, but got "
            f"{sim['L_FREQ']!r}, {sim['H_FREQ']!r} at SFREQ {sim['SFREQ']!r}"
        )
    for name in ("DURATION_MS", "OSCILLATION_HZ", "NOISE_LEVEL", "PATCH_AREA_CM2"):
        value = sim[name]
        if value is not None and not 0 < value[0] <= value[1]:
            problems.append(f"simulation.{name}: must be a range (low, high) with "
                            f"0 < low <= high, but got {value!r} instead")
    if sim["OSCILLATION_HZ"][1] >= sim["SFREQ"] / 2:
        problems.append("simulation.OSCILLATION_HZ: must stay below the Nyquist frequency "
                        f"{sim['SFREQ'] / 2:g} Hz, but got {sim['OSCILLATION_HZ']!r}")
    for name in ("WAVEFORMS", "NOISE_KINDS"):
        if not sim[name]:
            problems.append(f"simulation.{name}: must name at least one kind, but got ()")
    return problems
