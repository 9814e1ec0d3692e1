"""What makes float32 training of ResNet-20 faster on a CPU without bfloat16 instructions.

A laptop CPU with AVX2 but no AVX-512 BF16 or AMX (most laptops) trains in float32
(``course_utils.environment.choose_precision``). This script trains ResNet-20 on CIFAR-10 batches
(``course_utils.data.make_batches``) with the course's training step
(``course_utils.training.train_one_epoch``, in float32) and measures training images per second
in the course's default setting (all of torch's threads, channels-last, batches of 128, oneDNN on,
no ``torch.compile``) and with one of those changed at a time: 1 thread, channels-last off,
batches of 256 (as many images), oneDNN off, ``torch.compile`` (its compile time reported
apart). Every setting runs ``--repeats`` times, interleaved, each time after ``--warmup`` steps,
after one uncounted run that warms the process up.

Emulate an AVX2 laptop on a CPU that has more: ATen's kernels, oneDNN and MKL each read their own
limit, so set all three (the script warns when bfloat16 is still on)::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        python benchmarks/cpu_float32.py --data-dir data --out benchmarks/results

The record ``benchmarks/results/cpu_float32.json`` was made with that command on 2026-12-07
(2-core Intel Xeon with AVX-512 BF16/AMX, limited to AVX2). ``torch.compile`` starts with an
empty cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``): its first compile time is a first run's, later
ones read the cache, as a second run on the same laptop would.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import write_record  # noqa: E402
from course_utils.data import Batches, ImageDataset, load_dataset, make_batches  # noqa: E402
from course_utils.environment import (  # noqa: E402
    choose_precision,
    cpu_has_bf16,
    describe_environment,
    seed_everything,
)
from course_utils.models import resnet20  # noqa: E402
from course_utils.training import loss_function, train_one_epoch  # noqa: E402

LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


@dataclass(frozen=True)
class Setting:
    """One way to train: what ``fit`` does by default, or that with one knob changed."""

    name: str
    threads: int
    channels_last: bool = True
    batch_size: int = 128
    mkldnn: bool = True
    compile: bool = False


class FirstBatches:
    """The next ``steps`` batches of a running epoch, with ``len()`` as ``train_one_epoch`` wants."""

    def __init__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], steps: int) -> None:
        self.batches, self.steps = batches, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return itertools.islice(self.batches, self.steps)


def measure(setting: Setting, dataset: ImageDataset, images: int, warmup: int) -> dict[str, float]:
    """Train a fresh ResNet-20 for ``warmup`` steps, then time ``images // batch_size`` more steps.

    Returns:
        ``images_per_second`` of the timed steps, and ``warmup_seconds`` (with ``torch.compile``: the
        compile time plus ``warmup`` steps).
    """
    torch.set_num_threads(setting.threads)
    seed_everything(0)
    layout = torch.channels_last if setting.channels_last else torch.contiguous_format
    model = resnet20().to(memory_format=layout)
    if setting.compile:
        torch._dynamo.reset()  # compile this model from the start, not from the previous setting's graphs
    step_model = torch.compile(model, dynamic=False) if setting.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    train: Batches = make_batches(dataset, batch_size=setting.batch_size, device="cpu", seed=0).train
    batches = iter(train)
    steps = images // setting.batch_size

    def train_steps(count: int) -> tuple[int, float]:
        start = time.perf_counter()
        *_, samples = train_one_epoch(
            step_model,
            FirstBatches(batches, count),
            optimizer,
            loss_function("cross_entropy"),
            lambda step: 0.1,
            0,
            device=torch.device("cpu"),
            dtype=None,  # float32, what choose_precision("auto") gives without bfloat16 instructions
            scaler=torch.amp.GradScaler("cpu", enabled=False),
            channels_last=setting.channels_last,
            grad_clip=None,
            on_log=lambda steps_done, loss: None,
            log_every=count + 1,
        )
        return samples, time.perf_counter() - start

    with torch.backends.mkldnn.flags(enabled=setting.mkldnn):
        _, warmup_seconds = train_steps(warmup)
        samples, seconds = train_steps(steps)
    return {"images_per_second": samples / seconds, "warmup_seconds": warmup_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $COURSE_DATA_DIR, else data/")
    parser.add_argument("--images", type=int, default=128 * 40, help="timed images per run (40 steps of 128)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="folder for cpu_float32.json")
    args = parser.parse_args()

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor_"))
    threads = torch.get_num_threads()
    default = Setting("course default", threads)
    settings = [
        default,
        replace(default, name="1 thread", threads=1),
        replace(default, name="channels-last off", channels_last=False),
        replace(default, name="batch 256", batch_size=256),
        replace(default, name="oneDNN off", mkldnn=False),
        replace(default, name="torch.compile", compile=True),
    ]
    environment = describe_environment("cpu")
    environment |= {name: os.environ.get(name, "not set") for name in LIMITS}
    environment["cpu capability (ATen)"] = torch.backends.cpu.get_cpu_capability()
    environment["cpu has bf16"] = str(cpu_has_bf16())
    environment["precision (auto)"] = choose_precision("auto", torch.device("cpu")).name
    environment["date"] = time.strftime("%Y-%m-%d")
    environment["command"] = " ".join(sys.argv)
    environment["platform"] = platform.platform()
    print(json.dumps(environment, indent=1), flush=True)
    if cpu_has_bf16():
        print("warning: this CPU computes bfloat16; to emulate an AVX2 laptop set the docstring's limits")

    dataset = load_dataset("cifar10", args.data_dir)
    # The process's first run was slower than every later one of the same setting (364 against 427 and
    # 434 images/s on 2026-12-07, 3 warm-up steps each): it warms the process up and is not counted.
    measure(default, dataset, args.images, args.warmup)
    runs: dict[str, list[dict[str, float]]] = {setting.name: [] for setting in settings}
    for repeat in range(args.repeats):
        for setting in settings:  # interleaved: a slow spell of the machine hits every setting alike
            run = measure(setting, dataset, args.images, args.warmup)
            runs[setting.name].append(run)
            speed = run["images_per_second"]
            print(f"repeat {repeat + 1}: {setting.name:<18} {speed:7.1f} images/s", flush=True)
    torch.set_num_threads(threads)

    results = []
    base = statistics.mean(run["images_per_second"] for run in runs[default.name])
    for setting in settings:
        speeds = [run["images_per_second"] for run in runs[setting.name]]
        mean = statistics.mean(speeds)
        results.append(
            {
                "setting": asdict(setting),
                "images_per_second": speeds,
                "mean": mean,
                "spread": (max(speeds) - min(speeds)) / mean,  # of the mean
                "vs_default": mean / base,
                "warmup_seconds": [run["warmup_seconds"] for run in runs[setting.name]],
            }
        )
    print(f"\n{'setting':<18} {'images/s (each run)':<26} {'mean':>7} {'spread':>7} {'vs default':>10}")
    for result in results:
        each = ", ".join(f"{speed:.0f}" for speed in result["images_per_second"])
        print(
            f"{result['setting']['name']:<18} {each:<26} {result['mean']:7.1f} "
            f"{result['spread']:7.1%} {result['vs_default']:9.2f}x"
        )
    compiled = next(result for result in results if result["setting"]["compile"])
    warmups = ", ".join(f"{seconds:.0f}" for seconds in compiled["warmup_seconds"])
    print(f"torch.compile: compile + {args.warmup} steps took {warmups} s (first run: empty cache)")
    print(f"({args.images} timed images per run after {args.warmup} warm-up steps, float32, SGD lr 0.1)")
    write_record(
        args.out,
        "cpu_float32.json",
        environment,
        images=args.images,
        warmup_steps=args.warmup,
        repeats=args.repeats,
        results=results,
    )


if __name__ == "__main__":
    main()
