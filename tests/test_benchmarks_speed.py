"""The pure helpers of benchmarks/speed.py (no test runs the benchmark itself)."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def speed():
    import speed as module  # benchmarks/speed.py, on pytest's pythonpath

    return module


def test_summarize(speed):
    assert speed.summarize([3.0, 1.0, 2.0]) == dict(median=2.0, min=1.0, max=3.0, n=3)
    assert speed.summarize([4, 1]) == dict(median=2.5, min=1.0, max=4.0, n=2)
    assert speed.summarize([0.5]) == dict(median=0.5, min=0.5, max=0.5, n=1)
    with pytest.raises(ValueError, match="at least one value"):
        speed.summarize([])


@pytest.mark.parametrize(
    "value, text",
    [(0, "0"), (0.13241, "0.132"), (0.0004567, "0.000457"), (1.2345, "1.23"), (12.54, "12.5"),
     (101.7, "102"), (1245.3, "1,245"), (40273.0, "40,273"), (-2.5, "-2.50")],
)
def test_format_number(speed, value, text):
    assert speed.format_number(value) == text


def test_markdown_table(speed):
    rows = [
        speed.Measurement("build | load", [12.2, 12.5, 15.3], "s"),
        speed.Measurement("quick: provider", [1397.0], "tiles/s", note="one run"),
    ]
    lines = speed.markdown_table(rows).splitlines()
    assert lines[0] == "| What | Median | Min | Max | n | Unit |"
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | --- |"
    assert lines[2] == "| build \\| load | 12.5 | 12.2 | 15.3 | 3 | s |"
    assert lines[3] == "| quick: provider | 1,397 | 1,397 | 1,397 | 1 | tiles/s |"
    assert all(line.count("|") - line.count("\\|") == 7 for line in lines)


def test_machine_description_keys(speed):
    machine = speed.machine_description(gpus=[])
    assert list(machine) == ["host", "cpu", "memory", "os", "python", "packages",
                             "keras backend", "threads", "gpu", "commit"]
    assert machine["gpu"] == "none"
    assert "mne" in machine["packages"] and "keras" in machine["packages"]
    assert all(isinstance(v, str) and v for v in machine.values())
    assert speed.machine_description(gpus=["NVIDIA H100 80GB HBM3, 81559 MiB"])["gpu"].startswith(
        "NVIDIA H100")


def test_report(speed, tmp_path):
    rows = [speed.Measurement("quick: one training step (CPU, tensorflow)", [0.2, 0.21, 0.25],
                              "s", note="train_on_batch")]
    machine = speed.machine_description(gpus=[])
    text = speed.report(rows, machine, ["1.00 / 1.00 / 1.00", "2.00 / 1.50 / 1.00"],
                        "python benchmarks/speed.py --repeats 3", [speed.NO_GPU_LINE], 3)
    assert text.startswith("# Speed\n")
    assert "`python benchmarks/speed.py --repeats 3`" in text
    assert "| quick: one training step (CPU, tensorflow) | 0.21 | 0.2 | 0.25 | 3 | s |" in text
    assert "- quick: one training step (CPU, tensorflow): train_on_batch" in text
    assert "No GPU on this machine" in text and "KERAS_BACKEND=jax" in text
    assert "before: 1.00 / 1.00 / 1.00; after: 2.00 / 1.50 / 1.00" in text
    out = tmp_path / "results" / "speed-test.md"
    speed.write_report(out, text)
    assert out.read_text() == text
    assert [p.name for p in out.parent.iterdir()] == ["speed-test.md"]


def test_parser_defaults(speed):
    args = speed.build_parser().parse_args([])
    assert args.repeats == 3
    assert args.profiles == ["tiny", "quick", "thesis"]
    assert not (args.skip_demo or args.skip_headmodel or args.skip_simulation)
    assert args.demo_repeats == 1 and args.demo_log is None and args.output is None
    assert args.overrides == []


def test_parser_options(speed):
    args = speed.build_parser().parse_args(
        ["--repeats", "2", "--profiles", "tiny", "--skip-demo", "--demo-log", "demo.log",
         "--output", "out.md", "--set", "SNR=1", "--set", "network.ROOT_FEATURES=8"]
    )
    assert args.repeats == 2 and args.profiles == ["tiny"] and args.skip_demo
    assert args.demo_log == Path("demo.log") and args.output == Path("out.md")
    assert args.overrides == ["SNR=1", "network.ROOT_FEATURES=8"]
    assert speed.build_parser().parse_args(["--profiles"]).profiles == []


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--repeats", "x"],
                                  ["--profiles", "huge"], ["--provider-seconds", "-1"]])
def test_parser_rejects(speed, argv, capsys):
    with pytest.raises(SystemExit):
        speed.build_parser().parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_check_overrides(speed):
    top, hyper = speed.check_overrides(["SNR=1", "network.EPOCHS=5", "RUN_NAME=x"])
    assert top == {"SNR": 1, "RUN_NAME": "x"} and hyper == {"network.EPOCHS": 5}
    with pytest.raises(ValueError, match="PROFILE is set by the benchmark.*--profiles"):
        speed.check_overrides(["PROFILE=thesis"])
    with pytest.raises(ValueError, match="DATA_DIR"):
        speed.check_overrides(["DATA_DIR=/tmp/x"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        speed.check_overrides(["SNR"])


def test_main_rejects_bad_settings(speed, capsys):
    with pytest.raises(SystemExit):
        speed.main(["--set", "SPACING=ico9", "--skip-demo"])
    assert "SPACING" in capsys.readouterr().err


def test_peak_tflops(speed):
    assert speed.peak_tflops("NVIDIA H100 80GB HBM3")["fp32"] == pytest.approx(66.9)
    assert speed.peak_tflops("NVIDIA H100 PCIe")["tf32"] == pytest.approx(378.0)
    assert speed.peak_tflops("NVIDIA H200")["bf16"] == pytest.approx(989.4)
    assert speed.peak_tflops("Tesla T4") is None


def test_accelerator_figures(speed):
    peak = speed.peak_tflops("NVIDIA H100 80GB HBM3")
    rows = speed.accelerator_figures("thesis", [0.02, 0.04], 3.308e12, 1, peak, "H100")
    by_unit = {m.unit: m for m in rows if m.unit != "%"}
    assert by_unit["tiles/s"].values == pytest.approx([50.0, 25.0])
    assert by_unit["TFLOP/s"].values == pytest.approx([165.4, 82.7])
    tf32, fp32 = [m for m in rows if m.unit == "%"]
    assert "TF32" in tf32.what and tf32.summary["max"] == pytest.approx(100 * 165.4 / 494.7)
    assert "FP32" in fp32.what and fp32.summary["max"] == pytest.approx(100 * 165.4 / 66.9)
    unknown = speed.accelerator_figures("thesis", [0.02], 1e12, 1, None, "Tesla T4")
    assert len(unknown) == 2 and "PEAK_TFLOPS" in unknown[-1].note


@pytest.mark.parametrize(
    "command, label",
    [
        ('run_step() { "$@"; }; run_step .venv/bin/python simulate_data.py --config config.py',
         "simulate"),
        ("run_step .venv/bin/python train_network.py --set DATA_DIR=/tmp/x", "train"),
        ("run_step .venv/bin/python predict.py", "predict"),
        ("run_step .venv/bin/python visualize_predictions.py", "visualize"),
        ("run_step .venv/bin/python -m meg_unet.cli analyze --config config.py", "R statistics"),
        (".venv/bin/python -m pip install -q -r requirements.txt", "install (pip)"),
        ("touch .venv/.installed", "touch .venv/.installed"),
    ],
)
def test_step_label(speed, command, label):
    assert speed.step_label(command) == label


LOG = """
@@speed-demo start 1000.000 make -C /repo demo
noise before the first step
@@speed-step start 1000.500 run_step .venv/bin/python simulate_data.py --set X=1
12:00:01 INFO split ready: /tmp/data/quick/test
@@speed-step end 1075.500 0
@@speed-step start 1075.600 run_step .venv/bin/python predict.py
(skipped: not built yet)
@@speed-step end 1077.600 0
@@speed-demo end 1078.000 0

