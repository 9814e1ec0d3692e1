"""Editions of the course: the same notebooks in another language, kept in step with the English ones.

The English notebooks (``notebooks/``) are the source. A translated edition (``notebooks/zh/``) has the
same cells, with the same ids, in the same order. Only its markdown is its own: its code cells (source,
outputs, execution counts, metadata) are copies of the English ones, never executed, so the editions cannot
differ in code or results. :func:`build_translated` makes one from ``{cell id: markdown}``,
:func:`sync_edition` copies the English code cells into it, :func:`check_edition` lists every difference.
The runner too reads and writes notebooks with :func:`read_notebook` and :func:`write_notebook`.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import nbformat.reader
from nbformat import NotebookNode

from course_utils.environment import atomic_write, display_path, project_root

ENGLISH = "en"
EDITIONS = {"en": "notebooks", "zh": "notebooks/zh"}  # each edition's folder in the repository
LANGUAGES = {"en": "English", "zh": "Chinese"}  # simplified Chinese (简体中文)
TRANSLATED = [edition for edition in EDITIONS if edition != ENGLISH]
SYNC = "run `python -m course_utils editions sync`"


class EditionError(ValueError):
    """Bad input: an unknown edition, missing or unexpected translations, a notebook that cannot be read."""


class EditionMismatch(EditionError):
    """A translation whose cells (ids, order, types) differ from the English ones; ``differences``: each."""

    def __init__(self, english: Path, translated: Path, differences: Sequence[str]) -> None:
        self.differences = list(differences)
        listed = "".join(f"\n  - {line}" for line in self.differences)
        super().__init__(
            f"{display_path(translated)} does not have the cells of {display_path(english)}, so nothing "
            f"was copied.{listed}\nTo fix: give the translation the English cells, with the same ids, in "
            "the same order (a new English markdown cell becomes a new translated cell with its id; a cell "
            "added on one side only goes), then run `python -m course_utils editions sync` again."
        )


def edition_dir(edition: str) -> Path:
    """The notebooks folder of ``edition`` (``"zh"``: ``<repository>/notebooks/zh``); EditionError if none."""
    if edition not in EDITIONS:
        known = ", ".join(f"{name} ({LANGUAGES[name]}, {folder}/)" for name, folder in EDITIONS.items())
        raise EditionError(f"no edition {edition!r}; the editions are: {known}")
    return project_root() / EDITIONS[edition]


def counterpart(english_path: str | Path, edition: str) -> Path:
    """The ``edition`` version of an English notebook, placed as :data:`EDITIONS` places the folders:
    ``…/notebooks/02_lenet5_mnist.ipynb`` -> ``…/notebooks/zh/02_lenet5_mnist.ipynb``."""
    edition_dir(edition)  # the check, with its message
    inside = Path(EDITIONS[edition]).relative_to(EDITIONS[ENGLISH])
    return Path(english_path).parent / inside / Path(english_path).name


def course_notebooks(folder: str | Path, only: Sequence[str] = ()) -> list[Path]:
    """The numbered notebooks of ``folder`` (``NN_name.ipynb``) in course order (``10_`` after ``9_``), those
    ``only`` names by number (``02``, ``2``) or name, comma-separated or repeated (empty: all).

    Raises EditionError for a name that matches none, or a folder without notebooks.
    """
    paths = [path for path in Path(folder).glob("*.ipynb") if path.name.split("_")[0].isdigit()]
    paths.sort(key=lambda path: (int(path.name.split("_")[0]), path.name))
    names = {path: {path.stem, str(int(path.name.split("_")[0]))} for path in paths}  # "02" is "2"
    tokens = [token.removesuffix(".ipynb") for entry in only for token in entry.replace(",", " ").split()]
    wanted = {token: str(int(token)) if token.isdigit() else token for token in tokens}
    unknown = [token for token, name in wanted.items() if not any(name in known for known in names.values())]
    if unknown or not paths:
        listed = ", ".join(path.stem for path in paths) or "none"
        raise EditionError(f"no notebook {', '.join(unknown)} in {display_path(folder)}; it has: {listed}")
    return [path for path in paths if not wanted or names[path] & set(wanted.values())]


def read_notebook(path: str | Path) -> NotebookNode:
    """The notebook at ``path`` as written, sources as strings; EditionError if it is no nbformat 4 notebook.

    Not :func:`nbformat.read`, whose validation silently renumbers a missing or repeated cell id: such a
    cell must be reported, not renamed."""
    try:
        notebook = nbformat.reader.reads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, nbformat.ValidationError) as error:
        raise EditionError(f"cannot read {display_path(path)}: {error}") from error
    if notebook.get("nbformat") != 4 or not isinstance(notebook.get("cells"), list):
        raise EditionError(f"{display_path(path)} is not an nbformat 4 notebook")
    return notebook


def write_notebook(path: str | Path, notebook: NotebookNode) -> Path:
    """Write ``notebook`` atomically as JSON with indent 1, sorted keys, non-ASCII characters as they are
    and a final newline: the format JupyterLab saves."""
    return atomic_write(path, nbformat.writes(notebook) + "\n")


def describe(cell: Mapping, index: int) -> str:
    """``markdown cell 'c0a1b025' (index 12: "**Gradient clipping.** Exploding …")``."""
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")
    first = first if len(first) <= 60 else first[:59] + "…"
    quoted = json.dumps(first, ensure_ascii=False)
    return f"{cell.get('cell_type', '?')} cell {cell.get('id')!r} (index {index}: {quoted})"


def first_difference(english: str, translated: str) -> str:
    """Where two sources first differ: ``line 3: English "x = 1", here "x = 2"``."""
    english_lines, translated_lines = english.splitlines(), translated.splitlines()
    for number, (left, right) in enumerate(zip(english_lines, translated_lines), start=1):
        if left != right:
            return f"line {number}: English {json.dumps(left)}, here {json.dumps(right)}"
    if len(english_lines) == len(translated_lines):
        return "only in the line ending at the end"
    longer = "English cell" if len(english_lines) > len(translated_lines) else "translation"
    fewer, more = sorted((len(english_lines), len(translated_lines)))
    return f"from line {fewer + 1}: {more - fewer} more line(s) in the {longer}"


def id_problems(cells: Sequence[Mapping], side: str) -> list[str]:
    """Cells of one notebook (``side`` names it) without an id, or with an id another cell has."""
    problems, seen = [], {}
    for index, cell in enumerate(cells):
        if not cell.get("id"):
            problems.append(
                f"{describe(cell, index)} of the {side} has no id (cells have ids from nbformat 4.5 on: "
                "open and save the notebook in JupyterLab 3 or later)"
            )
        elif cell["id"] in seen:
            problems.append(
                f"cell id {cell['id']!r} appears twice in the {side}: index {seen[cell['id']]} and {index}"
            )
        else:
            seen[cell["id"]] = index
    return problems


def structure_differences(english: NotebookNode, translated: NotebookNode) -> list[str]:
    """How the cells of ``translated`` differ from those of ``english`` in ids, order or type, one sentence
    each (empty: the same ids, in the same order, with the same types). Text is not compared here."""
    problems = id_problems(english.cells, "English notebook") + id_problems(translated.cells, "translation")
    if problems:  # without unique ids, cells cannot be matched
        return problems
    english_index = {cell.id: index for index, cell in enumerate(english.cells)}
    translated_index = {cell.id: index for index, cell in enumerate(translated.cells)}
    for index, cell in enumerate(english.cells):
        if cell.id not in translated_index:
            problems.append(
                f"{describe(cell, index)} of the English notebook is missing from the translation"
            )
    for index, cell in enumerate(translated.cells):
        if cell.id not in english_index:
            problems.append(
                f"{describe(cell, index)} is only in the translation, not in the English notebook"
            )
            continue
        theirs = english.cells[english_index[cell.id]].cell_type
        if theirs != cell.cell_type:
            problems.append(
                f"cell {cell.id!r} is a {cell.cell_type} cell in the translation (index {index}) but a "
                f"{theirs} cell in the English notebook (index {english_index[cell.id]})"
            )
    # Of the cells both have, those outside the longest runs in the same order have moved.
    english_order = [cell.id for cell in english.cells if cell.id in translated_index]
    translated_order = [cell.id for cell in translated.cells if cell.id in english_index]
    matcher = difflib.SequenceMatcher(a=english_order, b=translated_order, autojunk=False)
    in_order = {
        cell_id for a, _, size in matcher.get_matching_blocks() for cell_id in english_order[a : a + size]
    }
    for cell_id in translated_order:
        if cell_id not in in_order:
            index = translated_index[cell_id]
            problems.append(
                f"{describe(translated.cells[index], index)} is out of order: it is at index "
                f"{english_index[cell_id]} in the English notebook"
            )
    return problems


def build_translated(english: NotebookNode, translations: Mapping[str, str]) -> NotebookNode:
    """A copy of ``english`` whose markdown cells hold ``translations`` (``{cell id: markdown}``, one for each
    markdown cell and nothing else). EditionError listing every markdown cell without a translation, every
    translation for no markdown cell or not text, or English cells without unique ids."""
    notebook = copy.deepcopy(english)
    if problems := id_problems(notebook.cells, "English notebook"):
        raise EditionError(
            "the English notebook's cells cannot be named by id:\n  - " + "\n  - ".join(problems)
        )
    kinds = {cell.id: cell.cell_type for cell in notebook.cells}
    missing = [
        repr(cell.id)
        for cell in notebook.cells
        if cell.cell_type == "markdown" and cell.id not in translations
    ]
    unexpected = [
        f"{cell_id!r} ({f'a {kinds[cell_id]} cell' if cell_id in kinds else 'no English cell'})"
        for cell_id in translations
        if kinds.get(cell_id) != "markdown"
    ]
    not_text = [repr(cell_id) for cell_id, text in translations.items() if not isinstance(text, str)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} markdown cell(s) have no translation: {', '.join(missing)}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} translation(s) are not for a markdown cell: {', '.join(unexpected)}"
        )
    if not_text:
        problems.append(f"translation(s) that are not a string of markdown: {', '.join(not_text)}")
    if problems:
        raise EditionError("cannot build the translated notebook:\n  - " + "\n  - ".join(problems))
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = translations[cell.id]
    return notebook


def sync_edition(english_path: str | Path, translated_path: str | Path) -> bool:
    """Copy every English code cell (source, outputs, execution count, metadata) and the notebook's metadata
    into the translation, by cell id; returns whether it changed (written only then). EditionMismatch
    (nothing written) when the two differ in structure; its markdown stays its own."""
    english, translated = read_notebook(english_path), read_notebook(translated_path)
    if differences := structure_differences(english, translated):
        raise EditionMismatch(Path(english_path), Path(translated_path), differences)
    updated = copy.deepcopy(translated)
    for index, cell in enumerate(english.cells):
        if cell.cell_type == "code":
            updated.cells[index] = copy.deepcopy(cell)
    # The kernel and Python version the outputs came from belong to the outputs.
    updated.metadata = copy.deepcopy(english.metadata)
    updated.nbformat_minor = english.nbformat_minor
    if updated == translated:
        return False
    write_notebook(translated_path, updated)
    return True


def with_outputs(notebook: NotebookNode, executed: NotebookNode) -> NotebookNode:
    """``notebook`` as written, with the outputs of its execution by papermill (``executed``): not the
    injected parameters cell nor papermill's metadata, execution counts renumbered 1, 2, … as by hand."""
    ran = [cell for cell in executed.cells if "injected-parameters" not in cell.metadata.get("tags", [])]
    count = 0
    for cell, done in zip(notebook.cells, ran, strict=True):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.outputs, None
            if done.execution_count is not None:
                count = cell.execution_count = count + 1
                for output in cell.outputs:
                    if "execution_count" in output:
                        output.execution_count = count
    notebook.metadata.language_info = executed.metadata.language_info  # the Python the outputs came from
    return notebook


