"""The course's command line: ``python -m course_utils {run,outputs} …``.

* ``run`` (``make course``): execute every notebook in batch into ``runs/<time>-<profile>/``,
  with a summary table at the end; exit status 0 only when every notebook succeeded.
* ``outputs`` (``make outputs``): re-execute the notebooks in place so that their stored
  outputs match the code.

Exit statuses: 0 success, 1 a notebook failed or timed out, 2 bad arguments (refused
before anything runs), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from course_utils.runner import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OK,
    UsageError,
    parse_parameter_value,
    regenerate_outputs,
    run_course,
)

RUN_EXAMPLES = """\
examples:
  python -m course_utils run                          # every notebook, profile auto
  python -m course_utils run --profile smoke          # the whole course in minutes, on a CPU
  python -m course_utils run --only 02 -p EPOCHS 5    # one notebook, one parameter changed
  python -m course_utils run --profile full --only 03,04 --timeout 30 --keep-going

Each run goes to a new folder runs/<YYYYmmdd-HHMMSS>-<profile>/ holding every executed
notebook (.ipynb and .html), each notebook's metrics.json, and summary.json / summary.md.
Exit status: 0 all notebooks ok, 1 a notebook failed or timed out, 2 bad arguments
(nothing ran), 130 interrupted (Ctrl-C; what finished is kept).
"""

OUTPUTS_EXAMPLES = """\
examples:
  python -m course_utils outputs                      # every notebook, profile quick
  python -m course_utils outputs --only 02            # one notebook

The notebooks are executed top to bottom with nbconvert and written back in place (the
parameters cell is unchanged; COURSE_PROFILE selects the profile). A notebook that fails is
left unchanged and its failed execution is written to outputs/failed-<name>.ipynb.
"""


def positive_minutes(text: str) -> float:
    """argparse type for ``--timeout``: a positive number of minutes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python -m course_utils``."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils",
        description="Run the course's notebooks in batch, or regenerate their stored outputs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,outputs}")

    run = commands.add_parser(
        "run",
        help="execute every notebook in batch (make course)",
        description="Execute the course's notebooks in order with papermill into a new run folder, "
        "then print and save a summary.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--profile",
        choices=("auto", "smoke", "quick", "full"),
        default="auto",
        help="the PROFILE every notebook gets: smoke (minutes on a CPU), quick (a classroom run), "
        "full (the published results, for a GPU); auto: $COURSE_PROFILE if set, else full on a "
        "CUDA GPU, else quick (default: auto)",
    )
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter in every notebook that declares it (repeatable), e.g. -p EPOCHS 5; "
        "values are read like Python (3, 0.5, True, None), anything else is a string",
    )
    run.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NOTEBOOK",
        help="run only these notebooks, by number or name (repeatable or comma-separated: --only 02,03)",
    )
    run.add_argument(
        "--timeout",
        type=positive_minutes,
        default=None,
        metavar="MINUTES",
        help="stop a notebook that runs longer than this and mark it 'timeout' (default: no limit)",
    )
    run.add_argument(
        "--keep-going",
        action="store_true",
        help="run the remaining notebooks after a failure (default: stop and mark them 'not run')",
    )
    run.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where run folders are created (default: runs/ in the repository)",
    )
    run.add_argument(
        "--notebooks-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the notebooks are (default: notebooks/ in the repository)",
    )
    run.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="bar: papermill's cell progress bar; lines: a line per cell; "
        "auto: a bar on a terminal, else lines (default: auto)",
    )
    run.add_argument(
        "--log-output",
        action="store_true",
        help="also print what the notebooks print (training progress, tables) while they run",
    )

    outputs = commands.add_parser(
        "outputs",
        help="re-execute the notebooks in place so their stored outputs match the code (make outputs)",
        description="Execute each notebook top to bottom with nbconvert and write it back in place.",
        epilog=OUTPUTS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    outputs.add_argument(
        "--profile",
        choices=("smoke", "quick", "full"),
        default="quick",
        help="the profile the stored outputs come from (set as COURSE_PROFILE; default: quick)",
    )
    outputs.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NOTEBOOK",
        help="only these notebooks, by number or name (repeatable or comma-separated)",
    )
    outputs.add_argument(
        "--timeout",
        type=positive_minutes,
        default=120.0,
        metavar="MINUTES",
        help="the most one notebook may take (default: 120)",
    )
    outputs.add_argument(
        "--keep-going",
        action="store_true",
        help="go on with the other notebooks after a failure (default: stop)",
    )
    outputs.add_argument(
        "--notebooks-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the notebooks are (default: notebooks/ in the repository)",
    )
    outputs.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="COURSE_OUTPUT_DIR for the notebooks, and where failed executions go (default: outputs/)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            report = run_course(
                notebooks_dir=args.notebooks_dir,
                runs_dir=args.runs_dir,
                profile=args.profile,
                parameters=[(name, parse_parameter_value(value)) for name, value in args.parameter],
                only=args.only,
                timeout_minutes=args.timeout,
                keep_going=args.keep_going,
                progress=args.progress,
                log_output=args.log_output,
            )
            return report.exit_code
        results = regenerate_outputs(
            notebooks_dir=args.notebooks_dir,
            output_dir=args.output_dir,
            profile=args.profile,
            only=args.only,
            timeout_minutes=args.timeout,
            keep_going=args.keep_going,
        )
        return EXIT_OK if all(result.status == OK for result in results) else EXIT_FAILED
    except UsageError as error:
        print(f"python -m course_utils {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # run_course handles its own; this is Ctrl-C in set-up or in outputs
        if args.command == "outputs":
            print("\nInterrupted (Ctrl-C): the notebook being executed is unchanged.", file=sys.stderr)
        else:
            print("\nInterrupted (Ctrl-C) before any notebook ran.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
