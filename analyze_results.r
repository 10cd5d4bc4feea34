#!/usr/bin/env Rscript
# Statistics tables and kernel density plots of predict.py's metrics.csv (the thesis's
# Tables 5-11 and Figures 28-30). Base R only.
#
# metrics.csv is tidy long: one row per (time sample with an active true source, method), with
# the columns split, sample, method and one column per metric (dle_cm, sd_cm, oa required;
# sd_thesis_sqrtcm, recall, ghosts used when present). Rows of one (split, sample) pair are
# the same sample seen by each method, which is how the correlations pair them.
#
# The numbers and the Markdown files are the same as meg_unet/tables.py's (the tests check it):
# - missing metric values (empty, NA, NaN, ...) are left out: per method for the descriptive
#   statistics, per pair of methods for the correlations (pairwise complete, like the thesis's
#   Hmisc::rcorr);
# - St. Dev. is R's sd (n - 1 in the denominator);
# - p-values come from cor.test, two-sided unless --one-tailed (alternative "greater", the
#   thesis's one-tailed test of a positive correlation); Spearman's uses exact = FALSE, the t
#   approximation with n - 2 degrees of freedom (as Hmisc::rcorr and scipy.stats.spearmanr);
# - a correlation needs 3 pairs and neither method constant over them, otherwise it is NA.

USAGE <- paste(
  "Usage: Rscript analyze_results.r [--one-tailed] [--latex] path/to/metrics.csv [outdir]",
  "",
  "Writes to outdir (default: the CSV's folder + /statistics):",
  "  descriptive.csv, descriptive.md     n, Mean, St. Dev., Min, Max per metric and method",
  "  pearson.csv, pearson.md             Pearson correlations of each metric between methods",
  "  spearman.csv, spearman.md           Spearman correlations, likewise",
  "  density_<metric>.png                kernel density of each metric, one curve per method",
  "",
  "Options:",
  "  --one-tailed   one-sided p-values (alternative: positive correlation), as in the thesis;",
  "                 two-sided by default",
  "  --latex        also write descriptive.tex, pearson.tex and spearman.tex",
  "  -h, --help     print this help and exit",
  sep = "\n"
)