@@speed-demo start 2000.000 make -C /repo demo
@@speed-step start 2000.100 run_step .venv/bin/python simulate_data.py
progress 50 %@@speed-step end 2001.100 0
@@speed-step start 2001.200 run_step .venv/bin/python train_network.py
@@speed-step end 2003.200 2
@@speed-demo end 2003.500 2
@@speed-demo start 3000.000 make -C /repo demo
@@speed-step start 3000.100 run_step .venv/bin/python simulate_data.py
"""


def test_parse_demo_log(speed):
    runs = speed.parse_demo_log(LOG)
    assert len(runs) == 2  # the third, interrupted run is left out
    first, second = runs
    assert first.started == 1000.0 and first.seconds == pytest.approx(78.0)
    assert first.returncode == 0 and first.command == "make -C /repo demo"
    assert [s.label for s in first.steps] == ["simulate", "predict"]
    assert [s.seconds for s in first.steps] == pytest.approx([75.0, 2.0])
    assert [s.skipped for s in first.steps] == [False, True]
    # a marker glued to a line without a newline is not a marker: the step never ends
    assert [s.label for s in second.steps] == ["train"]
    assert second.returncode == 2 and second.steps[0].returncode == 2
    assert speed.parse_demo_log("no markers at all\n") == []


def test_demo_measurements(speed):
    rows = speed.demo_measurements(speed.parse_demo_log(LOG)[:1], "fresh folders")
    assert rows[0].values == pytest.approx([78.0])
    assert "run once, not a median" in rows[0].note and "FAILED" not in rows[0].note
    assert [r.what for r in rows[1:]] == ["`make demo`: simulate", "`make demo`: predict"]
    assert rows[2].note == "skipped: not built yet"
    failed = speed.demo_measurements(speed.parse_demo_log(LOG), "a log")
    assert "2 runs" in failed[0].note and "FAILED with exit status [2]" in failed[0].note
    by_what = {r.what: r for r in failed[1:]}
    assert by_what["`make demo`: simulate"].values == pytest.approx([75.0])  # run 2's never ended
    assert by_what["`make demo`: train"].values == pytest.approx([2.0])
    assert by_what["`make demo`: train"].note == "exit status [2]"


def test_demo_command(speed):
    command = speed.demo_command(Path("/tmp/d"), Path("/tmp/r"), ["SNR=1"], Path("/tmp/sh"))
    assert command[:4] == ["make", "-C", str(ROOT), "demo"]
    assert "SHELL=/tmp/sh" in command
    assert ("DEMO_SET=--set SNR=1 --set DATA_DIR=/tmp/d --set RESULTS_DIR=/tmp/r"
            in command)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_run_timed_make(speed, tmp_path, capsys):
    """The step shell brackets every recipe line of a (fake) demo with timed markers."""
    step_shell = tmp_path / "step-shell.sh"
    step_shell.write_text(speed.STEP_SHELL)
    step_shell.chmod(0o755)
    (tmp_path / "Makefile").write_text(
        "demo:\n"
        "\t@echo simulate_data.py runs; printf 'no newline at the end'\n"
        '\t@run_step() { "$$@"; rc=$$?; if [ $$rc -eq 3 ]; then echo "(skipped: not built yet)";'
        " return 0; fi; return $$rc; }; run_step sh -c 'exit 3' predict.py\n"
        "\t@sleep 0.2; echo train_network.py\n"
    )
    log = tmp_path / "demo.log"
    command = ["make", "-C", str(tmp_path), "demo", f"SHELL={step_shell}"]
    assert speed.run_timed_make(command, log) == 0
    (run,) = speed.parse_demo_log(log.read_text())
    assert run.returncode == 0
    assert [s.label for s in run.steps] == ["simulate", "predict", "train"]
    assert [s.skipped for s in run.steps] == [False, True, False]
    assert run.steps[2].seconds >= 0.2 and run.seconds >= sum(s.seconds for s in run.steps)
    assert "[demo] train ..." in capsys.readouterr().out
    # a failing line stops make; its status is recorded
    (tmp_path / "Makefile").write_text("demo:\n\t@echo predict.py; exit 5\n\t@echo never\n")
    assert speed.run_timed_make(command, log) != 0
    runs = speed.parse_demo_log(log.read_text())
    assert len(runs) == 2 and runs[1].steps[0].returncode == 5 and len(runs[1].steps) == 1


def test_measure_demo_reads_finished_log(speed, tmp_path, monkeypatch):
    """--demo-log with enough finished runs reads them instead of running the demo."""
    log = tmp_path / "demo.log"
    log.write_text(LOG)
    monkeypatch.setattr(speed, "run_demo", lambda *a, **k: pytest.fail("the demo ran"))
    rows = speed.measure_demo([], 1, tmp_path, log)
    assert rows[0].values == pytest.approx([78.0])  # the one successful run
    assert f"timings read from `{log}`" in rows[0].note and "run once" in rows[0].note


def test_timing_geometry_builds_the_network_the_settings_train():
    """The benchmarks time the network with the mesh layer when MESH_CONTEXT asks for it."""
    from training import timing_geometry  # benchmarks/training.py

    from meg_unet.config import validate_settings
    from meg_unet.network.training import build_arguments
    from meg_unet.network.unet import build_unet

    config = validate_settings({"PROFILE": "tiny", "PARAMETERS": {"network.MESH_CONTEXT": True}})
    shape = (162, config.tile.T_STEPS, 3)
    geometry = timing_geometry(config, shape[0])
    assert geometry["row_order"] is None and len(geometry["neighbours"]) == shape[0]
    model = build_unet(**build_arguments(config, shape, 2, **geometry))
    assert any(type(layer).__name__ == "MeshContext" for layer in model.layers)
    plain = validate_settings({"PROFILE": "tiny",
                               "PARAMETERS": {"network.MESH_CONTEXT": False}})
    assert timing_geometry(plain, shape[0]) == {"row_order": None, "neighbours": None}
