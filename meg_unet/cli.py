"""What the four scripts share: argument parsing, configuration loading and logging.

Each script defines ``main(argv=None)`` over a parser from :func:`new_parser`, so tests and
other programs call ``main([...])`` directly.
"""

from __future__ import annotations

import logging
import sys

from .config import ConfigError, add_config_arguments, config_from_args

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


def load_config_or_exit(parser, args):
    """Load the configuration, or exit with status 2 and the list of problems."""
    try:
        return config_from_args(args)
    except ConfigError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


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


#: Exit status of a step that is not built yet (``make demo`` skips it and goes on).
EXIT_NOT_BUILT = 3


def not_built_yet(parser, what):
    """Exit with status 3 and a clear message for a step that a later issue builds."""
    parser.exit(
        EXIT_NOT_BUILT,
        f"{parser.prog}: error: {what} is not built yet in this version of meg-unet; "
        "see the open issues in the README.\n",
    )


def analyze(argv=None):
    """Run ``Rscript analyze_results.r`` on the run's metrics.csv, or say how to get R.

    ``make demo`` calls this last (``python -m meg_unet.cli analyze``).
    """
    import shutil
    import subprocess
    from pathlib import Path

    parser = new_parser(analyze.__doc__, prog="python -m meg_unet.cli analyze", overwrite=False)
    args = parser.parse_args(argv)
    config = load_config_or_exit(parser, args)
    metrics = config.run_results_dir / "predictions" / "metrics.csv"
    if not metrics.is_file():
        print(f"analyze: no {metrics} yet (predict.py writes it); skipping the R statistics.")
        return EXIT_NOT_BUILT
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


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "analyze":
        sys.exit("usage: python -m meg_unet.cli analyze [--config FILE] [--set KEY=VALUE]")
    sys.exit(analyze(sys.argv[2:]))
