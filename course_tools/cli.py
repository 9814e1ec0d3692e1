"""The command line ``python -m course_utils {run,outputs,editions} …``: the notebooks in batch
(:mod:`course_tools.runner`), and the translated editions kept in step (:mod:`course_tools.editions`)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from course_tools import editions, runner
from course_utils.settings import PROFILES, SettingsError

EXIT_STATUS = "exit status: 0 all ok; 1 a notebook failed; 2 nothing ran; 128 + N stopped by signal N"
NUMBER = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)  # -1e-3, -.5, -inf: a -p value, not an option


def build_parser() -> argparse.ArgumentParser:
    """A sub-command per job: ``run`` (``make course``), ``outputs`` (``make outputs``), ``editions``."""
    parser = argparse.ArgumentParser("python -m course_utils", description="Run the course in batch.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute the notebooks into a new run folder", epilog=EXIT_STATUS)
    outputs = commands.add_parser("outputs", help="execute the English notebooks, write them back")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set in each notebook that declares it; VALUE is read as Python")  # fmt: skip
    run.add_argument("--runs-dir", type=Path, metavar="DIR", help="default: $COURSE_OUTPUT_DIR/runs or runs/")
    notebooks = run.add_mutually_exclusive_group()
    notebooks.add_argument("--edition", choices=editions.EDITIONS, help="whose notebooks (default: en)")
    outputs.set_defaults(parameter=[], runs_dir=None, edition=None)
    run.add_argument("--profile", choices=PROFILES, default="auto", help="default: auto")
    outputs.add_argument("--profile", choices=PROFILES[1:], default="quick", help="default: quick")
    for command, timeout in ((run, None), (outputs, 120.0)):
        command.add_argument("--only", action="append", default=[], metavar="NB", help="02,03 or names")
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


class Nowhere:
    """stdout or stderr that, once no one reads it (``| head`` quit, the terminal hung up), writes into
    /dev/null instead of raising: the run goes on, keeps what it runs and ends with the notebooks' status."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty: the stream's
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        try:
            self.stream.write(text)
            self.stream.flush()  # now, so that a reader gone away is noticed here, and nothing is left
        except OSError:  # EPIPE, EIO: from now on the stream's file is /dev/null
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        return len(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser, argv = build_parser(), list(sys.argv[1:] if argv is None else argv)
    # argparse takes "-1e-3" for an option, but not "-1e-3 ": such a -p VALUE gets a space (see parse_value)
    values = {i + 2 for i, word in enumerate(argv) if word in ("-p", "--parameter")}
    args = parser.parse_args([f"{w} " if i in values and NUMBER.match(w) else w for i, w in enumerate(argv)])
    if getattr(args, "timeout", None) is not None and not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of minutes, got {args.timeout}")
    try:
        with runner.stop_on_signals():  # Ctrl-C, SIGTERM and SIGHUP stop a run alike
            if args.command == "editions":
                return editions.command(args)
            folder = args.notebooks_dir or editions.edition_dir(args.edition or editions.ENGLISH)
            args.edition = f"none ({folder})" if args.notebooks_dir else args.edition or editions.ENGLISH
            return runner.run(editions.course_notebooks(folder, args.only), args)
    except (runner.UsageError, SettingsError, editions.EditionError) as error:
        print(f"python -m course_utils {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # during the checks
        print(f"\nInterrupted ({runner.signal_name(stop)}).", file=sys.stderr)
        return 128 + signal.Signals[runner.signal_name(stop)]
