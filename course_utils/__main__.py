"""The course's command line, ``python -m course_utils {run,outputs} …``: see :mod:`course_utils.runner`."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from course_utils.profiles import PROFILES
from course_utils.recipes import CONCRETE_PROFILES
from course_utils.runner import (
    EXIT_SIGNAL,
    EXIT_USAGE,
    UsageError,
    parse_parameter_value,
    run_notebooks,
    stop_on_signals,
)

RUN_EXAMPLES = """
The run folder holds every executed notebook (.ipynb, .html), its metrics.json, and summary.json /
summary.md. Profiles: smoke (minutes on a CPU), quick (a classroom run), full (the published results,
for a GPU); auto: $COURSE_PROFILE if set, else full on a CUDA GPU, else quick.

examples:
  python -m course_utils run --profile smoke          # the whole course in minutes, on a CPU
  python -m course_utils run --only 02 -p EPOCHS 5    # one notebook, one parameter changed
  python -m course_utils run --profile full --only 03,04 --timeout 30 --keep-going
"""
EXIT_STATUSES = """
Before anything runs, the arguments, the output folder and the datasets the notebooks load are checked.
exit status: 0 every notebook ok, 1 one failed or timed out, 2 nothing ran (bad arguments, missing data,
an output folder that cannot be written), 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the running notebook is
stopped and kept as interrupted, with what finished)"""


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python -m course_utils``: a sub-command per job, with the options they share."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils",
        description="Run the course's notebooks in batch, or regenerate their stored outputs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,outputs}", required=True)
    run = commands.add_parser(
        "run",
        help="execute every notebook in batch (make course)",
        description="Execute the notebooks in order into a new folder of the runs dir, then summarise.",
        epilog=RUN_EXAMPLES + EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    outputs = commands.add_parser(
        "outputs",
        help="re-execute the notebooks in place so their stored outputs match the code (make outputs)",
        description="Execute each notebook as written (COURSE_PROFILE selects the profile) and write it "
        "back in place; one that fails is left unchanged, its execution kept as outputs/failed-<name>.ipynb.",
        epilog=EXIT_STATUSES,
    )
    run.add_argument("--profile", choices=PROFILES, default="auto", help="of every notebook (default: auto)")
    outputs.add_argument("--profile", choices=CONCRETE_PROFILES, default="quick", help="default: quick")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter in every notebook that declares it (repeatable); VALUE is read as Python",
    )
    run.add_argument(
        "--runs-dir", type=Path, metavar="DIR", help="default: $COURSE_OUTPUT_DIR/runs, else runs/"
    )
    outputs.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="default: $COURSE_OUTPUT_DIR, else outputs/"
    )
    for command, timeout in ((run, None), (outputs, 120.0)):
        command.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="NOTEBOOK",
            help="only these notebooks, by number or name (repeatable, or comma-separated: 02,03)",
        )
        command.add_argument(
            "--timeout",
            type=float,
            default=timeout,
            metavar="MINUTES",
            help=f"stop a notebook that runs longer, mark it 'timeout' (default: {timeout or 'no limit'})",
        )
        command.add_argument("--keep-going", action="store_true", help="after a failure, run the rest anyway")
        command.add_argument("--notebooks-dir", type=Path, metavar="DIR", help="default: notebooks/")
        command.add_argument(
            "--progress",
            choices=("auto", "bar", "lines", "none"),
            default="auto",
            help="a bar of cells, a line per cell, or none (auto: a bar on a terminal, else lines)",
        )
        command.add_argument("--log-output", action="store_true", help="also print what the notebooks print")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    with stop_on_signals():  # SIGTERM and SIGHUP stop the run as Ctrl-C does
        try:
            parameters = [
                (name, parse_parameter_value(text, name)) for name, text in getattr(args, "parameter", [])
            ]
            report = run_notebooks(
                args.notebooks_dir,
                args.runs_dir if args.command == "run" else args.output_dir,
                in_place=args.command == "outputs",
                profile=args.profile,
                parameters=parameters,
                only=args.only,
                timeout_minutes=args.timeout,
                keep_going=args.keep_going,
                progress=args.progress,
                log_output=args.log_output,
            )
        except (UsageError, ModuleNotFoundError) as error:
            # `pip install .` alone brings only what the notebooks import, not the batch tools.
            missing = isinstance(error, ModuleNotFoundError)
            fix = "; install the batch tools: pip install -e '.[batch]'" if missing else ""
            print(f"python -m course_utils {args.command}: error: {error}{fix}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as stop:  # in the checks, or a second one (run_notebooks handles the first)
            print(f"\nInterrupted ({stop or 'Ctrl-C'}).", file=sys.stderr)
            return EXIT_SIGNAL + getattr(stop, "signum", signal.SIGINT)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
