"""Draw per-vertex heatmaps of DLE, SD and OA on the inflated cortex, density plots and
training curves from a run's predictions.

Reads ``RESULTS_DIR/<RUN_NAME>/predictions/metrics.csv`` (from predict.py) and
``RESULTS_DIR/<RUN_NAME>/model/history.csv`` (from train_network.py; without it the training
curves are skipped), and writes ``RESULTS_DIR/<RUN_NAME>/figures/``: heatmap_dle.png,
heatmap_sd.png, heatmap_oa.png, density.png, training_curves.png and, for multi-dipole data,
multi_dipole_dle.png. Figures drawn from unchanged inputs are kept unless --overwrite.
"""

import sys

from meg_unet.cli import new_parser, run_main


def build_parser():
    """Return this script's argument parser."""
    parser = new_parser(__doc__, prog="visualize_predictions.py")
    parser.add_argument("--pdf", action="store_true", help="also write PDF figures")
    return parser


def main(argv=None):
    """Run the script; ``argv`` defaults to the command line.  Returns the exit status."""
    return run_main(build_parser(), argv, _visualize)


def _visualize(args, config, logger):
    from meg_unet.visualization import make_figures

    paths = make_figures(config, pdf=args.pdf, overwrite=args.overwrite)
    logger.info(
        "%d file(s) written to %s", len(paths), config.run_results_dir / "figures"
    )


if __name__ == "__main__":
    sys.exit(main())
