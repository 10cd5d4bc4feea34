"""Train the U-Net on a run's simulated data (thesis sections 3.4-3.6).

Reads ``DATA_DIR/<RUN_NAME>/{train,valid}/`` and writes ``RESULTS_DIR/<RUN_NAME>/model/``:
best.keras and last.keras checkpoints, history.csv, model.json (build arguments, settings,
data checksums, class weights, and after training the calibration of the probability and the
detection thresholds chosen on the validation split) and TensorBoard logs (``tensorboard --logdir
RESULTS_DIR/<RUN_NAME>/model/logs``).  An existing model is never replaced without --overwrite;
--resume continues it from last.keras.  A training stopped before its first epoch ended
leaves no checkpoint: --resume, or the same command again, then trains from the start.
"""

import sys

from meg_unet.cli import new_parser, run_main


def build_parser():
    """Return this script's argument parser."""
    parser = new_parser(__doc__, prog="train_network.py")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run's model from last.keras (same optimizer state, epoch count "
        "and settings; raise network.EPOCHS to train longer); with no finished epoch yet, "
        "train from the start",
    )
    return parser


def main(argv=None):
    """Run the script; ``argv`` defaults to the command line.  Returns the exit status."""
    return run_main(
        build_parser(),
        argv,
        _train,
        interrupted="go on with: train_network.py --resume (with the same --config/--set)",
    )


def _train(args, config, logger):
    from meg_unet.calibration import calibrate_detection
    from meg_unet.network.training import train

    train(config, overwrite=args.overwrite, resume=args.resume)
    # the probability's calibration and every method's detection threshold, chosen on the
    # validation split (written into model.json)
    calibrate_detection(config)


if __name__ == "__main__":
    sys.exit(main())
