"""nbgrader's settings for the course's assignments.

`make assignments` copies this file into each edition's course folder (build/assignments/en, .../zh), where
every nbgrader command reads it: run them from that folder (`cd build/assignments/en && nbgrader ...`).
The folder's name picks the edition, so the Chinese student versions get Chinese stubs.
"""

import os

c = get_config()  # noqa: F821 (nbgrader defines get_config when it reads this file)
EDITION = os.path.basename(os.path.dirname(os.path.abspath(__file__)))

c.CourseDirectory.course_id = f"cnn-rnn-pytorch-{EDITION}"
# Seconds a cell may run before nbgrader interrupts it (its test then fails with CellTimeoutError and
# grading goes on with the next cell). Every test runs on small inputs, in well under a second.
c.Execute.timeout = 20
# A submission without some of the test cells gets them back, so that they run (and fail) all the same.
c.OverwriteCells.add_missing_cells = True
# What replaces a solution in the student version: code that says so when run, and a place to write.
STUBS = {
    "en": ("# YOUR CODE HERE\nraise NotImplementedError()", "YOUR ANSWER HERE"),
    "zh": ("# 在此写出你的代码\nraise NotImplementedError()", "在此写出你的回答"),
}
code_stub, text_stub = STUBS.get(EDITION, STUBS["en"])
c.ClearSolutions.code_stub = {"python": code_stub}
c.ClearSolutions.text_stub = text_stub
