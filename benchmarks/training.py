"""Training speed per profile: model size, FLOPs, CPU step time, data-provider throughput.

For each profile (default: ``thesis`` and ``quick``, with the repository's default settings:
ico3, right hemisphere, three inverse methods) this builds the U-Net for the profile's tile and
reports

- the number of parameters and the FLOPs of one training step, counted analytically from the
  convolutions (:func:`meg_unet.network.unet.forward_flops`; a step is about three forward
  passes: forward, and the backward pass's gradients for activations and for kernels);
- the median time of a training step on this machine's CPU (``train_on_batch`` on random
  tiles, after one untimed warm-up step that traces the graph), and for profiles with few
  FLOPs also a step through ``model.fit`` with the real tile stream and a validation step;
- the tiles per second that the :class:`~meg_unet.data_provider.GeneratorDataProvider` cuts
  with its configured worker threads, from an in-memory split of random data of the profile's
  tile size (the cost of cutting a tile does not depend on the values);
- the step time that the FLOPs imply on a GPU at 100 TFLOP/s, and whether the provider keeps
  up with it at least five times over;
- for the quick profile, the projected length of ``python train_network.py`` from the
  measured step times and the split sizes the simulation settings give.

Run from the repository root::

    python benchmarks/training.py                        # thesis and quick (a few minutes)
    python benchmarks/training.py --profiles quick --set tile.T_STEPS=64

and read ``benchmarks/results/training-<host>.md``.  Timings on a shared machine vary with its
load; the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

from machine import host_name, machine_line  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent

GPU_FLOPS = 100e12  # the assumed sustained rate of one modern GPU, FLOP/s
PROVIDER_MARGIN = 5  # the provider must deliver this many times the GPU's tiles per second


def vertices_per_hemisphere(spacing):
    """Vertices of one hemisphere of an fsaverage source space at ``spacing``."""
    kind, grade = spacing[:3], int(spacing[3:])
    if kind == "ico":
        return 10 * 4**grade + 2
    return {5: 1026, 6: 4098}[grade]  # oct5, oct6


def timing_geometry(config, n_vertices, degree=6):
    """Stand-ins for the mesh geometry that ``network.ROW_ORDER`` and ``MESH_CONTEXT`` ask for.

    These benchmarks time the network on random tiles, without a source space.  A seeded
    random row order and random neighbour lists of the mesh's size cost the network exactly
    what the real ones do (a gather of the same shape), so the network timed is the one the
    settings train.  Returns the keyword arguments ``row_order`` and ``neighbours`` of
    :func:`meg_unet.network.training.build_arguments`.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    net = config.network
    return {
        "row_order": rng.permutation(n_vertices).tolist() if net.ROW_ORDER == "mesh" else None,
        "neighbours": (rng.integers(0, n_vertices, (n_vertices, degree)).tolist()
                       if net.MESH_CONTEXT else None),
    }


def split_samples(config, split):
    """Samples of a simulated split, from the simulation settings."""
    sim = config.simulation
    window = sim.SAMPLES_PER_ACTIVATION + round(sim.EMPTY_SIGNAL * sim.SAMPLES_PER_ACTIVATION)
    if config.multi_dipole:
        return sim.N_WINDOWS[split] * window
    n_vertices = vertices_per_hemisphere(config.spacing) * (2 if config.hemisphere == "both" else 1)
    return sim.PASSES[split] * n_vertices * window


def timed(function, repeats):
    """Median and all wall-clock times of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def in_memory_provider(config, tile_shape, n_tiles, rng):
    """A training split of random data with ``n_tiles`` tiles of the profile's size."""
    import numpy as np

    from meg_unet.data_provider import DataProvider

    n_vertices, t_steps, _ = tile_shape
    n_times = n_tiles * t_steps
    estimates = {c: rng.random((n_vertices, n_times), dtype=np.float32) for c in config.channels}
    amplitudes = np.zeros((n_vertices, n_times), dtype=np.float32)
    active = rng.integers(0, n_vertices, n_times)
    amplitudes[active, np.arange(n_times)] = 1e-8
    vertices = [np.array([], int), np.arange(n_vertices)]
    positions = rng.random((n_vertices, 3)) * 0.1
    return DataProvider.from_arrays(config, estimates, amplitudes, vertices, positions,
                                    split="train")


def provider_rate(stream, workers, seconds=3.0):
    """Tiles per second that ``workers`` threads cut from ``stream`` (as Keras's enqueuer does)."""
    n_batches = len(stream)
    done, start = 0, time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        while time.perf_counter() - start < seconds:
            for batch in pool.map(stream.__getitem__, range(n_batches)):
                done += len(batch[0])
    return done / (time.perf_counter() - start)


