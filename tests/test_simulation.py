"""SimulationModel and simulate_data.py on the tiny (ico2) embedded head model."""

import json
import shutil

import mne
import numpy as np
import pytest

from _settings import tiny_run_settings
from meg_unet.config import validate_settings
from meg_unet import simulation
from meg_unet.io import read_cov, split_files
from meg_unet.sensor_processing import noise_std as sensor_noise_std
from meg_unet.activations import (
    activation_waveform,
    dipole_amplitudes,
    draw_activations,
    draw_recording_schedule,
    draw_snrs,
    grow_patch,
    mesh_geometry,
    source_waveform,
)
from meg_unet.simulation import (
    SimulationModel,
    simulate,
    simulation_workers,
    split_dir,
    split_seed,
    split_status,
)


def tiny_config(tmp_path, **settings):
    return validate_settings(tiny_run_settings(tmp_path, run_name="tiny", **{"SNR": 3.0,
                                                                             **settings}))


def read_estimate(directory, kind):
    files = split_files(directory)
    return mne.read_source_estimate(files[kind])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, tiny_head_model):
    """One tiny run with artifacts and the full preprocessing, test split only."""
    tmp_path = tmp_path_factory.mktemp("sim")
    config = tiny_config(tmp_path)
    directory = SimulationModel(config, tiny_head_model).simulate_split("test")
    return config, directory


# ---- sources ---------------------------------------------------------------------------------


def test_every_vertex_once_per_pass():
    rng = np.random.default_rng(0)
    activations = draw_activations(162, 1, n_passes=3, n_windows=0, rng=rng)
    rows = np.concatenate(activations)
    assert len(rows) == 3 * 162
    for k in range(3):
        assert sorted(rows[k * 162 : (k + 1) * 162]) == list(range(162))
    # each pass in a new order
    assert not np.array_equal(rows[:162], rows[162:324])


def test_multi_dipole_windows():
    rng = np.random.default_rng(1)
    activations = draw_activations(642, (2, 5), n_passes=1, n_windows=500, rng=rng)
    counts = np.array([len(a) for a in activations])
    assert len(activations) == 500
    assert counts.min() == 2 and counts.max() == 5
    assert set(counts) == {2, 3, 4, 5}  # uniform over the range: all counts occur
    assert all(len(set(a)) == len(a) for a in activations)  # distinct vertices


def test_mixed_dipole_counts_uniform_per_window():
    """N_DIPOLES = (1, 5): every count from 1 to 5, in about equal shares, reproducibly."""
    activations = draw_activations(642, (1, 5), 1, 2000, np.random.default_rng(2))
    counts = np.array([len(a) for a in activations])
    assert set(counts) == {1, 2, 3, 4, 5}
    shares = np.bincount(counts, minlength=6)[1:] / len(counts)
    np.testing.assert_allclose(shares, 0.2, atol=0.04)
    again = draw_activations(642, (1, 5), 1, 2000, np.random.default_rng(2))
    assert all(np.array_equal(a, b) for a, b in zip(activations, again))


def test_snr_draw_within_bounds_reproducible_and_log_uniform():
    snrs = draw_snrs(20000, (0.5, 10.0), np.random.default_rng(4))
    assert snrs.shape == (20000,)
    assert snrs.min() >= 0.5 and snrs.max() <= 10.0
    np.testing.assert_array_equal(snrs, draw_snrs(20000, (0.5, 10.0), np.random.default_rng(4)))
    assert not np.array_equal(snrs, draw_snrs(20000, (0.5, 10.0), np.random.default_rng(5)))
    # log-uniform: the median is the geometric mean, and each decile of log(SNR) holds a tenth
    assert np.median(snrs) == pytest.approx(np.sqrt(0.5 * 10.0), rel=0.03)
    fractions = np.histogram(np.log(snrs), bins=10, range=(np.log(0.5), np.log(10)))[0]
    np.testing.assert_allclose(fractions / len(snrs), 0.1, atol=0.01)
    # a uniform draw would put its median at the arithmetic mean, 5.25
    assert np.median(snrs) < 3.5


def test_single_snr_draws_nothing():
    rng = np.random.default_rng(6)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(draw_snrs(5, 3.0, rng), np.full(5, 3.0))
    assert rng.bit_generator.state == state  # single-SNR splits are as before


