"""course_utils.environment: devices, seeds, the environment report, precision, CPU threads on a shared
machine, and the file helpers (project_root, display_path, atomic_write)."""

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import environment
from course_utils.environment import (
    Precision,
    atomic_write,
    choose_precision,
    cpu_has_bf16,
    cpu_name,
    describe_environment,
    display_path,
    get_device,
    project_root,
    seed_everything,
    share_cpu_threads,
    usable_cpu_count,
)

REPOSITORY = Path(__file__).resolve().parent.parent
CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


# --- get_device ---------------------------------------------------------------------------------


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device("auto") == CPU


def test_the_cpu_is_always_there_by_any_spelling():
    assert get_device("cpu") == get_device(CPU) == get_device(" CPU ") == CPU


def test_an_unknown_device_name_lists_the_choices():
    with pytest.raises(
        ValueError, match=r"unknown device 'tpu'; use one of auto, cuda, mps, cpu \(or 'cuda:N'\)"
    ):
        get_device("tpu")


def test_a_missing_gpu_is_a_value_error_that_says_what_to_use(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for name in ("cuda", "cuda:0", "mps"):
        with pytest.raises(
            ValueError, match=f"device '{name}' is not available on this machine; use 'auto' or 'cpu'"
        ):
            get_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert get_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="device 'cuda:1' is not available"):  # one GPU: only cuda:0
        get_device("cuda:1")


# --- seed_everything ----------------------------------------------------------------------------


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    seed_everything(123)
    first = draw()
    seed_everything(123)
    second = draw()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    seed_everything(124)
    assert not torch.equal(draw()[2], first[2])
    seed_everything(2**40)  # larger than NumPy's 32-bit seeds: still accepted


def test_seed_everything_switches_deterministic_algorithms_on_and_off(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # set by it; removed again afterwards
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    finally:
        seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_a_seed_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        seed_everything(bad)


# --- describe_environment and cpu_name ----------------------------------------------------------------


def test_describe_environment_reports_versions_and_hardware(monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = describe_environment("cpu")
    assert list(info) == [
        "python", "torch", "torchvision", "cuda", "device", "device name", "cpu threads", "precision (auto)",
    ]  # fmt: skip
    assert all(isinstance(value, str) and value for value in info.values())
    assert info["python"] == sys.version.split()[0]
    assert info["torch"] == torch.__version__ and info["torchvision"] == torchvision.__version__
    assert info["cuda"] == "not available" and info["device"] == "cpu"
    assert info["device name"] == cpu_name()
    assert info["cpu threads"] == str(torch.get_num_threads())
    assert info["precision (auto)"] == choose_precision("auto", CPU).name


def fake_file(monkeypatch, path, text):
    """Make ``open(path)`` give ``text`` (or raise OSError when text is None); other files are real."""
    real_open = open

    def opened(file, *args, **kwargs):
        if str(file) != path:
            return real_open(file, *args, **kwargs)
        if text is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return io.StringIO(text)

    monkeypatch.setattr("builtins.open", opened)


def test_cpu_name_reads_the_model_name_line(monkeypatch):
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t: x\n"
    fake_file(monkeypatch, "/proc/cpuinfo", cpuinfo)
    assert cpu_name() == "AMD EPYC 9B14"


@pytest.mark.parametrize("cpuinfo", [None, "processor\t: 0\n"], ids=["no file", "no model name"])
def test_cpu_name_falls_back_on_the_platform(monkeypatch, cpuinfo):
    fake_file(monkeypatch, "/proc/cpuinfo", cpuinfo)
    monkeypatch.setattr("platform.processor", lambda: "arm")
    assert cpu_name() == "arm"
    monkeypatch.setattr("platform.processor", lambda: "")
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    assert cpu_name() == "arm64"


# --- choose_precision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "choice", "dtype", "scaler"),
    [
        ((7, 5), "auto", torch.float16, True),  # T4 (Colab): bf16 only emulated, so fp16 + loss scaling
        ((7, 0), "auto", torch.float16, True),  # V100
        ((8, 0), "auto", torch.bfloat16, False),  # A100
        ((8, 6), "auto", torch.bfloat16, False),  # RTX 30xx
        ((9, 0), "auto", torch.bfloat16, False),  # H100
        ((7, 5), "bf16", torch.bfloat16, False),  # asked for explicitly: given, slow as it is
        ((9, 0), "fp16", torch.float16, True),
        ((9, 0), "fp32", None, False),
    ],
)
def test_cuda_precision_follows_the_compute_capability(monkeypatch, capability, choice, dtype, scaler):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert choose_precision(choice, CUDA) == Precision(dtype, use_grad_scaler=scaler)


@pytest.mark.parametrize(
    ("has_bf16", "choice", "name"),
    [
        (True, "auto", "bf16"),  # AVX-512 BF16 or AMX
        (False, "auto", "fp32"),  # most laptops: AVX2 only
        (False, "bf16", "bf16"),
        (True, "fp32", "fp32"),
    ],
)
def test_cpu_precision_follows_its_bf16_instructions(monkeypatch, has_bf16, choice, name):
    monkeypatch.setattr(environment, "cpu_has_bf16", lambda: has_bf16)
    precision = choose_precision(choice, CPU)
    assert precision.name == name and not precision.use_grad_scaler


def test_float16_on_the_cpu_and_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="float16 training on the CPU is not supported; use 'bf16', 'auto'"):
        choose_precision("fp16", CPU)
    for bad in ("half", False, None):
        with pytest.raises(
            ValueError, match=f"mixed_precision must be one of auto, bf16, fp16, fp32, got {bad!r}"
        ):
            choose_precision(bad, CPU)


