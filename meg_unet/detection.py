"""Detection: is a source active in a sample, and where; calibration of the U-Net's probability.

A method *detects* a source at every local maximum of its map ``|F|`` on the cortical mesh that
reaches the method's threshold (:func:`meg_unet.metrics.localization_metrics` with
``detection_threshold``).  The same rule serves the U-Net (on its calibrated probability of
"active") and the linear methods (on their unnormalized estimates), so that all are judged alike
on every sample, noise-only ones included.

Thresholds
    Each method's threshold is chosen on the validation split for a target false-alarm rate
    ``alpha`` (``network.DETECTION_FALSE_ALARM_RATE``): the smallest value above the
    ``1 - alpha`` quantile of the map's maximum over the split's noise-only samples, so that at
    most a share ``alpha`` of them carries any detection, or, with a confidence
    (``network.DETECTION_CONFIDENCE``), so that the rate is at most ``alpha`` with that
    confidence over resampled stretches of noise (:func:`false_alarm_threshold`).

Calibration
    The network is trained with class weights, which shift its probabilities (a weight of ~960
    on the active class makes it call pixels active far too readily).  Platt scaling maps the
    network's log-odds ``z = log(p / (1 - p))`` to ``sigmoid(a z + b)``, fitted by maximum
    likelihood (:func:`fit_platt`): a temperature ``1 / a`` and a shift ``b`` that undoes the
    weighting's prior shift.  Isotonic regression (:func:`fit_isotonic`) fits any monotone
    map.  :mod:`meg_unet.calibration` picks between them on the validation split.  The
    expected calibration error (:func:`expected_calibration_error`) says how far a
    probability is from the frequency it claims: 0.9 should mean that 9 in 10 such pixels are
    active.

Summary (:func:`detection_summary`)
    From the rows of ``metrics.csv`` (one per sample and method): the false-alarm rate (share of
    noise-only samples with any detection) and detections per second of noise; precision
    (detections within ``match_radius`` of a true source) and recall (true sources with a
    detection within it) at 2 cm; the ROC AUC of "is any source active in this sample" scored
    by the map's maximum; the mean count error (detections minus true sources); the DLE of the
    samples with one true source where the method detected something.  Recall and DLE are also
    given where the sources stand clearly above the noise in that very sample (their SNR in
    the sample, :func:`meg_unet.scoring.sample_snr`, at least :data:`RECALL_MIN_SNR` and
    :data:`DLE_MIN_SNR`), and per band of that SNR (:func:`detection_by_snr`): a source of an
    SNR-3 activation spends much of its time far below SNR 1, near the zero crossings of its
    waveform and in the tail of a damped oscillation, where no method can place it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DETECTION_COLUMNS",
    "apply_isotonic",
    "apply_platt",
    "calibration_errors",
    "detection_by_snr",
    "detection_summary",
    "expected_calibration_error",
    "false_alarm_interval",
    "false_alarm_threshold",
    "fit_isotonic",
    "fit_platt",
    "reliability_curve",
]

#: Per-sample detection columns of metrics.csv (see :func:`meg_unet.metrics.localization_metrics`).
DETECTION_COLUMNS = ("score", "detections", "true_detections", "detected_sources", "snr",
                     "samples_to_source")

#: :func:`detection_summary`'s "recall, SNR >= 2": over the samples where every true source
#: stands at least at this SNR in that sample (the ``snr`` column).
RECALL_MIN_SNR = 2.0
#: :func:`detection_summary`'s "DLE, SNR >= 3", over the detected one-source samples.
DLE_MIN_SNR = 3.0
#: The bands of the sample's SNR in :func:`detection_by_snr`.
SNR_BANDS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, np.inf)

_EPS = 1e-7


def _logit(probabilities):
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_platt(probabilities, slope, intercept):
    """Map probabilities through Platt scaling: ``sigmoid(slope * logit(p) + intercept)``.

    Parameters
    ----------
    probabilities : array-like
        The network's probabilities of "active".
    slope, intercept : float
        The calibration (:func:`fit_platt`); ``(1, 0)`` leaves the probabilities unchanged.

    Returns
    -------
    calibrated : ndarray of float32
        Same shape as ``probabilities``.
    """
    z = slope * _logit(probabilities) + intercept
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # a sigmoid without overflow


def _calibration_pixels(probabilities, labels, max_pixels, seed):
    """Flat float64 probabilities and bool labels, at most ``max_pixels`` of them (seeded)."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if p.shape != y.shape:
        raise ValueError(f"probabilities and labels differ in size: {p.size} and {y.size}")
    if not y.any() or y.all():
        raise ValueError("calibration needs active and silent pixels, but got only one class")
    if p.size > max_pixels:
        keep = np.random.default_rng(seed).choice(p.size, size=max_pixels, replace=False)
        p, y = p[keep], y[keep]
    return p, y


