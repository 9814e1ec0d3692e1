"""course_utils.environment: devices, seeding, CPU threads on a shared machine, the environment report."""

import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from course_utils import environment
from course_utils.environment import (
    adapt_cpu_threads,
    cpu_name,
    cpus_busy_elsewhere,
    describe_environment,
    get_device,
    seed_everything,
    usable_cpu_count,
)


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


# --- CPU threads on a shared machine ---------------------------------------------------------------


def test_a_container_cpu_limit_is_read_from_cgroup_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert environment._cgroup_cpu_limit(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert environment._cgroup_cpu_limit(v2) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert environment._cgroup_cpu_limit(tmp_path / "v1") == 2.0
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert environment._cgroup_cpu_limit(tmp_path / "v1") is None
    assert environment._cgroup_cpu_limit(tmp_path / "nothing") is None


def test_usable_cpus_are_the_allowed_ones_capped_by_the_container_limit(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(environment, "_cgroup_cpu_limit", lambda: 1.5)  # 1.5 CPUs of a 64-core server
    assert usable_cpu_count() == 2
    monkeypatch.setattr(environment, "_cgroup_cpu_limit", lambda: None)
    assert usable_cpu_count() == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # taskset -c 3
    assert usable_cpu_count() == 1


def sample(wall: float, busy: int, total: int, own: float = 0.0):
    return environment._CpuSample(wall=wall, busy_ticks=busy, total_ticks=total, own_seconds=own)


def test_cpus_busy_elsewhere_leaves_out_this_process_own_work(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    # 2 CPUs for 1 s = 200 ticks, 150 of them busy: 1.5 CPUs busy, 0.5 of that by this process.
    assert cpus_busy_elsewhere(sample(0.0, 0, 0), sample(1.0, 150, 200, own=0.5)) == pytest.approx(1.0)
    assert cpus_busy_elsewhere(sample(0.0, 0, 0), sample(1.0, 100, 200, own=1.0)) == 0.0  # only this one
    assert cpus_busy_elsewhere(sample(0.0, 0, 0), sample(0.0, 0, 0)) == 0.0  # no time passed


def test_cpus_busy_elsewhere_sees_a_process_that_burns_a_cpu():
    before = environment._cpu_sample()
    if before is None:
        pytest.skip("no /proc/stat: CPU load is not measured on this system")
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(1.0)
        after = environment._cpu_sample()
    finally:
        burner.wait()
    assert cpus_busy_elsewhere(before, after) > 0.5


@pytest.fixture
def thread_state(monkeypatch):
    """adapt_cpu_threads on a made-up 2-CPU machine whose load each test sets; torch's count restored."""
    saved = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(environment, "_cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(environment, "_TORCH_DEFAULT_THREADS", 2)
    monkeypatch.setattr(environment, "_threads_set", None)
    torch.set_num_threads(2)
    clock = {"wall": 100.0, "busy": 0, "total": 0}
    monkeypatch.setattr(environment, "_last_sample", sample(100.0, 0, 0))

    def others_use(cpus: float, seconds: float = 1.0) -> None:
        """Let ``seconds`` pass in which other processes keep ``cpus`` of the 2 CPUs busy."""
        clock["wall"] += seconds
        clock["total"] += int(200 * seconds)
        clock["busy"] += int(100 * cpus * seconds)

    monkeypatch.setattr(
        environment, "_cpu_sample", lambda: sample(clock["wall"], clock["busy"], clock["total"])
    )
    yield others_use
    torch.set_num_threads(saved)


def test_alone_a_run_keeps_all_its_threads(thread_state):
    thread_state(0.4)  # a browser, a Jupyter server: less than BUSY_CORE_THRESHOLD of a core
    assert adapt_cpu_threads() == 2 and torch.get_num_threads() == 2


def test_a_run_takes_the_cpus_others_leave_and_takes_them_back(thread_state):
    thread_state(0.67)  # another run's one thread, sharing the 2 cores with this run's 2 threads
    assert adapt_cpu_threads() == 1 and torch.get_num_threads() == 1
    thread_state(1.0)  # another student's training on one core
    assert adapt_cpu_threads() == 1
    thread_state(2.0)  # everything busy: still one thread, never none
    assert adapt_cpu_threads() == 1
    thread_state(0.0)  # the other run finished
    assert adapt_cpu_threads() == 2 and torch.get_num_threads() == 2


def test_a_call_too_soon_after_the_last_keeps_the_count(thread_state):
    thread_state(1.0)
    assert adapt_cpu_threads() == 1
    thread_state(0.0, seconds=0.01)  # 10 ms tell nothing
    assert adapt_cpu_threads() == 1


def test_a_stale_measurement_is_replaced_by_a_new_one(thread_state, monkeypatch):
    thread_state(2.0, seconds=600)  # long ago (a cell run again ten minutes later) the machine was busy
    slept = []
    monkeypatch.setattr(time, "sleep", lambda seconds: (slept.append(seconds), thread_state(0.0, seconds)))
    assert adapt_cpu_threads() == 2  # the new measurement: quiet now
    assert slept == [pytest.approx(0.1)]


def test_a_count_the_user_chose_is_kept(thread_state, monkeypatch):
    thread_state(2.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert adapt_cpu_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(3)  # set by hand
    assert adapt_cpu_threads() == 3


def test_a_deterministic_run_keeps_its_thread_count(thread_state):
    thread_state(2.0)
    try:
        seed_everything(0, deterministic=True)
        assert adapt_cpu_threads() == 2  # sums split over other thread counts round differently
    finally:
        seed_everything(0, deterministic=False)


def test_configure_adapts_the_threads(thread_state):
    from course_utils.profiles import configure

    thread_state(1.5)
    configure("02_lenet5_mnist", "smoke", device="cpu")
    assert torch.get_num_threads() == 1