# Metric columns in display order, with their labels; a column is a metric if it is named here.
METRIC_LABELS <- c(
  dle_cm = "DLE (cm)",
  sd_cm = "SD (cm)",
  oa = "OA",
  sd_thesis_sqrtcm = "SD, thesis (\u221acm)",
  recall = "Recall",
  ghosts = "Ghost peaks"
)
# Axis labels of the density plots; plotmath draws the square root whatever the locale's fonts.
METRIC_AXIS_LABELS <- list(
  dle_cm = "Dipole localization error, DLE (cm)",
  sd_cm = "Spatial dispersion, SD (cm)",
  oa = "Overall amplitude, OA (relative, no unit)",
  sd_thesis_sqrtcm = quote("Spatial dispersion of the thesis, SD" ~ (sqrt(cm))),
  recall = "Recall (fraction of true sources found)",
  ghosts = "Ghost peaks (count)"
)
# Plot titles: "Kernel density of <title> by method"
METRIC_TITLES <- c(
  dle_cm = "DLE",
  sd_cm = "SD",
  oa = "OA",
  sd_thesis_sqrtcm = "the thesis's SD",
  recall = "recall",
  ghosts = "ghost peaks"
)
METRIC_LATEX <- c(
  dle_cm = "DLE (cm)",
  sd_cm = "SD (cm)",
  oa = "OA",
  sd_thesis_sqrtcm = "SD, thesis ($\\sqrt{\\mathrm{cm}}$)",
  recall = "Recall",
  ghosts = "Ghost peaks"
)
REQUIRED_COLUMNS <- c("split", "sample", "method", "dle_cm", "sd_cm", "oa")
# Table order: these first, then other methods (code-point order), then the U-Net last.
METHOD_ORDER <- c("mne", "dspm", "sloreta", "eloreta", "lcmv", "mxne", "gamma_map", "l2_best")
METHOD_DISPLAY_NAMES <- c(
  mne = "MNE", dspm = "dSPM", sloreta = "sLORETA", eloreta = "eLORETA", lcmv = "LCMV",
  mxne = "MxNE", gamma_map = "Gamma-MAP", l2_best = "best L2", unet = "U-Net"
)
MISSING_STRINGS <- c("", "NA", "NaN", "nan", "NAN", "N/A", "n/a", "NULL", "null", "None")
MISSING_CELL <- "\u2013" # en dash for a missing number in the Markdown tables
P_FLOOR <- 1e-4 # p-values below this print as "<0.0001", as in the thesis
# Okabe-Ito colours (readable with colour-vision deficiencies), then line types to tell more apart
CURVE_COLOURS <- c("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                   "#F0E442", "#999999", "#000000")

# ---------------------------------------------------------------------------------------------
# Errors: one readable line on stderr and a non-zero exit, never an R traceback

# Signal an error whose message is shown as is (exit status 1, or 2 for a usage error).
fail <- function(..., status = 1L) {
  stop(structure(
    class = c("analysis_error", "error", "condition"),
    list(message = paste0(...), call = NULL, status = status)
  ))
}

# ---------------------------------------------------------------------------------------------
# Command line

parse_arguments <- function(args) {
  settings <- list(one_tailed = FALSE, latex = FALSE)
  positional <- character(0)
  for (arg in args) {
    if (arg %in% c("-h", "--help")) {
      cat(USAGE, "\n", sep = "")
      quit(status = 0)
    } else if (arg == "--one-tailed") {
      settings$one_tailed <- TRUE
    } else if (arg == "--latex") {
      settings$latex <- TRUE
    } else if (startsWith(arg, "-") && nchar(arg) > 1) {
      fail("unknown option ", arg, "\n", USAGE, status = 2L)
    } else {
      positional <- c(positional, arg)
    }
  }
  if (length(positional) == 0 || length(positional) > 2) {
    fail("expected the metrics CSV and at most an output folder\n", USAGE, status = 2L)
  }
  settings$csv <- positional[1]
  settings$out_dir <- if (length(positional) == 2) {
    positional[2]
  } else {
    file.path(dirname(positional[1]), "statistics")
  }
  settings
}

# ---------------------------------------------------------------------------------------------
# Reading and checking metrics.csv

read_metrics <- function(path) {
  if (!file.exists(path) || dir.exists(path)) fail(path, ": no such metrics file")
  if (file.info(path)$size == 0) {
    fail(path, ": the file is empty (expected a header and data rows)")
  }
  # everything as text, so that the checks below see exactly what the file says
  raw <- tryCatch(
    utils::read.csv(path, colClasses = "character", na.strings = character(0),
                    check.names = FALSE, strip.white = TRUE, encoding = "UTF-8"),
    error = function(e) {
      if (grepl("no lines available", conditionMessage(e), fixed = TRUE)) {
        fail(path, ": the file is empty (expected a header and data rows)")
      }
      fail(path, ": not a readable CSV file (", conditionMessage(e), ")")
    }
  )
  names(raw) <- trimws(names(raw))
  missing_columns <- setdiff(REQUIRED_COLUMNS, names(raw))
  if (length(missing_columns) > 0) {
    fail(path, ": missing required column(s): ", paste(missing_columns, collapse = ", "),
         " (found: ", paste(names(raw), collapse = ", "), ")")
  }
  if (nrow(raw) == 0) fail(path, ": no data rows (only a header)")

  raw$split <- trimws(raw$split)
  raw$method <- trimws(raw$method)
  if (any(raw$method == "")) {
    fail(path, ": empty 'method' on line ", which(raw$method == "")[1] + 1)
  }
  sample <- suppressWarnings(as.numeric(trimws(raw$sample)))
  bad <- is.na(sample) | !is.finite(sample) | sample != round(sample)
  bad[is.na(bad)] <- TRUE
  if (any(bad)) {
    row <- which(bad)[1]
    fail(path, ": 'sample' must be an integer on every row; line ", row + 1, " has '",
         raw$sample[row], "'")
  }
  raw$sample <- sample

  for (metric in metric_columns(raw)) raw[[metric]] <- parse_metric(path, metric, raw[[metric]])

  key <- paste(raw$split, format(raw$sample, scientific = FALSE, trim = TRUE), raw$method,
               sep = "\u0001")
  repeated <- duplicated(key) | duplicated(key, fromLast = TRUE)
  if (any(repeated)) {
    row <- which(repeated)[1]
    fail(path, ": ", sum(repeated), " rows repeat a (split, sample, method), e.g. split='",
         raw$split[row], "', sample=", raw$sample[row], ", method='", raw$method[row], "'")
  }
  raw
}

# A metric column as numbers (NA where missing); anything else that is not a finite number is
# an error naming the column and the first offending lines.
parse_metric <- function(path, column, values) {
  text <- trimws(values)
  is_missing <- text %in% MISSING_STRINGS
  numbers <- suppressWarnings(as.numeric(ifelse(is_missing, NA_character_, text)))
  bad <- (is.na(numbers) & !is_missing) | is.infinite(numbers)
  if (any(bad)) {
    rows <- which(bad)
    examples <- paste0("line ", head(rows, 3) + 1, ": '", values[head(rows, 3)], "'",
                       collapse = ", ")
    fail(path, ": column '", column, "' has ", length(rows),
         " value(s) that are not finite numbers (", examples, ")")
  }
  numbers[is_missing] <- NA_real_
  numbers
}

metric_columns <- function(df) intersect(names(METRIC_LABELS), names(df))

order_methods <- function(methods) {
  methods <- unique(methods)
  known <- METHOD_ORDER[METHOD_ORDER %in% methods]
  # radix sorting is locale-independent, like Python's sorted()
  others <- sort(setdiff(methods, c(METHOD_ORDER, "unet")), method = "radix")
  c(known, others, if ("unet" %in% methods) "unet")
}

display_name <- function(method) {
  ifelse(method %in% names(METHOD_DISPLAY_NAMES), METHOD_DISPLAY_NAMES[method], method)
}

# ---------------------------------------------------------------------------------------------
# Statistics

# n, mean, sd, min, max per (metric, method), missing values left out.
describe <- function(df, metrics, methods) {
  rows <- list()
  for (metric in metrics) {
    for (method in methods) {
      x <- df[[metric]][df$method == method]
      x <- x[!is.na(x)]
      n <- length(x)
      rows[[length(rows) + 1]] <- data.frame(
        method = method, metric = metric, n = n,
        mean = if (n > 0) mean(x) else NA_real_,
        sd = if (n > 1) sd(x) else NA_real_,
        min = if (n > 0) min(x) else NA_real_,
        max = if (n > 0) max(x) else NA_real_,
        stringsAsFactors = FALSE
      )
    }
  }
  do.call(rbind, rows)
}

# One column per method, one row per (split, sample) pair: the metric's values side by side.
wide_by_sample <- function(df, metric, methods) {
  keys <- paste(df$split, format(df$sample, scientific = FALSE, trim = TRUE), sep = "\u0001")
  unique_keys <- unique(keys)
  wide <- matrix(NA_real_, nrow = length(unique_keys), ncol = length(methods))
  wide[cbind(match(keys, unique_keys), match(df$method, methods))] <- df[[metric]]
  wide
}

# r, p and n of one pair of methods over the samples where both have a value.
correlate <- function(x, y, method, alternative) {
  both <- !is.na(x) & !is.na(y)
  x <- x[both]
  y <- y[both]
  n <- length(x)
  # cor.test needs 3 pairs; a constant has no correlation (same rule as tables.py)
  if (n < 3 || diff(range(x)) == 0 || diff(range(y)) == 0) return(c(r = NA, p = NA, n = n))
  test <- if (method == "pearson") {
    cor.test(x, y, method = "pearson", alternative = alternative)
  } else {
    cor.test(x, y, method = "spearman", alternative = alternative, exact = FALSE)
  }
  c(r = unname(test$estimate), p = test$p.value, n = n)
}

# Per metric: matrices r, p (NA on the diagonal) and n between methods.
correlation_tables <- function(df, metrics, methods, method, alternative) {
  k <- length(methods)
  tables <- list()
  for (metric in metrics) {
    wide <- wide_by_sample(df, metric, methods)
    r <- p <- matrix(NA_real_, k, k, dimnames = list(methods, methods))
    n <- matrix(0L, k, k, dimnames = list(methods, methods))
    for (i in seq_len(k)) {
      for (j in i:k) {
        result <- correlate(wide[, i], wide[, j], method, alternative)
        r[i, j] <- r[j, i] <- result[["r"]]
        n[i, j] <- n[j, i] <- as.integer(result[["n"]])
        # testing a method against itself says nothing
        if (i != j) p[i, j] <- p[j, i] <- result[["p"]]
      }
    }
    tables[[metric]] <- list(r = r, p = p, n = n)
  }
  tables
}

# One row per metric and unordered pair of different methods.
correlations_long <- function(tables, alternative) {
  rows <- list()
  for (metric in names(tables)) {
    t <- tables[[metric]]
    methods <- rownames(t$r)
    for (i in seq_along(methods)) {
      for (j in seq_along(methods)) {
        if (j <= i) next
        rows[[length(rows) + 1]] <- data.frame(
          metric = metric, method_1 = methods[i], method_2 = methods[j], n = t$n[i, j],
          r = t$r[i, j], p = t$p[i, j], alternative = alternative, stringsAsFactors = FALSE
        )
      }
    }
  }
  if (length(rows) == 0) {
    return(data.frame(metric = character(0), method_1 = character(0),
                      method_2 = character(0), n = integer(0), r = numeric(0),
                      p = numeric(0), alternative = character(0)))
  }
  do.call(rbind, rows)
}

# ---------------------------------------------------------------------------------------------
# Markdown (byte for byte the layout of meg_unet/tables.py)

format_number <- function(x, digits) {
  ifelse(is.na(x), MISSING_CELL, sprintf(paste0("%.", digits, "f"), x))
}
format_p <- function(p) {
  ifelse(is.na(p), MISSING_CELL, ifelse(p < P_FLOOR, "<0.0001", sprintf("%.4f", p)))
}
markdown_row <- function(cells) paste0("| ", paste(cells, collapse = " | "), " |")
markdown_rule <- function(n_left, n_right) {
  paste0("|", paste(c(rep(":--", n_left), rep("--:", n_right)), collapse = "|"), "|")
}

# The thesis's Table 5: one row per (metric, method), blocks per metric.
descriptive_markdown <- function(summary, title) {
  lines <- c(paste0("## ", title), "",
             markdown_row(c("Metric", "Method", "Mean", "St. Dev.", "Min", "Max", "n")),
             markdown_rule(2, 5))
  previous <- ""
  for (i in seq_len(nrow(summary))) {
    row <- summary[i, ]
    lines <- c(lines, markdown_row(c(
      if (row$metric != previous) METRIC_LABELS[[row$metric]] else "",
      display_name(row$method),
      format_number(c(row$mean, row$sd, row$min, row$max), 3),
      sprintf("%d", as.integer(row$n))
    )))
    previous <- row$metric
  }
  c(lines, "", "n: samples with a value; St. Dev. divides by n \u2212 1 (like R's sd).")
}

correlation_caption <- function(method, alternative) {
  what <- if (method == "pearson") {
    "Pearson's r between methods (scipy.stats.pearsonr; R's cor.test)"
  } else {
    paste0("Spearman's rank correlation \u03c1 between methods; p from the t approximation ",
           "with n \u2212 2 degrees of freedom (scipy.stats.spearmanr; ",
           "R's cor.test with exact = FALSE)")
  }
  sides <- c("two.sided" = "two-sided p-values",
             "greater" = "one-sided p-values (alternative: positive correlation)")[[alternative]]
  paste0(what, "; ", sides, "; samples paired on (split, sample), pairwise complete.")
}

# "n = ...; p ..." over the pairs of different methods, as under the thesis's tables.
correlation_footer <- function(t) {
  upper <- upper.tri(t$r)
  if (!any(upper)) return("(one method: nothing to correlate)")
  n <- t$n[upper]
  n_text <- if (min(n) == max(n)) {
    sprintf("n = %d", min(n))
  } else {
    sprintf("n = %d\u2013%d", min(n), max(n))
  }
  p <- t$p[upper]
  p <- p[!is.na(p)]
  p_text <- if (length(p) == 0) {
    "no p-values"
  } else if (max(p) < P_FLOOR) {
    "p < 0.0001"
  } else {
    sprintf("largest p = %.4f", max(p))
  }
  paste0(n_text, "; ", p_text)
}

# The thesis's Tables 6-11: upper triangles of r and of p per metric.
correlation_markdown <- function(tables, method, alternative, title) {
  lines <- c(paste0("## ", title), "", correlation_caption(method, alternative))
  for (metric in names(tables)) {
    t <- tables[[metric]]
    names_shown <- display_name(rownames(t$r))
    k <- length(names_shown)
    lines <- c(lines, "", paste0("### ", METRIC_LABELS[[metric]]), "")
    for (part in c("r", "p")) {
      symbol <- if (part == "p") "p" else if (method == "pearson") "r" else "\u03c1"
      lines <- c(lines, markdown_row(c(symbol, names_shown)), markdown_rule(1, k))
      for (i in seq_len(k)) {
        cells <- character(k)
        for (j in seq_len(k)) {
          shown <- j > i || (j == i && part == "r")
          cells[j] <- if (!shown) "" else if (part == "r") {
            format_number(t$r[i, j], 2)
          } else {
            format_p(t$p[i, j])
          }
        }
        lines <- c(lines, markdown_row(c(names_shown[i], cells)))
      }
      lines <- c(lines, "")
    }
    lines <- c(lines, correlation_footer(t))
  }
  lines
}

# ---------------------------------------------------------------------------------------------
# LaTeX (--latex): plain tabular environments, no package needed

latex_escape <- function(text) {
  text <- gsub("\\\\", "\\\\textbackslash{}", text)
  text <- gsub("([#$%&_{}])", "\\\\\\1", text)
  text <- gsub("~", "\\\\textasciitilde{}", text)
  gsub("\\^", "\\\\textasciicircum{}", text)
}

descriptive_latex <- function(summary, csv) {
  lines <- c("\\begin{table}[htbp]", "\\centering",
             paste0("\\caption{Descriptive statistics of ", latex_escape(basename(csv)),
                    ". St.~Dev.\\ divides by $n - 1$.}"),
             "\\begin{tabular}{llrrrrr}", "\\hline",
             "Metric & Method & Mean & St.~Dev. & Min & Max & $n$ \\\\")
  previous <- ""
  for (i in seq_len(nrow(summary))) {
    row <- summary[i, ]
    if (row$metric != previous) lines <- c(lines, "\\hline")
    cells <- c(if (row$metric != previous) METRIC_LATEX[[row$metric]] else "",
               latex_escape(display_name(row$method)),
               ifelse(is.na(c(row$mean, row$sd, row$min, row$max)), "--",
                      sprintf("%.3f", c(row$mean, row$sd, row$min, row$max))),
               sprintf("%d", as.integer(row$n)))
    lines <- c(lines, paste0(paste(cells, collapse = " & "), " \\\\"))
    previous <- row$metric
  }
  c(lines, "\\hline", "\\end{tabular}", "\\end{table}")
}

correlation_latex <- function(tables, method, alternative, csv) {
  name <- if (method == "pearson") "Pearson's correlations" else "Spearman's ranked correlations"
  sides <- if (alternative == "greater") "one-tailed" else "two-sided"
  lines <- character(0)
  for (metric in names(tables)) {
    t <- tables[[metric]]
    shown <- latex_escape(display_name(rownames(t$r)))
    k <- length(shown)
    lines <- c(lines, "\\begin{table}[htbp]", "\\centering",
               paste0("\\caption{", name, " of ", METRIC_LATEX[[metric]], " (",
                      latex_escape(basename(csv)), "); ",
                      gsub("<", "$<$", correlation_footer(t), fixed = TRUE), ", ", sides,
                      ".}"),
               paste0("\\begin{tabular}{l", strrep("r", k), "}"), "\\hline",
               paste0(" & ", paste(shown, collapse = " & "), " \\\\"), "\\hline")
    for (i in seq_len(k)) {
      cells <- ifelse(seq_len(k) >= i,
                      ifelse(is.na(t$r[i, ]), "--", sprintf("%.2f", t$r[i, ])), "")
      lines <- c(lines, paste0(shown[i], " & ", paste(cells, collapse = " & "), " \\\\"))
    }
    lines <- c(lines, "\\hline", "\\end{tabular}", "\\end{table}", "")
  }
  gsub("\u2013", "--", lines, fixed = TRUE)
}

# ---------------------------------------------------------------------------------------------
# Density plots (the thesis's Figures 28-30)

plot_density <- function(df, metric, methods, csv, file) {
  values <- lapply(methods, function(m) {
    x <- df[[metric]][df$method == m]
    x[!is.na(x)]
  })
  names(values) <- methods
  n <- vapply(values, length, integer(1))
  drawable <- n >= 2 # density() needs two values
  if (!any(drawable)) {
    message("analyze_results.r: ", metric, ": fewer than 2 values per method; no density plot")
    return(invisible(FALSE))
  }
  # Gaussian kernel, bandwidth from Silverman's rule of thumb (density()'s default, bw.nrd0)
  densities <- lapply(values[drawable], density)
  x_range <- range(unlist(lapply(densities, `[[`, "x")))
  y_max <- max(unlist(lapply(densities, `[[`, "y")))
  colours <- rep(CURVE_COLOURS, length.out = length(methods))
  # line types as well as colours, so overlapping curves and grey-scale prints stay apart
  line_types <- rep(c(1, 2, 4, 5, 6, 3), length.out = length(methods))
  # room above the curves for the legend (about 6% of the height per legend row)
  legend_columns <- if (length(methods) > 5) 2 else 1
  legend_share <- 0.06 * ceiling(length(methods) / legend_columns) + 0.04
  bandwidths <- rep(NA_real_, length(methods))
  bandwidths[drawable] <- vapply(densities, `[[`, numeric(1), "bw")

  temporary <- tempfile(pattern = paste0(".", basename(file), "."), tmpdir = dirname(file),
                        fileext = ".png")
  png(temporary, width = 1800, height = 1200, res = 200)
  # on an error: close the device and leave no temporary file behind
  on.exit({
    if (dev.cur() > 1) dev.off()
    unlink(temporary)
  })
  par(mar = c(5.5, 4.5, 4, 1), las = 1)
  plot(NA, xlim = x_range, ylim = c(0, y_max / (1 - legend_share)), yaxs = "i",
       xlab = "", ylab = "Density",
       main = paste0("Kernel density of ", METRIC_TITLES[[metric]], " by method"))
  title(xlab = METRIC_AXIS_LABELS[[metric]], line = 2.5)
  mtext(csv, side = 3, line = 0.4, cex = 0.75)
  # curves reaching past the data's range (below 0 for a DLE, say) are the kernel's tails
  mtext(paste("Gaussian kernels, bandwidth bw.nrd0 per method;",
              "tails beyond the data's range come from the smoothing"),
        side = 1, line = 4.2, cex = 0.7, col = "grey30")
  for (i in which(drawable)) {
    lines(densities[[methods[i]]], col = colours[i], lty = line_types[i], lwd = 2)
  }
  legend("topright", bty = "n", lwd = 2, col = colours, lty = line_types, ncol = legend_columns,
         seg.len = 3,
         legend = paste0(display_name(methods), " (n = ", n,
                         ifelse(drawable, paste0(", bw = ", signif(bandwidths, 2), ")"),
                                ", not drawn)")))
  dev.off()
  file.rename(temporary, file)
  invisible(TRUE)
}

# ---------------------------------------------------------------------------------------------
# Files, written to a temporary name and renamed so a reader never sees a half-written file

write_text <- function(lines, file) {
  temporary <- tempfile(pattern = paste0(".", basename(file), "."), tmpdir = dirname(file))
  connection <- file(temporary, open = "wb")
  writeLines(enc2utf8(lines), connection, useBytes = TRUE) # UTF-8 whatever the locale
  close(connection)
  file.rename(temporary, file)
}

write_table <- function(table, file) {
  temporary <- tempfile(pattern = paste0(".", basename(file), "."), tmpdir = dirname(file))
  utils::write.csv(table, temporary, row.names = FALSE, na = "", fileEncoding = "UTF-8")
  file.rename(temporary, file)
}

main <- function(args) {
  settings <- parse_arguments(args)
  csv <- settings$csv
  alternative <- if (settings$one_tailed) "greater" else "two.sided"
  df <- read_metrics(csv)
  metrics <- metric_columns(df)
  methods <- order_methods(df$method)

  out_dir <- settings$out_dir
  dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
  if (!dir.exists(out_dir)) fail(out_dir, ": cannot create the output folder")
  written <- character(0)
  output <- function(name) {
    written <<- c(written, file.path(out_dir, name))
    file.path(out_dir, name)
  }

  summary <- describe(df, metrics, methods)
  write_table(summary, output("descriptive.csv"))
  write_text(descriptive_markdown(summary, paste0("Descriptive statistics: ", csv)),
             output("descriptive.md"))
  if (settings$latex) write_text(descriptive_latex(summary, csv), output("descriptive.tex"))

  for (method in c("pearson", "spearman")) {
    tables <- correlation_tables(df, metrics, methods, method, alternative)
    long <- correlations_long(tables, sub(".", "-", alternative, fixed = TRUE))
    write_table(long, output(paste0(method, ".csv")))
    title <- paste0(if (method == "pearson") "Pearson" else "Spearman", " correlations: ", csv)
    write_text(correlation_markdown(tables, method, alternative, title),
               output(paste0(method, ".md")))
    if (settings$latex) {
      write_text(correlation_latex(tables, method, alternative, csv),
                 output(paste0(method, ".tex")))
    }
  }

  for (metric in metrics) {
    file <- file.path(out_dir, paste0("density_", metric, ".png"))
    if (plot_density(df, metric, methods, csv, file)) written <- c(written, file)
  }
  cat("analyze_results.r: ", length(unique(df$method)), " methods, ", nrow(df),
      " rows; wrote ", length(written), " files to ", out_dir, "\n", sep = "")
}

# ---------------------------------------------------------------------------------------------

args <- commandArgs(trailingOnly = TRUE)
if (length(args) == 0) {
  message(USAGE)
  quit(status = 2)
}
options(warn = 1) # a warning, if any, is printed where it happens, not as a list at the end
status <- tryCatch(
  {
    main(args)
    0L
  },
  analysis_error = function(e) {
    message("analyze_results.r: error: ", conditionMessage(e))
    e$status
  },
  error = function(e) {
    message("analyze_results.r: error: ", conditionMessage(e))
    1L
  }
)
quit(status = status)
