"""The entry points answer --help and refuse a bad configuration."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["simulate_data.py", "train_network.py", "predict.py", "visualize_predictions.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout and "--set" in proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_config_exits_with_message(script, tmp_path):
    bad = tmp_path / "config.py"
    bad.write_text("SNR = 0\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), "--config", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "SNR: must be a positive finite number" in proc.stderr


def test_package_imports_without_config():
    proc = subprocess.run(
        [sys.executable, "-c", "import meg_unet, meg_unet.config, parameters"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr


def test_r_script_usage():
    import shutil

    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript not installed (.ci/run installs r-base-core)")
    proc = subprocess.run([rscript, str(ROOT / "analyze_results.r")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Usage" in proc.stdout + proc.stderr


# ---- the error boundary shared by the scripts ---------------------------------------------------


def _run_body(tmp_path, body, *options):
    """Run ``body`` through meg_unet.cli.run_main with an empty configuration file."""
    from meg_unet.cli import new_parser, run_main

    config = tmp_path / "config.py"
    config.write_text("")
    return run_main(new_parser("test", prog="demo.py"), ["--config", str(config), *options], body)


def _raise(exc):
    def body(args, config, logger):
        raise exc

    return body


def test_expected_failure_is_one_line(tmp_path, capsys):
    from meg_unet.errors import FileError

    with pytest.raises(SystemExit) as excinfo:
        _run_body(tmp_path, _raise(FileError("x.fif cannot be read; give another file")))
    assert excinfo.value.code == 1
    assert capsys.readouterr().err == "demo.py: error: x.fif cannot be read; give another file\n"
    # --verbose shows where it came from, above the same line
    with pytest.raises(SystemExit):
        _run_body(tmp_path, _raise(FileError("x.fif cannot be read")), "--verbose")
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("demo.py: error: x.fif cannot be read\n")


def test_path_errors_and_meg_unets_own_refusals_are_expected(tmp_path, capsys):
    from meg_unet.tiles import tile_layout

    for body in (_raise(NotADirectoryError(20, "Not a directory", "data/x")),
                 lambda args, config, logger: tile_layout(10, 0)):
        with pytest.raises(SystemExit) as excinfo:
            _run_body(tmp_path, body)
        assert excinfo.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("demo.py: error: ") and err.count("\n") == 1


def test_unexpected_exception_keeps_its_traceback(tmp_path, capsys):
    """A ValueError from inside NumPy (the issue's truncated-file symptom) is not hidden."""
    import numpy as np

    def body(args, config, logger):
        np.frombuffer(b"abc", dtype=np.float64)

    with pytest.raises(ValueError, match="buffer size must be a multiple of element size"):
        _run_body(tmp_path, body)
    assert "demo.py: unexpected error" in capsys.readouterr().err
    with pytest.raises(KeyError):
        _run_body(tmp_path, _raise(KeyError("bug")))


def test_unexpected_exception_from_the_command_line(tmp_path):
    """Run as a script, an unexpected exception ends in Python's traceback (exit status 1)."""
    code = (
        "import sys; from meg_unet.cli import new_parser, run_main\n"
        "def body(args, config, logger): {}['missing']\n"
        "sys.exit(run_main(new_parser('t', prog='demo.py'), sys.argv[1:], body))\n"
    )
    (tmp_path / "config.py").write_text("")
    proc = subprocess.run([sys.executable, "-c", code, "--config", str(tmp_path / "config.py")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "unexpected error" in proc.stderr
    assert "Traceback" in proc.stderr and "KeyError: 'missing'" in proc.stderr


def test_ctrl_c_says_how_to_go_on(tmp_path, capsys):
    from meg_unet.cli import new_parser, run_main

    (tmp_path / "config.py").write_text("")
    parser = new_parser("test", prog="demo.py")
    with pytest.raises(SystemExit) as excinfo:
        run_main(parser, ["--config", str(tmp_path / "config.py")], _raise(KeyboardInterrupt()),
                 interrupted="rerun it")
    assert excinfo.value.code == 130
    assert capsys.readouterr().err == "demo.py: interrupted; rerun it\n"
