"""Settings for the whole test suite (pytest reads this before collecting anything).

The notebooks are executed by nbval in kernels that inherit this process's environment,
so these variables select their behaviour under test:

* ``COURSE_PROFILE=smoke``: every notebook whose ``PROFILE`` is ``"auto"`` runs its
  smallest profile (a test must be quick, whatever the shell says);
* ``COURSE_OUTPUT_DIR``: metrics, checkpoints and figures go to a temporary folder, not
  into the repository's ``outputs/``;
* ``COURSE_PROGRESS=text``: plain text progress bars instead of widgets;
* ``MPLBACKEND=Agg``: figures render without a display.
"""

import os
import tempfile

os.environ["COURSE_PROFILE"] = "smoke"
os.environ["COURSE_PROGRESS"] = "text"
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("COURSE_OUTPUT_DIR", tempfile.mkdtemp(prefix="course-test-outputs-"))
