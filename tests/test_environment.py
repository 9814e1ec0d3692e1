"""course_utils.environment: device choice, seeding and the environment report."""

import random

import numpy as np
import pytest
import torch

from course_utils.environment import cpu_name, describe_environment, get_device, seed_everything


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("course_utils.environment._mps_available", lambda: True)
    assert get_device("auto").type == "mps"
    monkeypatch.setattr("course_utils.environment._mps_available", lambda: False)
    assert get_device("auto") == torch.device("cpu")


def test_cpu_is_always_available():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    assert get_device(" CPU ") == torch.device("cpu")


def test_missing_cuda_gives_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        RuntimeError, match="cuda was requested but no CUDA GPU is visible; use 'auto' or 'cpu'"
    ):
        get_device("cuda")


def test_missing_mps_gives_clear_error(monkeypatch):
    monkeypatch.setattr("course_utils.environment._mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="mps was requested"):
        get_device("mps")


def test_unknown_device_name_lists_choices():
    with pytest.raises(ValueError, match="unknown device 'tpu'.*auto, cuda, mps, cpu"):
        get_device("tpu")


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    seed_everything(123)
    first = draw()
    seed_everything(123)
    second = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    seed_everything(124)
    assert not torch.equal(draw()[2], first[2])


def test_seed_everything_deterministic_mode_toggles():
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True])
def test_seed_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        seed_everything(bad)


def test_describe_environment_reports_versions_and_device():
    info = describe_environment("cpu")
    assert info["torch"] == torch.__version__
    assert info["device"] == "cpu"
    for key in ("python", "torchvision", "cuda", "device name", "cpu threads"):
        assert info[key]
    assert int(info["cpu threads"]) == torch.get_num_threads()


def test_cpu_name_reads_the_model_name_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t: x\n")
    assert cpu_name(str(cpuinfo)) == "AMD EPYC 9B14"


def test_cpu_name_falls_back_when_the_file_is_missing_or_silent(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.processor", lambda: "arm")
    assert cpu_name(str(tmp_path / "absent")) == "arm"
    silent = tmp_path / "cpuinfo"
    silent.write_text("processor\t: 0\n")
    assert cpu_name(str(silent)) == "arm"


def test_describe_environment_names_the_cpu_on_a_cpu_device():
    assert describe_environment("cpu")["device name"] == cpu_name()
