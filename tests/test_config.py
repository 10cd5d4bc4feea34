"""Loading and validation of config.py."""

import ast
import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import parameters.network
from meg_unet import schema
from meg_unet.config import (
    SETTINGS,
    ConfigError,
    load_config,
    parse_override,
    read_config_file,
    settings_of_roles,
    validate_settings,
)
from meg_unet.network.training import check_compatible
from meg_unet.schema import PARAMETER_MODULES, PARAMETER_SCHEMA
from parameters import MODEL_ROLES, Interval, Role

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path, text):
    path = tmp_path / "config.py"
    path.write_text(text)
    return path


def test_repository_config_is_valid():
    config = load_config(ROOT / "config.py")
    assert config.spacing == "ico3"
    assert config.lambda2 == pytest.approx(1 / config.snr**2)
    # relative paths are resolved against the config file's folder, not the working directory
    assert config.data_dir == ROOT / "data"


def test_every_setting_is_documented_in_config_py():
    """Each setting of the schema appears in config.py with a comment right above it."""
    text = (ROOT / "config.py").read_text()
    lines = text.splitlines()
    for name in SETTINGS:
        if name == "PARAMETERS":  # advanced: documented in the module docstring and README
            assert "PARAMETERS" in (ROOT / "README.md").read_text()
            continue
        index = next(
            (i for i, line in enumerate(lines) if re.match(rf"{name}\s*=", line)), None
        )
        assert index is not None, f"{name} missing from config.py"
        assert lines[index - 1].startswith("#:") or lines[index - 2].startswith("#:"), name


def test_config_py_writes_out_the_schema_defaults():
    """The template a user edits starts from the defaults the library assumes."""
    written = read_config_file(ROOT / "config.py")
    for name, setting in SETTINGS.items():
        if name in ("RUN_NAME", "PROFILE", "PARAMETERS"):
            continue  # the template names the README's run; PARAMETERS is advanced
        default = setting.default
        assert written[name] == (str(default) if isinstance(default, Path) else default), name


def _documented_names(path):
    """Upper-case names assigned at the top of a module with a ``#:`` comment above them.

    A comment may cover a group of assignments on consecutive lines (``LEARNING_RATE`` and
    ``MOMENTUM``).
    """
    lines = path.read_text().splitlines()
    assigned, documented = [], set()
    for node in ast.parse(path.read_text()).body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                assigned.append((target.id, node))
    for name, node in assigned:
        row = node.lineno - 2  # the line above, 0-based
        while row >= 0 and re.match(r"[A-Z_0-9]+\s*[:=]", lines[row]):
            row -= 1  # another assignment of the same group
        while row >= 0 and lines[row].startswith("#:"):
            documented.add(name)
            row -= 1
    return assigned, documented


@pytest.mark.parametrize("section", list(PARAMETER_MODULES))
def test_every_parameter_is_declared_with_a_type_a_role_and_a_comment(section):
    path = ROOT / "parameters" / f"{section}.py"
    assigned, documented = _documented_names(path)
    assert assigned
    for name, node in assigned:
        assert isinstance(node, ast.AnnAssign), f"{section}.{name} has no type (NAME: Role[type])"
        assert name in documented, f"{section}.{name} has no #: comment above it"
        parameter = PARAMETER_SCHEMA[f"{section}.{name}"]
        assert isinstance(parameter.role, Role)
    assert {key for key in PARAMETER_SCHEMA if key.startswith(section + ".")} == {
        f"{section}.{name}" for name, _ in assigned
    }


def test_a_parameter_without_a_role_is_refused(monkeypatch):
    monkeypatch.setattr(parameters.network, "EXAMPLE", 3, raising=False)
    monkeypatch.setitem(parameters.network.__annotations__, "EXAMPLE", int)
    with pytest.raises(TypeError, match="EXAMPLE needs one role"):
        schema.read_schema()


def test_a_default_of_the_wrong_type_is_refused(monkeypatch):
    from parameters import Model

    monkeypatch.setattr(parameters.network, "EXAMPLE", "three", raising=False)
    monkeypatch.setitem(parameters.network.__annotations__, "EXAMPLE", Model[int])
    with pytest.raises(TypeError, match="the default of EXAMPLE must be an integer"):
        schema.read_schema()


