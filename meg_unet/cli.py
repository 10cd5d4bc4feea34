"""What the four scripts share: argument parsing, configuration loading, logging, errors.

Each script defines ``main(argv=None)`` over a parser from :func:`new_parser`, so tests and
other programs call ``main([...])`` directly, and runs its work through :func:`run_main`.

Errors
------
:func:`error_boundary` is the one place where the scripts turn exceptions into messages:

- an expected failure, one that the user's input caused, ends in one line
  ``script: error: <message>`` naming the file or setting and the way out, with exit status
  1 (2 for an invalid configuration).  Expected are :class:`meg_unet.errors.UserError` (and
  so ``ConfigError``, ``DataError``, ``FileError``), the ``OSError`` subclasses that name a
  path (``FileExistsError``, ``FileNotFoundError``, ``NotADirectoryError``,
  ``IsADirectoryError``, ``PermissionError``), and a ``ValueError`` raised by meg-unet's own
  code (its functions check their arguments at the top and say what to change);
- anything else, a ``ValueError`` from inside NumPy, h5py or MNE included, is unexpected: a
  bug, or a bad input that no check caught yet.  It keeps its full traceback;
- ``--verbose`` prints the traceback of an expected failure too, above its line;
- Ctrl-C ends in ``script: interrupted`` (exit status 130) and says how to go on.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path

from .config import add_config_arguments, config_from_args
from .errors import UserError

LOGGER_NAME = "meg_unet"


def new_parser(description, prog=None, overwrite=True):
    """Return a parser with ``--config``, ``--set`` (and ``--overwrite``) options.

    Parameters
    ----------
    description : str
        What the script does; shown by ``--help``.
    prog : str | None
        Program name shown in usage lines.
    overwrite : bool
        Add ``--overwrite`` (redo and replace this step's outputs).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    if overwrite:
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="redo this step and replace its earlier outputs (never done silently)",
        )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debugging details"
    )
    return parser


