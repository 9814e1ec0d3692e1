"""The command line ``python -m course_utils {run,outputs,editions} …``: the notebooks in batch
(:mod:`course_tools.runner`), and the translated editions kept in step (:mod:`course_tools.editions`)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from course_tools import editions, runner
from course_utils.settings import PROFILES, SettingsError

EPILOG = """examples:
  python -m course_utils run --only 02 -p EPOCHS 5    # one notebook, one parameter changed
  python -m course_utils run --profile full --only 03,04 --timeout 30 --keep-going
exit status: 0 every notebook ok; 1 one failed, timed out or is out of step; 2 nothing ran (bad arguments,
missing data, a folder that cannot be written); 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (what ran is kept)."""


def build_parser() -> argparse.ArgumentParser:
    """A sub-command per job: ``run`` (``make course``), ``outputs`` (``make outputs``), ``editions``."""
    parser = argparse.ArgumentParser("python -m course_utils", description="Run the course in batch.")
    commands = parser.add_subparsers(dest="command", required=True)
    formatter = argparse.RawDescriptionHelpFormatter
    run = commands.add_parser("run", help="execute the notebooks into a new run folder", epilog=EPILOG,
                              formatter_class=formatter)  # fmt: skip
    outputs = commands.add_parser("outputs", help="execute the English notebooks, write them back")
    run.add_argument("--profile", choices=PROFILES, default="auto", help="default: auto")
    outputs.add_argument("--profile", choices=PROFILES[1:], default="quick", help="default: quick")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set in each notebook that declares it; VALUE is read as Python")  # fmt: skip
    run.add_argument("--runs-dir", type=Path, metavar="DIR", help="default: $COURSE_OUTPUT_DIR/runs or runs/")
    notebooks = run.add_mutually_exclusive_group()
    notebooks.add_argument("--edition", choices=editions.EDITIONS, help="whose notebooks (default: en)")
    outputs.set_defaults(parameter=[], runs_dir=None, edition=None)
    for command, timeout in ((run, None), (outputs, 120.0)):
        command.add_argument(
            "--only", action="append", default=[], metavar="NB", help="numbers or names: 02,03"
        )
        command.add_argument("--timeout", type=float, default=timeout, metavar="MINUTES", help="per notebook")
        command.add_argument("--keep-going", action="store_true", help="after a failure, run the rest anyway")
        command.add_argument("--log-output", action="store_true", help="also print what the notebooks print")
        (notebooks if command is run else command).add_argument("--notebooks-dir", type=Path, metavar="DIR")
    editions_parser = commands.add_parser("editions", help="check, sync or build notebooks/zh")
    actions = editions_parser.add_subparsers(dest="action", required=True)
    for action in ("check", "sync", "build"):  # see editions.command
        chosen = actions.add_parser(action, help=f"{action} the translated notebooks")
        chosen.add_argument("--edition", choices=editions.TRANSLATED, required=action == "build")
        chosen.add_argument("--only", action="append", default=[], metavar="NB", help="as for run")
    chosen.add_argument("--translations", type=Path, required=True, metavar="DIR", help="<notebook>.*.json")
    chosen.add_argument("--overwrite", action="store_true", help="replace translated notebooks that exist")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "timeout", None) is not None and not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of minutes, got {args.timeout}")
    try:
        with runner.stop_on_signals():  # SIGTERM and SIGHUP stop a run as Ctrl-C does
            if args.command == "editions":
                return editions.command(args)
            folder = args.notebooks_dir or editions.edition_dir(args.edition or editions.ENGLISH)
            args.edition = f"none ({folder})" if args.notebooks_dir else args.edition or editions.ENGLISH
            return runner.run(editions.course_notebooks(folder, args.only), args)
    except (runner.UsageError, SettingsError, editions.EditionError) as error:
        print(f"python -m course_utils {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # during the checks, or a second signal while the first was handled
        print(f"\nInterrupted ({runner.signal_name(stop)}).", file=sys.stderr)
        return 128 + signal.Signals[runner.signal_name(stop)]
