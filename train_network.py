"""Train the U-Net on a run's simulated data (thesis sections 3.4-3.6).

Reads ``DATA_DIR/<RUN_NAME>/{train,valid}/`` and writes ``RESULTS_DIR/<RUN_NAME>/model/``:
best.keras and last.keras checkpoints, history.csv, model.json (build arguments, settings,
data checksums, class weights, and after training the calibration of the probability and the
detection thresholds chosen on the validation split) and TensorBoard logs (``tensorboard --logdir
RESULTS_DIR/<RUN_NAME>/model/logs``).  An existing model is never replaced without --overwrite;
--resume continues it from last.keras.
"""

import sys

from meg_unet.cli import load_config_or_exit, new_parser, setup_logging


def build_parser():
    """Return this script's argument parser."""
    parser = new_parser(__doc__, prog="train_network.py")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run's model from last.keras (same optimizer state, epoch count "
        "and settings; raise network.EPOCHS to train longer)",
    )
    return parser


def main(argv=None):
    """Run the script; ``argv`` defaults to the command line.  Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    config = load_config_or_exit(parser, args)

    from meg_unet.calibration import calibrate_detection
    from meg_unet.data_provider import DataError
    from meg_unet.network.training import train

    try:
        train(config, overwrite=args.overwrite, resume=args.resume)
        # the probability's calibration and every method's detection threshold, chosen on
        # the validation split (written into model.json)
        calibrate_detection(config)
    except (DataError, FileExistsError, FileNotFoundError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
