#!/usr/bin/env Rscript
# Statistics tables and density plots from predict.py's metrics.csv (thesis Tables 5-11).
# Usage: Rscript analyze_results.r path/to/metrics.csv [outdir]
args <- commandArgs(trailingOnly = TRUE)
if (length(args) == 0 || args[1] %in% c("-h", "--help")) {
  cat("Usage: Rscript analyze_results.r path/to/metrics.csv [outdir]\n")
  quit(status = if (length(args) == 0) 2 else 0)
}
message("analyze_results.r: error: the statistics tables are not built yet in this version of meg-unet.")
quit(status = 3)
