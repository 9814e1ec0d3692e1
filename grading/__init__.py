"""The course's exercises as graded assignments, with nbgrader: ``python -m grading`` (see ``__main__``).

``assignments``: build the student and teacher versions from the notebooks; ``grade``: grade a folder of
submissions, each run apart from the others and from the teacher's files, into a CSV and feedback files.
"""
