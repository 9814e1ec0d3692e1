"""Two CPU training runs at once on the same cores: is each still within about 2.5x of one alone?

On a classroom server several notebooks train at the same time. PyTorch gives each process
one OpenMP thread per core, and a waiting OpenMP thread spins (keeps its core busy) before it
sleeps: two runs then take the cores from each other's working threads, and two notebook-03
smoke runs on 2 cores took 5.4 minutes each instead of 0.31 alone. This benchmark measures
the same kind of work, a notebook-03-smoke-like ResNet-20 training (batch 32, SGD with
Nesterov momentum, random crops and flips) on a few hundred CIFAR-10 images, in separate
processes, under each thread policy:

* ``torch``: torch's own thread count, nothing adapted (the course before the fix);
* ``course``: :func:`course_utils.environment.share_cpu_threads` after the imports (as
  ``configure`` calls it) and before every epoch (as ``fit`` does), so a run takes only the
  CPUs other processes leave free;
* ``course-once``: the same function after the imports only, never again: the simpler
  mechanism, which cannot make a run that started alone give a core back to a later one;
* ``passive``: torch's own count, in a process started with :data:`PASSIVE`,
  ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep);
* ``course+passive``: both.

and in each scenario: one run alone; two started at once; two staggered (the second starts
when the first has trained for a third of its time alone). It prints the seconds of training
of every run and its ratio to one ``torch`` run alone, and writes them to
``benchmarks/results/concurrent_runs.json``. The targets: two runs at once each within about
2.5x of one alone, and a run alone no slower than with ``torch``'s own threads.

Measure on a quiet machine (nothing else running): other processes' load changes every
figure. On a machine with more cores, ``--cpus 0,1`` pins every run to two of them.

Usage::

    OMP_NUM_THREADS= python benchmarks/concurrent_runs.py --data-dir data
    python benchmarks/concurrent_runs.py --cpus 0,1 --policies torch course --scenarios alone together
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ("torch", "course", "course-once", "passive", "course+passive")
SCENARIOS = ("alone", "together", "staggered")
STARTED = "training started"  # what a worker prints when its timed part begins
#: Waiting OpenMP threads sleep instead of spinning. OpenMP reads it when torch is imported, so it works
#: only in the environment a process starts with (a batch runner's, a JupyterHub spawner's).
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}


# --- one run, in its own process ---------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Train once under ``args.worker`` (a policy) and print the result as one JSON line."""
    if args.cpus:
        # Before torch is imported: OpenMP sizes its thread pool from the CPUs it may use.
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    import torch
    from torch import nn

    sys.path.insert(0, str(ROOT))
    from course_utils.data import load_dataset, make_batches
    from course_utils.environment import seed_everything, share_cpu_threads
    from course_utils.models import resnet20

    adapting = args.worker.startswith("course")
    if adapting:
        share_cpu_threads()  # where configure() calls it, after the imports
    dataset = load_dataset("cifar10", args.data_dir) if args.data_dir else synthetic_cifar10()
    splits = make_batches(dataset, args.batch_size, val_size=100, train_subset=args.images, seed=0)
    seed_everything(0)
    model = resnet20()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_function = nn.CrossEntropyLoss()
    threads = []
    print(STARTED, flush=True)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        if adapting and args.worker != "course-once":
            share_cpu_threads()  # where fit() calls it, before each epoch
        threads.append(torch.get_num_threads())
        splits.train.set_epoch(epoch)
        for images, labels in splits.train:  # (32, 3, 32, 32) float, (32,) int64
            loss = loss_function(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "threads": threads, "final_loss": loss.item()}), flush=True)


def synthetic_cifar10():  # noqa: ANN201  (ImageDataset: imported by the worker only, after pinning)
    """Random images of CIFAR-10's shape, when no data folder is given: the same work per step."""
    import torch

    from course_utils.data import CIFAR10_CLASSES, ImageDataset

    generator = torch.Generator().manual_seed(0)
    return ImageDataset(
        name="cifar10",
        x_train=torch.randint(0, 256, (2000, 32, 32, 3), dtype=torch.uint8, generator=generator),
        y_train=torch.arange(2000) % 10,
        x_test=torch.randint(0, 256, (100, 32, 32, 3), dtype=torch.uint8, generator=generator),
        y_test=torch.arange(100) % 10,
        classes=CIFAR10_CLASSES,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        path=Path("synthetic"),
    )