def fit_platt(probabilities, labels, max_pixels=2_000_000, seed=0):
    """Fit Platt scaling of the probability of "active" on labelled pixels.

    Parameters
    ----------
    probabilities : array-like
        The network's probabilities of "active".
    labels : array-like of bool
        Whether each pixel is truly active.
    max_pixels : int
        At most this many pixels, drawn at random (seeded), enter the fit.
    seed : int
        Seed of that draw.

    Returns
    -------
    slope, intercept : float
        Maximizing the likelihood of ``labels`` under ``sigmoid(slope * logit(p) +
        intercept)``.
    """
    from scipy.optimize import minimize

    p, y = _calibration_pixels(probabilities, labels, max_pixels, seed)
    z = _logit(p)
    target = y.astype(np.float64)

    def loss(params):
        slope, intercept = params
        logits = slope * z + intercept
        # mean negative log-likelihood of a logistic model and its gradient
        nll = np.mean(np.logaddexp(0.0, logits) - target * logits)
        residual = 0.5 * (1.0 + np.tanh(0.5 * logits)) - target
        return nll, np.array([np.mean(residual * z), np.mean(residual)])

    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    slope, intercept = (float(v) for v in result.x)
    return slope, intercept


def fit_isotonic(probabilities, labels, n_bins=1000, max_pixels=2_000_000, seed=0):
    """Fit an isotonic (monotone, non-parametric) calibration of the probability of "active".

    The pixels are grouped into ``n_bins`` bins of equal count by their probability; an
    isotonic regression of the bins' frequency of "active" on their mean probability
    (:class:`sklearn.isotonic.IsotonicRegression`, weighted by the counts) gives a
    non-decreasing map, kept as knots for :func:`apply_isotonic`.  Unlike Platt scaling it can
    follow a network whose most confident pixels are active far less often than it claims.

    Returns
    -------
    x, y : list of float
        Knots: raw probabilities (increasing) and calibrated probabilities (non-decreasing).
    """
    from sklearn.isotonic import IsotonicRegression

    p, y = _calibration_pixels(probabilities, labels, max_pixels, seed)
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(n_bins, p.size))
    means = np.array([p[g].mean() for g in groups])
    hits = np.array([y[g].mean() for g in groups])
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    fitted = regression.fit(means, hits, sample_weight=counts).predict(means)
    # one knot per distinct raw value (bins of tied probabilities merge)
    x, first = np.unique(means, return_index=True)
    return x.tolist(), fitted[first].tolist()


def apply_isotonic(probabilities, x, y):
    """Map probabilities through isotonic knots (:func:`fit_isotonic`), linearly between them.

    A term of ``1e-6 p`` keeps the map strictly increasing over float32 probabilities, so
    that the local maxima of a calibrated map are those of the raw one (the knots' flat steps
    would tie neighbours).

    Returns
    -------
    calibrated : ndarray of float64
    """
    p = np.asarray(probabilities, dtype=np.float64)
    return np.interp(p, x, y) + 1e-6 * p