@pytest.mark.parametrize("snr", [(10.0, 1.0), (0.0, 1.0), (-1.0, 2.0), (2.0, 2.0), -3.0])
def test_snr_draw_refuses_bad_ranges(snr):
    with pytest.raises(ValueError, match="'snr' parameter"):
        draw_snrs(3, snr, np.random.default_rng(0))


def test_too_many_dipoles_for_the_hemisphere():
    with pytest.raises(ValueError, match="only 42 vertices"):
        draw_activations(42, (2, 50), 1, 10, np.random.default_rng(0))


def test_split_seeds_independent_and_reproducible():
    seeds = {split: split_seed(42, split) for split in ("train", "valid", "test")}
    assert len(set(seeds.values())) == 3
    assert split_seed(42, "train") == seeds["train"]
    assert split_seed(43, "train") != seeds["train"]


def test_waveform_is_the_thesis_sinusoid():
    sfreq = 600.614990234375
    waveform = activation_waveform(sfreq, 20, 10.0)
    assert waveform.shape == (20,)
    assert np.all(waveform > 0)  # a third of a 10 Hz cycle, every sample active
    np.testing.assert_allclose(waveform[0], np.sin(2 * np.pi * 10 * 0.5 / sfreq))


def test_dipole_amplitudes_reach_snr():
    rng = np.random.default_rng(3)
    gain = rng.standard_normal((50, 10))
    sigma = rng.uniform(0.5, 2.0, 50)
    waveform = activation_waveform(600.0, 20, 10.0)
    amps = dipole_amplitudes(gain, np.array([2, 7]), 1 / sigma, 3.0, waveform)
    for amp, column in zip(amps, (2, 7)):
        whitened = gain[:, column, None] * amp * waveform[None] / sigma[:, None]
        assert np.sqrt(np.mean(whitened**2)) == pytest.approx(3.0)


# ---- a simulated split -------------------------------------------------------------------------


def test_split_files_readable_with_mne(simulated):
    config, directory = simulated
    files = split_files(directory)
    raw = mne.io.read_raw_fif(files["raw"], verbose=False)
    mne.read_forward_solution(files["fwd"], verbose=False)
    cov = read_cov(files["cov"])
    assert cov["data"].dtype == np.float64
    mne.minimum_norm.read_inverse_operator(files["inv"], verbose=False)
    mne.read_source_spaces(files["src"], verbose=False)
    manifest = json.loads(files["manifest"].read_text())
    assert manifest["n_samples"] == raw.n_times
    assert manifest["sfreq"] == pytest.approx(raw.info["sfreq"])
    assert set(manifest["files"]) == {p.name for r, p in files.items() if r != "manifest"}
    assert manifest["versions"]["mne"] == mne.__version__
    assert manifest["lambda2"] == pytest.approx(1 / 9)
    # ECG/EOG artifacts were added and handled by ICA and SSP
    assert manifest["preprocessing"]["artifacts"] == ["ecg", "eog"]
    assert "ica_excluded" in manifest["preprocessing"]
    assert "MEG 2443" in raw.info["bads"]


def test_ica_falls_back_to_no_rejection_when_every_segment_is_too_loud(tmp_path,
                                                                        tiny_head_model):
    """Loud multi-dipole data can exceed REJECT everywhere: ICA then fits on all the data."""
    config = tiny_config(tmp_path, N_DIPOLES=(2, 3), SNR=(5.0, 10.0), PARAMETERS={
        "simulation.N_WINDOWS": {"train": 60, "valid": 20, "test": 200},
        "simulation.REJECT": {"grad": 1e-15, "mag": 1e-17},
    })
    directory = SimulationModel(config, tiny_head_model).simulate_split("test")
    manifest = json.loads(split_files(directory)["manifest"].read_text())
    assert manifest["preprocessing"]["reject"] is None
    assert "ica_excluded" in manifest["preprocessing"]


