"""Editions of the course: the same notebooks in another language, kept in step with the English ones.

The English notebooks in ``notebooks/`` are the source. A translated edition (``notebooks/zh/``, in
Chinese) has the same cells, with the same ids, in the same order. Only its markdown cells are its own:
its code cells are copies of the English ones, source, stored outputs, execution counts and metadata.
A translated notebook is never executed to get its outputs (the English run gives them), so the two
editions cannot differ in code or in results, and nothing has to run twice.

Three jobs, one function each:

* :func:`build_translated` makes a translated notebook from the English one and a translation of
  each of its markdown cells (``{cell id: markdown}``); done once per notebook.
* :func:`sync_edition` copies every English code cell into the translated notebook, after
  ``make outputs`` regenerated the English outputs or someone changed the code; it refuses when the
  two differ in structure (a cell added, removed, moved or of another type on one side), which only a
  person can resolve.
* :func:`check_edition` lists every way a translated notebook is out of step, as sentences;
  ``tests/test_editions.py`` fails on any.

The command line, ``python -m course_utils editions {build,sync,check}``, is in
:mod:`course_utils.__main__`; ``python -m course_utils outputs`` syncs each notebook it rewrote.
Notebooks are read and written with ``nbformat``, as :mod:`course_utils.runner` does (the ``batch``
extra: ``pip install -e '.[batch]'``), so both produce the same file for the same notebook.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from course_utils.files import atomic_write, display_path, project_root

ENGLISH = "en"
#: Each edition's notebooks folder, relative to the project root. The English one is the source.
EDITIONS = {"en": "notebooks", "zh": "notebooks/zh"}
#: The language of each edition, in words, for messages and run summaries.
LANGUAGES = {"en": "English", "zh": "Chinese"}  # simplified Chinese (简体中文)
#: What the notebooks of a course are: ``NN_name.ipynb`` (the runner reads the same names).
NOTEBOOK_NAME = re.compile(r"\d+_.*\.ipynb")
SNIPPET_LENGTH = 60  # characters of a cell's first line quoted in a message


class EditionError(ValueError):
    """Bad input to the editions tools: an unknown edition, missing or unexpected translations, a
    notebook that cannot be read."""


class EditionMismatch(EditionError):
    """A translated notebook whose structure (cell ids, their order or types) differs from the English
    one's. ``differences`` holds one sentence per difference, each naming the cell."""

    def __init__(self, english_path: Path, translated_path: Path, differences: Sequence[str]) -> None:
        self.differences = list(differences)
        translated, english = (display_path(p, outside="absolute") for p in (translated_path, english_path))
        listed = "".join(f"\n  - {line}" for line in self.differences)
        super().__init__(
            f"{translated} does not have the cells of {english}: its code cells cannot be matched to the "
            f"English ones, so nothing was copied.{listed}\n"
            "To fix: make the translated notebook have the English cells, with the same ids, in the same "
            "order (translate a new English markdown cell into a new cell with the same id; remove a cell "
            "added on one side only), then run `python -m course_utils editions sync` again."
        )


# --------------------------------------------------------------------------------------
# Where the editions are
# --------------------------------------------------------------------------------------


def translated_editions() -> list[str]:
    """The editions other than the English one, e.g. ``["zh"]``."""
    return [edition for edition in EDITIONS if edition != ENGLISH]


def edition_dir(edition: str) -> Path:
    """The notebooks folder of ``edition`` (``"en"``: ``<project>/notebooks``, ``"zh"``: ``…/notebooks/zh``).

    Raises:
        EditionError: an edition that does not exist, naming those that do.
    """
    if edition not in EDITIONS:
        known = ", ".join(f"{name} ({LANGUAGES[name]}, {folder}/)" for name, folder in EDITIONS.items())
        raise EditionError(f"no edition {edition!r}; the editions are: {known}")
    return project_root() / EDITIONS[edition]


def edition_of(folder: str | Path) -> str | None:
    """Which edition's notebooks folder ``folder`` is (``"en"``, ``"zh"``), or None for another folder."""
    resolved = Path(folder).expanduser().resolve()
    return next((name for name in EDITIONS if edition_dir(name).resolve() == resolved), None)


