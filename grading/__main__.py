"""``python -m grading build|grade|report``: the teacher's commands (``make assignments``, ``make grade``).

python -m grading build                       # build/assignments/{en,zh}: source, release, gradebook.db
python -m grading grade CLASS --edition en    # CLASS/<student>/<assignment>/<notebook>.ipynb
python -m grading report --edition en         # the CSV again, after grading written answers by hand
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_tools.editions import EDITIONS
from course_utils.environment import project_root
from grading.assignments import DEFAULT_OUT, GradingError, build, check, nbgrader_api
from grading.grade import grade, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m grading", description="Assignments from the course's exercises."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="make each notebook's exercises an nbgrader assignment")
    build_parser.add_argument("--edition", choices=EDITIONS, action="append", help="default: every edition")
    build_parser.add_argument("--only", action="append", default=[], metavar="NB", help="02,03 or names")
    grade_parser = commands.add_parser("grade", help="grade a folder of submissions: CSV and feedback")
    grade_parser.add_argument(
        "class_dir", type=Path, metavar="CLASS", help="<student>/<assignment>/<nb>.ipynb"
    )
    grade_parser.add_argument("--timeout", type=float, default=300, help="seconds per notebook (default 300)")
    grade_parser.add_argument(
        "--cell-timeout", type=int, help="seconds per cell (default: nbgrader_config.py)"
    )
    report_parser = commands.add_parser("report", help="write the CSV and the feedback from the gradebook")
    for command in (build_parser, grade_parser, report_parser):
        command.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    for command in (grade_parser, report_parser):
        command.add_argument(
            "--edition", choices=EDITIONS, default="en", help="whose course folder (default en)"
        )
    args = parser.parse_args(argv)
    out = args.out if args.out.is_absolute() else project_root() / args.out
    try:
        if args.command == "build":
            for edition, built in build(out, args.edition or list(EDITIONS), args.only).items():
                print(f"{out / edition}: {', '.join(built.made) or 'no notebook has exercises'}")
                if built.skipped:
                    print(f"  left out, no cell with nbgrader metadata: {', '.join(built.skipped)}")
            return 0
        course = out / args.edition
        if args.command == "grade":
            submissions = grade(course, args.class_dir.resolve(), args.timeout, args.cell_timeout)
            return int(not submissions)
        assignments = sorted(path.name for path in (course / "autograded").glob("*/*") if path.is_dir())
        for assignment in sorted(set(assignments)):
            check(nbgrader_api(course).generate_feedback(assignment), f"feedback for {assignment}")
        for path in report(course, sorted(set(assignments))):
            print(f"wrote {path}")
        return 0
    except GradingError as error:
        print(f"python -m grading {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
