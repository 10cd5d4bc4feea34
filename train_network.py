"""Train the U-Net on a run's simulated splits (thesis sections 3.4-3.6)."""

import sys

from meg_unet.cli import load_config_or_exit, new_parser, not_built_yet, setup_logging


def build_parser():
    """Return this script's argument parser."""
    return new_parser(__doc__, prog="train_network.py")


def main(argv=None):
    """Run the script; ``argv`` defaults to the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    load_config_or_exit(parser, args)
    not_built_yet(parser, "training")


if __name__ == "__main__":
    sys.exit(main())
