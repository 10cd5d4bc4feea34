"""Speed of every stage: head model, simulation, data provider, training, prediction, ``make demo``.

Each figure is the median of ``--repeats`` runs (with the smallest and largest), on the
repository's ``config.py`` with the ``--set`` overrides:

- **head model**: the embedded fsaverage model of the ``quick`` profile (ico3, MEG, BEM at
  ``headmodel.BEM_ICO``) built from an empty temporary cache (cortex, BEM solution, source
  space, forward solution), and loaded again from that cache
  (:func:`headmodel_build.time_builds`, which pays the one-off imports with an untimed ico1
  build first);
- **simulation**: the ``quick`` profile's test split (one pass over the 642 vertices of the
  right hemisphere, artifacts and the thesis's preprocessing as configured) simulated into a
  fresh temporary ``DATA_DIR`` with :meth:`meg_unet.simulation.SimulationModel.simulate_split`,
  the head model loaded beforehand from the shared cache ``DATA_DIR/headmodels``;
- per profile (default ``tiny``, ``quick`` and ``thesis``): one **training step**
  (``train_on_batch`` after an untimed tracing step, :func:`training.measure` of
  ``benchmarks/training.py``; the thesis profile's CPU step takes tens of seconds (measured in
  ``benchmarks/results/training-vm.md``), so it is timed at most twice on a CPU), the **data
  provider's tiles per second** with its worker threads
  (:func:`training.provider_rate` over :func:`training.in_memory_provider`), and **one
  prediction tile** (batch of 1, ``model.predict_on_batch`` as ``predict.py`` calls it, after
  an untimed warm-up call);
- **the README's main command** ``make demo`` (quick profile: simulate, train, predict,
  visualize, R statistics) in fresh temporary ``DATA_DIR``/``RESULTS_DIR`` (passed through
  ``DEMO_SET``) that share the head-model cache, so the head model is not rebuilt; each of its
  steps is timed. It takes 10-15 minutes on 2 cores, so it runs ``--demo-repeats`` times
  (default once: not a median). ``--demo-log PATH`` keeps its output, with the step times,
  in PATH; a later call with the same PATH reads the timings of the finished runs instead
  of running the demo again;
- with a GPU that the Keras backend sees, the thesis step is timed on it (at least 10 runs),
  with the tiles per second it trains, the FLOP/s it reaches (training-step FLOPs from
  :func:`meg_unet.network.unet.forward_flops` as in ``benchmarks/training.py``, over the step
  time) and the fraction of the GPU's peak FLOP/s from :data:`PEAK_TFLOPS`. Without one the
  output says where and how to run it.

Run from the repository root::

    python benchmarks/speed.py                            # everything (about 20 min on 2 cores)
    python benchmarks/speed.py --skip-demo --profiles tiny quick
    KERAS_BACKEND=jax python benchmarks/speed.py --profiles thesis --skip-demo   # on a GPU

and read ``benchmarks/results/speed-<host>.md`` (also printed). Timings on a shared machine
vary with its load; the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import logging
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import headmodel_build  # benchmarks/headmodel_build.py, beside this script
from machine import cpu_name  # benchmarks/machine.py
import training as training_bench  # benchmarks/training.py

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

DEFAULT_PROFILES = ("tiny", "quick", "thesis")
#: The profile whose head model, test split and ``make demo`` are measured.
DEMO_PROFILE = "quick"
#: Timed training steps of the thesis profile on a CPU (tens of seconds each, see above).
THESIS_CPU_STEPS = 2
#: Timed runs of the GPU figures at least (a step takes milliseconds there).
ACCELERATOR_MIN_RUNS = 10
#: Tiles of random data the provider cuts from (thesis: 160 MB, more than any CPU cache).
PROVIDER_TILES = 32
#: Settings the benchmark sets itself and ``--set`` may not change.
RESERVED_SETTINGS = {
    "PROFILE": "use --profiles (the simulation and the demo use the quick profile)",
    "DATA_DIR": "the benchmark simulates into temporary folders",
    "RESULTS_DIR": "the benchmark writes the demo's results into a temporary folder",
}
#: Settings that change the tile; benchmarks/training.py's measure() does not read them.
TILE_SETTINGS = ("SPACING", "HEMISPHERE", "CHANNELS")

#: Dense peak TFLOP/s of known GPUs (NVIDIA data sheets, SXM boards unless named): "fp32" on
#: the CUDA cores, "tf32" and "bf16" on the tensor cores, without structured sparsity.
#: Matched in order against the name that nvidia-smi or the backend reports.
PEAK_TFLOPS = (
    ("H100 PCIe", dict(fp32=51.2, tf32=378.0, bf16=756.0)),
    ("H100 NVL", dict(fp32=60.0, tf32=417.5, bf16=835.0)),
    ("H100", dict(fp32=66.9, tf32=494.7, bf16=989.4)),
    ("H200", dict(fp32=66.9, tf32=494.7, bf16=989.4)),
    ("A100", dict(fp32=19.5, tf32=156.0, bf16=312.0)),
)

NO_GPU_LINE = (
    "No GPU on this machine; the thesis profile's GPU figures need a lent GPU (`device` tool) "
    "— run `KERAS_BACKEND=jax python benchmarks/speed.py --profiles thesis --skip-demo` there."
)

# make runs every recipe line as ``$(SHELL) -c LINE``; with SHELL set to this script each line
# of ``make demo`` is bracketed by markers with wall-clock times, on lines of their own.
STEP_SHELL = """#!/bin/sh
line=$(printf '%s' "$2" | tr '\\n' ' ')
printf '\\n@@speed-step start %s %s\\n' "$(date +%s.%N)" "$line"
/bin/sh "$@"
rc=$?
printf '\\n@@speed-step end %s %s\\n' "$(date +%s.%N)" "$rc"
exit $rc
"""
_STEP_RE = re.compile(r"^@@speed-step (start|end) (\S+) ?(.*)$")
_DEMO_RE = re.compile(r"^@@speed-demo (start|end) (\S+) ?(.*)$")
SKIPPED_LINE = "(skipped: not built yet)"
#: Names of the demo's steps in the results, by the script or module a recipe line runs.
DEMO_STEP_NAMES = {
    "simulate_data.py": "simulate",
    "train_network.py": "train",
    "predict.py": "predict",
    "visualize_predictions.py": "visualize",
    "meg_unet.cli analyze": "R statistics",
}


# --------------------------------------------------------------------------------------------
# Figures and their table
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Measurement:
    """One row of the results: repeated values of one quantity.

    ``values`` are in ``unit``; ``note`` goes to the notes under the table.
    """

    what: str
    values: list
    unit: str
    note: str = ""

    @property
    def summary(self):
        return summarize(self.values)


def summarize(values):
    """Median, smallest, largest and number of ``values``.

    Returns
    -------
    summary : dict
        ``median``, ``min``, ``max`` (floats) and ``n`` (int).
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("summarize needs at least one value, but got none")
    return dict(median=statistics.median(values), min=min(values), max=max(values),
                n=len(values))