def measure(profile, overrides, steps, fit_steps):
    """Measure one profile; return a dict of figures."""
    import keras
    import numpy as np

    from meg_unet.config import validate_settings
    from meg_unet.data_provider import GeneratorDataProvider, one_hot
    from meg_unet.network.training import build_arguments, compile_model
    from meg_unet.network.unet import build_unet, forward_flops

    config = validate_settings({"PROFILE": profile, "PARAMETERS": overrides})
    net, tile, dp = config.network, config.tile, config.data_provider
    n_vertices = vertices_per_hemisphere(config.spacing) * (2 if config.hemisphere == "both" else 1)
    n_channels = len(config.channels) + (3 if dp.COORDINATE_CHANNELS else 0)
    tile_shape = (n_vertices, tile.T_STEPS, n_channels)
    batch = net.BATCH_SIZE
    rng = np.random.default_rng(0)

    model = build_unet(**build_arguments(config, tile_shape, dp.N_CLASSES,
                                         **timing_geometry(config, n_vertices)))
    compile_model(model, config, [1.0] + [1000.0] * (dp.N_CLASSES - 1), steps_per_epoch=100)
    forward = forward_flops(model)
    step_flops = 3 * forward * batch
    x = rng.random((batch, *tile_shape), dtype=np.float32)
    y = one_hot(rng.integers(0, dp.N_CLASSES, (batch, *tile_shape[:2])).astype(np.uint8),
                dp.N_CLASSES)
    print(f"[{profile}] {model.count_params():,} parameters, tile {tile_shape}, "
          f"{step_flops / 1e9:.1f} GFLOP per step; timing {steps} step(s)...", flush=True)
    first, _ = timed(lambda: model.train_on_batch(x, y), 1)
    step, step_times = timed(lambda: model.train_on_batch(x, y), steps)
    result = {
        "profile": profile,
        "overrides": overrides,
        "tile_shape": tile_shape,
        "batch": batch,
        "levels": net.N_LEVELS,
        "filter": net.FILTER_SIZE,
        "root": net.ROOT_FEATURES,
        "params": model.count_params(),
        "forward_flops": forward,
        "step_flops": step_flops,
        "first_step_s": first,
        "step_s": step,
        "step_times_s": step_times,
        "gpu_step_s": step_flops / GPU_FLOPS,
        "workers": dp.N_WORKERS,
    }

    # the provider, with its workers and on one thread
    n_tiles = max(8 * batch, min(64, int(2e8 // (np.prod(tile_shape) * 4))))
    provider = in_memory_provider(config, tile_shape, n_tiles, rng)
    stream = GeneratorDataProvider.from_config(provider, config)
    result["tiles_per_s"] = provider_rate(stream, dp.N_WORKERS)
    result["tiles_per_s_1"] = provider_rate(stream, 1)
    result["gpu_tiles_per_s"] = batch / result["gpu_step_s"]

    if fit_steps:
        # the real path: model.fit over the stream (tf.data conversion, worker threads)
        fit_stream = GeneratorDataProvider(
            provider, batch_size=batch, steps_per_epoch=fit_steps, seed=0,
            workers=dp.N_WORKERS, max_queue_size=dp.MAX_QUEUE_SIZE,
        )
        model.fit(fit_stream, epochs=1, shuffle=False, verbose=0)  # warm-up and tracing
        start = time.perf_counter()
        model.fit(fit_stream, epochs=1, shuffle=False, verbose=0)
        result["fit_step_s"] = (time.perf_counter() - start) / fit_steps
        result["eval_step_s"], _ = timed(lambda: model.test_on_batch(x, y), max(3, steps // 2))

        train_tiles = split_samples(config, "train") // tile.T_STEPS
        valid_tiles = split_samples(config, "valid") // tile.T_STEPS
        steps_per_epoch = tile.STEPS_PER_EPOCH or train_tiles // batch
        valid_steps = net.VALIDATION_STEPS or valid_tiles // batch
        epoch_s = steps_per_epoch * result["fit_step_s"] + valid_steps * result["eval_step_s"]
        result.update(
            train_samples=split_samples(config, "train"),
            train_tiles=train_tiles,
            steps_per_epoch=steps_per_epoch,
            valid_steps=valid_steps,
            epochs=net.EPOCHS,
            epoch_s=epoch_s,
            projected_s=net.EPOCHS * epoch_s,
        )
    keras.backend.clear_session()
    return result


def report(results, load_before, load_after, command):
    """The results as markdown."""
    import keras

    lines = [
        "# Training speed",
        "",
        f"Written by `{command}` on {datetime.datetime.now().isoformat(timespec='minutes')}.",
        "",
        f"- machine: {machine_line()}, no GPU used",
        f"- Keras {keras.__version__}, backend {keras.backend.backend()}",
        f"- load average (1 min) before / after: {load_before:.2f} / {load_after:.2f} "
        "(other jobs on a shared machine slow the timings down)",
        f"- GPU estimate: step FLOPs at {GPU_FLOPS / 1e12:.0f} TFLOP/s; for the thesis profile "
        f"the provider must cut at least {PROVIDER_MARGIN}x the tiles per second that this GPU "
        "step consumes",
        "",
        "| profile | tile (vertices, samples, channels) x batch | levels / filter / root "
        "| parameters | GFLOP per step (3x forward) | CPU step (median) | CPU GFLOP/s "
        "| GPU step at 100 TFLOP/s | provider tiles/s (workers) | provider tiles/s (1 thread) "
        "| needed (5x GPU) | provider OK |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        # the GPU check is for the thesis profile: smaller tiles would not keep a GPU busy anyway
        needed = PROVIDER_MARGIN * r["gpu_tiles_per_s"] if r["profile"] == "thesis" else None
        lines.append(
            f"| {r['profile']}{' ' + str(r['overrides']) if r['overrides'] else ''} "
            f"| {r['tile_shape']} x {r['batch']} | {r['levels']} / {r['filter']} / {r['root']} "
            f"| {r['params']:,} | {r['step_flops'] / 1e9:,.1f} | {r['step_s'] * 1e3:,.0f} ms "
            f"({len(r['step_times_s'])} step{'s' if len(r['step_times_s']) > 1 else ''}) "
            f"| {r['step_flops'] / r['step_s'] / 1e9:.0f} | {r['gpu_step_s'] * 1e3:.2f} ms "
            f"| {r['tiles_per_s']:,.0f} ({r['workers']}) | {r['tiles_per_s_1']:,.0f} "
            + (f"| {needed:,.0f} | {'yes' if r['tiles_per_s'] >= needed else 'NO'} |"
               if needed is not None else "| - | - |")
        )
    lines.append("")
    lines.append("First (tracing) step: " + ", ".join(
        f"{r['profile']} {r['first_step_s']:.1f} s" for r in results) + ".")
    for r in results:
        if "projected_s" not in r:
            continue
        lines += [
            "",
            f"## `{r['profile']}` profile: projected `python train_network.py`",
            "",
            f"- training split: {r['train_samples']:,} samples -> {r['train_tiles']} tiles of "
            f"{r['tile_shape'][1]} samples; {r['steps_per_epoch']} steps per epoch, "
            f"{r['valid_steps']} validation steps, up to {r['epochs']} epochs",
            f"- step through `model.fit` with the tile stream: {r['fit_step_s'] * 1e3:.0f} ms; "
            f"validation step: {r['eval_step_s'] * 1e3:.0f} ms",
            f"- one epoch: {r['epoch_s']:.0f} s; all {r['epochs']} epochs: "
            f"{r['projected_s'] / 60:.1f} min (plus loading the data, about 10-20 s; early "
            "stopping can end it sooner)",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["thesis", "quick"])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="section.NAME=VALUE",
                        help="override a hyperparameter for every profile, e.g. tile.T_STEPS=64")
    parser.add_argument("--thesis-steps", type=int, default=1,
                        help="timed training steps of the thesis profile (about 30 s each)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed training steps of the other profiles")
    parser.add_argument("--fit-steps", type=int, default=30,
                        help="steps through model.fit (profiles other than thesis)")
    parser.add_argument("--output", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args(argv)

    from meg_unet.config import parse_override

    overrides = dict(parse_override(text) for text in args.overrides)
    load_before = os.getloadavg()[0]
    results = []
    for profile in args.profiles:
        thesis = profile == "thesis"
        results.append(
            measure(profile, overrides, args.thesis_steps if thesis else args.steps,
                    0 if thesis else args.fit_steps)
        )
    load_after = os.getloadavg()[0]
    command = "python benchmarks/training.py" + (" " + " ".join(argv) if argv else "")
    text = report(results, load_before, load_after, command)
    host = host_name()
    output = args.output or ROOT / "benchmarks" / "results" / f"training-{host}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