def test_mps_computes_in_float32_unless_asked():
    assert choose_precision("auto", MPS) == Precision(None)
    assert choose_precision("fp16", MPS) == Precision(torch.float16, use_grad_scaler=False)
    assert choose_precision("bf16", MPS) == Precision(torch.bfloat16)


def test_precision_names_and_the_real_cpu_check():
    assert [Precision(dtype).name for dtype in (None, torch.bfloat16, torch.float16)] == [
        "fp32",
        "bf16",
        "fp16",
    ]
    assert isinstance(cpu_has_bf16(), bool)


# --- CPU threads on a shared machine ------------------------------------------------------------


@pytest.fixture
def machine(monkeypatch):
    """share_cpu_threads on a made-up 2-CPU machine whose load each test sets; torch's count restored.

    Yields ``others_use(cpus, seconds=1.0, own=0.0)``: let ``seconds`` pass in which other processes keep
    ``cpus`` CPUs busy and this one ``own``, as /proc/stat would count it (100 ticks a second a CPU).
    """
    saved = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(environment, "usable_cpu_count", lambda: 2)
    monkeypatch.setattr(environment, "_TORCH_THREADS", 2)  # torch's own choice on this machine
    monkeypatch.setattr(environment, "_threads_set", None)
    clock = {"wall": 100.0, "busy": 0, "total": 0, "own": 0.0}
    monkeypatch.setattr(environment, "_last_look", (100.0, 0, 0, 0.0))
    monkeypatch.setattr(environment, "_look_at_cpus", lambda: tuple(clock.values()))
    torch.set_num_threads(2)

    def others_use(cpus, seconds=1.0, own=0.0):
        clock["wall"] += seconds
        clock["total"] += round(200 * seconds)
        clock["busy"] += round(100 * (cpus + own) * seconds)
        clock["own"] += own * seconds

    yield others_use
    torch.set_num_threads(saved)


def test_alone_a_run_keeps_torchs_count_and_touches_nothing(machine, monkeypatch):
    calls, real_set_num_threads = [], torch.set_num_threads
    monkeypatch.setattr(
        torch, "set_num_threads", lambda count: (calls.append(count), real_set_num_threads(count))
    )
    machine(0.4, own=2.0)  # a browser, a Jupyter server; and this run's own threads, which do not count
    assert share_cpu_threads() == 2
    assert calls == []


def test_a_run_takes_only_the_cpus_others_leave_and_takes_them_back(machine):
    machine(0.67)  # another run's thread, sharing the 2 cores with this run's 2 threads
    assert share_cpu_threads() == 1 and torch.get_num_threads() == 1
    machine(1.0, own=1.0)  # another student's training on one core, this run on the other
    assert share_cpu_threads() == 1
    machine(2.0)  # everything busy: still one thread, never none
    assert share_cpu_threads() == 1
    machine(0.0, own=1.0)  # the other run finished
    assert share_cpu_threads() == 2 and torch.get_num_threads() == 2


def test_a_look_too_soon_after_the_last_changes_nothing(machine):
    machine(1.0)
    assert share_cpu_threads() == 1
    machine(0.0, seconds=0.01)  # 10 ms tell nothing
    assert share_cpu_threads() == 1


@pytest.mark.parametrize("last_look", [None, (100.0 - 600, 0, 0, 0.0)], ids=["first call", "ten minutes ago"])
def test_without_a_recent_look_it_measures_for_the_interval(machine, monkeypatch, last_look):
    monkeypatch.setattr(environment, "_last_look", last_look)
    machine(2.0, seconds=600)  # long ago the machine was busy
    slept = []
    monkeypatch.setattr(time, "sleep", lambda seconds: (slept.append(seconds), machine(0.0, seconds)))
    monkeypatch.setattr(environment, "_MEASURE_SECONDS", 0.2)
    assert share_cpu_threads() == 2  # what counts is the new measurement: quiet now
    assert slept == [0.2]