def format_number(value):
    """A figure with about three significant digits: ``12.5``, ``0.132``, ``1,245``."""
    value = float(value)
    size = abs(value)
    if value == 0:
        return "0"
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(measurements):
    """The table "What | Median | Min | Max | n | Unit" of ``measurements``."""
    lines = [
        "| What | Median | Min | Max | n | Unit |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in measurements:
        s = m.summary
        lines.append(
            f"| {_cell(m.what)} | {format_number(s['median'])} | {format_number(s['min'])} "
            f"| {format_number(s['max'])} | {s['n']} | {_cell(m.unit)} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


def _version(*distributions):
    """``name version`` of the first installed distribution, or None."""
    for name in distributions:
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def keras_backend():
    """The Keras backend in use (without importing Keras when it is not imported yet)."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def memory_gib():
    """Physical memory (GiB) from /proc/meminfo, or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def os_name():
    """The distribution's name (/etc/os-release) with the kernel."""
    name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{name} ({platform.system()} {platform.release()}, {platform.machine()})"


def nvidia_gpus():
    """``name, memory, driver`` of each GPU that ``nvidia-smi`` lists (empty without one)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def backend_gpus():
    """Names of the GPUs that the Keras backend computes on (imports the backend)."""
    backend = keras_backend()
    try:
        if backend == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if backend == "tensorflow":
            import tensorflow as tf

            return [
                tf.config.experimental.get_device_details(d).get("device_name", d.name)
                for d in tf.config.list_physical_devices("GPU")
            ]
    except (ImportError, RuntimeError) as exc:
        print(f"could not list the {backend} backend's GPUs: {exc}", flush=True)
    return []


def git_commit():
    """The checkout's short commit, with ``+ uncommitted changes`` when it has any."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=30, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def host_name():
    """The machine's name as benchmarks/training.py writes it into result file names."""
    return socket.gethostname() or platform.machine()


def machine_description(gpus=None):
    """What the timings ran on, as an ordered dict of printable values.

    Parameters
    ----------
    gpus : list of str | None
        GPUs to report (None: ask ``nvidia-smi``).
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    memory = memory_gib()
    backend = keras_backend()
    backend_version = {
        "tensorflow": _version("tensorflow", "tensorflow-cpu", "tensorflow-gpu"),
        "jax": " / ".join(v for v in (_version("jax"), _version("jaxlib")) if v) or None,
        "torch": _version("torch"),
    }.get(backend)
    threads = ", ".join(
        f"{name}={os.environ[name]}" for name in
        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
        if name in os.environ
    )
    gpus = nvidia_gpus() if gpus is None else gpus
    return {
        "host": host_name(),
        "cpu": f"{cpu_name()}, {os.cpu_count()} cores ({usable} usable)",
        "memory": f"{memory:.1f} GiB" if memory else "unknown",
        "os": os_name(),
        "python": platform.python_version(),
        "packages": ", ".join(v for v in (_version("numpy"), _version("mne"), _version("keras"))
                              if v),
        "keras backend": f"{backend} ({backend_version or 'version unknown'})",
        "threads": threads or "library defaults (no *_NUM_THREADS set)",
        "gpu": "; ".join(gpus) if gpus else "none",
        "commit": git_commit(),
    }


def load_average():
    """The 1, 5 and 15 minute load averages, as text."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def check_overrides(texts):
    """Parse ``--set`` texts; return (top-level, hyperparameter) dicts or raise ValueError."""
    from meg_unet.config import split_overrides

    top, hyper, problems = split_overrides(texts)
    problems += [f"--set {key}: {key} is set by the benchmark ({RESERVED_SETTINGS[key]})"
                 for key in top if key in RESERVED_SETTINGS]
    if problems:
        raise ValueError("; ".join(problems))
    return top, hyper


def profile_config(overrides, profile, data_dir=None):
    """``config.py`` with the ``--set`` overrides, the profile and optionally a DATA_DIR."""
    from meg_unet.config import load_config

    extra = [f"PROFILE={profile}"] + ([f"DATA_DIR={data_dir}"] if data_dir else [])
    return load_config(ROOT / "config.py", [*overrides, *extra])


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------


def measure_head_model(config, repeats, work):
    """Build from an empty cache and load from the cache: two measurements."""
    models = [(config.spacing, config.sensors, config.headmodel.BEM_ICO)]
    print(f"[head model] {config.spacing} {config.sensors}, BEM ico{config.headmodel.BEM_ICO}: "
          f"{repeats} build(s) from an empty cache (after an untimed ico1 build)", flush=True)
    row = headmodel_build.time_builds(models, repeats, work)[0]
    name = f"{row['spacing']} {row['sensors'].upper()} embedded fsaverage head model"
    details = (f"{row['n_sources']} sources, {row['n_channels']} channels, BEM "
               f"{row['bem_vertices']} vertices at ico{row['bem_ico']}, cache "
               f"{row['size_mb']:.0f} MB")
    return [
        Measurement(f"build the {name} from an empty cache", row["build_all"], "s",
                    f"source space, BEM solution and forward solution; {details}"),
        Measurement(f"load the {name} from the cache", row["load_all"], "s"),
    ]


def split_description(config, split="test"):
    """``"642 windows, 19,260 samples, artifacts on"`` for a split of ``config``."""
    sim = config.simulation
    window = sim.SAMPLES_PER_ACTIVATION + round(sim.EMPTY_SIGNAL * sim.SAMPLES_PER_ACTIVATION)
    samples = training_bench.split_samples(config, split)
    return (f"{samples // window:,} windows, {samples:,} samples, artifacts "
            f"{'on' if config.artifacts else 'off'}")


def measure_simulation(overrides, repeats, work):
    """Simulate the quick profile's test split ``repeats`` times into fresh folders."""
    from meg_unet.headmodel import head_model_from_config
    from meg_unet.simulation import SimulationModel

    shared = profile_config(overrides, DEMO_PROFILE)
    print(f"[simulation] loading the head model from {shared.head_model_dir} (built there "
          "if missing)", flush=True)
    head_model = head_model_from_config(shared)
    times = []
    for k in range(repeats):
        data_dir = work / f"simulation-{k}"
        config = profile_config(overrides, DEMO_PROFILE, data_dir=data_dir)
        print(f"[simulation] run {k + 1}/{repeats}: test split of the {DEMO_PROFILE} profile "
              f"({split_description(config)})", flush=True)
        start = time.perf_counter()
        SimulationModel(config, head_model).simulate_split("test")
        times.append(time.perf_counter() - start)
        print(f"[simulation] run {k + 1}: {times[-1]:.1f} s", flush=True)
        shutil.rmtree(data_dir)
    return [Measurement(
        f"simulate one {config.spacing} split ({DEMO_PROFILE} test split: "
        f"{split_description(config)})", times, "s",
        "raw data, artifacts and preprocessing, noise covariance, inverse operator, "
        "MNE/dSPM/sLORETA and ground-truth source estimates, written to disk; the head model "
        "loaded beforehand",
    )]


def accelerator_figures(profile, step_times, step_flops, batch, peak, gpu):
    """Tiles/s, TFLOP/s and fractions of the GPU's peaks of timed training steps."""
    rates = [step_flops / t / 1e12 for t in step_times]
    rows = [
        Measurement(f"{profile}: tiles trained per second on the GPU",
                    [batch / t for t in step_times], "tiles/s"),
        Measurement(f"{profile}: FLOP/s the training step reaches on the GPU", rates,
                    "TFLOP/s",
                    f"{step_flops / 1e9:,.1f} GFLOP per step (3 x forward_flops x batch "
                    f"{batch}) over each step's time"),
    ]
    if peak is None:
        rows[-1].note += (f"; no peak known for {gpu!r}: add it to PEAK_TFLOPS in "
                          "benchmarks/speed.py for the fraction")
        return rows
    rows += [
        Measurement(f"{profile}: fraction of the TF32 tensor-core peak "
                    f"({peak['tf32']:g} TFLOP/s dense)", [100 * r / peak["tf32"] for r in rates],
                    "%", "the model is float32; its convolutions run as TF32 on the tensor "
                    "cores by default (JAX, TensorFlow, PyTorch's cuDNN on Ampere and newer), "
                    "so this is the relevant peak"),
        Measurement(f"{profile}: fraction of the FP32 CUDA-core peak "
                    f"({peak['fp32']:g} TFLOP/s)", [100 * r / peak["fp32"] for r in rates], "%",
                    "for reference: true float32 arithmetic without tensor cores "
                    f"(BF16 tensor-core peak {peak['bf16']:g} TFLOP/s dense, not used)"),
    ]
    return rows


def peak_tflops(name):
    """Peak TFLOP/s of a GPU by its name (:data:`PEAK_TFLOPS`), or None when unknown."""
    for pattern, peaks in PEAK_TFLOPS:
        if pattern.lower() in name.lower():
            return peaks
    return None


def measure_profile(profile, hyper, repeats, provider_seconds, gpu=None):
    """Training step, provider tiles/s and one prediction tile of a profile."""
    import keras
    import numpy as np

    from meg_unet.config import validate_settings
    from meg_unet.data_provider import GeneratorDataProvider
    from meg_unet.network.training import build_arguments
    from meg_unet.network.unet import build_unet

    if gpu:
        runs, steps = max(repeats, ACCELERATOR_MIN_RUNS), max(repeats, ACCELERATOR_MIN_RUNS)
    else:
        runs = repeats
        steps = min(repeats, THESIS_CPU_STEPS) if profile == "thesis" else repeats
    device = f"GPU ({gpu}), {keras_backend()}" if gpu else f"CPU, {keras_backend()}"

    # the training step, as benchmarks/training.py times it (no model.fit here)
    result = training_bench.measure(profile, hyper, steps, 0)
    tile_shape, batch = result["tile_shape"], result["batch"]
    config = validate_settings({"PROFILE": profile, "PARAMETERS": hyper})
    capped = (f"; capped at {THESIS_CPU_STEPS} timed steps on a CPU"
              if profile == "thesis" and not gpu and steps < repeats else "")
    rows = [Measurement(
        f"{profile}: one training step ({device})", result["step_times_s"], "s",
        f"train_on_batch, tile {tile_shape} x batch {batch}, {result['params']:,} parameters, "
        f"{result['step_flops'] / 1e9:,.1f} GFLOP; after one untimed step "
        f"(tracing: {result['first_step_s']:.1f} s){capped}",
    )]
    if gpu and profile == "thesis":
        rows += accelerator_figures(profile, result["step_times_s"], result["step_flops"],
                                    batch, peak_tflops(gpu), gpu)

    # the data provider: tiles cut per second by its worker threads
    rng = np.random.default_rng(0)
    workers = config.data_provider.N_WORKERS
    n_tiles = max(8 * batch, PROVIDER_TILES)
    provider = training_bench.in_memory_provider(config, tile_shape, n_tiles, rng)
    stream = GeneratorDataProvider.from_config(provider, config)
    rates = []
    for k in range(runs):
        rates.append(training_bench.provider_rate(stream, workers, seconds=provider_seconds))
        print(f"[{profile}] provider run {k + 1}/{runs}: {rates[-1]:,.0f} tiles/s", flush=True)
    rows.append(Measurement(
        f"{profile}: data provider, tiles per second ({workers} worker thread"
        f"{'s' if workers > 1 else ''})", rates, "tiles/s",
        f"tiles of {tile_shape} cut from an in-memory split of {n_tiles} tiles of random data "
        f"(benchmarks/training.py's in_memory_provider), {provider_seconds:g} s per run",
    ))
    del provider, stream

    # one prediction tile, as predict.py calls the network
    model = build_unet(**build_arguments(config, tile_shape, config.data_provider.N_CLASSES,
                                         **training_bench.timing_geometry(config,
                                                                          tile_shape[0])))
    x = rng.random((1, *tile_shape), dtype=np.float32)
    first, _ = training_bench.timed(lambda: model.predict_on_batch(x), 1)
    _, times = training_bench.timed(lambda: model.predict_on_batch(x), runs)
    print(f"[{profile}] prediction tile: median {statistics.median(times):.3f} s", flush=True)
    rows.append(Measurement(
        f"{profile}: predict one tile ({device})", times, "s",
        f"model.predict_on_batch on a batch of 1, tile {tile_shape}; after one untimed call "
        f"(tracing: {first:.1f} s)",
    ))
    keras.backend.clear_session()
    return rows


# --------------------------------------------------------------------------------------------
# make demo
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DemoStep:
    """One recipe line of ``make demo``: what it ran, how long it took, how it ended."""

    command: str
    seconds: float
    returncode: int
    skipped: bool = False

    @property
    def label(self):
        return step_label(self.command)


@dataclasses.dataclass
class DemoRun:
    """One finished run of ``make demo``."""

    started: float  # seconds since the epoch
    seconds: float
    returncode: int
    command: str
    steps: list


def step_label(command):
    """The demo step a recipe line runs: ``"simulate"``, ``"R statistics"``, ...

    Lines that run none of the demo's scripts are named by their program (``pip install`` for
    the Makefile's installation, or the line's first words).
    """
    module = re.search(r"-m\s+([\w.]+)(?:\s+([a-z]\w*))?", command)
    if module and module.group(1) != "pip":
        key = " ".join(g for g in module.groups() if g)
        return DEMO_STEP_NAMES.get(key, key)
    script = re.search(r"([\w./-]+\.py)\b", command)
    if script:
        name = Path(script.group(1)).name
        return DEMO_STEP_NAMES.get(name, name)
    if "pip" in command and "install" in command:
        return "install (pip)"
    words = command.split()
    return " ".join(words[:3]) if words else "(empty line)"


def parse_demo_log(text):
    """The finished runs of ``make demo`` in a log written by :func:`run_demo`.

    Parameters
    ----------
    text : str
        The log: the demo's output with ``@@speed-demo`` and ``@@speed-step`` marker lines.

    Returns
    -------
    runs : list of DemoRun
        Runs with an end marker, in order; an interrupted run is left out.
    """
    runs, current, step = [], None, None
    for line in text.splitlines():
        demo = _DEMO_RE.match(line)
        if demo:
            kind, stamp, rest = demo.groups()
            if kind == "start":
                current = dict(started=float(stamp), command=rest, steps=[])
            elif current is not None:
                runs.append(DemoRun(current["started"], float(stamp) - current["started"],
                                    int(rest.split()[0]), current["command"], current["steps"]))
                current = None
            step = None
            continue
        marker = _STEP_RE.match(line)
        if marker and current is not None:
            kind, stamp, rest = marker.groups()
            if kind == "start":
                step = dict(start=float(stamp), command=rest, skipped=False)
            elif step is not None:
                current["steps"].append(DemoStep(step["command"], float(stamp) - step["start"],
                                                 int(rest.split()[0]), step["skipped"]))
                step = None
        elif step is not None and line.strip() == SKIPPED_LINE:
            step["skipped"] = True
    return runs


def demo_command(data_dir, results_dir, overrides, step_shell):
    """The ``make demo`` command line, with DEMO_SET pointing at the given folders."""
    sets = [*overrides, f"DATA_DIR={data_dir}", f"RESULTS_DIR={results_dir}"]
    demo_set = " ".join(f"--set {shlex.quote(s)}" for s in sets)
    return ["make", "-C", str(ROOT), "demo", f"SHELL={step_shell}", f"DEMO_SET={demo_set}"]


def run_timed_make(command, log, env=None):
    """Run a make command whose SHELL is :data:`STEP_SHELL`, appending its output to ``log``.

    Prints each step as it starts and ends; returns make's exit status.
    """
    with open(log, "a") as out:
        out.write(f"\n@@speed-demo start {time.time():.3f} {shlex.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", env=env)
        step_start = None
        for line in process.stdout:
            out.write(line)
            marker = _STEP_RE.match(line.rstrip("\n"))
            if not marker:
                continue
            kind, stamp, rest = marker.groups()
            if kind == "start":
                step_start = float(stamp)
                print(f"[demo] {step_label(rest)} ...", flush=True)
            elif step_start is not None:
                print(f"[demo]   done in {float(stamp) - step_start:.1f} s (exit status "
                      f"{rest.split()[0]})", flush=True)
        returncode = process.wait()
        out.write(f"\n@@speed-demo end {time.time():.3f} {returncode}\n")
    return returncode


def run_demo(overrides, work, log, shared_cache):
    """Run ``make demo`` once in fresh folders under ``work``, logging to ``log``."""
    step_shell = work / "step-shell.sh"
    step_shell.write_text(STEP_SHELL)
    step_shell.chmod(0o755)
    run_dir = Path(tempfile.mkdtemp(prefix="demo-", dir=work))
    data_dir, results_dir = run_dir / "data", run_dir / "results"
    data_dir.mkdir()
    # the demo's DATA_DIR shares the head-model cache, so the head model is not rebuilt
    shared_cache.mkdir(parents=True, exist_ok=True)
    (data_dir / "headmodels").symlink_to(shared_cache.resolve(), target_is_directory=True)
    command = demo_command(data_dir, results_dir, overrides, step_shell)
    print(f"[demo] {shlex.join(command)}", flush=True)
    returncode = run_timed_make(command, log)
    (data_dir / "headmodels").unlink()
    shutil.rmtree(run_dir)
    return returncode


def demo_measurements(runs, source):
    """Rows of the demo's total time and of each of its steps, over ``runs``."""
    steps = {}
    for run in runs:
        for step in run.steps:
            steps.setdefault(step.label, []).append(step)
    once = len(runs) == 1
    how = "run once, not a median" if once else f"{len(runs)} runs"
    failed = [r.returncode for r in runs if r.returncode != 0]
    rows = [Measurement(
        "`make demo` (README's main command, quick profile), whole", [r.seconds for r in runs],
        "s", f"{how}; {source}" + (f"; FAILED with exit status {failed}" if failed else ""),
    )]
    for label, done in steps.items():
        notes = []
        if any(s.skipped for s in done):
            notes.append("skipped: not built yet")
        bad = sorted({s.returncode for s in done if s.returncode != 0})
        if bad:
            notes.append(f"exit status {bad}")
        rows.append(Measurement(f"`make demo`: {label}", [s.seconds for s in done], "s",
                                "; ".join(notes)))
    return rows


def measure_demo(overrides, repeats, work, log_path=None):
    """Run (or read from ``log_path``) ``make demo`` and return its rows."""
    shared_cache = profile_config(overrides, DEMO_PROFILE).head_model_dir
    log = Path(log_path) if log_path else work / "demo.log"
    earlier = parse_demo_log(log.read_text(errors="replace")) if log.exists() else []
    finished = [r for r in earlier if r.returncode == 0]
    if len(finished) >= repeats:
        when = datetime.datetime.fromtimestamp(finished[-repeats].started)
        print(f"[demo] reading {repeats} finished run(s) from {log}", flush=True)
        return demo_measurements(finished[-repeats:], f"timings read from `{log}` (run from "
                                 f"{when.isoformat(timespec='minutes')})")
    for k in range(len(finished), repeats):
        print(f"[demo] run {k + 1}/{repeats} (10-15 min on 2 cores); output in {log}",
              flush=True)
        returncode = run_demo(overrides, work, log, shared_cache)
        if returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-25:]
            print("[demo] FAILED; the end of its output:\n" + "\n".join(tail), flush=True)
            break
    runs = parse_demo_log(log.read_text(errors="replace"))
    ran = [r for r in runs if r.returncode == 0][-repeats:]
    if runs and runs[-1].returncode != 0:
        ran.append(runs[-1])  # the failed run, reported as such
    source = (f"its output is in `{log}`" if log_path else
              "fresh temporary DATA_DIR and RESULTS_DIR, shared head-model cache")
    return demo_measurements(ran, source)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def report(measurements, machine, loads, command, notes, repeats):
    """The results as markdown."""
    lines = [
        "# Speed",
        "",
        f"Written by `{command}` on "
        f"{datetime.datetime.now().isoformat(timespec='minutes')}, commit {machine['commit']}.",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in machine.items() if key != "commit"]
    lines += [
        f"- load average (1 / 5 / 15 min) before: {loads[0]}; after: {loads[1]} "
        "(other jobs on a shared machine slow the timings down)",
        "",
        f"## Results (median of {repeats} run{'s' if repeats != 1 else ''} unless the notes "
        "say otherwise)",
        "",
        markdown_table(measurements),
        "",
        "## Notes",
        "",
    ]
    lines += [f"- {m.what}: {m.note}" for m in measurements if m.note]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_report(path, text):
    """Write ``text`` to ``path`` atomically."""
    from meg_unet.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser():
    """The argument parser of this benchmark."""
    import parameters.profiles

    parser = argparse.ArgumentParser(
        prog="python benchmarks/speed.py", description=__doc__.split("\n\n")[0],
        epilog="Writes benchmarks/results/speed-<host>.md unless --output is given.",
    )
    parser.add_argument("--repeats", type=_positive_int, default=3,
                        help="runs per measurement; the median is reported (default 3)")
    parser.add_argument("--profiles", nargs="*", default=list(DEFAULT_PROFILES),
                        choices=list(parameters.profiles.PROFILES), metavar="PROFILE",
                        help="profiles whose training step, provider and prediction are timed "
                        f"(default: {' '.join(DEFAULT_PROFILES)}; none: leave them out)")
    parser.add_argument("--skip-headmodel", action="store_true",
                        help="leave out the head-model build and load")
    parser.add_argument("--skip-simulation", action="store_true",
                        help="leave out simulating the quick profile's test split")
    parser.add_argument("--skip-demo", action="store_true",
                        help="leave out `make demo` (10-15 min on 2 cores)")
    parser.add_argument("--demo-repeats", type=_positive_int, default=1,
                        help="runs of `make demo` (default 1)")
    parser.add_argument("--demo-log", type=Path, default=None, metavar="PATH",
                        help="keep the demo's output with its step times in PATH; when PATH "
                        "already holds enough finished runs, read their timings instead of "
                        "running the demo again")
    parser.add_argument("--provider-seconds", type=_positive_float, default=3.0,
                        help="seconds per data-provider run (default 3)")
    parser.add_argument("--output", type=Path, default=None, metavar="PATH",
                        help="markdown file (default benchmarks/results/speed-<host>.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a setting of config.py (e.g. SNR=1) or a hyperparameter "
                        "(e.g. network.ROOT_FEATURES=16) for every measurement; repeatable")
    return parser


def main(argv=None):
    """Run the benchmark; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        top, hyper = check_overrides(args.overrides)
        profile_config(args.overrides, DEMO_PROFILE)  # every problem of the settings at once
    except ValueError as exc:  # ConfigError is a ValueError
        parser.error(str(exc))
    if not args.skip_demo and shutil.which("make") is None:
        parser.error("`make demo` needs GNU make, which is not installed; use --skip-demo")
    logging.getLogger("meg_unet").setLevel(logging.WARNING)
    import mne

    mne.set_log_level("WARNING")

    loads = [load_average()]
    started = time.perf_counter()
    measurements, notes = [], []
    with tempfile.TemporaryDirectory(prefix="speed-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_headmodel:
            quick = profile_config(args.overrides, DEMO_PROFILE)
            measurements += measure_head_model(quick, args.repeats, work / "headmodels")
        if not args.skip_simulation:
            measurements += measure_simulation(args.overrides, args.repeats, work)
        gpu = None
        if args.profiles:
            import keras  # noqa: F401  (the backend below is the one Keras uses)

            seen, listed = backend_gpus(), nvidia_gpus()
            gpu = seen[0] if seen else None
            if gpu:
                notes.append(f"GPU figures: measured on {gpu} with the {keras_backend()} "
                             f"backend, at least {ACCELERATOR_MIN_RUNS} timed runs each.")
            elif listed:
                notes.append(f"A GPU is installed ({'; '.join(listed)}), but the "
                             f"{keras_backend()} backend does not see it: everything ran on "
                             "the CPU. Try `KERAS_BACKEND=jax`.")
            else:
                notes.append(NO_GPU_LINE)
            if set(top) & set(TILE_SETTINGS):
                notes.append(
                    f"The profile rows use benchmarks/training.py's measure(), which reads "
                    f"parameters/ with the dotted --set overrides only: "
                    f"{', '.join(sorted(set(top) & set(TILE_SETTINGS)))} did not apply there."
                )
        for profile in args.profiles:
            print(f"[{profile}] training step, data provider, prediction", flush=True)
            measurements += measure_profile(profile, hyper, args.repeats,
                                            args.provider_seconds, gpu=gpu)
        if gpu and "thesis" not in args.profiles:
            notes.append("GPU present, but the thesis profile was not measured "
                         "(`--profiles thesis`).")
        if not args.skip_demo:
            measurements += measure_demo(args.overrides, args.demo_repeats, work, args.demo_log)
        else:
            notes.append("`make demo` left out (--skip-demo).")
    loads.append(load_average())
    notes.append(f"This benchmark took {(time.perf_counter() - started) / 60:.1f} min.")

    command = "python benchmarks/speed.py" + (" " + shlex.join(argv) if argv else "")
    text = report(measurements, machine_description(), loads, command, notes, args.repeats)
    output = args.output or BENCHMARKS / "results" / f"speed-{host_name()}.md"
    write_report(output, text)
    print(text)
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