def test_snr_reached_within_5_percent(simulated):
    config, directory = simulated
    manifest = json.loads(split_files(directory)["manifest"].read_text())
    assert manifest["snr_reached"]["mean"] == pytest.approx(config.snr, rel=0.05)
    # single SNR: the keys of earlier manifests, plus per-activation targets and ratios
    assert manifest["snr_target"] == 3.0 and manifest["snr_target_label"] == "3"
    n = manifest["n_activations"]
    assert manifest["activations"]["snr_target"] == [3.0] * n
    assert len(manifest["activations"]["snr_reached"]) == n
    assert manifest["snr_reached"]["ratio_to_target"]["median"] == pytest.approx(1, rel=0.02)
    assert manifest["n_dipoles"] == {"setting": 1, "counts": {"1": n}, "mean": 1.0}


def test_estimates_have_the_hemisphere_vertices_and_times(simulated, tiny_head_model):
    config, directory = simulated
    manifest = json.loads(split_files(directory)["manifest"].read_text())
    rh_vertno = tiny_head_model.src[1]["vertno"]
    for kind in ("mne", "dspm", "sloreta", "truth"):
        stc = read_estimate(directory, kind)
        assert len(stc.vertices[0]) == 0
        np.testing.assert_array_equal(stc.vertices[1], rh_vertno)
        assert stc.data.shape == (len(rh_vertno), manifest["n_samples"])
        assert stc.tstep == pytest.approx(1 / manifest["sfreq"])
        assert np.all(np.isfinite(stc.data))
        if kind != "truth":  # loose orientation: the norm over orientations
            assert stc.data.min() >= 0


def test_truth_matches_the_sources(simulated):
    config, directory = simulated
    manifest = json.loads(split_files(directory)["manifest"].read_text())
    truth = read_estimate(directory, "truth").data
    acts = manifest["activations"]
    n_active = manifest["samples_per_activation"]
    period = n_active + manifest["gap_samples"]
    assert manifest["gap_samples"] == 10 and n_active == 20
    assert len(acts["onsets"]) == 162  # ico2: one pass over 162 vertices
    for onset, rows, amps in zip(acts["onsets"], acts["rows"], acts["amplitudes_nAm"]):
        window = truth[:, onset : onset + n_active]
        active_rows = np.flatnonzero(np.abs(window).max(axis=1) > 0)
        assert list(active_rows) == rows
        peak = activation_waveform(manifest["sfreq"], n_active, 10.0).max()
        assert np.abs(window[rows]).max() == pytest.approx(amps[0] * 1e-9 * peak, rel=1e-5)
        gap = truth[:, onset + n_active : onset + period]
        assert not gap.any()
    assert sorted(r for rows in acts["rows"] for r in rows) == list(range(162))


def test_sloreta_peak_at_true_vertex_without_noise(tmp_path, tiny_head_model):
    """sLORETA has zero localization error for noiseless single dipoles (fixed orientation)."""
    config = tiny_config(
        tmp_path, SNR=1e6, LAMBDA2=1 / 9, ARTIFACTS=False, ORIENTATION="fixed",
        PARAMETERS={"simulation.PREPROCESS": False},
    )
    directory = SimulationModel(config, tiny_head_model).simulate_split("valid")
    manifest = json.loads(split_files(directory)["manifest"].read_text())
    sloreta = np.abs(read_estimate(directory, "sloreta").data)
    onsets = np.array(manifest["activations"]["onsets"]) + 10  # mid-activation
    peaks = sloreta[:, onsets].argmax(axis=0)
    true_rows = [rows[0] for rows in manifest["activations"]["rows"]]
    np.testing.assert_array_equal(peaks, true_rows)


