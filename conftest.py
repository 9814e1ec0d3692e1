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
from pathlib import Path

# nbval does not run the Chinese edition (notebooks/zh/): its code cells and stored outputs are
# identical to the English notebooks', which nbval already runs, so running it again would be
# redundant. tests/test_editions.py proves that identity (structure, code and outputs), cell by cell.
collect_ignore_glob = ["notebooks/zh/*"]

os.environ["COURSE_PROFILE"] = "smoke"
os.environ["COURSE_PROGRESS"] = "text"
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("COURSE_OUTPUT_DIR", tempfile.mkdtemp(prefix="course-test-outputs-"))


def pytest_sessionstart(session):
    """Stop at once, with one message, when the datasets the notebooks need are missing.

    Without this, a machine without the data (and without internet to download them) gets
    dozens of failures, the cause buried in the first. The check tries the real loader, so
    a machine with internet still downloads the data here, once.
    """
    import pytest

    from course_utils.data import DatasetError, default_data_dir, load_dataset

    # Only a session that will run the notebooks needs the data (`pytest tests/test_models.py`
    # does not): the notebooks are collected when no path is given (testpaths) or one is named.
    notebooks = (Path(__file__).resolve().parent / "notebooks").resolve()
    targets = [
        (session.config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in session.config.args
    ]
    if not any(target.suffix == ".ipynb" or notebooks.is_relative_to(target) for target in targets):
        return

    problems = []
    for name in ("mnist", "cifar10"):
        try:
            load_dataset(name)
        except DatasetError as error:
            problems.append(f"--- {name} ---\n{error}")
    if problems:
        folder = default_data_dir()
        message = (
            "The tests need the real MNIST and CIFAR-10 and could not get them.\n"
            f"Looked in {folder} (set by COURSE_DATA_DIR, else data/ in the repository).\n\n"
            + "\n\n".join(problems)
            + "\n\nTo fix: put mnist.npz and cifar10.npz in that folder (in this project's CI: "
            "../shared/data/install.sh DIR, then COURSE_DATA_DIR=DIR make test), or run once on a "
            "machine with internet access so that they are downloaded.\n"
        )
        session.config.get_terminal_writer().write(message, red=True)
        pytest.exit(f"no datasets in {folder}: nothing was tested (see the message above)", returncode=3)