def reliability_curve(probabilities, labels, n_bins=15):
    """Bin pixels by predicted probability: mean prediction and frequency of "active" per bin.

    Returns
    -------
    confidence, frequency : ndarray, shape (n_bins,)
        Mean predicted probability and observed share of active pixels per bin (NaN where a
        bin is empty).
    counts : ndarray of int, shape (n_bins,)
        Pixels per bin.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if p.shape != y.shape:
        raise ValueError(f"probabilities and labels differ in size: {p.size} and {y.size}")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    sums = np.bincount(bins, weights=p, minlength=n_bins)
    hits = np.bincount(bins, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, hits / counts, counts


def expected_calibration_error(probabilities, labels, n_bins=15):
    """Expected calibration error: ``sum_b n_b / N |frequency_b - confidence_b|``.

    Parameters
    ----------
    probabilities : array-like
        Predicted probabilities of "active".
    labels : array-like of bool
        Whether each pixel is truly active.
    n_bins : int
        Equal-width bins over [0, 1].

    Returns
    -------
    ece : float
        0 for a perfectly calibrated predictor.  Over all pixels of a map the silent majority
        dominates; :func:`detection_summary` also reports it over the pixels predicted at
        least 0.1 (where a user reads the map).
    """
    confidence, frequency, counts = reliability_curve(probabilities, labels, n_bins)
    used = counts > 0
    if not used.any():
        return float("nan")
    gap = np.abs(frequency[used] - confidence[used])
    return float(np.sum(counts[used] * gap) / counts.sum())


def samples_to_source(any_active):
    """Distance in samples from each sample to the nearest sample with an active source.

    Parameters
    ----------
    any_active : array-like of bool, shape (n_times,)
        Whether any source is active in each sample.

    Returns
    -------
    distance : ndarray of int64, shape (n_times,)
        0 where a source is active; ``n_times`` everywhere when none is.
    """
    any_active = np.asarray(any_active, dtype=bool)
    n_times = len(any_active)
    active = np.flatnonzero(any_active)
    if not len(active):
        return np.full(n_times, n_times, dtype=np.int64)
    times = np.arange(n_times)
    after = np.clip(np.searchsorted(active, times), 0, len(active) - 1)
    before = np.clip(after - 1, 0, len(active) - 1)
    return np.minimum(np.abs(active[after] - times), np.abs(times - active[before]))


def noise_only(distance, sfreq, guard_ms):
    """Which samples count as noise only: no source active within ``guard_ms``.

    The band-pass filter of the preprocessing spreads a source's signal over the silent
    samples next to it; those are neither noise nor signal, and are left out of false-alarm
    rates and thresholds.  Where no sample lies that far from a source (the thesis's
    10-sample gaps), every silent sample counts, and ``guard_ms`` returned is 0.

    Returns
    -------
    mask : ndarray of bool
    guard_ms : float
        The guard actually applied.
    """
    distance = np.asarray(distance)
    silent = distance > 0
    guarded = distance * 1000.0 / sfreq > guard_ms
    if guarded.any():
        return guarded, float(guard_ms)
    return silent, 0.0


def stretch_gap(sfreq, guard_ms):
    """The largest gap (samples) between noise-only samples of one stretch of noise.

    A source between two noise-only samples keeps them more than the guard apart (the
    samples within ``guard_ms`` of it are not noise only, see :func:`noise_only`); without a
    guard, any gap separates stretches.
    """
    return max(1.0, guard_ms * sfreq / 1000.0)


def calibration_errors(probabilities, labels):
    """ECE over all pixels, and over those predicted at least 0.1 (where a user looks).

    Returns
    -------
    errors : dict
        ``{"all": float, "confident": float}``; ``"confident"`` is NaN when no pixel reaches
        0.1.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels, dtype=bool)
    confident = probabilities >= 0.1
    return {
        "all": expected_calibration_error(probabilities, labels),
        "confident": (expected_calibration_error(probabilities[confident], labels[confident])
                      if confident.any() else float("nan")),
    }


