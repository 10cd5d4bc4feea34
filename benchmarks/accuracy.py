"""The thesis's experiments and the hard cases beyond them, end to end, with a results table.

``--experiment thesis`` (default) reproduces chapter 4 of the thesis: three networks, each
trained and tested on its own data set, then crossed and tried on an unseen multi-dipole set.

=========  ========================================  ==========================================
network    trained on                                thesis
=========  ========================================  ==========================================
meg1       MEG, single dipole, SNR 3 (lambda2 1/9)   MEG1 (Table 5)
meg2       MEG, single dipole, SNR 1 (lambda2 1)     MEG2 (Tables 3, 13-15)
megeeg1    MEG+EEG, single dipole, SNR 1 (lambda2 1) M/EEG1 (Tables 12, 16, 17)
=========  ========================================  ==========================================

Evaluations: each network on its own test split; meg1 on meg2's data and back (Tables 13-14);
meg2 on megeeg1's data and back (Tables 15-16); megeeg1 on a 2-5-dipole MEG+EEG set at SNR 1
(Table 17).  In the thesis SNR only set lambda2 = 1/SNR**2 (its noise was not controlled); here
SNR also sets the noise, so MEG2 and M/EEG1 are trained on noisier data than MEG1.

``--experiment multi`` goes beyond the thesis (README "Results"): one network trained on mixed
data (1-5 simultaneous dipoles, SNR drawn log-uniformly in 1-5 per activation, MEG), compared
with the three L2 inputs and the stronger standard solvers of :mod:`meg_unet.baselines`
(eLORETA, LCMV, MxNE, Gamma-MAP and the L2 method with the lambda2 that minimizes DLE on the
validation split) on exactly the same activation windows: single dipoles at SNR 1 and 3, 2-5
dipoles at SNR 3, and a robustness curve of mean DLE against SNR (0.5-10, single dipoles; 0.5
and 10 lie outside the training range).  Every set of this experiment uses one inverse operator
regularization, lambda2 = 1/9, as a researcher applies one operator to all data; the
"best lambda2" row shows what tuning lambda2 would give the L2 methods.

Each step runs the repository's scripts (``simulate_data.py``, ``train_network.py``,
``predict.py``) as a user would, with ``--set`` overrides; their logs go to
``RESULTS_DIR/accuracy-<profile>/logs/``.  What already exists is skipped: splits that match
their settings, finished trainings (an interrupted one resumes), predictions newer than their
model, baseline evaluations already written.  Run from the repository root::

    python benchmarks/accuracy.py --profile quick                    # 21 min on 2 cores
    python benchmarks/accuracy.py --profile quick --experiment multi # about 28 min
    python benchmarks/accuracy.py --profile thesis                   # a GPU job

and read ``benchmarks/results/accuracy-<profile>.md`` (``accuracy-<profile>-multi.md``).
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from machine import machine_line  # noqa: E402  (benchmarks/machine.py)
from meg_unet.config import load_config  # noqa: E402
from meg_unet.io import atomic_path, read_json  # noqa: E402

#: The L2 methods that are the network's inputs, in table order.
L2_METHODS = ("mne", "dspm", "sloreta")


@dataclass(frozen=True)
class DataSet:
    """A simulated data set: the ``config.py`` settings that differ from the defaults."""

    name: str
    settings: dict
    description: str

    def run_name(self, profile):
        """The RUN_NAME of this data set (and of the network trained on it) for a profile."""
        return f"{self.name}-{profile}"


@dataclass(frozen=True)
class Evaluation:
    """One trained network applied to the test split of one data set."""

    title: str
    network: str
    data: str
    thesis_table: str | None = None
    condition: str | None = None  # multi experiment: "single, SNR 1" etc.
    snr: float | None = None  # multi experiment: the SNR of a single-dipole set on the curve


_THESIS_LAMBDA2 = "lambda2 = 1/SNR**2"
_MULTI_LAMBDA2 = 1.0 / 9.0

DATA_SETS = {
    data.name: data
    for data in (
        DataSet("meg1", {"SENSORS": "meg", "SNR": 3.0, "N_DIPOLES": 1},
                "MEG, single dipole, SNR 3 (lambda2 = 1/9)"),
        DataSet("meg2", {"SENSORS": "meg", "SNR": 1.0, "N_DIPOLES": 1},
                "MEG, single dipole, SNR 1 (lambda2 = 1)"),
        DataSet("megeeg1", {"SENSORS": "meg+eeg", "SNR": 1.0, "N_DIPOLES": 1},
                "MEG+EEG, single dipole, SNR 1 (lambda2 = 1)"),
        DataSet("megeeg1-multi", {"SENSORS": "meg+eeg", "SNR": 1.0, "N_DIPOLES": (2, 5)},
                "MEG+EEG, 2-5 simultaneous dipoles, SNR 1 (lambda2 = 1)"),
        # Several sources are harder to learn: the quick profile's 12 epochs left this
        # network's validation loss still falling, so it trains three times as long.
        DataSet("mixed", {"SENSORS": "meg", "SNR": (1.0, 5.0), "N_DIPOLES": (1, 5),
                          "LAMBDA2": _MULTI_LAMBDA2, "network.EPOCHS": 36},
                "MEG, 1-5 simultaneous dipoles, SNR log-uniform in 1-5 (lambda2 = 1/9)"),
        DataSet("multi-2to5-snr3", {"SENSORS": "meg", "SNR": 3.0, "N_DIPOLES": (2, 5),
                                    "LAMBDA2": _MULTI_LAMBDA2},
                "MEG, 2-5 simultaneous dipoles, SNR 3 (lambda2 = 1/9)"),
        *(
            DataSet(f"multi-single-snr{snr:g}", {"SENSORS": "meg", "SNR": snr, "N_DIPOLES": 1,
                                                 "LAMBDA2": _MULTI_LAMBDA2},
                    f"MEG, single dipole, SNR {snr:g} (lambda2 = 1/9)")
            for snr in (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
        ),
    )
}

#: The thesis's experiments keep the thesis's data, inputs and network whatever the profile's
#: defaults: the quick profile's recording-like data, noise-scaled inputs, localization term
#: and mesh neighbours serve the detector (see parameters/profiles.py), not these tables.  The
#: quick profile keeps its former 3 training passes over ico3 and 12 epochs here.
THESIS_RECIPE = {
    "simulation.TIMING": "thesis",
    "data_provider.NORMALIZE_OVER": "sample",
    "network.CLASS_WEIGHTING": "inverse_frequency",
    "network.LOCALIZATION_LOSS": 0.0,
    "network.MESH_CONTEXT": False,
}
QUICK_THESIS_RECIPE = {"simulation.PASSES": {"train": 3, "valid": 1, "test": 1},
                       "network.EPOCHS": 12}

#: Networks each experiment trains (data sets of the same name).
NETWORKS = {"thesis": ("meg1", "meg2", "megeeg1"), "multi": ("mixed",)}

CURVE_SNRS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)

EVALUATIONS = {
    "thesis": (
        Evaluation("MEG1 network on MEG1 data", "meg1", "meg1", "5"),
        Evaluation("MEG2 network on MEG2 data", "meg2", "meg2", None),
        Evaluation("M/EEG1 network on M/EEG1 data", "megeeg1", "megeeg1", "12"),
        Evaluation("MEG1 network on MEG2 data", "meg1", "meg2", "13"),
        Evaluation("MEG2 network on MEG1 data", "meg2", "meg1", "14"),
        Evaluation("MEG2 network on M/EEG1 data", "meg2", "megeeg1", "15"),
        Evaluation("M/EEG1 network on MEG2 data", "megeeg1", "meg2", "16"),
        Evaluation("M/EEG1 network on 2-5 dipoles (M/EEG, SNR 1)", "megeeg1", "megeeg1-multi",
                   "17"),
    ),
    "multi": (
        Evaluation("Single dipoles, SNR 1", "mixed", "multi-single-snr1", condition="single, SNR 1",
                   snr=1.0),
        Evaluation("Single dipoles, SNR 3", "mixed", "multi-single-snr3", condition="single, SNR 3",
                   snr=3.0),
        Evaluation("2-5 dipoles, SNR 3", "mixed", "multi-2to5-snr3",
                   condition="2-5 dipoles, SNR 3"),
        *(
            Evaluation(f"Single dipoles, SNR {snr:g} (curve)", "mixed", f"multi-single-snr{snr:g}",
                       condition="curve", snr=snr)
            for snr in CURVE_SNRS if snr not in (1.0, 3.0)
        ),
    ),
}

#: The thesis's published means (chapter 4): DLE in cm, SD in its tables' 10 x sqrt(cm) (here
#: divided by 10 to compare with ``sd_thesis_sqrtcm``), OA relative.  Keys: table number.
THESIS_MEANS = {
    "5": {"dle": (4.901, 4.289, 4.171, 3.587), "sd": (23.923, 23.544, 23.458, 19.170),
          "oa": (112.658, 144.095, 153.743, 138.884)},
    "12": {"dle": (4.772, 4.536, 4.449, 3.382), "sd": (22.491, 23.060, 22.951, 22.094),
           "oa": (106.161, 132.223, 136.801, 104.916)},
    "13": {"dle": (5.282, 4.967, 4.872, 4.489), "sd": (23.060, 23.460, 23.373, 23.342),
           "oa": (113.547, 151.765, 157.972, 138.888)},
    "14": {"dle": (5.267, 4.838, 4.791, 4.097), "sd": (23.791, 23.431, 23.344, 23.059),
           "oa": (115.365, 148.009, 155.476, 147.738)},
    "15": {"dle": (4.394, 3.719, 3.596, 4.106), "sd": (22.360, 23.101, 23.049, 22.873),
           "oa": (106.263, 133.156, 137.023, 147.694)},
    "16": {"dle": (5.260, 4.852, 4.808, 4.190), "sd": (23.665, 23.577, 23.456, 22.634),
           "oa": (113.560, 150.146, 157.497, 107.170)},
    "17": {"dle": (4.846, 4.771, 4.760, 4.324), "sd": (23.162, 23.533, 23.605, 22.619),
           "oa": (108.505, 127.918, 134.513, 103.458)},
}
_THESIS_METHOD_ORDER = ("mne", "sloreta", "dspm", "unet")  # the row order of its tables


def thesis_reference(table):
    """The thesis's means of one table as ``{(metric, method): mean}`` for summary_markdown."""
    from meg_unet.metrics import THESIS_SD_TABLE_SCALE

    if table is None:
        return None
    means = THESIS_MEANS[table]
    reference = {}
    for method, dle, sd, oa in zip(_THESIS_METHOD_ORDER, means["dle"], means["sd"], means["oa"]):
        reference[("dle_cm", method)] = dle
        reference[("sd_thesis_sqrtcm", method)] = sd / THESIS_SD_TABLE_SCALE
        reference[("oa", method)] = oa
    return reference


