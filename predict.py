"""Run a trained U-Net over a data split (or a real recording) and compute DLE, SD and OA.

Writes ``RESULTS_DIR/<RUN_NAME>/predictions/``: metrics.csv (one row per active time sample
and method), the summary table, a few tile images and the U-Net's source estimate.

Examples
--------
  python predict.py                                  the run's test split
  python predict.py --model results/meg1 --data data/meg2/test
                                                     another run's split (stability test);
                                                     writes results/meg1/predictions-meg2-test/
  python predict.py --raw rec_raw.fif --inverse rec-inv.fif
                                                     a real recording: writes the U-Net's
                                                     estimate to results/<RUN_NAME>/
                                                     predictions/rec_raw-unet-stc.h5

A rerun replaces the files of its own predictions folder and nothing else; --overwrite is only
needed to replace an existing --out file.
"""

import functools
import sys

from meg_unet.cli import new_parser, run_main


def build_parser():
    """Return this script's argument parser."""
    parser = new_parser(__doc__, prog="predict.py")
    parser.add_argument("--model", help="trained run folder (default: RESULTS_DIR/<RUN_NAME>)")
    parser.add_argument("--data", help="data split folder (default: DATA_DIR/<RUN_NAME>/test)")
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="which saved model to use (default: best, the lowest validation loss)",
    )
    parser.add_argument(
        "--n-images",
        type=int,
        default=4,
        metavar="N",
        help="tiles drawn as PNG images: inputs | truth | prediction (default: 4)",
    )
    parser.add_argument(
        "--border",
        type=int,
        default=None,
        metavar="N",
        help="vertices and samples left out at each edge of a tile in the metrics "
        "(default: the model's network.BORDER, 2 as in the thesis)",
    )
    recording = parser.add_argument_group(
        "a real recording (instead of a data split)",
        "compute MNE, dSPM and sLORETA with the model's settings and write the U-Net's "
        "source estimate of the whole recording",
    )
    source = recording.add_mutually_exclusive_group()
    source.add_argument("--raw", metavar="FILE", help="raw recording, e.g. rec_raw.fif")
    source.add_argument("--evoked", metavar="FILE", help="evoked response, e.g. rec-ave.fif")
    recording.add_argument("--inverse", metavar="FILE", help="inverse operator (-inv.fif)")
    recording.add_argument(
        "--out",
        metavar="FILE",
        help="source estimate to write (-stc.h5; default: "
        "RESULTS_DIR/<run>/predictions/<recording>-unet-stc.h5)",
    )
    return parser


def main(argv=None):
    """Run the script; ``argv`` defaults to the command line.  Returns the exit status."""
    parser = build_parser()
    return run_main(parser, argv, functools.partial(_predict, parser))


def _predict(parser, args, config, logger):
    recording = args.raw or args.evoked
    if recording and not args.inverse:
        parser.error("--raw and --evoked need --inverse FILE (an inverse operator)")
    if not recording and (args.inverse or args.out):
        parser.error("--inverse and --out go with --raw or --evoked")

    from meg_unet.prediction import predict_split
    from meg_unet.recording import predict_recording

    if recording:
        predict_recording(
            args.model if args.model else config.run_results_dir,
            args.inverse,
            raw_fname=args.raw,
            evoked_fname=args.evoked,
            out_fname=args.out,
            config=None if args.model else config,
            which=args.checkpoint,
            overwrite=args.overwrite,
        )
    else:
        predict_split(
            config,
            model_dir=args.model,
            data_dir=args.data,
            n_images=args.n_images,
            border=args.border,
            which=args.checkpoint,
        )


if __name__ == "__main__":
    sys.exit(main())
