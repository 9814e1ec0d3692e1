"""The course's command line, ``python -m course_utils {run,outputs,editions} …``.

``run`` and ``outputs`` execute notebooks (:mod:`course_utils.runner`); ``editions`` builds, syncs and
checks the translated editions (:mod:`course_utils.editions`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from course_utils.editions import (
    EDITIONS,
    LANGUAGES,
    EditionError,
    EditionMismatch,
    build_edition,
    check_edition,
    counterpart,
    edition_dir,
    english_notebooks,
    sync_edition,
    translated_editions,
)
from course_utils.files import display_path
from course_utils.profiles import PROFILES
from course_utils.recipes import CONCRETE_PROFILES
from course_utils.runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGNAL,
    EXIT_USAGE,
    UsageError,
    find_notebooks,
    parse_parameter_value,
    run_notebooks,
    select_notebooks,
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
  python -m course_utils run --edition zh --profile smoke   # the Chinese edition (notebooks/zh)
"""
EDITIONS_HELP = """
The English notebooks (notebooks/) are the source. A translated edition (notebooks/zh/) has the same
cells with the same ids in the same order: its markdown is its own, its code cells (source, stored
outputs, execution counts) are copies of the English ones, never executed. `python -m course_utils
outputs` copies them after each notebook it rewrites; `sync` does it after the English code was
changed by hand.

examples:
  python -m course_utils editions check              # exit 1, listing every difference, when out of step
  python -m course_utils editions sync               # copy the English code cells and outputs
  python -m course_utils editions build --edition zh --translations DIR   # once: DIR/<notebook>.*.json

exit status: 0 in step (or done), 1 out of step (check), or a translation that could not be synced
(sync), 2 bad arguments or translations (nothing written)"""
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
    commands = parser.add_subparsers(dest="command", metavar="{run,outputs,editions}", required=True)
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
        description="Execute each English notebook as written (COURSE_PROFILE selects the profile) and "
        "write it back in place, then copy its code cells and outputs into its translations (notebooks/zh/); "
        "one that fails is left unchanged, its execution kept as outputs/failed-<name>.ipynb.",
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
        # One option or the other chooses the notebooks: argparse refuses both, with a usage message.
        folder = command.add_mutually_exclusive_group()
        folder.add_argument(
            "--edition",
            choices=list(EDITIONS),
            help="the notebooks of this edition: "
            + ", ".join(f"{name} ({LANGUAGES[name]}, {path}/)" for name, path in EDITIONS.items())
            + " (default: en)",
        )
        folder.add_argument("--notebooks-dir", type=Path, metavar="DIR", help="any folder of notebooks")
        command.add_argument(
            "--progress",
            choices=("auto", "bar", "lines", "none"),
            default="auto",
            help="a bar of cells, a line per cell, or none (auto: a bar on a terminal, else lines)",
        )
        command.add_argument("--log-output", action="store_true", help="also print what the notebooks print")
    add_editions_parser(commands)
    return parser


def add_editions_parser(commands: argparse._SubParsersAction) -> None:
    """``python -m course_utils editions {check,sync,build}``: keep the translated editions in step."""
    editions = commands.add_parser(
        "editions",
        help="check, sync or build the translated editions (notebooks/zh)",
        description="Keep the translated editions of the notebooks in step with the English ones.",
        epilog=EDITIONS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = editions.add_subparsers(dest="action", metavar="{check,sync,build}", required=True)
    check = actions.add_parser(
        "check", help="list every difference in structure, code or stored outputs; exit 1 if any"
    )
    sync = actions.add_parser(
        "sync", help="copy every English code cell (source, outputs) into the translations"
    )
    build = actions.add_parser(
        "build", help="make the translated notebooks from the English ones and translation files"
    )
    for action in (check, sync):
        action.add_argument(
            "--edition", choices=translated_editions(), help="one edition (default: every translated one)"
        )
    build.add_argument("--edition", choices=translated_editions(), required=True)
    build.add_argument(
        "--translations",
        type=Path,
        required=True,
        metavar="DIR",
        help="a folder of <notebook>.json or <notebook>.<part>.json files, each {cell id: markdown}",
    )
    build.add_argument(
        "--overwrite", action="store_true", help="replace translated notebooks that exist (default: refuse)"
    )
    for action in (check, sync, build):
        action.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="NOTEBOOK",
            help="only these notebooks, by number or name (repeatable, or comma-separated: 02,03)",
        )


def editions_command(args: argparse.Namespace) -> int:
    """``python -m course_utils editions ACTION``: print what it finds or does; return the exit status."""
    english = english_notebooks()
    if args.only:
        chosen = {notebook.key for notebook in select_notebooks(find_notebooks(edition_dir("en")), args.only)}
        english = [path for path in english if path.stem in chosen]
    if args.action == "build":
        written = build_edition(args.edition, args.translations, english, overwrite=args.overwrite)
        for path in written:
            print(f"wrote {display_path(path, outside='absolute')}")
        print("They are in step by construction: `python -m course_utils editions check` says so.")
        return EXIT_OK
    missing, out_of_step = [], False
    for edition in [args.edition] if args.edition else translated_editions():
        for english_path in english:
            translated = counterpart(english_path, edition)
            shown, source = (display_path(p, outside="absolute") for p in (translated, english_path))
            if not translated.is_file():
                print(f"{shown}: missing")
                missing.append(edition)
                continue
            differences = check_edition(english_path, translated)
            try:
                if args.action == "sync" and sync_edition(english_path, translated):
                    print(f"{shown}: updated from {source}:")
                    print("".join(f"  - {line}\n" for line in differences), end="")
                    continue
            except EditionMismatch as error:
                print(f"{shown}: NOT SYNCED: {error}", flush=True)
                out_of_step = True
                continue
            if not differences:
                print(f"{shown}: in step with {source}")
                continue
            out_of_step = True
            print(f"{shown}: {len(differences)} difference(s) from {source}:")
            print("".join(f"  - {line}\n" for line in differences), end="")
    for edition in dict.fromkeys(missing):
        print(
            f"\nBuild the missing notebooks: python -m course_utils editions build "
            f"--edition {edition} --translations DIR"
        )
    if out_of_step:
        print(
            "\nStale code or outputs: `python -m course_utils editions sync` copies the English ones. Cells "
            "added, removed, moved or changed in type on one side: make both notebooks have the same cells "
            "(same ids, same order) by hand, then sync."
        )
    return EXIT_FAILED if missing or out_of_step else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "editions":
        try:
            return editions_command(args)
        except (UsageError, EditionError, ModuleNotFoundError) as error:
            print(f"python -m course_utils editions {args.action}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    with stop_on_signals():  # SIGTERM and SIGHUP stop the run as Ctrl-C does
        try:
            parameters = [
                (name, parse_parameter_value(text, name)) for name, text in getattr(args, "parameter", [])
            ]
            report = run_notebooks(
                args.notebooks_dir,
                args.runs_dir if args.command == "run" else args.output_dir,
                edition=args.edition,
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
