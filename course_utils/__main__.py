"""``python -m course_utils run|outputs|editions …``: hands over to ``course_tools`` (a checkout's only)."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("course_tools") is None:  # an installed course_utils, run from outside:
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # its checkout, if it is in one
if importlib.util.find_spec("course_tools") is None:
    print("python -m course_utils: the batch runner is part of a checkout of the repository", file=sys.stderr)
    sys.exit(2)
from course_tools.cli import Nowhere, main  # noqa: E402

sys.stdout, sys.stderr = Nowhere(sys.stdout), Nowhere(sys.stderr)  # a closed pipe loses nothing of the run
sys.exit(main())