@pytest.mark.parametrize("role", [Role.DATA, Role.MODEL, Role.TRAINING, Role.RESUMABLE])
def test_a_new_parameter_takes_one_declaration(monkeypatch, role):
    """Its role alone decides which hashes and checks see it."""
    from typing import Annotated

    monkeypatch.setattr(parameters.network, "EXAMPLE", 3, raising=False)
    monkeypatch.setitem(parameters.network.__annotations__, "EXAMPLE",
                        Annotated[int, Interval(ge=1), role])
    monkeypatch.setattr(schema, "PARAMETER_SCHEMA", schema.read_schema())
    base = validate_settings({"PROFILE": "tiny"})
    other = validate_settings({"PROFILE": "tiny", "PARAMETERS": {"network.EXAMPLE": 4}})
    assert base.network.EXAMPLE == 3 and other.network.EXAMPLE == 4
    with pytest.raises(ConfigError, match=r"network.EXAMPLE must be an integer >= 1"):
        validate_settings({"PARAMETERS": {"network.EXAMPLE": 0}})
    assert other.result_hash() != base.result_hash()
    assert (other.data_hash() != base.data_hash()) == (role is Role.DATA)
    loaded = [settings_of_roles(c.result_settings(), MODEL_ROLES) for c in (base, other)]
    assert (loaded[0] != loaded[1]) == (role is Role.MODEL)
    saved = json.loads(json.dumps({"settings": base.result_settings()}))
    if role is Role.RESUMABLE:
        check_compatible(saved, {"settings": other.result_settings()})
    else:
        with pytest.raises(ValueError, match="network.EXAMPLE: 3 in the saved model, 4 now"):
            check_compatible(saved, {"settings": other.result_settings()})


def test_a_neutral_value_is_not_recorded():
    """Parameters added later leave earlier splits and models valid at their neutral value."""
    neutral = {key: p.neutral for key, p in PARAMETER_SCHEMA.items() if p.neutral}
    assert neutral == {"simulation.PATCH_AREA_CM2": (None,), "network.ROW_ORDER": ("source_space",),
                       "network.MESH_CONTEXT": (False,), "network.LOCALIZATION_LOSS": (0.0,)}
    recorded = validate_settings({}).result_settings()["RESOLVED_PARAMETERS"]
    assert "PATCH_AREA_CM2" not in recorded["simulation"]
    assert "ROW_ORDER" not in recorded["network"]
    # the quick profile (the default) builds the network with them, the thesis's without
    assert recorded["network"]["MESH_CONTEXT"] is True
    assert recorded["network"]["LOCALIZATION_LOSS"] == 1.0
    thesis = validate_settings({"PROFILE": "thesis"}).result_settings()["RESOLVED_PARAMETERS"]
    assert not {"MESH_CONTEXT", "LOCALIZATION_LOSS"} & set(thesis["network"])
    other = validate_settings({"PARAMETERS": {"network.ROW_ORDER": "mesh"}}).result_settings()
    assert other["RESOLVED_PARAMETERS"]["network"]["ROW_ORDER"] == "mesh"


def test_settings_of_roles_drops_names_the_schema_no_longer_knows():
    settings = validate_settings({}).result_settings()
    settings["REMOVED_SETTING"] = 1
    settings["RESOLVED_PARAMETERS"]["network"]["REMOVED"] = 2
    reduced = settings_of_roles(settings, list(Role))
    assert "REMOVED_SETTING" not in reduced
    assert "REMOVED" not in reduced["RESOLVED_PARAMETERS"]["network"]
    assert reduced["RESOLVED_PARAMETERS"]["network"]["N_LEVELS"] == 4


