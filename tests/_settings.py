"""The settings every test run starts from: the tiny profile on ico2, in a temporary folder."""

from pathlib import Path


def tiny_run_settings(tmp_path, run_name="t", **extra):
    """Settings of a tiny run whose data and results live under ``tmp_path``.

    Parameters
    ----------
    tmp_path : pathlib.Path
        The test's temporary folder (``data/`` and ``results/`` go below it).
    run_name : str
        RUN_NAME.
    **extra
        Further settings as in ``config.py``; they override these.

    Returns
    -------
    values : dict
        Unvalidated settings (pass them to ``validate_settings``).
    """
    values = {
        "PROFILE": "tiny",
        "SPACING": "ico2",
        "DATA_DIR": tmp_path / "data",
        "RESULTS_DIR": tmp_path / "results",
        "RUN_NAME": run_name,
    }
    values.update(extra)
    return values


def simulate_and_train(config, head_model, calibrate=False):
    """Simulate a run's three splits, train its model and, if asked, calibrate it.

    The simulation runs on one BLAS thread: on 2 busy cores the inverse operator's SVD is
    about 20 times faster so.  Returns ``config``.
    """
    from threadpoolctl import threadpool_limits

    from meg_unet.calibration import calibrate_detection
    from meg_unet.network.training import train
    from meg_unet.simulation import SimulationModel

    with threadpool_limits(limits=1):
        SimulationModel(config, head_model).simulate()
    train(config)
    if calibrate:
        calibrate_detection(config, progress=False)
    return config


def write_config_file(path, values):
    """Write settings as a ``config.py`` that the scripts read (paths as strings)."""
    lines = [
        f"{key} = {str(value)!r}" if isinstance(value, Path) else f"{key} = {value!r}"
        for key, value in values.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