def test_snr_range_and_mixed_dipoles_in_a_split(tmp_path, tiny_head_model):
    """SNR = (1, 10), N_DIPOLES = (1, 3): each window's own target, reached and recorded."""
    config = tiny_config(
        tmp_path, SNR=(1, 10), N_DIPOLES=(1, 3), ARTIFACTS=False,
        PARAMETERS={"simulation.PREPROCESS": False},
    )
    directory = SimulationModel(config, tiny_head_model).simulate_split("valid")
    manifest = json.loads(split_files(directory)["manifest"].read_text())
    acts = manifest["activations"]
    n = manifest["n_activations"]
    assert n == config.simulation.N_WINDOWS["valid"] == 20

    assert manifest["snr_target"] == [1.0, 10.0]
    assert manifest["snr_target_label"] == "1\u201310"
    assert manifest["lambda2"] == pytest.approx(1 / 10)  # 1 / geometric mean**2
    targets = np.array(acts["snr_target"])
    assert targets.shape == (n,)
    assert targets.min() >= 1 and targets.max() <= 10
    assert len(set(targets)) == n  # drawn per window
    # the targets are the split rng's draw that follows the choice of the dipoles
    rng = np.random.default_rng(manifest["seed"])
    draw_activations(162, (1, 3), 1, n, rng)
    np.testing.assert_allclose(targets, draw_snrs(n, (1, 10), rng), rtol=1e-3)

    # every dipole of a window is scaled to the window's target ...
    truth = read_estimate(directory, "truth").data
    fwd = tiny_head_model.fwd_fixed
    n_lh = len(tiny_head_model.src[0]["vertno"])
    gain = fwd["sol"]["data"]
    noise_std = sensor_noise_std(tiny_head_model.info, fwd["sol"]["row_names"])
    waveform = activation_waveform(manifest["sfreq"], 20, 10.0)
    for onset, rows, target in zip(acts["onsets"], acts["rows"], targets):
        amps = truth[rows, onset : onset + 20] / waveform
        whitened = gain[:, n_lh + np.array(rows)] / noise_std[:, None] * amps[:, :1].T
        snr_each = np.linalg.norm(whitened, axis=0) * np.sqrt(np.mean(waveform**2))
        np.testing.assert_allclose(snr_each / np.sqrt(len(noise_std)), target, rtol=2e-3)
    # ... and reaches it with the noise drawn: per dipole, and per window of one dipole
    ratio = manifest["snr_reached"]["ratio_to_target"]
    assert ratio["median"] == pytest.approx(1, abs=0.03)
    assert 0.95 < ratio["min"] <= ratio["max"] < 1.05
    reached = np.array(acts["snr_reached"])
    counts = np.array([len(rows) for rows in acts["rows"]])
    single = counts == 1
    assert single.any()
    np.testing.assert_allclose(reached[single], targets[single], rtol=0.05)
    # reached SNRs follow their targets across the decade of the range
    assert np.corrcoef(np.log(reached), np.log(targets))[0, 1] > 0.9

    # dipole counts within the range, summarized by count
    assert counts.min() >= 1 and counts.max() <= 3
    assert manifest["n_dipoles"]["setting"] == [1, 3]
    assert manifest["n_dipoles"]["counts"] == {
        str(k): int(np.sum(counts == k)) for k in np.unique(counts)
    }
    assert sum(manifest["n_dipoles"]["counts"].values()) == n
    assert manifest["n_dipoles"]["mean"] == pytest.approx(counts.mean())


def test_reproducible_and_seed_dependent(tmp_path, tiny_head_model):
    settings = dict(ARTIFACTS=False)
    a = SimulationModel(tiny_config(tmp_path / "a", **settings), tiny_head_model)
    b = SimulationModel(tiny_config(tmp_path / "b", **settings), tiny_head_model)
    c = SimulationModel(tiny_config(tmp_path / "c", SEED=7, **settings), tiny_head_model)
    da, db, dc = (m.simulate_split("valid") for m in (a, b, c))
    ma, mb, mc = (json.loads(split_files(d)["manifest"].read_text()) for d in (da, db, dc))
    assert ma["activations"] == mb["activations"]
    assert ma["activations"]["rows"] != mc["activations"]["rows"]
    for kind in ("mne", "dspm", "sloreta", "truth"):
        np.testing.assert_array_equal(read_estimate(da, kind).data, read_estimate(db, kind).data)
        assert sha256(split_files(da)[kind]) == sha256(split_files(db)[kind])
    raw_a = mne.io.read_raw_fif(split_files(da)["raw"], verbose=False).get_data()
    raw_b = mne.io.read_raw_fif(split_files(db)["raw"], verbose=False).get_data()
    np.testing.assert_array_equal(raw_a, raw_b)


def sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rerun_skips_resumes_and_refuses(tmp_path, tiny_head_model, monkeypatch):
    config = tiny_config(tmp_path, ARTIFACTS=False)
    model = SimulationModel(config, tiny_head_model)

    # An interrupted run leaves only a .partial folder, never a split that looks complete.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulation, "empty_room_covariance", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.simulate_split("valid")
    monkeypatch.undo()
    final = config.run_data_dir / "valid"
    assert not final.exists() and final.with_name("valid.partial").exists()

    directory = model.simulate_split("valid")
    assert not final.with_name("valid.partial").exists()
    assert split_status(directory, config) == "complete"
    reference = read_estimate(directory, "dspm").data

    # A rerun skips the complete split (files untouched).
    mtime = split_files(directory)["dspm"].stat().st_mtime_ns
    model.simulate_split("valid")
    assert split_files(directory)["dspm"].stat().st_mtime_ns == mtime

    # A damaged file is detected and the split rebuilt identically.
    split_files(directory)["dspm"].write_bytes(b"broken")
    assert split_status(directory, config) == "corrupt"
    model.simulate_split("valid")
    np.testing.assert_array_equal(read_estimate(directory, "dspm").data, reference)

    # Other settings in the same run folder are refused, unless --overwrite.
    other = SimulationModel(config.replace(SNR=1.0), tiny_head_model)
    with pytest.raises(FileExistsError, match="SNR: 3.0 on disk, 1.0 now"):
        other.simulate_split("valid")
    other.simulate_split("valid", overwrite=True)
    assert split_status(directory, config.replace(SNR=1.0)) == "complete"

    # Settings that only the network sees leave the split valid; simulation settings do not.
    simulated_config = config.replace(SNR=1.0)
    network_changed = simulated_config.replace(
        CHANNELS=("dspm", "sloreta"), PARAMETERS={"network.EPOCHS": 7, "tile.T_STEPS": 32})
    assert split_status(directory, network_changed) == "complete"
    sim_changed = simulated_config.replace(PARAMETERS={"simulation.L_FREQ": 4.0})
    assert split_status(directory, sim_changed) == "mismatch"
    with pytest.raises(FileExistsError,
                       match=r"RESOLVED_PARAMETERS\.simulation\.L_FREQ: 5\.0 on disk, 4\.0 now"):
        SimulationModel(sim_changed, tiny_head_model).simulate_split("valid")
    # A split written before data_hash (its config_hash covered every setting) is judged by
    # the data part of the settings its manifest recorded.
    manifest_path = split_files(directory)["manifest"]
    manifest = json.loads(manifest_path.read_text())
    manifest["config_hash"] = simulated_config.result_hash()
    manifest_path.write_text(json.dumps(manifest))
    assert split_status(directory, network_changed) == "complete"
    assert split_status(directory, sim_changed) == "mismatch"


def test_simulate_data_script_refuses_bad_config(tmp_path, capsys):
    import simulate_data

    config_file = tmp_path / "config.py"
    config_file.write_text('N_DIPOLES = (0, 3)\nSPACING = "ico2"\n')
    with pytest.raises(SystemExit) as excinfo:
        simulate_data.main(["--config", str(config_file)])
    assert excinfo.value.code == 2
    assert "N_DIPOLES" in capsys.readouterr().err


def test_simulate_data_script_end_to_end(tmp_path, tiny_head_model, monkeypatch):
    """The script writes the three splits and a second call skips them."""
    import simulate_data
    from meg_unet import headmodel

    monkeypatch.setattr(headmodel, "head_model_from_config", lambda config: tiny_head_model)
    config_file = tmp_path / "config.py"
    config_file.write_text(
        'PROFILE = "tiny"\nSPACING = "ico2"\nRUN_NAME = "e2e"\nARTIFACTS = False\n'
    )
    assert simulate_data.main(["--config", str(config_file)]) == 0
    for split in ("train", "valid", "test"):
        assert (tmp_path / "data" / "e2e" / split / "manifest.json").is_file()
    assert simulate_data.main(["--config", str(config_file), "--splits", "test"]) == 0
    shutil.rmtree(tmp_path / "data")


# ---- recording-like timing (simulation.TIMING = "recording") --------------------------------