def check_edition(english_path: str | Path, translated_path: str | Path) -> list[str]:
    """Every way the translated notebook is out of step with the English one, one sentence each (empty:
    in step): its structure, each code cell's source, then its outputs, execution count and metadata
    (stale when the English notebook ran again and the translation was not synced), the notebook's
    metadata. Markdown is not compared. A missing notebook is one sentence saying how to build it."""
    if not Path(translated_path).is_file():
        return [
            f"{display_path(translated_path)} does not exist: build it with "
            "`python -m course_utils editions build --edition EDITION --translations DIR`"
        ]
    english, translated = read_notebook(english_path), read_notebook(translated_path)
    problems = structure_differences(english, translated)
    english_cells = {cell.get("id"): cell for cell in english.cells}
    for index, cell in enumerate(translated.cells):
        theirs = english_cells.get(cell.get("id"))
        if cell.cell_type != "code" or theirs is None or theirs.cell_type != "code":
            continue
        if cell.source != theirs.source:
            problems.append(
                f"{describe(cell, index)}: its code differs from the English cell's "
                f"({first_difference(theirs.source, cell.source)}); {SYNC}"
            )
        stale = [
            key for key in ("outputs", "execution_count", "metadata") if cell.get(key) != theirs.get(key)
        ]
        if stale:
            counts = ""
            if "execution_count" in stale:
                counts = f" (execution count {cell.execution_count}, English {theirs.execution_count})"
            problems.append(
                f"{describe(cell, index)}: its {', '.join(key.replace('_', ' ') for key in stale)} differ "
                f"from the English run's{counts}: stale; {SYNC}"
            )
    if translated.metadata != english.metadata:
        keys = set(translated.metadata) | set(english.metadata)
        changed = sorted(key for key in keys if translated.metadata.get(key) != english.metadata.get(key))
        problems.append(
            f"the notebook's metadata differ from the English notebook's ({', '.join(changed)}); {SYNC}"
        )
    return problems


