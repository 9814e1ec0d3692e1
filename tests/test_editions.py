"""The Chinese edition (``notebooks/zh/``) is the English course with its prose translated.

Two kinds of test:

* The real editions: for every English notebook, its Chinese one exists and is in step (same cells,
  same ids, same order, identical code and stored outputs: nbval need not run it again, see
  ``conftest.py``); its markdown is Chinese; its badges open the Chinese notebook; its links resolve.
* :mod:`course_tools.editions` on small notebooks written here: every kind of difference is found
  and named, ``sync`` repairs what it may and refuses what only a person can resolve, ``build``
  makes a notebook that is in step by construction; and the command line around them.

What counts as English prose left untranslated (:func:`english_prose`): a run of
:data:`ENGLISH_RUN_WORDS` or more ASCII words in a row, or English words in a cell without a Chinese
character, or a cell left exactly as in English. Not prose: code (fenced blocks and ``code spans``),
formulas (``$...$``, ``$$...$$``), link and image targets, HTML tags, and the References section
(its titles stay as published; its heading is translated: ``## 参考文献``). A table cell (``|``)
ends a run: tables name models and settings.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_tools import editions
from course_tools.cli import main
from course_tools.editions import (
    EDITIONS,
    EditionError,
    EditionMismatch,
    build_edition,
    build_translated,
    check_edition,
    counterpart,
    course_notebooks,
    edition_dir,
    read_notebook,
    read_translations,
    sync_edition,
    write_notebook,
)

ROOT = Path(__file__).resolve().parent.parent
ENGLISH_NOTEBOOKS = course_notebooks(edition_dir("en"))
each_notebook = pytest.mark.parametrize("english_path", ENGLISH_NOTEBOOKS, ids=lambda path: path.stem)

# --------------------------------------------------------------------------------------
# What counts as English prose
# --------------------------------------------------------------------------------------

ENGLISH_RUN_WORDS = 12  # a sentence of English; a book title or a term in parentheses is shorter
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Characters that end a run of ASCII words: Han characters, CJK and full-width punctuation.
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
ASCII_WORD = re.compile(r"[A-Za-z]{2,}")
REFERENCES_HEADING = re.compile(r"^#{1,6}\s*(?:References|参考文献)\b.*$", re.MULTILINE)
NOT_PROSE = [
    re.compile(r"```.*?```", re.DOTALL),  # fenced code
    re.compile(r"`[^`\n]*`"),  # code spans
    re.compile(r"\$\$.*?\$\$", re.DOTALL),  # display formulas
    re.compile(r"\$[^$\n]+\$"),  # inline formulas
    re.compile(r"<[^>\n]*>"),  # HTML tags and autolinks <https://...>
    re.compile(r"https?://\S+"),  # bare addresses
]
LINK_TARGET = re.compile(r"\]\(([^)\s]*)[^)]*\)")  # [text](target "title"): the text stays, the target goes
RELATIVE_LINK = re.compile(r"\]\(([^)\s#]+)[^)]*\)|\bsrc=\"([^\"#]+)\"")


def prose(markdown: str) -> str:
    """The text of a markdown cell that a reader reads as sentences (see the module's docstring)."""
    heading = REFERENCES_HEADING.search(markdown)
    text = markdown[: heading.start()] if heading else markdown
    text = LINK_TARGET.sub("]", text)
    for pattern in NOT_PROSE:
        text = pattern.sub(" ", text)
    return text


def english_runs(text: str) -> list[str]:
    """Runs of :data:`ENGLISH_RUN_WORDS` or more ASCII words, each ended by a CJK character or token,
    a table cell border (``|``) or a blank line."""
    runs = []
    for paragraph in re.split(r"\n\s*\n", text):
        for part in paragraph.split("|"):
            run: list[str] = []
            for token in [*part.split(), "。"]:  # the sentinel ends the last run
                if CJK.search(token):
                    if sum(bool(ASCII_WORD.search(word)) for word in run) >= ENGLISH_RUN_WORDS:
                        runs.append(" ".join(run))
                    run = []
                else:
                    run.append(token)
    return runs


def english_prose(markdown: str, english_markdown: str) -> list[str]:
    """Why a translated markdown cell still reads as English (empty: it does not)."""
    heading = REFERENCES_HEADING.search(markdown)
    problems = (
        []
        if heading is None or HAN.search(heading.group())
        else [f"untranslated heading {heading.group()!r}"]
    )
    text = prose(markdown)
    if not ASCII_WORD.search(text):
        return problems  # only formulas, code, links or references: nothing else to translate
    problems += [f"English prose: {run[:120]!r}" for run in english_runs(text)]
    if not HAN.search(text):
        problems.append(f"English words and no Chinese: {' '.join(text.split())[:120]!r}")
    if markdown == english_markdown:
        problems.append("left exactly as in the English notebook")
    return problems


@pytest.mark.parametrize(
    ("markdown", "is_english"),
    [
        ("Every building block of the next three notebooks, written by hand in a few lines of code.", True),
        ("## Check your understanding", True),  # short, but no Chinese at all
        ("**What to notice**: one number, the scale of $W_{hh}$, moves the network (梯度消失) from\n"
         "vanishing to exploding gradients and back again, at any step of training.", True),
        ("卷积（convolution）把一个卷积核滑过输入，逐位置相乘再求和。", False),
        ("按范数裁剪梯度（Pascanu, Mikolov & Bengio, 2013）：\n"
         "`torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0, error_if_nonfinite=True)`\n"
         "会重新缩放。", False),
        ("$$\\operatorname{Var}(y) = n \\operatorname{Var}(w)\\; \\mathbb{E}[h^2] "
         "\\text{ for every layer of the network we train here}$$", False),
        ("```python\nfor images, labels in batches:  # one pass over the data, as in the loop above\n"
         "    loss = loss_function(model(images), labels)\n```", False),
        ("![LeNet-5 的结构](../../images/lenet5_architecture.png)", False),
        ("| 模型 | 数据 | 测试准确率 |\n| --- | --- | --- |\n| row LSTM | sequential MNIST | 98.58 % |\n"
         "| row GRU | permuted MNIST | 97.1 % |\n| TCN (dilated causal convolutions) | CIFAR-10 | 60 % |",
         False),  # table cells end a run: model and dataset names are not sentences
        ("## 参考文献\n\n- LeCun, Y., Bottou, L., Bengio, Y., & Haffner, P. (1998). Gradient-based "
         "learning applied to document recognition. *Proceedings of the IEEE*, 86(11), 2278–2324.", False),
        ("**要点**\n\n* 卷积网络。\n\n## 参考文献（References）\n\n* K. He, X. Zhang, S. Ren, J. Sun. *Deep "
         "Residual Learning for Image Recognition.* CVPR 2016, pp. 770–778.", False),
        ("## References\n\n* K. He, X. Zhang, S. Ren, J. Sun. *Deep Residual Learning for Image "
         "Recognition.* CVPR 2016, pp. 770–778.", True),  # the titles stay, the heading is translated
    ],
)  # fmt: skip
def test_the_english_prose_rule_itself(markdown, is_english):
    assert bool(english_prose(markdown, english_markdown="")) == is_english


def test_a_markdown_cell_left_as_in_english_is_untranslated():
    glossary_line = "The data (数据): MNIST."  # English with a Chinese term, as the English notebooks write
    assert english_prose(glossary_line, glossary_line) == ["left exactly as in the English notebook"]
    assert english_prose("$$y = Wx$$", "$$y = Wx$$") == []  # a formula is the same in both


# --------------------------------------------------------------------------------------
# The real Chinese edition
# --------------------------------------------------------------------------------------


def chinese_path(english_path: Path) -> Path:
    """The Chinese notebook of ``english_path``; fails, saying how to make it, when it is missing."""
    chinese = counterpart(english_path, "zh")
    assert chinese.is_file(), (
        f"{chinese.relative_to(ROOT)} is missing: python -m course_utils editions build --edition zh "
        "--translations DIR (DIR/<notebook>.*.json: {cell id: Chinese markdown})"
    )
    return chinese


def test_the_editions_are_where_the_readme_says():
    assert EDITIONS == {"en": "notebooks", "zh": "notebooks/zh"}
    assert edition_dir("zh") == ROOT / "notebooks" / "zh" and editions.TRANSLATED == ["zh"]
    assert [path.stem for path in ENGLISH_NOTEBOOKS] == [
        "01_concepts", "02_lenet5_mnist", "03_resnet20_cifar10", "04_cnn_vs_rnn", "05_sequences_attention"
    ]  # fmt: skip


@each_notebook
def test_the_chinese_notebook_is_in_step_with_the_english_one(english_path):
    chinese = chinese_path(english_path)
    differences = check_edition(english_path, chinese)
    assert differences == [], f"{chinese.name} is out of step:\n" + "\n".join(differences)


@each_notebook
def test_the_chinese_notebook_reads_as_chinese(english_path):
    chinese = read_notebook(chinese_path(english_path))
    english = {cell.id: cell.source for cell in read_notebook(english_path).cells}
    problems = [
        f"markdown cell {cell.id!r} (index {index}): {problem}"
        for index, cell in enumerate(chinese.cells)
        if cell.cell_type == "markdown"
        for problem in english_prose(cell.source, english.get(cell.id, ""))
    ]
    assert problems == [], "\n".join(problems)


@each_notebook
def test_the_chinese_badges_open_the_chinese_notebook(english_path):
    english_first = read_notebook(english_path).cells[0].source
    chinese_first = read_notebook(chinese_path(english_path)).cells[0].source
    name = english_path.name
    links = re.findall(
        r"\]\((https://(?:colab\.research\.google\.com|mybinder\.org)/[^)\s]+)\)", english_first
    )
    badges = [link for link in links if name in link]  # not the badges' own images
    assert len(badges) == 2, "the English notebook has a Colab and a Binder badge"
    for badge in badges:
        chinese_badge = badge.replace(f"notebooks/{name}", f"notebooks/zh/{name}").replace(
            f"notebooks%2F{name}", f"notebooks%2Fzh%2F{name}"
        )
        assert chinese_badge != badge
        assert f"]({chinese_badge})" in chinese_first, f"the first cell must link {chinese_badge}"
        assert badge not in chinese_first, f"the first cell still opens the English notebook: {badge}"


@each_notebook
def test_the_chinese_links_point_to_files_that_exist(english_path):
    folder = chinese_path(english_path).parent
    chinese = read_notebook(folder / english_path.name)
    broken = []
    for cell in chinese.cells:
        if cell.cell_type != "markdown":
            continue
        for match in RELATIVE_LINK.finditer(cell.source):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            if not (folder / target).exists():
                broken.append(f"cell {cell.id!r}: {target}")
    assert broken == [], (
        "links that point nowhere from notebooks/zh/ (images are ../../images/):\n" + "\n".join(broken)
    )
    figures = [
        m.group(1)
        for cell in chinese.cells
        for m in re.finditer(r"\]\((\.\./\.\./images/[^)\s]+)", cell.source)
    ]
    english_markdown = [
        cell.source for cell in read_notebook(english_path).cells if cell.cell_type == "markdown"
    ]
    english_figures = re.findall(r"\]\(\.\./images/", "\n".join(english_markdown))
    assert len(figures) >= len(english_figures), "every figure the English notebook links is linked here too"


# --------------------------------------------------------------------------------------
# Small notebooks for the unit tests
# --------------------------------------------------------------------------------------

TRANSLATIONS = {"title": "# 标题", "explain": "解释：卷积（convolution）。", "end": "## 小结"}


def english_notebook(answer: str = "42", count: int = 2) -> nbformat.NotebookNode:
    """Markdown, code with a printed line, markdown, code with a result, markdown; every cell with an id."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell("# Title", id="title"),
            new_code_cell(
                "print('hello')",
                id="hello",
                execution_count=1,
                outputs=[new_output("stream", name="stdout", text="hello\n")],
                metadata={"tags": ["nbval-ignore-output"]},
            ),
            new_markdown_cell("Explanation: convolution (卷积).", id="explain"),
            new_code_cell(
                "6 * 7",
                id="answer",
                execution_count=count,
                outputs=[new_output("execute_result", data={"text/plain": answer}, execution_count=count)],
            ),
            new_markdown_cell("## Summary", id="end"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    notebook.nbformat_minor = 5
    return notebook


def write(path: Path, notebook: nbformat.NotebookNode) -> Path:
    return write_notebook(path, notebook)


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """An English notebook and its translation, in step."""
    english = write(tmp_path / "01_a.ipynb", english_notebook())
    translated = write(tmp_path / "zh" / "01_a.ipynb", build_translated(read_notebook(english), TRANSLATIONS))
    return english, translated


def fresh_translation(english: Path, name: str) -> Path:
    """A translation in step with ``english_notebook()``, written as zh/``name`` beside ``english``."""
    return write(english.parent / "zh" / name, build_translated(english_notebook(), TRANSLATIONS))


def assert_refused(english: Path, translated: Path, differences: list[str], match: str) -> None:
    """check_edition names exactly ``differences``, and sync_edition refuses with ``match`` in its message."""
    assert check_edition(english, translated) == differences
    with pytest.raises(EditionMismatch, match=match):
        sync_edition(english, translated)


def edit(path: Path, change) -> None:
    """Apply ``change(notebook)`` to the notebook at ``path`` and save it."""
    notebook = read_notebook(path)
    change(notebook)
    write(path, notebook)


# --------------------------------------------------------------------------------------
# build_translated
# --------------------------------------------------------------------------------------


def test_build_replaces_the_markdown_and_copies_everything_else():
    english = english_notebook()
    before = copy.deepcopy(english)
    built = build_translated(english, TRANSLATIONS)
    assert english == before, "the English notebook is not changed"
    assert [cell.id for cell in built.cells] == [cell.id for cell in english.cells]
    assert [cell.cell_type for cell in built.cells] == [cell.cell_type for cell in english.cells]
    for cell, original in zip(built.cells, english.cells):
        if cell.cell_type == "markdown":
            assert cell.source == TRANSLATIONS[cell.id]
        else:
            assert cell == original  # source, outputs, execution count, metadata
    assert built.metadata == english.metadata and built.nbformat_minor == english.nbformat_minor


def test_notebooks_are_read_as_stored_and_never_repaired(tmp_path):
    stored = json.loads(nbformat.writes(english_notebook()))  # sources as lists of lines
    stored["cells"][1]["source"] = ["print(\n", "'hello')"]
    stored["cells"][2]["id"] = "title"  # a repeated id: nbformat.read would rename it
    (tmp_path / "01_a.ipynb").write_text(json.dumps(stored), encoding="utf-8")
    notebook = read_notebook(tmp_path / "01_a.ipynb")
    assert notebook.cells[1].source == "print(\n'hello')" and notebook.cells[2].id == "title"
    (tmp_path / "02_b.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(EditionError, match="cannot read"):
        read_notebook(tmp_path / "02_b.ipynb")


def test_build_lists_missing_and_unexpected_translations():
    translations = {"title": "# 标题", "answer": "四十二", "gone": "旧的段落"}
    with pytest.raises(EditionError) as error:
        build_translated(english_notebook(), translations)
    message = str(error.value)
    assert "2 markdown cell(s) have no translation: 'explain', 'end'" in message
    assert "'answer' (a code cell)" in message and "'gone' (no English cell)" in message
    with pytest.raises(EditionError, match=r"not a string of markdown: 'end'"):
        build_translated(english_notebook(), {**TRANSLATIONS, "end": ["## 小结"]})


def test_build_refuses_english_cells_without_unique_ids():
    english = english_notebook()
    english.cells[2].id = "title"
    with pytest.raises(
        EditionError, match=r"cell id 'title' appears twice in the English notebook: index 0 and 2"
    ):
        build_translated(english, TRANSLATIONS)


# --------------------------------------------------------------------------------------
# check_edition and sync_edition
# --------------------------------------------------------------------------------------


def test_a_built_translation_is_in_step_and_sync_leaves_it_alone(pair):
    english, translated = pair
    assert check_edition(english, translated) == []
    before = translated.read_bytes()
    assert sync_edition(english, translated) is False
    assert translated.read_bytes() == before
    text = translated.read_text(encoding="utf-8")
    assert "解释：卷积（convolution）。" in text, "Chinese is stored as it is (ensure_ascii=False)"
    assert text.endswith("}\n") and text.startswith('{\n "cells": [\n  {\n'), "indent 1, a final newline"


def test_a_markdown_cell_added_on_one_side_only_is_named_and_sync_refuses(pair):
    english, translated = pair
    edit(translated, lambda nb: nb.cells.insert(3, new_markdown_cell("多出来的一段。", id="extra")))
    before = translated.read_bytes()
    differences = check_edition(english, translated)
    assert differences == [
        "markdown cell 'extra' (index 3: \"多出来的一段。\") is only in the translation, "
        "not in the English notebook"
    ]
    with pytest.raises(EditionMismatch) as error:
        sync_edition(english, translated)
    assert error.value.differences == differences and "'extra'" in str(error.value)
    assert "nothing was copied" in str(error.value)
    assert translated.read_bytes() == before

    english_only = tmp = english.parent / "02_b.ipynb"
    write(tmp, english_notebook())
    edit(english_only, lambda nb: nb.cells.insert(1, new_markdown_cell("A new paragraph.", id="new")))
    missing = (
        "markdown cell 'new' (index 1: \"A new paragraph.\") of the English notebook is missing from the"
    )
    assert_refused(
        english_only, fresh_translation(english, "02_b.ipynb"), [missing + " translation"], "'new'"
    )


def test_a_changed_code_cell_is_named_and_sync_restores_it(pair):
    english, translated = pair
    edit(translated, lambda nb: setattr(nb.cells[3], "source", "6 * 7\nprint('extra')"))
    differences = check_edition(english, translated)
    assert len(differences) == 1 and differences[0].startswith(
        "code cell 'answer' (index 3: \"6 * 7\"): its code"
    )
    assert "from line 2: 1 more line(s) in the translation" in differences[0]
    assert sync_edition(english, translated) is True
    assert check_edition(english, translated) == []
    assert read_notebook(translated).cells[3].source == "6 * 7"
    assert [c.source for c in read_notebook(translated).cells if c.cell_type == "markdown"] == list(
        TRANSLATIONS.values()
    ), "the translation keeps its own markdown"

    edit(translated, lambda nb: setattr(nb.cells[1], "source", "print('hallo')"))
    assert (
        "line 1: English \"print('hello')\", here \"print('hallo')\"" in check_edition(english, translated)[0]
    )


def test_stale_outputs_are_named_and_sync_copies_the_english_run(pair):
    english, translated = pair
    write(english, english_notebook(answer="43", count=5))  # the English notebook was executed again
    differences = check_edition(english, translated)
    assert differences == [
        "code cell 'answer' (index 3: \"6 * 7\"): its outputs, execution count differ from the English run's "
        "(execution count 2, English 5): stale; run `python -m course_utils editions sync`"
    ]
    assert sync_edition(english, translated) is True
    assert check_edition(english, translated) == []
    synced, source = read_notebook(translated), read_notebook(english)
    assert synced.cells[3] == source.cells[3] and synced.cells[3].outputs[0].data["text/plain"] == "43"
    assert synced.cells[2].source == TRANSLATIONS["explain"]
    assert sync_edition(english, translated) is False, "once in step, nothing more to do"


def test_notebook_metadata_follow_the_english_run(pair):
    english, translated = pair
    edit(english, lambda nb: nb.metadata.update(language_info={"name": "python", "version": "3.12.1"}))
    assert check_edition(english, translated) == [
        "the notebook's metadata differ from the English notebook's (language_info); "
        "run `python -m course_utils editions sync`"
    ]
    assert sync_edition(english, translated) is True and check_edition(english, translated) == []


def test_moved_and_retyped_cells_are_named_and_sync_refuses(pair):
    english, translated = pair
    edit(translated, lambda nb: nb.cells.insert(4, nb.cells.pop(0)))  # the title moved down
    moved = (
        "markdown cell 'title' (index 4: \"# 标题\") is out of order: "
        "it is at index 0 in the English notebook"
    )
    assert_refused(english, translated, [moved], "out of order")

    twin = fresh_translation(english, "01_a.ipynb")
    edit(twin, lambda nb: nb.cells.__setitem__(3, new_markdown_cell("6 * 7", id="answer")))
    retyped = (
        "cell 'answer' is a markdown cell in the translation (index 3) but a code cell in the English "
        "notebook (index 3)"
    )
    assert_refused(english, twin, [retyped], "'answer' is a markdown cell")


def test_repeated_or_missing_ids_are_reported_not_repaired(pair):
    english, translated = pair
    stored = json.loads(translated.read_text(encoding="utf-8"))
    stored["cells"][2]["id"] = "title"
    del stored["cells"][4]["id"]
    translated.write_text(json.dumps(stored, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    differences = check_edition(english, translated)
    assert "cell id 'title' appears twice in the translation: index 0 and 2" in differences
    assert any("cell None (index 4" in line and "has no id" in line for line in differences), differences


def test_a_missing_translation_says_how_to_build_it(tmp_path):
    english = write(tmp_path / "01_a.ipynb", english_notebook())
    [line] = check_edition(english, tmp_path / "zh" / "01_a.ipynb")  # the command line prints it
    assert "does not exist: build it with `python -m course_utils editions build" in line


# --------------------------------------------------------------------------------------
# A whole edition, and the command line
# --------------------------------------------------------------------------------------


def test_unknown_editions_and_notebooks_are_refused_with_the_known_ones(tmp_path):
    with pytest.raises(EditionError, match=r"no edition 'fr'; the editions are: en \(English, notebooks/\)"):
        edition_dir("fr")
    with pytest.raises(EditionError, match="no edition 'fr'"):
        counterpart(ROOT / "notebooks" / "01_concepts.ipynb", "fr")
    assert counterpart(Path("/x/notebooks/02_b.ipynb"), "zh") == Path("/x/notebooks/zh/02_b.ipynb")
    for name in ("10_k", "2_b", "01_a", "notes"):
        write(tmp_path / f"{name}.ipynb", english_notebook())
    assert [path.stem for path in course_notebooks(tmp_path)] == ["01_a", "2_b", "10_k"]
    assert [path.stem for path in course_notebooks(tmp_path, ["10,02", "01_a.ipynb"])] == [
        "01_a",
        "2_b",
        "10_k",
    ]
    with pytest.raises(EditionError, match=r"no notebook 09, 3_c in .*; it has: 01_a, 2_b, 10_k"):
        course_notebooks(tmp_path, ["09", "3_c"])


def test_translation_files_are_merged_and_conflicts_named(tmp_path):
    (tmp_path / "01_a.a.json").write_text(
        json.dumps({"title": "# 标题", "explain": "解释"}), encoding="utf-8"
    )
    (tmp_path / "01_a.b.json").write_text(json.dumps({"explain": "解释", "end": "## 小结"}), encoding="utf-8")
    (tmp_path / "01_ab.a.json").write_text(
        json.dumps({"other": "别的"}), encoding="utf-8"
    )  # another notebook
    assert read_translations(tmp_path, "01_a") == {"title": "# 标题", "explain": "解释", "end": "## 小结"}
    (tmp_path / "01_a.c.json").write_text(json.dumps({"end": "## 总结"}), encoding="utf-8")
    with pytest.raises(
        EditionError, match=r"disagree \(one cell, two texts\): 'end' in 01_a.b.json and 01_a.c.json"
    ):
        read_translations(tmp_path, "01_a")
    with pytest.raises(EditionError, match=r"no translations for 02_b"):
        read_translations(tmp_path, "02_b")


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    """A project with two English notebooks and their translations in ``translations/``."""
    monkeypatch.setattr(editions, "project_root", lambda: tmp_path)
    for stem in ("01_a", "02_b"):
        write(tmp_path / "notebooks" / f"{stem}.ipynb", english_notebook())
        part = tmp_path / "translations" / f"{stem}.all.json"
        part.parent.mkdir(exist_ok=True)
        part.write_text(json.dumps(TRANSLATIONS, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def test_build_writes_every_notebook_or_none(course):
    english = course_notebooks(course / "notebooks")
    (course / "translations" / "02_b.all.json").write_text(json.dumps({"title": "# 标题"}), encoding="utf-8")
    with pytest.raises(EditionError, match=r"nothing was written:\n02_b: (.|\n)*'explain', 'end'"):
        build_edition("zh", course / "translations", english)
    assert not (course / "notebooks" / "zh").exists()
    (course / "translations" / "02_b.all.json").write_text(json.dumps(TRANSLATIONS), encoding="utf-8")
    written = build_edition("zh", course / "translations", english)
    assert written == [course / "notebooks" / "zh" / "01_a.ipynb", course / "notebooks" / "zh" / "02_b.ipynb"]
    with pytest.raises(EditionError, match="exist already.*--overwrite"):
        build_edition("zh", course / "translations", english)
    with pytest.raises(EditionError, match="the English edition is the source"):
        build_edition("en", course / "translations", english)


def test_the_command_line_builds_checks_and_syncs(course, capsys):
    translations = str(course / "translations")
    assert main(["editions", "check"]) == 1
    assert "01_a.ipynb: 1 difference(s) from" in capsys.readouterr().out  # and how to build it
    assert main(["editions", "build", "--edition", "zh", "--translations", translations, "--only", "01"]) == 0
    assert (
        "01_a.ipynb" in capsys.readouterr().out and not (course / "notebooks" / "zh" / "02_b.ipynb").exists()
    )
    assert main(["editions", "build", "--edition", "zh", "--translations", translations, "--only", "2"]) == 0
    capsys.readouterr()
    assert main(["editions", "check"]) == 0
    assert capsys.readouterr().out.count(": in step") == 2

    write(course / "notebooks" / "02_b.ipynb", english_notebook(answer="43", count=5))
    assert main(["editions", "check", "--edition", "zh"]) == 1
    out = capsys.readouterr().out
    assert "02_b.ipynb: 1 difference(s) from" in out and "code cell 'answer'" in out and "stale" in out
    assert main(["editions", "sync"]) == 0
    out = capsys.readouterr().out
    assert "02_b.ipynb: updated from" in out and "code cell 'answer'" in out and "01_a.ipynb: in step" in out
    assert main(["editions", "check"]) == 0

    edit(
        course / "notebooks" / "zh" / "01_a.ipynb",
        lambda nb: nb.cells.append(new_markdown_cell("多余", id="x")),
    )
    assert main(["editions", "sync"]) == 1
    out = capsys.readouterr().out
    assert "01_a.ipynb: NOT SYNCED" in out and "'x'" in out and "give both notebooks the same cells" in out

    assert main(["editions", "build", "--edition", "zh", "--translations", str(course / "none")]) == 2
    assert "exist already" in capsys.readouterr().err
    assert main(["editions", "check", "--only", "07"]) == 2
    assert "no notebook 07" in capsys.readouterr().err