def test_recording_schedule_honours_durations_overlaps_and_silence(tmp_path):
    sim = tiny_config(tmp_path, PARAMETERS={"simulation.TIMING": "recording"}).simulation
    sfreq = 600.0
    rng = np.random.default_rng(3)
    activations = draw_activations(642, (1, 4), 1, 400, rng)
    schedule = draw_recording_schedule(activations, sfreq, sim, rng)
    low, high = (d * sfreq / 1000 for d in sim.DURATION_MS)
    durations = np.concatenate(schedule["source_durations"])
    assert durations.min() >= np.floor(low) and durations.max() <= np.ceil(high)
    # log-uniform: the median duration is near the geometric mean of the bounds
    assert np.median(durations) == pytest.approx(np.sqrt(low * high), rel=0.2)
    onsets, lengths = schedule["window_onsets"], schedule["window_durations"]
    # windows in order, never overlapping one another
    assert np.all(onsets[1:] >= onsets[:-1] + lengths[:-1])
    overlapping = 0
    for onset, length, starts, spans in zip(onsets, lengths, schedule["source_onsets"],
                                            schedule["source_durations"]):
        assert starts[0] == onset and np.all(starts + spans <= onset + length)
        # every later source starts while the first one is on: they overlap in time
        assert np.all(starts[1:] < starts[0] + spans[0])
        overlapping += len(starts) > 1 and len(set(zip(starts, spans))) > 1
    assert overlapping > 200  # different time courses, not copies of one another
    # the silences hold NOISE_ONLY_SHARE of the samples
    active = lengths.sum()
    assert 1 - active / schedule["n_times"] == pytest.approx(sim.NOISE_ONLY_SHARE, abs=0.01)
    # noise segments tile the recording, each with a drawn kind and level
    segments = np.array(schedule["segments"])
    assert segments[0, 0] == 0 and segments[-1, 1] == schedule["n_times"]
    np.testing.assert_array_equal(segments[1:, 0], segments[:-1, 1])
    assert set(schedule["noise_kinds"]) == set(sim.NOISE_KINDS)
    levels = schedule["noise_levels"]
    assert sim.NOISE_LEVEL[0] <= levels.min() and levels.max() <= sim.NOISE_LEVEL[1]
    assert {k for kinds in schedule["waveforms"] for k in kinds} == set(sim.WAVEFORMS)


@pytest.mark.parametrize("kind", ["bump", "damped", "burst"])
def test_source_waveforms(kind):
    wave = source_waveform(kind, 90, 600.0, 10.0, np.random.default_rng(0))
    assert wave.shape == (90,) and np.max(np.abs(wave)) == pytest.approx(1.0)
    assert np.all(wave != 0)  # every sample of the duration is active
    with pytest.raises(ValueError, match="unknown waveform"):
        source_waveform("square", 90, 600.0, 10.0, np.random.default_rng(0))


@pytest.mark.parametrize("parameters, culprit", [
    ({"simulation.DURATION_MS": (-10.0, 300.0)}, "simulation.DURATION_MS"),
    ({"simulation.DURATION_MS": (300.0, 10.0)}, "simulation.DURATION_MS"),
    ({"simulation.NOISE_ONLY_SHARE": 1.2}, "simulation.NOISE_ONLY_SHARE"),
    ({"simulation.NOISE_ONLY_SHARE": -0.1}, "simulation.NOISE_ONLY_SHARE"),
    ({"simulation.TIMING": "random"}, "simulation.TIMING"),
    ({"simulation.WAVEFORMS": ("bump", "square")}, "simulation.WAVEFORMS"),
    ({"simulation.NOISE_KINDS": ()}, "simulation.NOISE_KINDS"),
    ({"simulation.NOISE_LEVEL": (0.0, 1.0)}, "simulation.NOISE_LEVEL"),
    ({"simulation.OSCILLATION_HZ": (2.0, 400.0)}, "simulation.OSCILLATION_HZ"),
    ({"simulation.PATCH_AREA_CM2": (5.0, 2.0)}, "simulation.PATCH_AREA_CM2"),
    ({"simulation.PATCH_AREA_CM2": (-1.0, 2.0)}, "simulation.PATCH_AREA_CM2"),
    ({"simulation.PATCH_AREA_CM2": 4.0}, "simulation.PATCH_AREA_CM2"),
])
def test_bad_recording_settings_refused_by_name(tmp_path, parameters, culprit):
    from meg_unet.config import ConfigError

    with pytest.raises(ConfigError, match=culprit.replace(".", r"\.")):
        tiny_config(tmp_path, PARAMETERS=parameters)


