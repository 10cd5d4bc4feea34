"""Head-model build and load times, BEM-resolution accuracy, and the helmet geometry.

For the embedded fsaverage model this measures

- the time to build a model from scratch (empty cache: cortical surfaces, source space, BEM
  solution, forward solution) and to load it again from the cache, median of ``--repeat``
  runs, for each ``--models`` entry (default ``ico3:meg:4`` and ``ico3:meg+eeg:4``, i.e.
  spacing:sensors:bem_ico). One untimed ico1 build first pays the one-off import costs;
- with ``--accuracy``: how much the forward solution (ico3 sources, fixed orientation)
  changes with the BEM resolution. MEG (1 layer): ``bem_ico`` 3 and 4 against the inner
  skull as shipped (10242 vertices, ``bem_ico=5``; its BEM solution takes minutes). EEG
  (3 layers, where a 3 x 10242-vertex reference does not fit in memory): ``bem_ico=3``
  against 4. Reported: the relative error of the gain matrix ``||G - G_ref||_F / ||G_ref||_F``
  and, per source (column), its relative error and correlation with the reference;
- the geometry of the sensor placement: ``dev_head_t``, scalp-to-sensor distances (at the top
  and smallest overall), the median distance from a cortical vertex to its nearest MEG
  sensor, and that no sensor is inside the scalp.

Run from the repository root::

    python benchmarks/headmodel_build.py                   # build/load times (~10 min)
    python benchmarks/headmodel_build.py --accuracy        # + BEM accuracy (~6 min more)
    python benchmarks/headmodel_build.py --repeat 1 --models ico3:meg:4

and read ``benchmarks/results/headmodel_build-<host>.md`` (also printed). Timings on a
shared machine vary with its load; the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent


def parse_model(text):
    """``"ico3:meg+eeg:4"`` -> ``("ico3", "meg+eeg", 4)``."""
    try:
        spacing, sensors, bem_ico = text.split(":")
        return spacing, sensors, int(bem_ico)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected spacing:sensors:bem_ico (e.g. ico3:meg:4), got {text!r}"
        ) from None


def time_builds(models, repeat, work):
    """Median build-from-scratch and load-from-cache times (s) per model."""
    from meg_unet.headmodel import load_head_model

    # pay the one-off imports (scikit-learn, scipy.stats ...) outside the timings
    load_head_model("fsaverage", "ico1", "meg", work / "warmup", bem_ico=3, verbose="error")
    rows = []
    for spacing, sensors, bem_ico in models:
        builds, loads = [], []
        for k in range(repeat):
            cache = work / f"{spacing}-{sensors}-{bem_ico}-{k}"
            t0 = time.perf_counter()
            load_head_model("fsaverage", spacing, sensors, cache, bem_ico=bem_ico,
                            verbose="error")
            builds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model = load_head_model("fsaverage", spacing, sensors, cache, bem_ico=bem_ico,
                                    verbose="error")
            loads.append(time.perf_counter() - t0)
            size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
            shutil.rmtree(cache)
            print(f"  {spacing} {sensors} bem_ico={bem_ico} run {k + 1}: build "
                  f"{builds[-1]:.1f} s, load {loads[-1]:.2f} s", flush=True)
        rows.append(dict(
            spacing=spacing, sensors=sensors, bem_ico=bem_ico,
            n_sources=model.n_sources, n_channels=len(model.fwd_fixed["info"]["ch_names"]),
            bem_vertices=sum(s["np"] for s in model.bem["surfs"]),
            build=statistics.median(builds), build_all=builds,
            load=statistics.median(loads), load_all=loads, size_mb=size / 1e6,
        ))
    return rows


def compare(gain, ref):
    """Relative error and per-column statistics of ``gain`` against ``ref``."""
    import numpy as np

    col_err = np.linalg.norm(gain - ref, axis=0) / np.linalg.norm(ref, axis=0)
    corr = np.array([np.corrcoef(g, r)[0, 1] for g, r in zip(gain.T, ref.T)])
    return dict(
        rel=np.linalg.norm(gain - ref) / np.linalg.norm(ref),
        col_median=np.median(col_err), col_p95=np.percentile(col_err, 95), col_max=col_err.max(),
        corr_median=np.median(corr), corr_min=corr.min(),
    )


def accuracy(work):
    """Forward differences between BEM resolutions (ico3 sources, fixed orientation)."""
    import mne

    from meg_unet.headmodel import load_head_model

    cache = work / "accuracy"
    gains = {}
    for sensors, grades in (("meg", (3, 4, 5)), ("meg+eeg", (3, 4))):
        for bem_ico in grades:
            t0 = time.perf_counter()
            model = load_head_model("fsaverage", "ico3", sensors, cache, bem_ico=bem_ico,
                                    verbose="error")
            print(f"  accuracy: {sensors} bem_ico={bem_ico} built in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            fwd = model.fwd_fixed
            picks = mne.pick_types(fwd["info"], meg=sensors == "meg", eeg=sensors != "meg")
            gains[sensors, bem_ico] = fwd["sol"]["data"][picks]
    rows = [
        dict(layers="1 (MEG, 306 ch)", test=f"ico{g}", ref="ico5 (as shipped, 10242)",
             **compare(gains["meg", g], gains["meg", 5]))
        for g in (3, 4)
    ]
    rows.append(dict(layers="3 (EEG, 60 ch)", test="ico3", ref="ico4",
                     **compare(gains["meg+eeg", 3], gains["meg+eeg", 4])))
    # MEG computed with the 3-layer model vs the 1-layer one at the same resolution
    rows.append(dict(layers="3 vs 1 (MEG)", test="3-layer ico4", ref="1-layer ico4",
                     **compare(load_head_model("fsaverage", "ico3", "meg+eeg", cache, bem_ico=4,
                                               verbose="error").fwd_fixed["sol"]["data"][:306],
                               gains["meg", 4])))
    shutil.rmtree(cache)
    return rows


def geometry():
    """Helmet placement figures of the embedded model."""
    import mne
    import numpy as np
    from mne.surface import _CheckInside
    from mne.transforms import apply_trans
    from scipy.spatial import cKDTree

    from meg_unet.headmodel import _geometry
    from meg_unet.headmodel.fsaverage import (
        _nilearn_fsaverage5_dir,
        fsaverage_dev_head_t,
        fsaverage_scalp,
        fsaverage_trans,
    )
    import nibabel as nib

    dev_head_t = fsaverage_dev_head_t()
    canonical = mne.channels.read_meg_canonical_info("neuromag")
    pos = apply_trans(dev_head_t, np.array([ch["loc"][:3] for ch in canonical["chs"]]))
    rr, tris = fsaverage_scalp("head")
    dist = _geometry.distance_to_surface(pos, rr, tris)
    axis = _geometry.unit_vectors(pos - _geometry.fit_sphere(pos)[1])
    top = axis[:, 2] > np.cos(np.radians(_geometry.TOP_HALF_ANGLE))
    inside = _CheckInside(dict(rr=rr, tris=tris), verbose=False)(pos, verbose=False)
    white = np.concatenate([
        nib.load(_nilearn_fsaverage5_dir() / f"white_{side}.gii.gz").darrays[0].data / 1000.0
        for side in ("left", "right")
    ])
    white = apply_trans(mne.transforms.invert_transform(fsaverage_trans()), white)
    ico3 = np.r_[white[:642], white[10242:10242 + 642]]
    tree = cKDTree(pos)
    return dict(
        translation_mm=dev_head_t["trans"][:3, 3] * 1000,
        top_gap=dist[top].min() * 1000, min_gap=dist.min() * 1000,
        max_gap=dist.max() * 1000, n_inside=int(inside.sum()),
        median_ctx=np.median(tree.query(white)[0]) * 1000,
        median_ctx_ico3=np.median(tree.query(ico3)[0]) * 1000,
        range_ctx=np.percentile(tree.query(white)[0], [5, 95]) * 1000,
    )


def report(build_rows, acc_rows, geo, args):
    """The results as markdown."""
    import mne

    lines = [
        "# Head-model benchmark",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')} on {machine_line()}, "
        f"mne {mne.__version__}, "
        f"`python benchmarks/headmodel_build.py {' '.join(args)}`",
        "",
    ]
    if build_rows:
        lines += [
            "## Build from scratch and load from cache (embedded fsaverage)",
            "",
            "| spacing | sensors | bem_ico | sources | channels | BEM vertices | build (s) | "
            "load (s) | cache (MB) | all builds (s) | all loads (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in build_rows:
            lines.append(
                f"| {r['spacing']} | {r['sensors']} | {r['bem_ico']} | {r['n_sources']} | "
                f"{r['n_channels']} | {r['bem_vertices']} | {r['build']:.1f} | {r['load']:.2f} | "
                f"{r['size_mb']:.0f} | {', '.join(f'{x:.1f}' for x in r['build_all'])} | "
                f"{', '.join(f'{x:.2f}' for x in r['load_all'])} |"
            )
        lines.append("")
    if acc_rows:
        lines += [
            "## Forward solution vs BEM resolution (ico3 sources, fixed orientation)",
            "",
            "| BEM layers | tested | reference | rel. error | column error median | p95 | max | "
            "column corr. median | min |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in acc_rows:
            lines.append(
                f"| {r['layers']} | {r['test']} | {r['ref']} | {100 * r['rel']:.2f} % | "
                f"{100 * r['col_median']:.2f} % | {100 * r['col_p95']:.2f} % | "
                f"{100 * r['col_max']:.1f} % | {r['corr_median']:.5f} | {r['corr_min']:.4f} |"
            )
        lines.append("")
    if geo:
        t = geo["translation_mm"]
        lines += [
            "## Sensor placement (dev_head_t)",
            "",
            f"- translation (head = device + t, identity rotation): t = ({t[0]:.1f}, "
            f"{t[1]:.1f}, {t[2]:.1f}) mm",
            f"- scalp to nearest MEG sensor: {geo['top_gap']:.1f} mm at the top, smallest "
            f"{geo['min_gap']:.1f} mm, largest {geo['max_gap']:.1f} mm; sensors inside the "
            f"scalp: {geo['n_inside']}",
            f"- cortex (white surface, 20484 vertices) to nearest MEG sensor: median "
            f"{geo['median_ctx']:.1f} mm (5-95 %: {geo['range_ctx'][0]:.1f}-"
            f"{geo['range_ctx'][1]:.1f} mm); ico3 sources: median {geo['median_ctx_ico3']:.1f} mm",
            "",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", type=parse_model,
                        default=[("ico3", "meg", 4), ("ico3", "meg+eeg", 4)],
                        help="spacing:sensors:bem_ico entries to time (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per model (median)")
    parser.add_argument("--accuracy", action="store_true",
                        help="also measure the forward's dependence on bem_ico (slow)")
    parser.add_argument("--no-timing", action="store_true", help="skip the build timings")
    parser.add_argument("--output", type=Path, default=None,
                        help="markdown file (default benchmarks/results/headmodel_build-<host>.md)")
    args = parser.parse_args(argv)
    logging.getLogger("meg_unet").setLevel(logging.WARNING)
    output = args.output or ROOT / "benchmarks" / "results" / (
        f"headmodel_build-{socket.gethostname()}.md")
    with tempfile.TemporaryDirectory(prefix="headmodel-bench-") as tmp:
        work = Path(tmp)
        geo = geometry()
        build_rows = [] if args.no_timing else time_builds(args.models, args.repeat, work)
        acc_rows = accuracy(work) if args.accuracy else []
    text = report(build_rows, acc_rows, geo, sys.argv[1:] if argv is None else argv)
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = output.with_name(output.name + ".tmp")
    tmp_out.write_text(text + "\n")
    os.replace(tmp_out, output)
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
