"""The exceptions of failures that a user causes and can fix.

Each message names the file or setting at fault and the way out.  The scripts turn these into
one ``script: error: ...`` line (see :func:`meg_unet.cli.error_boundary`); any other exception
is a bug and keeps its traceback.  This module imports nothing, so that
:mod:`meg_unet.config` stays fast to import.  :func:`check_int` and :func:`is_number` are the
checks of arguments that the library's functions share.

- :class:`UserError`: the base of the family.
- :class:`meg_unet.config.ConfigError`: invalid settings (exit status 2, as argparse's errors).
- :class:`DataError`: a data split that is missing, damaged or
  inconsistent with the configuration.
- :class:`FileError`: a file that its reader cannot read (a foreign format, truncated,
  damaged).
"""


class UserError(Exception):
    """A failure caused by an input the user gave; the message says what to change.

    Attributes
    ----------
    exit_status : int
        The status a script exits with (1; 2 for configuration errors).
    """

    exit_status = 1


class DataError(UserError, ValueError):
    """A data split that is missing, damaged, inconsistent with the config, or not finite."""


class FileError(UserError, ValueError):
    """A file that cannot be read as what it should be: the message names it and the remedy."""


def check_int(value, name, minimum=1):
    """Return ``value`` as an int, or raise ValueError naming the parameter.

    Parameters
    ----------
    value : int
        The argument (a bool is refused).
    name : str
        The parameter's name, for the message.
    minimum : int
        The smallest value allowed.

    Returns
    -------
    value : int
        The value.
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Invalid value for the {name!r} parameter. It must be an integer >= {minimum}, "
            f"but got {value!r} instead."
        )
    return int(value)


def is_number(value):
    """Whether ``value`` is a real number (a bool is not)."""
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool)