def test_recording_split_manifest_and_truth(tmp_path, tiny_head_model):
    config = tiny_config(tmp_path, ARTIFACTS=False, N_DIPOLES=(1, 3),
                         PARAMETERS={"simulation.TIMING": "recording"})
    directory = SimulationModel(config, tiny_head_model).simulate_split("valid")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["timing"] == "recording"
    recording = manifest["recording"]
    activations = manifest["activations"]
    n_windows = len(activations["onsets"])
    assert n_windows == config.simulation.N_WINDOWS["valid"]
    for key in ("onsets", "durations", "waveforms", "frequencies_hz"):
        assert [len(v) for v in recording["sources"][key]] == [len(r) for r in
                                                                activations["rows"]]
    assert len(recording["noise"]["kinds"]) == n_windows
    share = recording["noise_only_share"]
    assert share["setting"] == 0.3 and share["reached"] == pytest.approx(0.3, abs=0.02)
    # every dipole reaches its window's SNR against the window's own noise level
    ratio = manifest["snr_reached"]["ratio_to_target"]
    assert 0.8 < ratio["min"] and ratio["max"] < 1.25

    # the truth is on exactly at each source's onset for its duration
    truth = read_estimate(directory, "truth").data
    active = np.abs(truth) > 0
    expected = np.zeros_like(active)
    for rows, onsets, durations in zip(activations["rows"], recording["sources"]["onsets"],
                                       recording["sources"]["durations"]):
        for row, onset, duration in zip(rows, onsets, durations):
            expected[row, onset : onset + duration] = True
    np.testing.assert_array_equal(active, expected)
    assert manifest["n_samples"] == truth.shape[1]
    assert np.mean(~active.any(axis=0)) == pytest.approx(share["reached"])


# ---- extended sources (simulation.PATCH_AREA_CM2) ----------------------------------------------


def test_mesh_geometry_areas_and_edges(tiny_head_model):
    src = tiny_head_model.src
    rows = len(src[0]["vertno"]) + np.arange(len(src[1]["vertno"]))
    areas, edges = mesh_geometry(src, rows)
    # an ico2 hemisphere is a closed mesh: its vertex areas add up to its triangles' area
    rh = src[1]
    positions = rh["rr"][rh["vertno"]]
    tris = np.searchsorted(rh["vertno"], rh["use_tris"])
    a, b, c = (positions[tris[:, k]] for k in range(3))
    total = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()
    assert areas.sum() == pytest.approx(total)
    assert edges.shape == (len(rows), len(rows)) and (edges != edges.T).nnz == 0
    # every edge of the triangulation, and nothing else, with its length
    i, j = tris[0, 0], tris[0, 1]
    assert edges[i, j] == pytest.approx(np.linalg.norm(positions[i] - positions[j]))
    assert edges.nnz == 2 * 3 * len(tris) // 2


def test_grow_patch_takes_nearest_rows_until_the_area_is_covered():
    # a path 0 - 1 - 2 - 3 with edges 1, 1, 2 m and areas 1, 2, 3, 4 m^2
    from scipy import sparse

    edges = sparse.csr_array(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 2],
                                       [0, 0, 2, 0]], float))
    areas = np.array([1.0, 2.0, 3.0, 4.0])
    rows, weights = grow_patch(1, 2.0, areas, edges)
    np.testing.assert_array_equal(rows, [1])  # the seed covers the area on its own
    rows, weights = grow_patch(1, 4.5, areas, edges)
    assert rows[0] == 1 and set(rows) == {0, 1, 2}
    np.testing.assert_allclose(weights, areas[rows] / 6.0)
    rows, _ = grow_patch(0, 100.0, areas, edges)  # more than the mesh: all of it
    np.testing.assert_array_equal(np.sort(rows), [0, 1, 2, 3])