def false_alarm_threshold(noise_scores, rate, samples=None, max_gap=1.0, confidence=None):
    """The detection threshold that keeps the false-alarm rate at or below ``rate``.

    Parameters
    ----------
    noise_scores : array-like
        The map's maximum in each noise-only sample of the validation split.
    rate : float
        Target false-alarm rate, in (0, 1).
    samples : array-like of int | None
        The sample index of each score; needed with ``confidence``.
    max_gap : float
        Two noise-only samples further apart than this lie in different stretches of noise
        (see :func:`false_alarm_interval`).
    confidence : float | None
        None: the rate on these samples is at most ``rate``.  A level such as 0.95: the
        rate is at most ``rate`` with this confidence, i.e. the ``confidence`` quantile of
        the rate over resampled stretches of noise (the upper end of
        :func:`false_alarm_interval`'s one-sided interval) is.  A rate measured on one split
        is uncertain by about 2 points at 5 % (the noise comes in only 110-140 stretches per
        pass over ico3), so a threshold that meets ``rate`` just on the validation split
        exceeds it on new data about half the time; with a confidence it does so rarely, at
        the cost of a lower rate than asked for (about 3 % for 5 % at 0.95).

    Returns
    -------
    threshold : float
        The smallest threshold above a score that meets the rule: a sample is a false alarm
        when its maximum reaches the threshold.
    """
    scores = np.asarray(noise_scores, dtype=np.float64)
    finite = np.isfinite(scores)
    scores = scores[finite]
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), but got {rate!r}")
    if scores.size == 0:
        raise ValueError(
            "no noise-only samples to choose a detection threshold on: simulate the validation "
            "split with silent samples (simulation.TIMING = 'recording', or EMPTY_SIGNAL > 0)"
        )
    if confidence is None:
        quantile = np.quantile(scores, 1.0 - rate, method="higher")
        return float(np.nextafter(quantile, np.inf))
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1) or None, but got {confidence!r}")
    if samples is None:
        raise ValueError("a threshold with a confidence needs the samples of the scores")
    samples = np.asarray(samples, dtype=np.float64)[finite]
    order = np.argsort(samples, kind="stable")
    stretches = _Stretches(samples[order], max_gap)
    scores = scores[order]
    candidates = np.nextafter(np.unique(scores), np.inf)
    low, high = 0, len(candidates) - 1  # the highest candidate raises no alarm at all
    while low < high:  # the smallest candidate whose upper rate meets ``rate``
        middle = (low + high) // 2
        rates = stretches.resampled_rates(scores >= candidates[middle])
        if np.quantile(rates, confidence) <= rate:
            high = middle
        else:
            low = middle + 1
    return float(candidates[low])


class _Stretches:
    """Resampling stretches of noise-only samples (a block bootstrap), with fixed draws."""

    def __init__(self, samples, max_gap, n_boot=2000, seed=0):
        self.firsts = np.concatenate([[0], np.flatnonzero(np.diff(samples) > max_gap) + 1])
        lengths = np.diff(np.concatenate([self.firsts, [len(samples)]]))
        self.picks = np.random.default_rng(seed).integers(
            0, len(self.firsts), (n_boot, len(self.firsts)))
        self.lengths = lengths[self.picks].sum(axis=1)

    def resampled_rates(self, alarms):
        """The share of alarms in each resample of the stretches."""
        counts = np.add.reduceat(np.asarray(alarms, dtype=np.float64), self.firsts)
        return counts[self.picks].sum(axis=1) / self.lengths


