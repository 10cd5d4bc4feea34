"""The settings every test run starts from: the tiny profile on ico2, in a temporary folder."""


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
