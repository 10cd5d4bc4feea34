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