def read_translations(folder: str | Path, stem: str) -> dict[str, str]:
    """The translations of notebook ``stem``, ``folder/<stem>.json`` and ``folder/<stem>.<part>.json`` (a
    notebook may be split into parts), each ``{cell id: markdown}``, merged. EditionError for no such file,
    a file that is not such an object, or two files that give one cell different texts."""
    files = sorted([*Path(folder).glob(f"{stem}.json"), *Path(folder).glob(f"{stem}.*.json")])
    if not files:
        raise EditionError(f"no translations for {stem} in {display_path(folder)} ({stem}.*.json)")
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    conflicts = []
    for file in files:
        try:
            part = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise EditionError(f"cannot read {display_path(file)}: {error}") from error
        if not isinstance(part, dict):
            raise EditionError(f"{display_path(file)} must hold an object {{cell id: markdown}}")
        for cell_id, text in part.items():
            if merged.setdefault(cell_id, text) != text:
                conflicts.append(f"{cell_id!r} in {origin[cell_id]} and {file.name}")
            origin.setdefault(cell_id, file.name)
    if conflicts:
        raise EditionError(f"translations of {stem} disagree (one cell, two texts): {'; '.join(conflicts)}")
    return merged


def build_edition(
    edition: str, translations_dir: str | Path, english_paths: Sequence[Path], *, overwrite: bool = False
) -> list[Path]:
    """Build the ``edition`` notebooks of ``english_paths`` from the translations in ``translations_dir``:
    all before any is written, so that one wrong translation writes nothing; notebooks that exist are
    replaced only with ``overwrite``. Returns those written; EditionError listing every problem."""
    if edition == ENGLISH:
        raise EditionError("the English edition is the source: build a translated one (e.g. --edition zh)")
    targets = [counterpart(path, edition) for path in english_paths]
    existing = [display_path(target) for target in targets if target.exists()]
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
        write_notebook(target, notebook)
    return targets