def test_patch_split_spreads_each_moment_over_its_patch(tmp_path, tiny_head_model):
    config = tiny_config(tmp_path, ARTIFACTS=False,
                         PARAMETERS={"simulation.PATCH_AREA_CM2": (10.0, 40.0)})
    directory = SimulationModel(config, tiny_head_model).simulate_split("test")
    manifest = json.loads((directory / "manifest.json").read_text())
    patches = manifest["patches"]
    rows = manifest["activations"]["rows"]
    assert [len(p) for p in patches["rows"]] == [len(r) for r in rows]
    truth = read_estimate(directory, "truth").data
    onsets = manifest["activations"]["onsets"]
    for window in range(len(rows)):
        for seed, patch, drawn, area in zip(rows[window], patches["rows"][window],
                                            patches["area_cm2_drawn"][window],
                                            patches["area_cm2"][window]):
            assert patch[0] == seed and len(set(patch)) == len(patch)
            assert area >= drawn or len(patch) == len(truth)  # grown until covered
            active = np.flatnonzero(np.abs(truth[:, onsets[window] + 5]) > 0)
            np.testing.assert_array_equal(np.sort(patch), active)
    # ico2 vertices cover about 5 cm^2 each: the patches hold several of them
    assert np.mean([len(p) for window in patches["rows"] for p in window]) > 2
    # the SNR holds for the patch as a whole
    ratio = manifest["snr_reached"]["ratio_to_target"]
    assert 0.9 < ratio["min"] and ratio["max"] < 1.1
    # point dipoles (the default) write no patches and keep the split's identity
    assert "PATCH_AREA_CM2" not in json.loads(json.dumps(tiny_config(tmp_path).data_settings()))[
        "RESOLVED_PARAMETERS"]["simulation"]


def _assert_same_splits(a, b, splits):
    """The data of two runs' splits are identical: recordings, estimates, truth, draws."""
    for split in splits:
        da = split_dir(a.data_dir, a.run_name, split)
        db = split_dir(b.data_dir, b.run_name, split)
        ma, mb = (json.loads(split_files(d)["manifest"].read_text()) for d in (da, db))
        assert ma["activations"] == mb["activations"]
        assert ma["config_hash"] == mb["config_hash"]
        np.testing.assert_array_equal(
            mne.io.read_raw_fif(split_files(da)["raw"], verbose=False).get_data(),
            mne.io.read_raw_fif(split_files(db)["raw"], verbose=False).get_data())
        for kind in ("mne", "dspm", "sloreta", "truth"):
            assert sha256(split_files(da)[kind]) == sha256(split_files(db)[kind])


def test_two_workers_simulate_the_same_splits_as_one_process(tmp_path, tiny_head_model):
    one = tiny_config(tmp_path / "one")
    two = tiny_config(tmp_path / "two", N_JOBS=2)
    assert simulation_workers(two, 3) == 2 and simulation_workers(two, 1) == 1
    simulate(one, tiny_head_model, splits=("valid", "test"))
    directories = simulate(two, tiny_head_model, splits=("valid", "test"))
    assert [d.name for d in directories] == ["valid", "test"]
    assert not list((two.data_dir / two.run_name).glob("*.partial"))
    _assert_same_splits(one, two, ("valid", "test"))


def test_a_dask_cluster_simulates_the_same_splits(tmp_path, tiny_head_model):
    distributed = pytest.importorskip("dask.distributed")
    one = tiny_config(tmp_path / "one", ARTIFACTS=False)
    simulate(one, tiny_head_model, splits=("valid", "test"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = tiny_config(tmp_path / "dask", ARTIFACTS=False,
                              DASK_SCHEDULER=cluster.scheduler_address)
        simulate(on_dask, tiny_head_model, splits=("valid", "test"))
    _assert_same_splits(one, on_dask, ("valid", "test"))


def test_a_split_with_other_settings_is_refused_before_any_worker_starts(tmp_path,
                                                                          tiny_head_model):
    config = tiny_config(tmp_path, ARTIFACTS=False)
    simulate(config, tiny_head_model, splits=("test",))
    changed = tiny_config(tmp_path, ARTIFACTS=False, SNR=1.0, N_JOBS=2)
    with pytest.raises(FileExistsError, match="other settings"):
        simulate(changed, tiny_head_model, splits=("valid", "test"))
    assert not (tmp_path / "data" / "tiny" / "valid").exists()