def false_alarm_interval(alarms, samples, max_gap, level=0.95):
    """A confidence interval of the false-alarm rate, by resampling stretches of noise.

    The noise-only samples of a split come in stretches between sources, and a map that fires
    in one sample mostly fires in the next (a lag-1 correlation of about 0.9 on the quick
    profile's splits): their number overstates the evidence.  The stretches are resampled
    with replacement instead (a block bootstrap, 2000 seeded draws), so the interval is as
    wide as the stretches' number allows (about 110-140 per pass over ico3).

    Parameters
    ----------
    alarms : ndarray of bool
        Whether each noise-only sample carries a detection.
    samples : ndarray of int
        Their sample indices.
    max_gap : float
        Two noise-only samples further apart than this lie in different stretches.
    level : float
        Confidence level of the interval.

    Returns
    -------
    low, high : float
    """
    samples = np.asarray(samples, dtype=np.float64)
    order = np.argsort(samples, kind="stable")
    rates = _Stretches(samples[order], max_gap).resampled_rates(np.asarray(alarms)[order])
    low, high = np.quantile(rates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def detection_summary(table, sfreq, guard_ms=0.0):
    """Detection figures per method from the rows of metrics.csv.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of metrics.csv (:func:`meg_unet.tables.read_metrics`), with ``n_sources``,
        ``dle_cm``, ``sample`` and the :data:`DETECTION_COLUMNS`.
    sfreq : float
        Sampling rate in Hz (for detections per second of noise).
    guard_ms : float
        Silent samples closer than this to a source are not noise only (see
        :func:`noise_only`); needs the ``samples_to_source`` column.

    Returns
    -------
    summary : pandas.DataFrame
        One row per method, in table order: ``n_samples``, ``n_noise_samples``,
        ``false_alarm_rate`` with its 95 % interval ``false_alarm_low`` and
        ``false_alarm_high`` (:func:`false_alarm_interval`), ``false_detections_per_s``,
        ``precision``, ``recall`` (over every sample with a source), ``recall_snr`` (over
        the samples whose every source stands at least at :data:`RECALL_MIN_SNR` in that
        sample), ``auc``,
        ``count_error`` (mean of detections minus true sources), ``abs_count_error``,
        ``dle_detected_cm`` (mean DLE of one-source samples with a detection),
        ``dle_detected_snr_cm`` (the same over those at least at :data:`DLE_MIN_SNR`) and
        ``n_detected_single``.  Without the ``snr`` column the SNR figures are NaN.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from .tables import order_methods

    def numeric(column):
        return _numeric(part[column])

    rows = []
    for method in order_methods(table["method"].unique()):
        part = table[table["method"] == method]
        n_sources = numeric("n_sources")
        detections = numeric("detections")
        true_det = numeric("true_detections")
        found = numeric("detected_sources")
        score = numeric("score")
        dle = numeric("dle_cm")
        active = n_sources > 0
        noise = ~active
        if "samples_to_source" in part:
            noise, _ = noise_only(numeric("samples_to_source"), sfreq, guard_ms)
        scored = noise | active  # not the silent samples next to a source
        labelled = np.isfinite(score) & scored
        auc = np.nan
        if noise[labelled].any() and active[labelled].any():
            auc = roc_auc_score(active[labelled], score[labelled])
        single = (n_sources == 1) & (detections > 0) & np.isfinite(dle)
        snr = numeric("snr") if "snr" in part else np.full(len(part), np.nan)
        recall_subset = active & (snr >= RECALL_MIN_SNR)
        dle_subset = single & (snr >= DLE_MIN_SNR)
        interval = (np.nan, np.nan)
        if noise.any() and "sample" in part:
            interval = false_alarm_interval(detections[noise] > 0, numeric("sample")[noise],
                                            max_gap=stretch_gap(sfreq, guard_ms))
        rows.append({
            "method": method,
            "n_samples": int(len(part)),
            "n_noise_samples": int(noise.sum()),
            "false_alarm_rate": float(np.mean(detections[noise] > 0)) if noise.any() else np.nan,
            "false_alarm_low": float(interval[0]),
            "false_alarm_high": float(interval[1]),
            "false_detections_per_s": (float(detections[noise].sum() / (noise.sum() / sfreq))
                                       if noise.any() else np.nan),
            "precision": (float(true_det.sum() / detections.sum()) if detections.sum() > 0
                          else np.nan),
            "recall": (float(found[active].sum() / n_sources[active].sum()) if active.any()
                       else np.nan),
            "recall_snr": (float(found[recall_subset].sum() / n_sources[recall_subset].sum())
                           if recall_subset.any() else np.nan),
            "auc": float(auc),
            "count_error": float(np.mean((detections - n_sources)[scored])),
            "abs_count_error": float(np.mean(np.abs(detections - n_sources)[scored])),
            "dle_detected_cm": float(np.mean(dle[single])) if single.any() else np.nan,
            "dle_detected_snr_cm": (float(np.mean(dle[dle_subset])) if dle_subset.any()
                                    else np.nan),
            "n_detected_single": int(single.sum()),
        })
    return pd.DataFrame(rows)


def _numeric(values):
    """A column of metrics.csv as floats (read_metrics keeps text, with "NA" for missing)."""
    import pandas as pd

    from .tables import MISSING_STRINGS

    if not pd.api.types.is_numeric_dtype(values):
        values = values.where(~values.isin(MISSING_STRINGS), np.nan)
    return pd.to_numeric(values).to_numpy(dtype=np.float64)


def detection_by_snr(table, bands=SNR_BANDS):
    """Recall and DLE of detected single sources per band of the sources' SNR in the sample.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of metrics.csv with the :data:`DETECTION_COLUMNS`.
    bands : sequence of float
        Edges of the bands of the ``snr`` column (the weakest true source's SNR in the
        sample); a band holds ``low <= snr < high``.

    Returns
    -------
    by_snr : pandas.DataFrame
        One row per method and band, in table order: ``method``, ``snr_low``, ``snr_high``,
        ``n_samples`` (with a source), ``recall`` and ``dle_detected_cm`` (as in
        :func:`detection_summary`, over the band's samples).  Empty without an ``snr``
        column.
    """
    import pandas as pd

    from .tables import order_methods

    rows = []
    if "snr" not in table:
        return pd.DataFrame(rows)
    for method in order_methods(table["method"].unique()):
        part = table[table["method"] == method]
        n_sources, found = _numeric(part["n_sources"]), _numeric(part["detected_sources"])
        snr, dle = _numeric(part["snr"]), _numeric(part["dle_cm"])
        single = (n_sources == 1) & (_numeric(part["detections"]) > 0) & np.isfinite(dle)
        for low, high in zip(bands[:-1], bands[1:]):
            band = (n_sources > 0) & (snr >= low) & (snr < high)
            rows.append({
                "method": method, "snr_low": float(low), "snr_high": float(high),
                "n_samples": int(band.sum()),
                "recall": (float(found[band].sum() / n_sources[band].sum()) if band.any()
                           else np.nan),
                "dle_detected_cm": (float(np.mean(dle[band & single]))
                                    if (band & single).any() else np.nan),
            })
    return pd.DataFrame(rows)


def _by_snr_markdown(by_snr):
    """Lines of a Markdown table of :func:`detection_by_snr`: a row per band, a column pair
    per method."""
    from .tables import method_display_name

    if by_snr.empty:
        return []
    methods = list(dict.fromkeys(by_snr["method"]))
    first = by_snr[by_snr["method"] == methods[0]]
    lines = [
        "| SNR in the sample | samples | "
        + " | ".join(f"{method_display_name(m)}: recall / DLE (cm)" for m in methods) + " |",
        "| :-- | --: |" + " --: |" * len(methods),
    ]
    for band in first.itertuples(index=False):
        cells = []
        for method in methods:
            row = by_snr[(by_snr["method"] == method) & (by_snr["snr_low"] == band.snr_low)]
            recall, dle = row["recall"].iloc[0], row["dle_detected_cm"].iloc[0]
            cells.append(("--" if not np.isfinite(recall) else f"{recall:.3f}") + " / "
                         + ("--" if not np.isfinite(dle) else f"{dle:.2f}"))
        label = (f"≥ {band.snr_low:g}" if not np.isfinite(band.snr_high)
                 else f"{band.snr_low:g}-{band.snr_high:g}")
        lines.append(f"| {label} | {band.n_samples} | " + " | ".join(cells) + " |")
    return lines


def detection_markdown(summary, detection, ece, title=None, guard_ms=0.0, by_snr=None):
    """Format :func:`detection_summary` as a Markdown table with thresholds and calibration.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`detection_summary`.
    detection : dict
        The checkpoint's ``"detection"`` record of ``model.json`` (thresholds, calibration).
    ece : dict
        ``{"all": float, "confident": float}``: the U-Net's expected calibration error over
        all scored pixels, and over those it predicts at least 0.1.
    title : str | None
        A level-2 heading.
    guard_ms : float
        The guard around sources that noise-only samples kept (:func:`noise_only`).
    by_snr : pandas.DataFrame | None
        Output of :func:`detection_by_snr`, tabulated below the calibration.
    """
    from .tables import method_display_name

    def number(value, digits=3):
        return "--" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"

    def interval(row):
        low, high = row.false_alarm_low, row.false_alarm_high
        return f" ({low:.3f}-{high:.3f})" if np.isfinite(low) and np.isfinite(high) else ""

    confidence = ""
    if detection.get("confidence") is not None:
        confidence = (f" at most, with {detection['confidence']:.0%} confidence over "
                      "resampled stretches of noise")
    lines = [f"## {title}", ""] if title else []
    lines += [
        "| Method | threshold | false alarms | false detections / s | precision | recall | "
        f"recall, SNR ≥ {RECALL_MIN_SNR:g} | AUC | count error | "
        f"DLE of detected single sources (cm) | DLE, SNR ≥ {DLE_MIN_SNR:g} (cm) |",
        "| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    thresholds = detection.get("thresholds", {})
    for row in summary.itertuples(index=False):
        lines.append(
            f"| {method_display_name(row.method)} | {thresholds.get(row.method, np.nan):.3g} | "
            f"{number(row.false_alarm_rate)}{interval(row)} | "
            f"{number(row.false_detections_per_s, 2)} | "
            f"{number(row.precision)} | {number(row.recall)} | {number(row.recall_snr)} | "
            f"{number(row.auc)} | "
            f"{number(row.count_error, 2)} | {number(row.dle_detected_cm)} | "
            f"{number(row.dle_detected_snr_cm)} |"
        )
    calibration = detection.get("calibration", {})
    method = calibration.get("method", "none")
    if method == "platt":
        described = (f"Platt scaling, slope {calibration['slope']:.3g}, intercept "
                     f"{calibration['intercept']:.3g}")
    else:
        described = {"isotonic": "isotonic regression", "none": "none"}.get(method, method)
    lines += [
        "",
        f"Thresholds chosen on the validation split for a false-alarm rate of "
        f"{detection.get('false_alarm_rate', np.nan):g}{confidence} (share of noise-only "
        "samples with any "
        "detection; U-Net on its calibrated probability, the others on their unnormalized "
        "estimates; in brackets the 95 % interval of the rate, resampling the stretches of "
        "noise between sources). Detections: local maxima on the cortical mesh at or above "
        "the threshold; "
        "precision and recall at 2 cm; recall and DLE at an SNR: on the samples where every "
        "true source stands at least at that SNR in that very sample (its activation's SNR "
        "x its amplitude there / its RMS over the activation); AUC of 'any source active in "
        "this sample' scored by the map's maximum; count error: detections minus true "
        "sources, mean over samples. "
        f"{int(summary['n_noise_samples'].iloc[0]) if len(summary) else 0} noise-only samples "
        f"(no source active within {guard_ms:g} ms) of "
        f"{int(summary['n_samples'].iloc[0]) if len(summary) else 0}.",
        "",
        f"U-Net calibration chosen on the validation split ({described}): expected "
        "calibration error "
        f"{number(ece.get('all'), 4)} over all scored pixels, {number(ece.get('confident'), 4)} "
        "over the pixels predicted at least 0.1 (15 bins).",
        "",
    ]
    if by_snr is not None and not by_snr.empty:
        lines += [
            "Recall and DLE of the detected single sources by the sources' SNR in the sample "
            "(the weakest source's, for several):",
            "",
            *_by_snr_markdown(by_snr),
            "",
        ]
    return "\n".join(lines)


def write_detection_tables(metrics, sfreq, detection, probabilities, labels, out_dir,
                           title=None, guard_ms=0.0):
    """Write ``detection.csv``, ``detection.md`` and ``reliability.png`` into ``out_dir``.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The rows of metrics.csv, with the detection columns.
    sfreq : float
        Sampling rate in Hz.
    detection : dict
        The checkpoint's ``"detection"`` record of ``model.json``.
    probabilities, labels : ndarray
        The U-Net's calibrated probability and the truth ("active") of the scored pixels.
    out_dir : Path
        The predictions folder.
    title : str | None
        Heading of the Markdown table.
    guard_ms : float
        Silent samples closer than this to a source are not noise only (:func:`noise_only`).

    Returns
    -------
    written : list of Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from .io import atomic_path

    guard = guard_ms
    if "samples_to_source" in metrics:
        _, guard = noise_only(pd.to_numeric(metrics["samples_to_source"]), sfreq, guard_ms)
    summary = detection_summary(metrics, sfreq, guard_ms=guard)
    ece = calibration_errors(probabilities, labels)
    summary["threshold"] = summary["method"].map(detection.get("thresholds", {}))
    summary["ece"] = np.where(summary["method"] == "unet", ece["all"], np.nan)
    summary["ece_confident"] = np.where(summary["method"] == "unet", ece["confident"], np.nan)
    written = [out_dir / "detection.csv", out_dir / "detection.md", out_dir / "reliability.png"]
    with atomic_path(written[0]) as tmp:
        summary.to_csv(tmp, index=False, na_rep="NA")
    with atomic_path(written[1]) as tmp:
        tmp.write_text(detection_markdown(summary, detection, ece, title=title,
                                          guard_ms=guard, by_snr=detection_by_snr(metrics)))
    confidence, frequency, counts = reliability_curve(probabilities, labels)
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="calibrated")
    used = counts > 0
    axis.plot(confidence[used], frequency[used], marker="o", label="U-Net")
    axis.set_xlabel("predicted probability of 'active'")
    axis.set_ylabel("share of active pixels")
    axis.set_title(f"Reliability (ECE {ece['all']:.4f})")
    axis.legend(loc="upper left")
    figure.tight_layout()
    with atomic_path(written[2]) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return written