@pytest.mark.parametrize("key, value, fragment", [
    ("network.N_LEVELS", 9, "network.N_LEVELS must be an integer >= 1 and <= 8, but got 9"),
    ("network.N_LEVELS", True, "must be an integer"),
    ("network.MAX_NORM", 0, "network.MAX_NORM must be a number > 0 or None"),
    ("network.ROW_ORDER", "rcm", "must be one of 'source_space', 'mesh'"),
    ("simulation.WAVEFORMS", ("bump", "square"), "a tuple of (one of 'bump', 'damped', "),
    ("simulation.DURATION_MS", (10.0,), "a tuple (a number, a number), but got (10.0,)"),
    ("simulation.PASSES", [1, 1, 1], "a dict of a string: an integer"),
    ("headmodel.BEM_ICO", 6, "must be one of 3, 4, 5"),
])
def test_parameter_types_are_checked_with_their_description(key, value, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_settings({"PARAMETERS": {key: value}})


def test_parameter_values_take_their_declared_form():
    config = validate_settings({"PARAMETERS": {"simulation.DURATION_MS": [20, 200],
                                               "network.LEARNING_RATE": 1}})
    assert config.simulation.DURATION_MS == (20.0, 200.0)
    assert isinstance(config.network.LEARNING_RATE, float)
    assert validate_settings({"PARAMETERS": {"headmodel.BEM_ICO": 3}}).headmodel.BEM_ICO == 3


def test_three_mistakes_reported_at_once_and_fast(tmp_path):
    path = write_config(tmp_path, 'SPACING = "ico9"\nSNR = -1\nSPACIN = "ico3"\n')
    start = time.perf_counter()
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert time.perf_counter() - start < 2
    message = str(excinfo.value)
    assert "3 problem(s)" in message
    assert "SPACING" in message and "'ico9'" in message and "'ico3'" in message
    assert "SNR" in message and "-1" in message
    assert "SPACIN" in message and "did you mean 'SPACING'" in message


def test_three_mistakes_from_the_command_line_fast(tmp_path):
    """The whole script, interpreter start included, answers a bad config in under 2 s."""
    path = write_config(tmp_path, 'SPACING = "ico9"\nSNR = -1\nSPACIN = "ico3"\n')
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "simulate_data.py"), "--config", str(path)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    assert "3 problem(s)" in proc.stderr
    assert elapsed < 2, elapsed


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"SNR": "3"}, "SNR: must be a positive finite number"),
        ({"SNR": True}, "SNR"),
        ({"LAMBDA2": 0}, "LAMBDA2"),
        ({"SNR": 0}, "SNR: must be a positive finite number"),
        ({"SNR": (10, 1)}, "SNR: a range (low, high) needs low < high"),
        ({"SNR": (3, 3)}, "SNR: a range (low, high) needs low < high"),
        ({"SNR": (0, 10)}, "SNR: the bounds of a range (low, high) must be positive"),
        ({"SNR": (-1, 10)}, "SNR: the bounds of a range (low, high) must be positive"),
        ({"SNR": (1, float("inf"))}, "SNR: the bounds of a range (low, high) must be positive"),
        ({"SNR": (1, 2, 3)}, "SNR: a range must be a pair (low, high), but got 3 value(s)"),
        ({"SNR": (1,)}, "SNR: a range must be a pair (low, high), but got 1 value(s)"),
        ({"SNR": ("1", "10")}, "SNR: the bounds of a range (low, high) must be numbers"),
        ({"SNR": (1, True)}, "SNR: the bounds of a range (low, high) must be numbers"),
        ({"N_DIPOLES": 0}, "N_DIPOLES: an activation needs at least 1 dipole"),
        ({"N_DIPOLES": (0, 3)}, "N_DIPOLES: an activation needs at least 1 dipole"),
        ({"N_DIPOLES": (5, 2)}, "1 <= low <= high"),
        ({"N_DIPOLES": (5, 2)}, "N_DIPOLES: a range needs low <= high"),
        ({"N_DIPOLES": (1, 2, 3)}, "N_DIPOLES: a range must be a pair"),
        ({"N_DIPOLES": (1.0, 3)}, "N_DIPOLES: the bounds of a range must be integers"),
        ({"N_DIPOLES": "2-5"}, "N_DIPOLES: must be a positive integer or a range"),
        ({"CHANNELS": ("mne", "mne")}, "without repeats"),
        ({"CHANNELS": ("mne", "eloreta")}, "CHANNELS"),
        ({"CHANNELS": ()}, "non-empty"),
        ({"HEMISPHERE": "left"}, "'rh', 'lh', 'both'"),
        ({"PROFILE": "huge"}, "'tiny', 'quick', 'thesis'"),
        ({"SEED": -1}, "SEED"),
        ({"SEED": 1.5}, "SEED"),
        ({"N_JOBS": 0}, "N_JOBS"),
        ({"DASK_SCHEDULER": ""}, "DASK_SCHEDULER: must be a non-empty string or None"),
        ({"DASK_SCHEDULER": 8786}, "DASK_SCHEDULER: must be a non-empty string or None"),
        ({"RUN_NAME": "a b"}, "RUN_NAME"),
        ({"ARTIFACTS": "yes"}, "ARTIFACTS"),
        ({"SENSORS": "eeg"}, "SENSORS"),
        ({"HEAD_MODEL": "custom"}, "CUSTOM_SUBJECTS_DIR: must be set"),
        ({"PARAMETERS": {"network.N_LEVEL": 3}}, "did you mean 'network.N_LEVELS'"),
        ({"PARAMETERS": {"network.N_LEVELS": "five"}}, "network.N_LEVELS"),
        ({"PARAMETERS": {"network.DROPOUT_KEEP": 1.5}}, "DROPOUT_KEEP"),
        ({"PARAMETERS": {"network.DETECTION_CONFIDENCE": 1.0}}, "network.DETECTION_CONFIDENCE"),
        ({"PARAMETERS": {"data_provider.INPUT_PREPROCESSING": "ica"}}, "INPUT_PREPROCESSING"),
        ({"PARAMETERS": "network.EPOCHS=3"}, "PARAMETERS: must be a dict"),
    ],
)
def test_bad_values_are_rejected_by_name(values, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_settings(values)


def test_good_values_are_normalized():
    config = validate_settings(
        {"N_DIPOLES": [2, 5], "CHANNELS": ["sloreta", "mne"], "SNR": 1, "LAMBDA2": 0.5}
    )
    assert config.n_dipoles == (2, 5) and config.multi_dipole
    assert config.channels == ("sloreta", "mne")
    assert config.snr == 1.0 and config.lambda2 == 0.5


def test_snr_range_is_normalized_and_sets_lambda2():
    config = validate_settings({"SNR": [1, 10]})
    assert config.snr == (1.0, 10.0)
    assert all(isinstance(v, float) for v in config.snr)
    # LAMBDA2 = None: 1 over the squared geometric mean of the bounds
    assert config.lambda2 == pytest.approx(1 / 10)
    assert config.snr_label == "1\u201310"
    assert validate_settings({"SNR": (0.5, 10), "LAMBDA2": 0.3}).lambda2 == 0.3
    single = validate_settings({"SNR": 3})
    assert single.snr == 3.0
    assert single.snr_label == "3"
    assert validate_settings({"SNR": (0.5, 10)}).snr_label == "0.5\u201310"


def test_n_dipoles_ranges():
    assert validate_settings({"N_DIPOLES": (1, 5)}).n_dipoles == (1, 5)
    assert validate_settings({"N_DIPOLES": [2, 5]}).n_dipoles == (2, 5)
    assert validate_settings({"N_DIPOLES": (3, 3)}).multi_dipole
    assert validate_settings({"N_DIPOLES": 3}).multi_dipole  # windows of 3 dipoles
    assert not validate_settings({"N_DIPOLES": 1}).multi_dipole


def test_result_hash_follows_the_snr_range():
    base = validate_settings({"SNR": 3}).result_hash()
    a = validate_settings({"SNR": (1, 10)})
    assert a.result_hash() != base
    assert a.result_hash() == validate_settings({"SNR": (1.0, 10.0)}).result_hash()
    assert a.result_hash() == validate_settings({"SNR": [1, 10]}).result_hash()
    assert a.result_hash() != validate_settings({"SNR": (1, 20)}).result_hash()
    assert a.result_hash() != validate_settings({"SNR": (0.5, 10)}).result_hash()
    assert a.result_settings()["SNR"] == [1.0, 10.0]
    assert a.result_settings()["LAMBDA2"] == pytest.approx(0.1)
    # a range survives the round trip through a JSON manifest or model.json
    import json

    settings = json.loads(json.dumps(a.result_settings()))
    assert validate_settings({"SNR": settings["SNR"]}).result_hash() == a.result_hash()


def test_snr_range_from_the_command_line(tmp_path):
    assert parse_override("SNR=(1,10)") == ("SNR", (1, 10))
    path = write_config(tmp_path, 'RUN_NAME = "x"\n')
    config = load_config(path, ["SNR=(1,10)", "N_DIPOLES=(1,5)"])
    assert config.snr == (1.0, 10.0) and config.n_dipoles == (1, 5)
    assert config.lambda2 == pytest.approx(0.1)
    with pytest.raises(ConfigError, match=r"SNR: a range \(low, high\) needs low < high"):
        load_config(path, ["SNR=(10,1)"])
    with pytest.raises(ConfigError, match="SNR: must be a positive finite number"):
        load_config(path, ["SNR=1-10"])  # not a literal: taken as the string '1-10'


def test_snr_range_in_config_file(tmp_path):
    path = write_config(tmp_path, "SNR = (0.5, 10)\nN_DIPOLES = (2, 5)\n")
    config = load_config(path)
    assert config.snr == (0.5, 10.0) and config.n_dipoles == (2, 5)
    assert config.lambda2 == pytest.approx(1 / 5)


def test_config_is_frozen():
    config = validate_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.snr = 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.network.N_LEVELS = 1


def test_profiles_and_parameter_overrides():
    thesis = validate_settings({"PROFILE": "thesis"})
    assert (thesis.network.N_LEVELS, thesis.network.FILTER_SIZE) == (5, 4)
    assert thesis.network.ROOT_FEATURES == 64 and thesis.tile.T_STEPS == 642
    assert thesis.network.LEARNING_RATE == 0.02 and thesis.network.MAX_NORM == 0.01
    tiny = validate_settings({"PROFILE": "tiny", "PARAMETERS": {"network.EPOCHS": 7}})
    assert tiny.network.EPOCHS == 7
    assert tiny.network.N_LEVELS < thesis.network.N_LEVELS
    # the parameter modules themselves are never mutated
    import parameters.network

    assert parameters.network.EPOCHS == 300


def test_overrides_from_set(tmp_path):
    path = write_config(tmp_path, 'RUN_NAME = "x"\nDATA_DIR = "d"\n')
    config = load_config(
        path, ["SNR=1", "CHANNELS=('mne','dspm')", "RUN_NAME=meg2", "network.EPOCHS=3"]
    )
    assert config.snr == 1 and config.lambda2 == 1
    assert config.channels == ("mne", "dspm")
    assert config.run_name == "meg2"
    assert config.network.EPOCHS == 3
    assert config.data_dir == tmp_path / "d"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["SNR"])


