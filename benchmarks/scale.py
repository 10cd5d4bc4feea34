"""Scaling out: simulation against workers, the training step against devices, a study on paper.

Three measurements and one estimate, written to ``benchmarks/results/scale-<host>.md``:

- **Simulation throughput**: the configured profile's splits (default: the quick profile's
  three, 2 + 1 + 1 passes over ico3) simulated into fresh temporary ``DATA_DIR`` folders
  (sharing the head-model cache, built once beforehand) with ``N_JOBS=1``, with
  ``N_JOBS=2`` (joblib's loky workers, one split each) and on a local ``dask.distributed``
  cluster of two single-threaded worker processes (``DASK_SCHEDULER``), as Dask configures
  it by default and without its profiler and its ``MALLOC_TRIM_THRESHOLD_``
  ("dask, tuned", see :func:`_dask_tuning`).  Activation windows
  per second, medians of ``--repeats`` rounds, the three taken in turn within each round so
  that they share the machine's state; the ratio to one worker is that of the medians.  Every
  run's estimates must be byte-identical to the first's (their SHA-256 in the manifests).
- **The training step against devices**: one optimizer step of the configured profile's
  U-Net under the JAX backend on 1 and 2 virtual CPU devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=2``, ``keras.distribution.
  DataParallel`` through :func:`meg_unet.network.training.distribution_scope`) at a global
  batch of ``--batch`` tiles, median of ``--steps`` steps after two untimed ones.  Virtual
  devices share the same cores: this checks the path and its overhead, not a speed-up.
- **A study on paper**: what ``--study-spacing`` (default ico5) with ``--subjects`` subjects
  would need: vertices, samples and disk per pass, memory per tile and per training tile
  (input and the U-Net's activations, summed over its layers' outputs), and hours of
  simulation on N workers, scaled from the stage times measured here (stated exponents).

Run from the repository root (about 15 minutes on 2 cores with the defaults; keep the machine
otherwise idle)::

    python benchmarks/scale.py
    python benchmarks/scale.py --repeats 1 --skip-training   # simulation only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line  # benchmarks/machine.py
from training import timing_geometry  # benchmarks/training.py

ROOT = Path(__file__).resolve().parent.parent

def _dask_tuning():
    """Dask worker settings that cost the simulation time: its statistical profiler (a stack
    sample of the running task every 10 ms) and the MALLOC_TRIM_THRESHOLD_ its nannies set in
    every worker (which makes glibc return and fetch memory for every large array)."""
    import distributed  # noqa: F401  (loads the defaults below)
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return {"distributed.worker.profile.enabled": False,
            "distributed.nanny.pre-spawn-environ": environ}


#: Vertices of one hemisphere of an icosahedral source space.
VERTICES = {"ico2": 162, "ico3": 642, "ico4": 2562, "ico5": 10242}


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


def _split_record(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    estimates = {name: digest for name, digest in manifest["files"].items()
                 if name.endswith("-stc.h5")}
    return manifest["n_activations"], manifest["n_samples"], manifest["timings_s"], estimates


def time_simulation(config_file, overrides, way, work, headmodels, splits):
    """Simulate ``splits`` into a fresh folder one ``way`` ("1 worker", "2 workers", "dask").

    Returns seconds, activation windows, samples, per-split stage times and estimate digests.
    """
    from meg_unet.config import load_config
    from meg_unet.simulation import simulate

    data_dir = Path(tempfile.mkdtemp(dir=work))
    (data_dir / "headmodels").symlink_to(headmodels, target_is_directory=True)
    settings = [*overrides, f"DATA_DIR={data_dir}"]
    cluster = None
    if way == "1 worker":
        settings.append("N_JOBS=1")
    elif way == "2 workers":
        settings.append("N_JOBS=2")
    else:
        import dask
        from dask.distributed import LocalCluster

        with dask.config.set(_dask_tuning() if way == "dask, tuned" else {}):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        settings.append(f"DASK_SCHEDULER={cluster.scheduler_address}")
    try:
        config = load_config(config_file, overrides=settings)
        started = time.perf_counter()
        directories = simulate(config, splits=splits)
        seconds = time.perf_counter() - started
    finally:
        if cluster is not None:
            cluster.close()
    records = [_split_record(d) for d in directories]
    shutil.rmtree(data_dir)
    return dict(
        seconds=seconds, windows=sum(r[0] for r in records), samples=sum(r[1] for r in records),
        stages={s: r[2] for s, r in zip(splits, records)},
        digests={s: r[3] for s, r in zip(splits, records)},
    )


# --------------------------------------------------------------------------------------------
# Training step on virtual devices (run in a child process: the backend and XLA_FLAGS must be
# set before keras and jax are imported)
# --------------------------------------------------------------------------------------------


def _train_step_child(config_file, overrides, n_devices, batch, steps):
    import jax
    import keras
    import numpy as np

    from meg_unet.config import load_config
    from meg_unet.network.training import (
        WeightedCategoricalCrossentropy,
        build_arguments,
        distribution_scope,
    )
    from meg_unet.network.unet import build_unet

    config = load_config(config_file, overrides=overrides)
    n_rows = VERTICES[config.spacing] * (2 if config.hemisphere == "both" else 1)
    shape = (n_rows, config.tile.T_STEPS, len(config.channels))
    arguments = build_arguments(config, shape, 2, **timing_geometry(config, n_rows))
    rng = np.random.default_rng(0)
    tiles = rng.standard_normal((batch, *shape)).astype("float32")
    targets = np.eye(2, dtype="float32")[(rng.random((batch, *shape[:2])) < 0.01).astype(int)]
    scope, used = distribution_scope(batch, devices=jax.devices("cpu")[:n_devices])
    with scope:
        model = build_unet(**arguments)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=WeightedCategoricalCrossentropy([1.0, 100.0]))
        times = []
        for step in range(steps + 2):
            started = time.perf_counter()
            model.train_on_batch(tiles, targets)
            if step >= 2:
                times.append(time.perf_counter() - started)
    print(json.dumps(dict(devices=used, seconds=statistics.median(times),
                          low=min(times), high=max(times), tile=list(shape),
                          parameters=model.count_params())))


def time_training_step(config_file, overrides, n_devices, batch, steps):
    """Median seconds of one step on ``n_devices`` virtual CPU devices (child process)."""
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={max(n_devices, 1)}")
    command = [sys.executable, __file__, "--child-train-step", str(n_devices), "--batch",
               str(batch), "--steps", str(steps), "--config", str(config_file)]
    for item in overrides:
        command += ["--set", item]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# A study on paper
# --------------------------------------------------------------------------------------------


def activation_bytes(config_file, overrides, spacing):
    """Bytes of one tile's input and of the U-Net's layer outputs (float32) at ``spacing``."""
    import numpy as np

    from meg_unet.config import load_config
    from meg_unet.network.training import build_arguments
    from meg_unet.network.unet import build_unet

    config = load_config(config_file, overrides=overrides)
    shape = (VERTICES[spacing], config.tile.T_STEPS, len(config.channels))
    model = build_unet(**build_arguments(config, shape, 2, **timing_geometry(config, shape[0])))
    total = 0
    for layer in model.layers:
        for output in (layer.output if isinstance(layer.output, list) else [layer.output]):
            total += int(np.prod([d for d in output.shape if d is not None])) * 4
    return int(np.prod(shape)) * 4, total, config


def paper_study(stage_seconds, windows_per_pass, samples_per_pass, measured_spacing,
                study_spacing, subjects, passes, tile_bytes, activations, n_channels):
    """What a study at ``study_spacing`` would need, scaled from one pass measured here.

    Samples per pass grow with the vertices (one window per vertex and pass); the inverse
    stage with samples x vertices (it writes every vertex's estimate at every sample); the
    other stages with the samples.  Disk: the three estimates and the truth in float32.
    """
    factor = VERTICES[study_spacing] / VERTICES[measured_spacing]
    samples = samples_per_pass * factor
    seconds = sum(value * (factor ** 2 if stage == "inverse" else factor)
                  for stage, value in stage_seconds.items())
    estimate_bytes = 4 * 4 * VERTICES[study_spacing] * samples  # 3 estimates + truth
    raw_bytes = 8 * n_channels * samples
    total_passes = subjects * sum(passes.values())
    return dict(
        factor=factor, samples=samples, windows=windows_per_pass * factor,
        seconds_per_pass=seconds, estimate_bytes=estimate_bytes, raw_bytes=raw_bytes,
        total_passes=total_passes, total_seconds=seconds * total_passes,
        total_bytes=(estimate_bytes + raw_bytes) * total_passes,
        tile_bytes=tile_bytes, activations=activations,
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _gb(n):
    return f"{n / 1e9:.1f} GB" if n < 1e12 else f"{n / 1e12:.1f} TB"


def report(args, simulation, training, study, started):
    lines = [
        f"# Scaling out on {socket.gethostname()}",
        "",
        f"`python benchmarks/scale.py {' '.join(args.argv)}` on {machine_line()} "
        f"(before: {args.load_before:.1f}), "
        f"{time.perf_counter() - started:.0f} s in all.",
        "",
    ]
    if simulation:
        first = simulation["1 worker"][0]
        lines += [
            f"## Simulation ({', '.join(args.splits)}: {first['windows']} activation windows, "
            f"{first['samples']:,} samples; median of {len(simulation['1 worker'])} "
            "round(s), smallest-largest)",
            "",
            "| way | seconds | windows / s | ratio to 1 worker | estimates identical |",
            "| --- | --: | --: | --: | --- |",
        ]
        reference = statistics.median(r["seconds"] for r in simulation["1 worker"])
        for way, runs in simulation.items():
            seconds = [r["seconds"] for r in runs]
            median = statistics.median(seconds)
            same = all(r["digests"] == first["digests"] for r in runs)
            lines.append(
                f"| {way} | {median:.1f} ({min(seconds):.1f}-{max(seconds):.1f}) | "
                f"{first['windows'] / median:.1f} | {reference / median:.2f} | "
                f"{'yes' if same else 'NO'} |")
        stages = first["stages"]
        lines += ["", "Stage seconds of each split with one worker (first round): " + "; ".join(
            f"{split}: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
            for split, times in stages.items()), ""]
    if training:
        lines += [
            f"## Training step, JAX, virtual CPU devices (global batch {args.batch}, "
            f"median of {args.steps} steps, smallest-largest)",
            "",
            "| devices | seconds per step | tiles / s |",
            "| --: | --: | --: |",
        ]
        for result in training:
            lines.append(f"| {result['devices']} | {result['seconds']:.3f} "
                         f"({result['low']:.3f}-{result['high']:.3f}) | "
                         f"{args.batch / result['seconds']:.1f} |")
        lines += ["", f"Tile {tuple(training[0]['tile'])}, {training[0]['parameters']:,} "
                  "parameters. Virtual devices share the machine's cores: a step on two of "
                  "them does the same work split in two programs' halves, so this measures the "
                  "path's overhead, not a speed-up; real devices each bring their own.", ""]
    if study:
        s = study
        lines += [
            f"## On paper: {args.study_spacing}, {args.subjects} subjects, passes "
            f"{args.passes} per subject",
            "",
            f"Scaled from the first split's stage times above ({args.splits[0]}, one worker), "
            f"with vertices x{s['factor']:.0f}: samples and every stage but the inverse x"
            f"{s['factor']:.0f}, the inverse (every vertex at every sample) x"
            f"{s['factor'] ** 2:.0f}.",
            "",
            "| quantity | per pass | whole study |",
            "| --- | --: | --: |",
            f"| activation windows | {s['windows']:,.0f} | {s['windows'] * s['total_passes']:,.0f} |",
            f"| samples | {s['samples']:,.0f} | {s['samples'] * s['total_passes']:,.0f} |",
            f"| disk: three estimates + truth (float32) | {_gb(s['estimate_bytes'])} | "
            f"{_gb(s['estimate_bytes'] * s['total_passes'])} |",
            f"| disk: raw recording (float64) | {_gb(s['raw_bytes'])} | "
            f"{_gb(s['raw_bytes'] * s['total_passes'])} |",
            f"| simulation, 1 worker | {s['seconds_per_pass'] / 3600:.2f} h | "
            f"{s['total_seconds'] / 3600:,.0f} h |",
        ]
        for workers in (8, 32, 128):
            lines.append(f"| simulation, {workers} workers (ideal) | | "
                         f"{s['total_seconds'] / 3600 / workers:,.1f} h |")
        lines += [
            "",
            f"One input tile of the thesis profile at {args.study_spacing}: "
            f"{_gb(s['tile_bytes'])}; the U-Net's layer outputs for it (kept for the backward "
            f"pass, float32): {_gb(s['activations'])} per tile in the batch.",
            "",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config.py"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--batch", type=int, default=2, help="global batch of the step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--study-spacing", default="ico5", choices=sorted(VERTICES))
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--child-train-step", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.child_train_step is not None:
        _train_step_child(args.config, args.set, args.child_train_step, args.batch, args.steps)
        return 0
    if args.repeats < 1 or args.steps < 1 or args.subjects < 1:
        parser.error("--repeats, --steps and --subjects must be at least 1")
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even (it is split over two devices)")
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.load_before = os.getloadavg()[0]
    started = time.perf_counter()

    from threadpoolctl import threadpool_limits

    from meg_unet.config import load_config
    from meg_unet.headmodel import head_model_from_config

    config = load_config(args.config, overrides=args.set)
    simulation = {}
    with threadpool_limits(limits=1):
        head_model = head_model_from_config(config)  # the cache is built once, untimed
    n_channels = len(head_model.info["ch_names"])
    if not args.skip_simulation:
        ways = ["1 worker", "2 workers"] + ([] if args.skip_dask else ["dask", "dask, tuned"])
        with tempfile.TemporaryDirectory(dir=config.data_dir) as work:
            for round_ in range(args.repeats):
                for way in ways:
                    print(f"round {round_ + 1}: simulating with {way}", flush=True)
                    simulation.setdefault(way, []).append(time_simulation(
                        args.config, args.set, way, Path(work), config.head_model_dir.resolve(),
                        args.splits))
    training = []
    if not args.skip_training:
        for n in (1, 2):
            print(f"training step on {n} virtual device(s)", flush=True)
            training.append(time_training_step(args.config, args.set, n, args.batch,
                                               args.steps))
    study = None
    if simulation:
        # the study is thesis-sized: its passes and its network
        thesis = [*args.set, "PROFILE=thesis"]
        args.passes = dict(load_config(args.config, overrides=thesis).simulation.PASSES)
        first = simulation["1 worker"][0]
        split = args.splits[0]
        own_passes = config.simulation.PASSES
        tile_bytes, activations, _ = activation_bytes(args.config, thesis, args.study_spacing)
        study = paper_study(
            {k: v / own_passes[split] for k, v in first["stages"][split].items()},
            first["windows"] / sum(own_passes[s] for s in args.splits),
            first["samples"] / sum(own_passes[s] for s in args.splits),
            config.spacing, args.study_spacing, args.subjects, args.passes, tile_bytes,
            activations,
            n_channels)
    text = report(args, simulation, training, study, started)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"scale-{socket.gethostname().split('.')[0]}.md"
    if args.skip_simulation or args.skip_training:
        out = out.with_name(out.stem + "-partial.md")
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