def command(args: Any) -> int:
    """``python -m course_utils editions check|sync|build`` (``args``: the command line): print what it
    finds or does; returns 1 when a translation is missing or out of step, else 0."""
    english = course_notebooks(edition_dir(ENGLISH), args.only)
    if args.action == "build":
        for path in build_edition(args.edition, args.translations, english, overwrite=args.overwrite):
            print(f"wrote {display_path(path)}")
        return 0
    out_of_step = False
    for edition in [args.edition] if args.edition else TRANSLATED:
        for path in english:
            translated, source = counterpart(path, edition), display_path(path)
            shown, differences = display_path(translated), check_edition(path, translated)
            try:
                if args.action == "sync" and translated.is_file() and sync_edition(path, translated):
                    print(f"{shown}: updated from {source}:", *differences, sep="\n  - ")
                    continue
            except EditionMismatch as error:
                print(f"{shown}: NOT SYNCED: {error}")
                out_of_step = True
                continue
            out_of_step |= bool(differences)
            found = f"{len(differences)} difference(s) from {source}:" if differences else "in step"
            print(f"{shown}: {found}", *differences, sep="\n  - ")
    if out_of_step:
        print(
            "\nStale code or outputs: `python -m course_utils editions sync` copies the English ones. Cells "
            "added, removed, moved or retyped on one side: give both notebooks the same cells, then sync."
        )
    return int(out_of_step)