#: OSErrors that name the path at fault: a user's input, not a bug.
PATH_ERRORS = (
    FileExistsError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

_PACKAGE_DIR = Path(__file__).resolve().parent


def _raised_by_meg_unet(exc):
    """Whether the innermost frame of ``exc``'s traceback is in the meg_unet package."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _PACKAGE_DIR in Path(tb.tb_frame.f_code.co_filename).resolve().parents


def is_expected(exc):
    """Whether an exception is a failure the user caused, with a message for the user.

    See the module docstring.
    """
    if isinstance(exc, (UserError, *PATH_ERRORS)):
        return True
    return isinstance(exc, ValueError) and _raised_by_meg_unet(exc)


@contextlib.contextmanager
def error_boundary(parser, verbose=False, interrupted=None):
    """Turn the expected failures of a script's body into one line and an exit status.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The script's parser (its ``prog`` starts the line; ``parser.exit`` exits).
    verbose : bool
        Also print the traceback of an expected failure.
    interrupted : str | None
        What to do after Ctrl-C, e.g. ``"rerun with --resume to go on"``.

    Notes
    -----
    An unexpected exception is re-raised after a line that says so, so that its traceback is
    shown (and a test that calls ``main`` sees the exception itself).
    """
    prog = parser.prog
    try:
        yield
    except KeyboardInterrupt:
        hint = f"; {interrupted}" if interrupted else ""
        parser.exit(130, f"{prog}: interrupted{hint}\n")
    except Exception as exc:
        if not is_expected(exc):
            sys.stderr.write(
                f"{prog}: unexpected error, probably a bug in meg-unet (or an input it does not "
                "check yet); the traceback follows. Please report it with the command you ran.\n"
            )
            raise
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        parser.exit(getattr(exc, "exit_status", 1), f"{prog}: error: {exc}\n")


def run_main(parser, argv, body, interrupted=None):
    """Parse ``argv``, set up logging, load the configuration and run ``body``.

    The configuration and the body run inside :func:`error_boundary`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        From :func:`new_parser`.
    argv : list of str | None
        The arguments; None takes the command line.
    body : callable
        ``body(args, config, logger)``; returns the exit status (None means 0).
    interrupted : str | None
        What to do after Ctrl-C (see :func:`error_boundary`).

    Returns
    -------
    status : int
        The exit status; failures exit through ``parser.exit`` (SystemExit).
    """
    args = parser.parse_args(argv)
    logger = setup_logging(args.verbose)
    with error_boundary(parser, args.verbose, interrupted):
        config = config_from_args(args)
        status = body(args, config, logger)
    return 0 if status is None else status


def setup_logging(verbose=False):
    """Log meg_unet's messages to stderr (INFO, or DEBUG with ``verbose``) and quiet MNE."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_meg_unet", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler._meg_unet = True
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    try:
        import mne

        mne.set_log_level("INFO" if verbose else "WARNING")
    except ImportError:  # the scripts' --help works without the science stack
        pass
    return logger


#: Exit status of a step with nothing to do yet (``make demo`` skips it and goes on).
EXIT_NOTHING_TO_DO = 3


def analyze(argv=None):
    """Run ``Rscript analyze_results.r`` on the run's metrics.csv, or say how to get R.

    ``make demo`` calls this last (``python -m meg_unet.cli analyze``).
    """
    parser = new_parser(analyze.__doc__, prog="python -m meg_unet.cli analyze", overwrite=False)
    return run_main(parser, argv, _analyze)


def _analyze(args, config, logger):
    import shutil
    import subprocess

    metrics = config.run_results_dir / "predictions" / "metrics.csv"
    if not metrics.is_file():
        print(f"analyze: no {metrics} yet (predict.py writes it); skipping the R statistics.")
        return EXIT_NOTHING_TO_DO
    rscript = shutil.which("Rscript")
    if rscript is None:
        print(
            "analyze: Rscript not found; install R (Debian/Ubuntu: sudo apt-get install "
            f"r-base-core), then run: Rscript analyze_results.r {metrics}"
        )
        return 0
    script = Path(__file__).resolve().parent.parent / "analyze_results.r"
    out_dir = config.run_results_dir / "statistics"
    return subprocess.call([rscript, str(script), str(metrics), str(out_dir)])


def events(argv=None):
    """Print the table of events that predict.py extracted from the run's test split.

    ``make demo`` ends with it (``python -m meg_unet.cli events``).
    """
    parser = new_parser(events.__doc__, prog="python -m meg_unet.cli events", overwrite=False)
    parser.add_argument("--rows", type=int, default=12, help="events to print (default: 12)")
    return run_main(parser, argv, _events)


def _events(args, config, logger):
    import pandas as pd

    from .io import read_json
    from .sources import read_events

    path = config.run_results_dir / "predictions" / "test-events.tsv"
    if not path.is_file():
        print(f"events: no {path} yet (predict.py writes it); skipping.")
        return EXIT_NOTHING_TO_DO
    table = read_events(path)
    manifest = read_json(config.run_data_dir / "test" / "manifest.json")
    n_true = sum(len(rows) for rows in manifest["activations"]["rows"])
    print(f"{len(table)} sources found in the test split ({path}); the simulation put "
          f"{n_true} there.")
    if table.empty:
        return 0
    print(f"The first {min(args.rows, len(table))}:")
    shown = table.head(args.rows).drop(columns="row").assign(
        onset_ms=lambda t: 1e3 * t["onset_s"], offset_ms=lambda t: 1e3 * t["offset_s"],
        peak_ms=lambda t: 1e3 * t["peak_s"],
    ).drop(columns=["onset_s", "offset_s", "peak_s"])
    columns = ["vertex", "hemi", "x_mm", "y_mm", "z_mm", "onset_ms", "offset_ms", "peak_ms",
               "amplitude_nam", "probability", "explained_variance"]
    formats = {**{c: "{:.1f}".format for c in ("x_mm", "y_mm", "z_mm")},
               **{c: "{:.0f}".format for c in ("onset_ms", "offset_ms", "peak_ms")},
               "amplitude_nam": "{:.1f}".format, "probability": "{:.3f}".format,
               "explained_variance": "{:.2f}".format}
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(shown[columns].to_string(index=False, formatters=formats))
    print("(figures/sources.png draws the first second on the cortex next to the truth)")
    return 0


_COMMANDS = {"analyze": analyze, "events": events}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in _COMMANDS:
        sys.exit("usage: python -m meg_unet.cli {analyze,events} [--config FILE] "
                 "[--set KEY=VALUE]")
    sys.exit(_COMMANDS[sys.argv[1]](sys.argv[2:]))