def test_a_count_the_user_chose_is_kept(machine, monkeypatch):
    machine(2.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert share_cpu_threads() == 2 and torch.get_num_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(3)  # by hand, in a notebook
    machine(2.0)
    assert share_cpu_threads() == 3 and torch.get_num_threads() == 3


def test_a_deterministic_run_keeps_its_thread_count(machine):
    machine(2.0)
    try:
        seed_everything(0, deterministic=True)
        assert share_cpu_threads() == 2  # sums split over another number of threads round differently
    finally:
        seed_everything(0, deterministic=False)


def test_without_proc_stat_a_run_uses_every_usable_cpu(machine, monkeypatch):
    monkeypatch.setattr(environment, "_look_at_cpus", lambda: None)  # macOS, Windows
    torch.set_num_threads(1)
    monkeypatch.setattr(environment, "_threads_set", 1)  # as if it had chosen 1 itself before
    assert share_cpu_threads() == 2


def test_on_this_machine_share_cpu_threads_gives_a_sensible_count():
    saved = torch.get_num_threads()
    try:
        assert 1 <= share_cpu_threads() <= max(saved, usable_cpu_count())
    finally:
        torch.set_num_threads(saved)


def test_importing_the_module_reads_no_proc_or_sys_file():
    """Looking at the CPUs happens when a run asks (fit, between epochs), not at import: an import must
    stay cheap and work where /proc does not exist."""
    code = textwrap.dedent(
        """
        import builtins, io, os
        import numpy, torch  # their own start-up is theirs

        opened = []
        real_open, real_os_open = builtins.open, os.open

        def spy(file, *args, **kwargs):
            opened.append(str(file))
            return real_open(file, *args, **kwargs)

        def os_spy(file, *args, **kwargs):
            opened.append(str(file))
            return real_os_open(file, *args, **kwargs)

        builtins.open = io.open = spy
        os.open = os_spy
        from course_utils import environment
        print("import:", [p for p in opened if p.startswith(("/proc", "/sys"))])
        environment.cpu_name(), environment.usable_cpu_count(), environment._look_at_cpus()
        print("calls:", sorted({p for p in opened if p.startswith(("/proc", "/sys"))}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "import: []"
    if Path("/proc/stat").exists():  # the spy works: the functions themselves do read them
        assert "/proc/cpuinfo" in lines[1] and "/proc/stat" in lines[1]


def cgroup_limit(monkeypatch, text):
    """Make /sys/fs/cgroup/cpu.max say ``text`` (None: no such file)."""
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        if str(self) != "/sys/fs/cgroup/cpu.max":
            return real_read_text(self, *args, **kwargs)
        if text is None:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return text

    monkeypatch.setattr(Path, "read_text", read_text)


@pytest.mark.parametrize(
    ("allowed", "cpu_max", "usable"),
    [
        (set(range(64)), "150000 100000\n", 2),  # docker --cpus 1.5 on a 64-core server
        (set(range(64)), "max 100000\n", 64),  # no limit
        (set(range(64)), None, 64),  # no cgroup v2
        (set(range(64)), "garbage", 64),
        ({3}, "400000 100000\n", 1),  # taskset -c 3
    ],
)
def test_usable_cpus_are_the_allowed_ones_capped_by_the_container_limit(
    monkeypatch, allowed, cpu_max, usable
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: allowed, raising=False)
    cgroup_limit(monkeypatch, cpu_max)
    assert usable_cpu_count() == usable


def test_usable_cpus_without_affinity_are_all_cpus(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cpu_count() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpu_count() == 1


def test_usable_cpus_on_this_machine():
    assert 1 <= usable_cpu_count() <= (os.cpu_count() or 1)


# --- project_root and display_path --------------------------------------------------------------------


def test_project_root_is_the_checkout_or_else_the_current_folder(tmp_path, monkeypatch):
    assert project_root() == REPOSITORY
    installed = tmp_path / "site-packages" / "course_utils" / "environment.py"  # pip install, not a checkout
    monkeypatch.setattr(environment, "__file__", str(installed))
    monkeypatch.chdir(tmp_path)
    assert project_root() == Path.cwd()


def test_display_path_inside_the_repository_or_the_current_folder_is_relative(tmp_path, monkeypatch):
    assert display_path(project_root() / "outputs" / "x" / "metrics.json") == "outputs/x/metrics.json"
    assert display_path(project_root()) == "."
    monkeypatch.chdir(tmp_path)
    assert display_path(project_root() / "outputs") == "outputs"  # the repository, from anywhere
    assert display_path(tmp_path / "mine" / "data.npz") == "mine/data.npz"
    assert display_path("relative/file.txt") == "relative/file.txt"  # resolved against the current folder


def test_display_path_elsewhere_is_under_home_or_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert display_path(tmp_path / "home" / "runs" / "summary.json") == "~/runs/summary.json"
    assert display_path("~/x.pt") == "~/x.pt"  # ~ is expanded first
    other = tmp_path / "runs" / "summary.json"
    assert display_path(other) == str(other.resolve())


# --- atomic_write -----------------------------------------------------------------------------------


def temporary_files(folder):
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".tmp"))


def leftover(folder, name, age_seconds):
    """A file ``folder/name`` last changed ``age_seconds`` ago."""
    path = folder / name
    path.write_bytes(b"x" * 10)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_bytes_text_and_a_writer_function_are_written_exactly(tmp_path):
    assert atomic_write(tmp_path / "a.bin", b"\x00\xff").read_bytes() == b"\x00\xff"
    assert atomic_write(tmp_path / "b.txt", "café\n").read_bytes() == "café\n".encode()
    written = atomic_write(tmp_path / "deeper" / "c.bin", lambda file: file.write(b"from a function"))
    assert written == tmp_path / "deeper" / "c.bin" and written.read_bytes() == b"from a function"
    atomic_write(str(tmp_path / "a.bin"), b"replaced")  # a str path, over an existing file
    assert (tmp_path / "a.bin").read_bytes() == b"replaced"
    assert temporary_files(tmp_path) == [] and temporary_files(tmp_path / "deeper") == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_the_file_gets_the_permissions_of_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "cache.npz", b"data")
        path.chmod(0o640)
        replaced = atomic_write(path, b"new data")  # a replaced file's mode follows the umask too
        now = os.umask(umask)
    finally:
        os.umask(previous)
    assert now == umask  # the umask itself is left as it was
    assert path.stat().st_mode & 0o777 == mode and replaced.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path, interruption):
    path = atomic_write(tmp_path / "last.pt", b"the old checkpoint")

    def write_half_then_stop(file):
        file.write(b"half of the new")
        raise interruption

    with pytest.raises(type(interruption)):
        atomic_write(path, write_half_then_stop)
    assert path.read_bytes() == b"the old checkpoint"
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.pt"]


def test_a_folder_that_cannot_be_made_raises_and_leaves_nothing(tmp_path):
    (tmp_path / "a file").write_bytes(b"")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "a file" / "x.json", "{}")
    assert [entry.name for entry in tmp_path.iterdir()] == ["a file"]


def test_a_killed_write_leaves_the_old_file_and_a_later_save_removes_its_stale_temporary_file(tmp_path):
    path = atomic_write(tmp_path / "last.pt", b"the old checkpoint")
    # A process killed by SIGKILL in the middle of a save (a kernel restart) runs no cleanup at all.
    killed_save = textwrap.dedent(
        f"""
        import os, signal
        from course_utils.environment import atomic_write

        def write_then_die(file):
            file.write(b"x" * 100_000)
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write({str(path)!r}, write_then_die)
        """
    )
    finished = subprocess.run([sys.executable, "-c", killed_save], cwd=REPOSITORY, check=False, timeout=120)
    assert finished.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"the old checkpoint"
    [left] = temporary_files(tmp_path)

    atomic_write(path, b"the new checkpoint")  # the leftover is fresh: it may be another run's save
    assert path.read_bytes() == b"the new checkpoint" and temporary_files(tmp_path) == [left]
    hours_ago = time.time() - 2 * 3600
    os.utime(tmp_path / left, (hours_ago, hours_ago))
    atomic_write(path, b"the newest checkpoint")  # now it is stale: removed
    assert temporary_files(tmp_path) == []


def test_only_temporary_files_of_the_same_file_over_an_hour_old_are_removed(tmp_path):
    hour = 3600 + 60
    stale = [
        leftover(tmp_path, ".metrics.json.abcd_123.tmp", hour),
        leftover(tmp_path, ".metrics.json.x.tmp", hour),
    ]
    kept = [
        leftover(tmp_path, ".metrics.json.abcd_124.tmp", 60),  # a minute old: perhaps being written
        leftover(tmp_path, ".best.pt.abcd_125.tmp", hour),  # another file's
        leftover(tmp_path, "metrics.json.abcd_126.tmp", hour),  # not a hidden temporary file
        leftover(tmp_path, ".metrics.json.notes", hour),
    ]
    atomic_write(tmp_path / "metrics.json", "{}")
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def test_a_leftover_that_cannot_be_removed_does_not_fail_the_save(tmp_path, monkeypatch):
    stuck = leftover(tmp_path, ".last.pt.abcd_123.tmp", 2 * 3600)
    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if self == stuck:
            raise PermissionError(13, "Permission denied", str(self))  # another user's
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert atomic_write(tmp_path / "last.pt", b"saved").read_bytes() == b"saved"
    assert stuck.exists()