def test_parse_override_literals():
    assert parse_override("LAMBDA2=None") == ("LAMBDA2", None)
    assert parse_override("N_DIPOLES=(2, 5)") == ("N_DIPOLES", (2, 5))
    assert parse_override("RUN_NAME=meg1") == ("RUN_NAME", "meg1")


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.py")
    path = write_config(tmp_path, "SNR = (\n")
    with pytest.raises(ConfigError, match="could not be executed"):
        load_config(path)


def test_data_hash_ignores_what_only_the_network_sees():
    base = validate_settings({"SNR": 3, "PROFILE": "quick"})
    network = validate_settings({"SNR": 3, "PROFILE": "quick", "CHANNELS": ("dspm",),
                                 "PARAMETERS": {"network.EPOCHS": 3, "tile.T_STEPS": 32}})
    assert network.data_hash() == base.data_hash()
    assert network.result_hash() != base.result_hash()
    # the thesis profile simulates other numbers of windows: other data
    assert validate_settings({"SNR": 3, "PROFILE": "thesis"}).data_hash() != base.data_hash()
    for changed in ({"SNR": 1}, {"PARAMETERS": {"simulation.L_FREQ": 4.0}},
                    {"PARAMETERS": {"headmodel.BEM_ICO": 3}}, {"SENSORS": "meg+eeg"}):
        other = validate_settings({"SNR": 3, "PROFILE": "quick", **changed})
        assert other.data_hash() != base.data_hash()
    assert set(base.data_settings()["RESOLVED_PARAMETERS"]) == {"headmodel", "simulation"}


