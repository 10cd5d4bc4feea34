"""Simulate the training, validation and test splits of a run (thesis section 3.3).

Writes ``DATA_DIR/<RUN_NAME>/{train,valid,test}/``: the simulated raw recording, source space,
forward solution, noise covariance, inverse operator, MNE/dSPM/sLORETA source estimates, the
ground truth and a manifest.  Splits that already match the configuration are skipped; a split
simulated with other settings is refused unless --overwrite.
"""

import sys

from meg_unet.cli import new_parser, run_main


def build_parser():
    """Return this script's argument parser."""
    parser = new_parser(__doc__, prog="simulate_data.py")
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["train", "valid", "test"],
        choices=["train", "valid", "test"],
        help="which splits to simulate (default: all three)",
    )
    return parser


def main(argv=None):
    """Run the script; ``argv`` defaults to the command line.  Returns the exit status."""
    return run_main(
        build_parser(),
        argv,
        _simulate,
        interrupted="rerun the same command to go on (finished splits are kept)",
    )


def _simulate(args, config, logger):
    from meg_unet.simulation import simulate

    directories = simulate(config, splits=args.splits, overwrite=args.overwrite)
    for directory in directories:
        logger.info("split ready: %s", directory)


if __name__ == "__main__":
    sys.exit(main())
