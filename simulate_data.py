"""Simulate the training, validation and test splits of a run (thesis section 3.3).

Writes ``DATA_DIR/<RUN_NAME>/{train,valid,test}/``: the simulated raw recording, source space,
forward solution, noise covariance, inverse operator, MNE/dSPM/sLORETA source estimates, the
ground truth and a manifest.  Splits that already match the configuration are skipped; a split
simulated with other settings is refused unless --overwrite.
"""

import sys

from meg_unet.cli import load_config_or_exit, new_parser, setup_logging


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
    parser = build_parser()
    args = parser.parse_args(argv)
    logger = setup_logging(args.verbose)
    config = load_config_or_exit(parser, args)

    from meg_unet.simulation import simulate

    try:
        directories = simulate(config, splits=args.splits, overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    for directory in directories:
        logger.info("split ready: %s", directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