def test_result_hash_ignores_execution_settings():
    a = validate_settings({"N_JOBS": 1, "DATA_DIR": "a"})
    b = validate_settings({"N_JOBS": 2, "DATA_DIR": "b", "DASK_SCHEDULER": "tcp://h:8786"})
    c = validate_settings({"SNR": 1})
    assert a.result_hash() == b.result_hash() != c.result_hash()
    assert a.data_hash() == b.data_hash()
    assert "N_JOBS" not in a.result_settings()
    assert "DASK_SCHEDULER" not in a.result_settings()


def test_replace_revalidates():
    config = validate_settings({"SNR": 3})
    assert config.replace(SNR=1).lambda2 == 1
    with pytest.raises(ConfigError):
        config.replace(SPACING="ico9")


# ---- settings checked against the disk --------------------------------------------------------


def _files_before_and_after(tmp_path):
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("name", ["DATA_DIR", "RESULTS_DIR"])
def test_folder_setting_pointing_to_a_file_is_refused(tmp_path, name):
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(ConfigError) as excinfo:
        validate_settings({name: tmp_path / "notes.txt"})
    message = str(excinfo.value)
    assert f"{name}: {str(tmp_path / 'notes.txt')!r} is a file, not a folder" in message
    assert f"set {name} to a folder" in message
    # a folder below a file could never be created
    with pytest.raises(ConfigError, match=f"{name}: .*cannot be created because .*notes.txt"):
        validate_settings({name: tmp_path / "notes.txt" / "run"})
    # a folder that does not exist yet is fine: it is created when needed
    validate_settings({name: tmp_path / "new" / "folder"})
    assert not (tmp_path / "new").exists()