# --- the scenarios -------------------------------------------------------------------------------------


class Run:
    """A worker process under one policy; ``result()`` waits for it."""

    def __init__(self, policy: str, args: argparse.Namespace) -> None:
        environment = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", *PASSIVE):
            environment.pop(name, None)  # each policy decides, from a clean start
        if policy.endswith("passive"):
            environment.update(PASSIVE)
        command = [sys.executable, __file__, "--worker", policy, "--images", str(args.images)]
        command += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
        command += ["--data-dir", args.data_dir or "", "--cpus", args.cpus or ""]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)

    def wait_until_training(self) -> None:
        for line in self.process.stdout:
            if line.strip() == STARTED:
                return
        raise RuntimeError("a worker stopped before training; run it alone to see why")

    def result(self) -> dict:
        lines = [line for line in self.process.stdout if line.startswith("{")]
        if self.process.wait() != 0 or not lines:
            raise RuntimeError(f"a worker failed (exit {self.process.returncode})")
        return json.loads(lines[-1])


def run_scenario(scenario: str, policy: str, args: argparse.Namespace, alone_seconds: float | None) -> list:
    """The results of the runs of one scenario, in the order they started."""
    if scenario == "alone":
        first = Run(policy, args)
        first.wait_until_training()
        return [first.result()]
    if scenario == "together":
        runs = [Run(policy, args), Run(policy, args)]
        for run in runs:
            run.wait_until_training()
        return [run.result() for run in runs]
    first = Run(policy, args)
    first.wait_until_training()
    time.sleep((alone_seconds or 0.0) / 3)
    second = Run(policy, args)
    second.wait_until_training()
    return [first.result(), second.result()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with cifar10.npz (default: random images)")
    parser.add_argument("--images", type=int, default=320, help="training images per epoch (default 320)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (default 4)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpus", default=None, help="pin every run to these CPUs, e.g. 0,1")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "concurrent_runs.json")
    parser.add_argument("--note", default="", help="a remark stored with the results (how the machine was)")
    parser.add_argument("--worker", choices=POLICIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data_dir = args.data_dir or None
    args.cpus = args.cpus or None
    if args.worker:
        worker(args)
        return

    sys.path.insert(0, str(ROOT))
    from course_utils.environment import atomic_write, cpu_name, usable_cpu_count
    from course_utils.tables import format_table

    load_before = os.getloadavg()
    results: dict[str, dict[str, list]] = {}
    alone: dict[str, float] = {}
    for policy in dict.fromkeys(["torch", *args.policies]):  # torch alone is every ratio's reference
        results[policy] = {}
        scenarios = ["alone", *args.scenarios] if policy in args.policies else ["alone"]
        for scenario in dict.fromkeys(scenarios):
            runs = run_scenario(scenario, policy, args, alone.get(policy))
            results[policy][scenario] = runs
            if scenario == "alone":
                alone[policy] = runs[0]["seconds"]
            seconds = ", ".join(f"{run['seconds']:.1f} s" for run in runs)
            print(
                f"{policy:>15} {scenario:<9} {seconds}  (threads per epoch: {[r['threads'] for r in runs]})"
            )

    reference = alone["torch"]
    rows = []
    for policy, scenarios in results.items():
        for scenario, runs in scenarios.items():
            rows.append(
                (
                    policy,
                    scenario,
                    " / ".join(f"{run['seconds']:.1f}" for run in runs),
                    max(run["seconds"] for run in runs) / reference,
                    statistics.mean(run["threads"][-1] for run in runs),
                )
            )
    print()
    print(
        f"seconds of training per run; ratio: the slowest run / one run alone with torch's threads "
        f"({reference:.1f} s); target: at most about 2.5 for two runs"
    )
    print(
        format_table(
            rows,
            ["policy", "scenario", "seconds", "ratio", "threads at the end"],
            formats=[None, None, None, ".2f", ".1f"],
        )
    )
    record = {
        "benchmark": "benchmarks/concurrent_runs.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpu": cpu_name(),
            "usable_cpus": usable_cpu_count(),
            "pinned_to": args.cpus,
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
            "python": platform.python_version(),
        },
        "workload": {
            "model": "resnet20",
            "images": args.images,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "data": "cifar10.npz" if args.data_dir else "random images of CIFAR-10's shape",
        },
        "note": args.note,
        "reference_alone_seconds": reference,
        "results": results,
    }
    atomic_write(args.out, json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