def counterpart(english_path: str | Path, edition: str) -> Path:
    """Where the ``edition`` version of the English notebook ``english_path`` lives.

    The editions' folders sit as in :data:`EDITIONS` (``zh/`` inside the English folder), wherever that
    folder is: ``notebooks/02_lenet5_mnist.ipynb`` -> ``notebooks/zh/02_lenet5_mnist.ipynb``, and a
    copy of the course elsewhere the same way. Raises EditionError for an unknown edition.
    """
    edition_dir(edition)  # the check, with its message
    inside = Path(EDITIONS[edition]).relative_to(EDITIONS[ENGLISH])
    english_path = Path(english_path)
    return english_path.parent / inside / english_path.name


def english_notebooks() -> list[Path]:
    """The English notebooks of the course (``notebooks/NN_name.ipynb``), in course order."""
    paths = [path for path in edition_dir(ENGLISH).glob("*.ipynb") if NOTEBOOK_NAME.fullmatch(path.name)]
    return sorted(paths, key=lambda path: (int(path.name.split("_")[0]), path.name))


# --------------------------------------------------------------------------------------
# Reading, writing and describing notebooks
# --------------------------------------------------------------------------------------


def read_notebook(path: str | Path) -> Any:
    """The notebook at ``path`` as written (nbformat 4 node, sources as strings).

    Read without :func:`nbformat.read`, which silently gives new random ids to cells with a missing or
    repeated id: here such a cell must be reported, not renamed. Raises EditionError when the file
    cannot be read or is not an nbformat 4 notebook.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise EditionError(f"cannot read {display_path(path, outside='absolute')}: {error}") from error
    if not isinstance(data, dict) or data.get("nbformat") != 4 or not isinstance(data.get("cells"), list):
        raise EditionError(f"{display_path(path, outside='absolute')} is not an nbformat 4 notebook")
    return _normalised(data)


def notebook_text(notebook: Any) -> str:
    """``notebook`` as the text of its ``.ipynb`` file: JSON with indent 1, non-ASCII characters as they
    are (``ensure_ascii=False``), keys sorted, a trailing newline; what the runner writes too."""
    import nbformat

    return nbformat.writes(notebook) + "\n"


def _normalised(notebook: Mapping[str, Any]) -> Any:
    """A copy of ``notebook`` (an nbformat node or the plain dict of its JSON) as an nbformat node whose
    sources and outputs are single strings (a file may store them as lists of lines), so that two
    notebooks compare by content. Ids are kept as they are, missing or repeated ones included."""
    from nbformat import from_dict
    from nbformat.v4.rwbase import rejoin_lines

    return rejoin_lines(from_dict(copy.deepcopy(dict(notebook))))


def _describe(cell: Mapping[str, Any], index: int) -> str:
    """``markdown cell 'c0a1b025' (index 12: "**Gradient clipping.** Exploding …")``."""
    source = cell.get("source", "")
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > SNIPPET_LENGTH:
        first = first[: SNIPPET_LENGTH - 1] + "…"
    quoted = json.dumps(first, ensure_ascii=False)
    return f"{cell.get('cell_type', '?')} cell {cell.get('id')!r} (index {index}: {quoted})"


def _first_difference(english: str, translated: str) -> str:
    """Where two sources first differ: ``line 3: English "x = 1", here "x = 2"``."""
    english_lines, translated_lines = english.splitlines(), translated.splitlines()
    for number, (left, right) in enumerate(zip(english_lines, translated_lines), start=1):
        if left != right:
            return f"line {number}: English {json.dumps(left)}, here {json.dumps(right)}"
    number = min(len(english_lines), len(translated_lines)) + 1
    if len(english_lines) == len(translated_lines):  # the same lines: only the final newline differs
        return "only in the line ending at the end"
    return f"from line {number}: {abs(len(english_lines) - len(translated_lines))} more line(s) in the " + (
        "English cell" if len(english_lines) > len(translated_lines) else "translation"
    )


def id_problems(cells: Sequence[Mapping[str, Any]], side: str) -> list[str]:
    """Cells of one notebook without an id, or with an id another cell has; ``side`` names the notebook."""
    problems, seen = [], {}
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if not cell_id:
            problems.append(
                f"{_describe(cell, index)} of the {side} has no id (cells have ids from nbformat 4.5 on: "
                "open and save the notebook in JupyterLab 3 or later)"
            )
        elif cell_id in seen:
            problems.append(
                f"cell id {cell_id!r} appears twice in the {side}: index {seen[cell_id]} and {index}"
            )
        else:
            seen[cell_id] = index
    return problems


def structure_differences(english: Mapping[str, Any], translated: Mapping[str, Any]) -> list[str]:
    """How the cells of ``translated`` differ from those of ``english`` in ids, order or type.

    Both are notebooks (nbformat nodes or plain dicts). Markdown text and code are not compared here.

    Returns:
        One sentence per difference, naming the cell (its type, id, index and first line); empty when
        the two have the same cell ids, in the same order, with the same types.
    """
    problems = id_problems(english["cells"], "English notebook") + id_problems(
        translated["cells"], "translation"
    )
    if problems:  # without unique ids, cells cannot be matched
        return problems

    english_cells, translated_cells = english["cells"], translated["cells"]
    english_index = {cell["id"]: index for index, cell in enumerate(english_cells)}
    translated_index = {cell["id"]: index for index, cell in enumerate(translated_cells)}
    for index, cell in enumerate(english_cells):
        if cell["id"] not in translated_index:
            problems.append(
                f"{_describe(cell, index)} of the English notebook is missing from the translation"
            )
    for index, cell in enumerate(translated_cells):
        if cell["id"] not in english_index:
            problems.append(
                f"{_describe(cell, index)} is only in the translation, not in the English notebook"
            )
    for index, cell in enumerate(translated_cells):
        english_at = english_index.get(cell["id"])
        if english_at is not None and english_cells[english_at]["cell_type"] != cell["cell_type"]:
            problems.append(
                f"cell {cell['id']!r} is a {cell['cell_type']} cell in the translation (index {index}) but a "
                f"{english_cells[english_at]['cell_type']} cell in the English notebook (index {english_at})"
            )
    # The order of the cells both have: those outside the longest run of agreement moved.
    english_order = [cell["id"] for cell in english_cells if cell["id"] in translated_index]
    translated_order = [cell["id"] for cell in translated_cells if cell["id"] in english_index]
    if english_order != translated_order:
        matcher = difflib.SequenceMatcher(a=english_order, b=translated_order, autojunk=False)
        in_order = {
            cell_id
            for block in matcher.get_matching_blocks()
            for cell_id in english_order[block.a : block.a + block.size]
        }
        for cell_id in translated_order:
            if cell_id not in in_order:
                index = translated_index[cell_id]
                problems.append(
                    f"{_describe(translated_cells[index], index)} is out of order: it is at index "
                    f"{english_index[cell_id]} in the English notebook"
                )
    return problems


# --------------------------------------------------------------------------------------
# Building, syncing and checking one notebook
# --------------------------------------------------------------------------------------


def build_translated(english: Mapping[str, Any], translations: Mapping[str, str]) -> Any:
    """A translated notebook: the English cells, in order, with their ids; each markdown cell's source
    replaced by its translation; each code cell copied exactly (source, outputs, execution count,
    metadata); the notebook's metadata copied.

    Args:
        english: the English notebook (an nbformat node, or the plain dict of its JSON).
        translations: ``{cell id: markdown}``, one entry for every markdown cell of ``english`` and
            nothing else.

    Returns:
        The new notebook (an nbformat node; write it with :func:`notebook_text`). ``english`` is unchanged.

    Raises:
        EditionError: markdown cells without a translation, translations for ids that are not markdown
            cells of ``english`` (a code cell, or no cell), a translation that is not text, or English
            cells without unique ids; every one is listed.
    """
    notebook = _normalised(english)
    problems = id_problems(notebook.cells, "English notebook")
    if problems:
        raise EditionError(
            "the English notebook's cells cannot be named by id:\n  - " + "\n  - ".join(problems)
        )
    kinds = {cell["id"]: cell["cell_type"] for cell in notebook.cells}
    missing = [
        cell["id"]
        for cell in notebook.cells
        if cell["cell_type"] == "markdown" and cell["id"] not in translations
    ]
    unexpected = [
        f"{cell_id!r} ({f'a {kinds[cell_id]} cell' if cell_id in kinds else 'no English cell'})"
        for cell_id in translations
        if kinds.get(cell_id) != "markdown"
    ]
    not_text = [repr(cell_id) for cell_id, text in translations.items() if not isinstance(text, str)]
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} markdown cell(s) have no translation: {', '.join(map(repr, missing))}"
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} translation(s) are not for a markdown cell: {', '.join(unexpected)}"
        )
    if not_text:
        problems.append(f"translation(s) that are not a string of markdown: {', '.join(not_text)}")
    if problems:
        raise EditionError("cannot build the translated notebook:\n  - " + "\n  - ".join(problems))
    for cell in notebook.cells:
        if cell["cell_type"] == "markdown":
            cell["source"] = translations[cell["id"]]
    return notebook


def sync_edition(english_path: str | Path, translated_path: str | Path) -> bool:
    """Copy every code cell (source, outputs, execution count, metadata) and the notebook's metadata
    from the English notebook into the translated one, matching cells by id; its markdown stays its own.

    The file is rewritten (atomically, as :func:`notebook_text` formats it) only when something changed.

    Returns:
        True when the translated notebook was changed (and written), False when it was in step already.

    Raises:
        EditionMismatch: the two differ in structure (cell ids, order or types): nothing is written.
        EditionError: a notebook cannot be read.
    """
    english, translated = read_notebook(english_path), read_notebook(translated_path)
    differences = structure_differences(english, translated)
    if differences:
        raise EditionMismatch(Path(english_path), Path(translated_path), differences)
    updated = copy.deepcopy(translated)
    for index, cell in enumerate(english.cells):
        if cell.cell_type == "code":
            updated.cells[index] = copy.deepcopy(cell)
    # The kernel and language version the outputs came from belong to the outputs.
    updated.metadata = copy.deepcopy(english.metadata)
    updated.nbformat, updated.nbformat_minor = english.nbformat, english.nbformat_minor
    if updated == translated:
        return False
    atomic_write(translated_path, notebook_text(updated))
    return True


def check_edition(english_path: str | Path, translated_path: str | Path) -> list[str]:
    """Every way the translated notebook is out of step with the English one, as sentences.

    Checked: the structure (:func:`structure_differences`); each code cell's source, then its stored
    outputs, execution count and metadata (those differ when the English notebook was re-executed and
    the translation not synced: they are stale); the notebook's metadata. Markdown is not compared.

    Returns:
        One sentence per difference, each naming the cell; empty when the two are in step. A missing
        translated notebook is one sentence saying how to build it.
    """
    if not Path(translated_path).is_file():
        return [
            f"{display_path(translated_path, outside='absolute')} does not exist: build it with "
            "`python -m course_utils editions build --edition EDITION --translations DIR`"
        ]
    english, translated = read_notebook(english_path), read_notebook(translated_path)
    problems = structure_differences(english, translated)
    english_cells = {cell.get("id"): cell for cell in english.cells}
    sync = "run `python -m course_utils editions sync`"
    for index, cell in enumerate(translated.cells):
        english_cell = english_cells.get(cell.get("id"))
        if cell.cell_type != "code" or english_cell is None or english_cell.cell_type != "code":
            continue
        if cell.source != english_cell.source:
            problems.append(
                f"{_describe(cell, index)}: its code differs from the English cell's "
                f"({_first_difference(english_cell.source, cell.source)}); {sync}"
            )
        stale = [
            name.replace("_", " ")
            for name in ("outputs", "execution_count", "metadata")
            if cell.get(name) != english_cell.get(name)
        ]
        if stale:
            counts = ""
            if "execution count" in stale:
                counts = f" (execution count {cell.execution_count}, English {english_cell.execution_count})"
            problems.append(
                f"{_describe(cell, index)}: its {', '.join(stale)} differ from the English run's{counts}: "
                f"stale; {sync}"
            )
    if translated.metadata != english.metadata:
        changed = sorted(
            key
            for key in set(translated.metadata) | set(english.metadata)
            if translated.metadata.get(key) != english.metadata.get(key)
        )
        problems.append(
            f"the notebook's metadata differ from the English notebook's ({', '.join(changed)}); {sync}"
        )
    return problems


# --------------------------------------------------------------------------------------
# A whole edition
# --------------------------------------------------------------------------------------


def read_translations(folder: str | Path, stem: str) -> dict[str, str]:
    """The translations of notebook ``stem``'s markdown cells: ``folder/<stem>.json`` and every
    ``folder/<stem>.*.json``, merged.

    Each file holds ``{cell id: markdown}`` (translators may split a notebook into parts:
    ``02_lenet5_mnist.a.json``, ``02_lenet5_mnist.b.json``).

    Raises:
        EditionError: no such file, a file that is not such an object, or two files that give one
            cell different text (both named).
    """
    files = sorted([*Path(folder).glob(f"{stem}.json"), *Path(folder).glob(f"{stem}.*.json")])
    if not files:
        raise EditionError(
            f"no translations for {stem} in {display_path(folder, outside='absolute')} ({stem}.*.json)"
        )
    merged: dict[str, str] = {}
    source: dict[str, Path] = {}
    conflicts = []
    for file in files:
        try:
            part = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise EditionError(f"cannot read {display_path(file, outside='absolute')}: {error}") from error
        if not isinstance(part, dict):
            raise EditionError(
                f"{display_path(file, outside='absolute')} must hold an object {{cell id: markdown}}"
            )
        for cell_id, text in part.items():
            if cell_id in merged and merged[cell_id] != text:
                conflicts.append(f"{cell_id!r} in {source[cell_id].name} and {file.name}")
            merged.setdefault(cell_id, text)
            source.setdefault(cell_id, file)
    if conflicts:
        raise EditionError(f"translations of {stem} disagree (one cell, two texts): {'; '.join(conflicts)}")
    return merged


def build_edition(
    edition: str,
    translations_dir: str | Path,
    english_paths: Sequence[Path] | None = None,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Build the ``edition`` notebooks from the English ones and the translations in ``translations_dir``.

    Every notebook is built (:func:`build_translated`, with :func:`read_translations`) before any is
    written, so that a missing or wrong translation writes nothing.

    Args:
        edition: a translated edition, e.g. ``"zh"``.
        translations_dir: the folder of ``<stem>.*.json`` files.
        english_paths: the English notebooks to translate (default: all, :func:`english_notebooks`).
        overwrite: replace translated notebooks that exist (default: refuse, so that work done on them
            by hand is not lost).

    Returns:
        The notebooks written.

    Raises:
        EditionError: the English edition given, an unknown edition, existing notebooks without
            ``overwrite``, or any problem with the translations (all of them listed).
    """
    if edition == ENGLISH:
        raise EditionError("the English edition is the source: build a translated one (e.g. --edition zh)")
    edition_dir(edition)
    english_paths = english_notebooks() if english_paths is None else list(english_paths)
    targets = [counterpart(path, edition) for path in english_paths]
    existing = [display_path(target, outside="absolute") for target in targets if target.exists()]
    if existing and not overwrite:
        raise EditionError(
            f"{', '.join(existing)} exist already; to keep them in step use `python -m course_utils editions "
            "sync`, or replace them (losing any change made in them) with --overwrite"
        )
    built, problems = [], []
    for path in english_paths:
        try:
            built.append(
                build_translated(read_notebook(path), read_translations(translations_dir, path.stem))
            )
        except EditionError as error:
            problems.append(f"{path.stem}: {error}")
    if problems:
        raise EditionError("nothing was written:\n" + "\n".join(problems))
    for notebook, target in zip(built, targets):
        atomic_write(target, notebook_text(notebook))
    return targets