def _refused_by_simulate_data(tmp_path, config_text):
    """Run simulate_data.py on a bad configuration: exit 2, no traceback, nothing written.

    Returns the script's stderr.  (How fast it answers is measured by hand, not here: a
    timed test would fail on a loaded machine.)
    """
    path = write_config(tmp_path, config_text)
    before = _files_before_and_after(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "simulate_data.py"), "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _files_before_and_after(tmp_path) == before
    return proc.stderr


def test_data_dir_file_refused_by_the_script_and_untouched(tmp_path):
    """DATA_DIR pointing to a file: one message from the script, nothing written."""
    (tmp_path / "data").write_text("a file where the data folder should be")
    stderr = _refused_by_simulate_data(tmp_path, 'DATA_DIR = "data"\nRESULTS_DIR = "results"\n')
    assert "DATA_DIR:" in stderr and "is a file, not a folder" in stderr


def _recording(path, dig="head shape", eeg=False):
    """Save a short recording with two MEG channels (and one EEG channel).

    ``dig``: "head shape" (fiducials and 30 head points), "fiducials" (only the three
    anatomical landmarks, as many exported files) or None (no digitization at all).
    """
    import mne
    import numpy as np

    names, kinds = ["MEG 0111", "MEG 0112"], ["mag", "grad"]
    if eeg:
        names, kinds = names + ["EEG 001"], kinds + ["eeg"]
    raw = mne.io.RawArray(np.zeros((len(names), 10)), mne.create_info(names, 600.0, kinds),
                          verbose=False)
    if dig is not None:
        points = np.random.default_rng(0).standard_normal((30, 3))
        points[:, 2] = np.abs(points[:, 2])
        points *= 0.09 / np.linalg.norm(points, axis=1, keepdims=True)
        montage = mne.channels.make_dig_montage(
            nasion=[0, 0.09, 0], lpa=[-0.08, 0, 0], rpa=[0.08, 0, 0],
            hsp=points if dig == "head shape" else None, coord_frame="head",
        )
        raw.set_montage(montage, on_missing="ignore")
    raw.save(path, verbose=False)
    return path


