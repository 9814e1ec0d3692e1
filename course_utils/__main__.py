"""``python -m course_utils run|outputs|editions …``: hands over to ``course_tools`` (a checkout's only)."""

import importlib.util
import sys
from pathlib import Path

checkout = Path(__file__).resolve().parent.parent  # the repository, when this package is in a checkout
if importlib.util.find_spec("course_tools") is None and (checkout / "course_tools").is_dir():
    sys.path.insert(0, str(checkout))  # an installed course_utils, run from outside its checkout
if importlib.util.find_spec("course_tools") is None:
    print("python -m course_utils: the batch runner is part of a checkout of the repository", file=sys.stderr)
    sys.exit(2)
from course_tools.cli import main  # noqa: E402

sys.exit(main())