# ---------------------------------------------------------------------------------------------
# Running the scripts


@dataclass
class Runner:
    """Runs the repository's scripts for one profile, logging each call to its own file."""

    config_file: Path
    profile: str
    extra_settings: tuple = ()
    dry_run: bool = False
    timings: dict = field(default_factory=dict)

    def config(self, data):
        """The validated configuration of a data set's run."""
        return load_config(self.config_file, overrides=self.overrides(data))

    def overrides(self, data):
        """``KEY=VALUE`` texts for ``--set``: profile, run name, the data set, the extras."""
        values = {"PROFILE": self.profile, "RUN_NAME": data.run_name(self.profile),
                  **THESIS_RECIPE}
        if self.profile == "quick":
            values.update(QUICK_THESIS_RECIPE)
        values.update(data.settings)
        return [f"{key}={_setting_text(value)}" for key, value in values.items()] + list(
            self.extra_settings)

    def run(self, step, script, data, *arguments):
        """Run ``script`` for data set ``data``; raise with the log's tail if it fails."""
        command = [sys.executable, str(ROOT / script), "--config", str(self.config_file)]
        for pair in self.overrides(data):
            command += ["--set", pair]
        command += [str(a) for a in arguments]
        log_dir = self.log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{step}.log"
        shown = " ".join(_quote(str(Path(part).relative_to(ROOT)) if part.startswith(str(ROOT))
                                else part) for part in command[1:])
        print(f"[{_now()}] {step}: python {shown}", flush=True)
        if self.dry_run:
            return 0.0
        start = time.perf_counter()
        with open(log, "w") as stream:
            completed = subprocess.run(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
        self.timings[step] = seconds
        if completed.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(
                f"{step} failed (exit status {completed.returncode}); the end of {log}:\n"
                + "\n".join(tail)
            )
        print(f"[{_now()}]   done in {seconds / 60:.1f} min (log: {log})", flush=True)
        return seconds

    def log_dir(self):
        base = load_config(self.config_file, overrides=self.extra_settings).results_dir
        return base / f"accuracy-{self.profile}" / "logs"


def _setting_text(value):
    """How a value is written after ``--set KEY=`` (plain names unquoted, like a user would)."""
    if isinstance(value, str) and value.replace("+", "").replace("-", "").isalnum():
        return value
    return repr(value)


def _quote(text):
    return f"'{text}'" if any(c in text for c in " ()'\"*") else text


def _now():
    return datetime.datetime.now().strftime("%H:%M:%S")


def simulate(runner, data, splits):
    runner.run(f"simulate-{data.name}", "simulate_data.py", data, "--splits", *splits)


def training_state(model_dir, epochs):
    """``"done"``, ``"resume"`` or ``"fresh"`` for a run's model folder.

    A training that stopped early, or that completed ``epochs`` (the configured
    ``network.EPOCHS``, which may have been raised since), is done; one with a checkpoint
    resumes.
    """
    sidecar_path = model_dir / "model.json"
    if not sidecar_path.is_file():
        return "fresh"
    sidecar = read_json(sidecar_path)
    if sidecar.get("stopped_early") or sidecar.get("epochs_completed", 0) >= epochs:
        return "done"
    return "resume" if (model_dir / "last.keras").is_file() else "fresh"


def train(runner, data):
    config = runner.config(data)
    model_dir = config.run_results_dir / "model"
    state = training_state(model_dir, config.network.EPOCHS)
    if state == "done":
        print(f"[{_now()}] train-{data.name}: trained already ({model_dir})", flush=True)
        return
    arguments = ["--resume"] if state == "resume" else (
        ["--overwrite"] if model_dir.exists() else [])
    runner.run(f"train-{data.name}", "train_network.py", data, *arguments)


def predictions_dir(runner, evaluation):
    network = DATA_SETS[evaluation.network]
    config = runner.config(network)
    own = evaluation.network == evaluation.data
    name = "predictions" if own else (
        f"predictions-{DATA_SETS[evaluation.data].run_name(runner.profile)}-test")
    return config, config.run_results_dir / name


def predict(runner, evaluation):
    config, out_dir = predictions_dir(runner, evaluation)
    metrics = out_dir / "metrics.csv"
    model = config.run_results_dir / "model" / "best.keras"
    if metrics.is_file() and model.is_file() and metrics.stat().st_mtime > model.stat().st_mtime:
        print(f"[{_now()}] predict {evaluation.title}: done already ({metrics})", flush=True)
        return metrics
    data_config = runner.config(DATA_SETS[evaluation.data])
    step = f"predict-{evaluation.network}-on-{evaluation.data}"
    runner.run(step, "predict.py", DATA_SETS[evaluation.network],
               "--data", data_config.run_data_dir / "test")
    return metrics


# ---------------------------------------------------------------------------------------------
# Tables


def compare_with_l2(summary, methods=L2_METHODS):
    """How the U-Net's mean DLE compares with the best of ``methods``.

    Returns
    -------
    text : str
        E.g. "yes: U-Net 0.59 cm vs sLORETA 1.51 cm, 61 % lower".
    """
    from meg_unet.tables import method_display_name

    dle = summary[summary["metric"] == "dle_cm"].set_index("method")["mean"]
    candidates = [m for m in methods if m in dle.index]
    best = min(candidates, key=lambda m: dle[m])
    unet, other = dle["unet"], dle[best]
    change = 100.0 * (other - unet) / other
    verdict = "yes" if unet < other else "no"
    direction = "lower" if unet < other else "higher"
    return (f"{verdict}: U-Net {unet:.2f} cm vs {method_display_name(best)} {other:.2f} cm "
            f"(the best of {', '.join(method_display_name(m) for m in candidates)}), "
            f"{abs(change):.0f} % {direction}")


def thesis_section(runner, evaluation, metrics_path):
    from meg_unet.tables import read_metrics, summary_markdown, summary_table

    df = read_metrics(metrics_path)
    summary = summary_table(df)
    data = DATA_SETS[evaluation.data]
    table = f"Table {evaluation.thesis_table}" if evaluation.thesis_table else "no thesis table"
    title = f"{evaluation.title} ({table})"
    text = summary_markdown(summary, title=title, reference=thesis_reference(
        evaluation.thesis_table))
    verdict = compare_with_l2(summary)
    return (
        f"{text}\nData: {data.description}; network `{evaluation.network}`; "
        f"metrics from `{metrics_path.relative_to(ROOT) if metrics_path.is_relative_to(ROOT) else metrics_path}`.\n\n"
        f"**Does the U-Net beat the best L2 method on mean DLE?** {verdict}.\n",
        verdict,
    )


def write_markdown(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    print(f"[{_now()}] wrote {path}", flush=True)


def run_thesis(runner, output):
    started = time.perf_counter()
    for name in NETWORKS["thesis"]:
        simulate(runner, DATA_SETS[name], ("train", "valid", "test"))
        train(runner, DATA_SETS[name])
    simulate(runner, DATA_SETS["megeeg1-multi"], ("test",))
    sections, verdicts = [], []
    for evaluation in EVALUATIONS["thesis"]:
        metrics = predict(runner, evaluation)
        if runner.dry_run:
            continue
        section, verdict = thesis_section(runner, evaluation, metrics)
        sections.append(section)
        verdicts.append((evaluation.title, verdict))
    if runner.dry_run:
        return
    minutes = (time.perf_counter() - started) / 60
    lines = [
        f"# Accuracy: the thesis's experiments, profile `{runner.profile}`",
        "",
        f"Written by `python benchmarks/accuracy.py --profile {runner.profile}` on "
        f"{datetime.datetime.now().isoformat(timespec='minutes')} ({minutes:.1f} min in this "
        f"call; steps that existed already were skipped). Machine: {machine_line()}.",
        "",
        "Embedded fsaverage head model, ico3, right hemisphere (642 vertices), loose "
        "orientation 0.2, depth 0.8, artifacts and the thesis's preprocessing, SNR defined on "
        "whitened sensor data (see `meg_unet/simulation.py`); lambda2 = 1/SNR**2. "
        "Metrics per time sample with an active source (`meg_unet/metrics.py`): DLE and SD "
        "(Hauk et al. 2011) in cm, OA = sum|F|/max|F|, and the thesis code's SD around the "
        "peak in sqrt(cm). 'Thesis mean' is the thesis's published mean (its SD column divided "
        "by 10 to match sqrt(cm)); its data, head model (MNE sample subject) and noise differ, "
        "so compare the ranking of methods, not the numbers.",
        "",
        "## Summary: does the U-Net beat the best L2 method (MNE, dSPM, sLORETA) on mean DLE?",
        "",
        "| Evaluation | Verdict |",
        "| --- | --- |",
        *(f"| {title} | {verdict} |" for title, verdict in verdicts),
        "",
        "Step times (min): " + ", ".join(
            f"{step} {seconds / 60:.1f}" for step, seconds in runner.timings.items()) + ".",
        "",
        *sections,
    ]
    write_markdown(output, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# The multi experiment


def _samples_of_windows(manifest, windows):
    """Raw sample indices covered by the chosen activation windows."""
    import numpy as np

    onsets = np.asarray(manifest["activations"]["onsets"])[windows]
    length = int(manifest["samples_per_activation"])
    return set((onsets[:, None] + np.arange(length)[None, :]).ravel().tolist())


def evaluate_multi_condition(runner, evaluation, n_windows, n_slow_windows, seed, best_l2,
                             n_jobs):
    """All methods on the same seeded windows of one test set; the baselines cached as CSV.

    Returns the metrics of every method restricted to the samples that all of them have (the
    U-Net's metrics.csv leaves out the samples in its tiles' border columns), the baselines'
    timings, the samples of the slow solvers' windows, and the window counts.
    """
    import pandas as pd

    from meg_unet import baselines, split_data
    from meg_unet.tables import read_metrics

    config, out_dir = predictions_dir(runner, evaluation)
    data_config = runner.config(DATA_SETS[evaluation.data])
    split_dir = data_config.run_data_dir / "test"
    cache = out_dir / f"baselines-{n_windows}-{n_slow_windows}-seed{seed}.csv"
    timing_cache = cache.with_name(cache.stem + "-timings.csv")
    manifest = read_json(split_dir / "manifest.json")
    n_total = len(manifest["activations"]["onsets"])
    n_windows, n_slow_windows = min(n_windows, n_total), min(n_slow_windows, n_windows, n_total)
    windows = split_data.choose_windows(n_total, n_windows, seed)
    slow_windows = split_data.choose_windows(n_total, n_slow_windows, seed)
    if cache.is_file() and timing_cache.is_file():
        table, timings = pd.read_csv(cache), pd.read_csv(timing_cache)
    else:
        print(f"[{_now()}] baselines on {split_dir}: {n_windows} windows, MxNE and Gamma-MAP "
              f"on {n_slow_windows}", flush=True)
        split = split_data.load_split(split_dir)
        fast = tuple(m for m in baselines.BASELINES if m not in baselines.SLOW_BASELINES)
        l2_settings = {"l2": {"l2_method": best_l2["l2_method"], "lambda2": best_l2["lambda2"]}}
        runs = ((fast, n_windows, None, None), (baselines.SLOW_BASELINES, n_slow_windows, None,
                                                None),
                (("l2",), n_windows, l2_settings, {"l2": "l2_best"}))
        parts, timing_parts = [], []
        for methods, count, settings, names in runs:
            metrics, timing = baselines.evaluate_baselines(
                split, methods=methods, n_windows=count, seed=seed, settings=settings,
                names=names, n_jobs=n_jobs)
            parts.append(metrics)
            timing_parts.append(timing)
        timing_parts.append(l2_inputs_timings(split, n_jobs))
        table = pd.concat(parts, ignore_index=True)
        timings = pd.concat(timing_parts, ignore_index=True)
        for frame, path in ((table, cache), (timings, timing_cache)):
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False)
    unet_and_l2 = read_metrics(out_dir / "metrics.csv")
    table = pd.concat([unet_and_l2, table], ignore_index=True)
    # compare on the samples that every method has: the chosen windows' samples, less those
    # the U-Net's tiles leave out at their borders
    common = _samples_of_windows(manifest, windows) & set(
        unet_and_l2.loc[unet_and_l2["method"] == "unet", "sample"])
    table = table[table["sample"].isin(common)]
    slow_samples = _samples_of_windows(manifest, slow_windows) & common
    return table, timings, slow_samples, len(windows), len(slow_windows)


def l2_inputs_timings(split, n_jobs=1):
    """MNE, dSPM and sLORETA applied to the whole split's raw, as seconds per window.

    This is how the L2 inputs are computed for a recording (``apply_inverse_raw``, as
    ``predict.py --raw`` does): the cost per window is the whole application's time divided
    by the number of activation windows (one window = active samples plus the silent gap).
    """
    import mne
    import pandas as pd
    from threadpoolctl import threadpool_limits

    n_windows = len(split.manifest["activations"]["onsets"])
    rows = []
    for method in L2_METHODS:
        name = {"mne": "MNE", "dspm": "dSPM", "sloreta": "sLORETA"}[method]
        with threadpool_limits(limits=n_jobs):
            start = time.perf_counter()
            mne.minimum_norm.apply_inverse_raw(split.raw, split.inv, split.manifest["lambda2"],
                                               method=name, pick_ori=None, verbose=False)
            seconds = time.perf_counter() - start
        rows.append(dict(method=method, window=0, seconds=seconds / n_windows))
    return pd.DataFrame(rows)


def tile_seconds(model_dir, repeats=5):
    """Median seconds of one tile through a trained network, and the tile's samples.

    ``predict_on_batch`` with a batch of one random tile, after one call to warm up.
    """
    import numpy as np

    from meg_unet.network.training import load_trained_model

    model, _, _ = load_trained_model(model_dir, "best")
    tile = np.random.default_rng(0).random((1, *model.input_shape[1:]), dtype=np.float32)
    model.predict_on_batch(tile)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(tile)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), tile.shape[2]


def unet_ms_per_window(runner, evaluation, timings, repeats=5):
    """The U-Net's time per activation window: its three L2 inputs plus its share of a tile.

    The network's share is the median time of one tile through the network
    (``predict_on_batch``, batch of 1) times the fraction of the tile's samples that one
    activation window (active samples plus gap) takes.
    """
    config = runner.config(DATA_SETS[evaluation.network])
    seconds, tile_samples = tile_seconds(config.run_results_dir / "model", repeats)
    sim = config.simulation
    window_samples = sim.SAMPLES_PER_ACTIVATION * (1 + sim.EMPTY_SIGNAL)
    network_ms = 1e3 * seconds * window_samples / tile_samples
    inputs_ms = sum(_median_ms(timings, method) for method in L2_METHODS)
    return network_ms + inputs_ms, network_ms


def _median_ms(timings, method):
    import numpy as np

    values = timings[(timings["method"] == method) & (timings["window"] >= 0)]["seconds"]
    return 1e3 * float(np.median(values)) if len(values) else float("nan")


def multi_table(table, timings, slow_samples, unet_ms):
    """Markdown rows: mean DLE, SD, recall, ghosts and ms per window per method."""
    from meg_unet.baselines import SLOW_BASELINES
    from meg_unet.tables import method_display_name, order_methods

    lines = ["| Method | DLE (cm) | SD (cm) | Recall | Ghosts | ms per window | n samples |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    results = {}
    for method in order_methods(table["method"].unique()):
        rows = table[table["method"] == method]
        ms = unet_ms if method == "unet" else _median_ms(timings, method)
        results[method] = rows["dle_cm"].mean()
        note = " (subset)" if method in SLOW_BASELINES else ""
        lines.append(
            f"| {method_display_name(method)}{note} | {rows['dle_cm'].mean():.2f} | "
            f"{rows['sd_cm'].mean():.2f} | {rows['recall'].mean():.2f} | "
            f"{rows['ghosts'].mean():.2f} | {ms:.1f} | {len(rows)} |")
    # the U-Net on the slow solvers' subset, for a like-for-like row
    subset = table[(table["method"] == "unet") & table["sample"].isin(slow_samples)]
    lines.append(f"| U-Net on the subset | {subset['dle_cm'].mean():.2f} | "
                 f"{subset['sd_cm'].mean():.2f} | {subset['recall'].mean():.2f} | "
                 f"{subset['ghosts'].mean():.2f} | {unet_ms:.1f} | {len(subset)} |")
    return lines, results


def robustness_plot(curve, path, profile):
    """Mean DLE against SNR, one line per method (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meg_unet.baselines import SLOW_BASELINES
    from meg_unet.tables import method_display_name, order_methods

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    methods = order_methods({m for values in curve.values() for m in values})
    snrs = sorted(curve)
    for method in methods:
        ys = [curve[snr].get(method, float("nan")) for snr in snrs]
        style = dict(lw=2.5, color="black") if method == "unet" else dict(lw=1.2)
        label = method_display_name(method) + (" (subset)" if method in SLOW_BASELINES else "")
        ax.plot(snrs, ys, marker="o", label=label, **style)
    ax.set_xscale("log")
    ax.set_xticks(snrs, [f"{s:g}" for s in snrs])
    ax.axvspan(1.0, 5.0, color="0.9", zorder=0, label="U-Net training SNRs")
    ax.set_xlabel("SNR (whitened amplitude ratio)")
    ax.set_ylabel("mean DLE (cm)")
    ax.set_title(f"Single dipoles, MEG, ico3 (profile {profile}): DLE against SNR")
    ax.legend(fontsize=8, ncols=2)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def run_multi(runner, output, n_windows, n_slow_windows, seed, n_jobs):
    from meg_unet import baselines
    from meg_unet.tables import method_display_name

    started = time.perf_counter()
    network = DATA_SETS["mixed"]
    simulate(runner, network, ("train", "valid", "test"))
    train(runner, network)
    for evaluation in EVALUATIONS["multi"]:
        simulate(runner, DATA_SETS[evaluation.data], ("test",))
        predict(runner, evaluation)
    if runner.dry_run:
        return
    valid_dir = runner.config(network).run_data_dir / "valid"
    grid_cache = runner.config(network).run_results_dir / f"lambda2-grid-{n_windows}-seed{seed}.csv"
    import pandas as pd

    if grid_cache.is_file():
        grid = pd.read_csv(grid_cache)
    else:
        print(f"[{_now()}] lambda2 grid search on {valid_dir}", flush=True)
        grid = baselines.lambda2_grid_search(valid_dir, n_windows=n_windows, seed=seed)
        with atomic_path(grid_cache) as tmp:
            grid.to_csv(tmp, index=False)
    best_l2 = baselines.best_l2(grid)
    sections, curve, headline = [], {}, []
    for evaluation in EVALUATIONS["multi"]:
        table, timings, slow_samples, n_used, n_slow = evaluate_multi_condition(
            runner, evaluation, n_windows, n_slow_windows, seed, best_l2, n_jobs)
        unet_ms, network_ms = unet_ms_per_window(runner, evaluation, timings)
        n_samples = int((table["method"] == "unet").sum())
        lines, means = multi_table(table, timings, slow_samples, unet_ms)
        if evaluation.snr is not None:
            curve.setdefault(evaluation.snr, {}).update(means)
        best_l2_family = min((m for m in means if m in (*L2_METHODS, "eloreta", "lcmv",
                                                       "l2_best")), key=lambda m: means[m])
        change = 100.0 * (means[best_l2_family] - means["unet"]) / means[best_l2_family]
        recall = table.loc[table["method"] == "unet", "recall"].mean()
        subset = table[(table["method"] == "unet") & table["sample"].isin(slow_samples)]
        sparse = " / ".join(f"{means[m]:.2f}" for m in baselines.SLOW_BASELINES if m in means)
        headline.append(
            f"| {evaluation.title} | {means['unet']:.2f} | {recall:.2f} | "
            f"{method_display_name(best_l2_family)} {means[best_l2_family]:.2f} | "
            f"{change:+.0f} % | {sparse} / {subset['dle_cm'].mean():.2f} | "
            f"{unet_ms:.0f} / " + " / ".join(
                f"{_median_ms(timings, m):.0f}" for m in baselines.SLOW_BASELINES) + " |")
        sections += [
            f"## {evaluation.title}", "",
            f"Data: {DATA_SETS[evaluation.data].description}; {n_used} windows "
            f"(seeded, seed {seed}), MxNE and Gamma-MAP on the first {n_slow} of the same "
            f"draw; all methods compared on the same {n_samples} samples (the U-Net leaves out "
            f"the samples at its tiles' borders). ms per window: MNE, dSPM, sLORETA applied to "
            f"the whole recording (`apply_inverse_raw`) divided by the windows; the U-Net adds "
            f"its share of a tile's forward pass ({network_ms:.2f} ms) to those three; the "
            f"other methods are applied window by window (`apply_inverse`, `apply_lcmv`, "
            f"`mixed_norm`, `gamma_map`).", "",
            *lines, "",
        ]
    plot = output.with_suffix(".png")
    robustness_plot(curve, plot, runner.profile)
    minutes = (time.perf_counter() - started) / 60
    text = [
        f"# Accuracy beyond the thesis: several sources, low SNR (profile `{runner.profile}`)",
        "",
        f"Written by `python benchmarks/accuracy.py --profile {runner.profile} --experiment "
        f"multi` on {datetime.datetime.now().isoformat(timespec='minutes')} ({minutes:.1f} min "
        f"in this call; existing steps skipped). Machine: {machine_line()}.",
        "",
        f"Network: trained on {network.description}. Every test set uses lambda2 = 1/9 for "
        f"the network's inputs and the L2 rows; 'best L2' is "
        f"{best_l2['l2_method']} with lambda2 = {best_l2['lambda2']:g}, the (method, lambda2) "
        "with the lowest mean DLE on the mixed validation split. Baseline settings: "
        f"{_settings_text(baselines)}.",
        "",
        "DLE: mean over samples of the mean distance between each true source and its matched "
        "peak (Hungarian matching of local maxima); recall: fraction of true sources with a "
        "matched peak within 2 cm; ghosts: peaks above 50 % of the maximum with no true "
        "source within 2 cm. Times: median per window on this CPU, one BLAS thread.",
        "",
        "Mean DLE (cm) per condition. 'Below' is how much lower the U-Net's mean DLE is than "
        "the best linear method's (negative: higher).",
        "",
        "| Condition | U-Net DLE | U-Net recall | best linear method (MNE, dSPM, sLORETA, "
        "eLORETA, LCMV, best lambda2) | U-Net below it by | MxNE / Gamma-MAP / U-Net on the "
        "sparse solvers' windows | ms per window: U-Net / MxNE / Gamma-MAP |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
        *headline,
        "",
        f"![Mean DLE against SNR]({plot.name})",
        "",
        *sections,
    ]
    write_markdown(output, "\n".join(text) + "\n")


def _settings_text(baselines):
    return "; ".join(f"{method}: {settings}" for method, settings in
                     baselines.DEFAULT_SETTINGS.items())


# ---------------------------------------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("tiny", "quick", "thesis"))
    parser.add_argument("--experiment", default="thesis", choices=("thesis", "multi"))
    parser.add_argument("--config", default=str(ROOT / "config.py"),
                        help="base configuration (default: config.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for every run (e.g. network.EPOCHS=5)")
    parser.add_argument("--windows", type=int, default=100,
                        help="multi: activation windows per test set for all methods")
    parser.add_argument("--slow-windows", type=int, default=20,
                        help="multi: windows per test set for MxNE and Gamma-MAP")
    parser.add_argument("--seed", type=int, default=0, help="multi: seed of the window draw")
    parser.add_argument("--n-jobs", type=int, default=1, help="BLAS threads of the solvers")
    parser.add_argument("--output", help="markdown file (default: benchmarks/results/"
                        "accuracy-<profile>[-multi].md)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.windows < 1 or args.slow_windows < 1:
        raise SystemExit("--windows and --slow-windows must be at least 1")
    suffix = "" if args.experiment == "thesis" else "-multi"
    output = Path(args.output) if args.output else (
        ROOT / "benchmarks" / "results" / f"accuracy-{args.profile}{suffix}.md")
    runner = Runner(Path(args.config).resolve(), args.profile, tuple(args.set), args.dry_run)
    if args.experiment == "thesis":
        run_thesis(runner, output)
    else:
        run_multi(runner, output, args.windows, args.slow_windows, args.seed, args.n_jobs)


if __name__ == "__main__":
    main()