def _custom_settings(tmp_path, info_file, **extra):
    values = {
        "HEAD_MODEL": "custom",
        "CUSTOM_SUBJECTS_DIR": tmp_path,
        "CUSTOM_SUBJECT": "subject",
        "CUSTOM_TRANS_FILE": tmp_path / "subject-trans.fif",
        "CUSTOM_BEM_FILE": tmp_path / "subject-bem-sol.fif",
        "CUSTOM_INFO_FILE": info_file,
        "DATA_DIR": tmp_path / "data",
        "RESULTS_DIR": tmp_path / "results",
    }
    values.update(extra)
    return values


@pytest.mark.parametrize("dig", ["fiducials", None])
def test_custom_recording_without_head_points_is_refused_with_artifacts(tmp_path, dig):
    info_file = _recording(tmp_path / "sensors_raw.fif", dig=dig)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as excinfo:
        validate_settings(_custom_settings(tmp_path, info_file))
    assert time.perf_counter() - start < 2
    message = str(excinfo.value)
    assert f"CUSTOM_INFO_FILE: {str(info_file)!r} has no usable digitized head points" in message
    assert "ARTIFACTS = True" in message and "or set ARTIFACTS = False" in message
    # the ways out: no artifacts, or a recording with a head shape
    validate_settings(_custom_settings(tmp_path, info_file, ARTIFACTS=False))
    validate_settings(_custom_settings(tmp_path, _recording(tmp_path / "dig_raw.fif")))


def test_custom_recording_must_have_the_configured_sensors(tmp_path):
    info_file = _recording(tmp_path / "meg_raw.fif")
    with pytest.raises(ConfigError, match="CUSTOM_INFO_FILE: .*has no EEG channels, but "
                                          "SENSORS = 'meg\\+eeg'; set SENSORS = 'meg'"):
        validate_settings(_custom_settings(tmp_path, info_file, SENSORS="meg+eeg"))
    validate_settings(_custom_settings(tmp_path, _recording(tmp_path / "eeg_raw.fif", eeg=True),
                                       SENSORS="meg+eeg"))


def test_custom_files_of_the_wrong_kind_are_refused(tmp_path):
    (tmp_path / "recording.txt").write_text("time,MEG 0111\n0,1e-12\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "bem").mkdir()
    with pytest.raises(ConfigError) as excinfo:
        validate_settings(_custom_settings(
            tmp_path, tmp_path / "recording.txt", CUSTOM_BEM_FILE=tmp_path / "bem"
        ))
    message = str(excinfo.value)
    assert "CUSTOM_BEM_FILE: " in message and "is a folder; set it to a .fif file" in message
    with pytest.raises(ConfigError) as excinfo:
        validate_settings(_custom_settings(
            tmp_path, tmp_path / "recording.txt", CUSTOM_SUBJECTS_DIR=tmp_path / "a_file"
        ))
    message = str(excinfo.value)
    assert "CUSTOM_SUBJECTS_DIR: " in message and "is a file" in message
    with pytest.raises(ConfigError) as excinfo:
        validate_settings(_custom_settings(tmp_path, tmp_path / "recording.txt"))
    message = str(excinfo.value)
    assert "recording.txt' cannot be read as a FIF recording" in message
    assert "save it as FIF" in message


def test_custom_recording_refused_by_the_script_and_untouched(tmp_path):
    """The issue's case: sensors without a head shape and ARTIFACTS on, via simulate_data.py."""
    info_file = _recording(tmp_path / "sensors_raw.fif", dig="fiducials")
    lines = [f"{key} = {str(value)!r}" if isinstance(value, Path) else f"{key} = {value!r}"
             for key, value in _custom_settings(tmp_path, info_file).items()]
    stderr = _refused_by_simulate_data(tmp_path, "\n".join(lines) + "\n")
    assert "CUSTOM_INFO_FILE" in stderr and "set ARTIFACTS = False" in stderr
