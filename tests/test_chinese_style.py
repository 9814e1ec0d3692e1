"""The Chinese edition (``notebooks/zh/``) follows one typography, and shows its own figures.

The rules, for the prose of every Chinese markdown cell (code, formulas, link targets, HTML tags and
the References section set aside, as in ``tests/test_editions.py``):

* **Percent**: no space before ``%`` (``86.96%``, not ``86.96 %``) and no full-width ``％``.
* **Units**: a time in Chinese prose is in 秒、分钟、小时 (``12.9 秒``), not ``12.9 s``; the two-core
  machine is a 双核 machine, never ``2 核``.
* **Quotation marks**: the mainland horizontal-text marks “” (and ‘’ inside them), both for
  quotations and for scare quotes; no corner brackets 「」『』, no ASCII ``"`` in prose (a quoted
  error message or code goes in a code span).
* **Enumerations**: items listed in a Chinese sentence are separated by 、 or ，: no ASCII comma next
  to a Chinese character, and no ``0, 2, …, 28`` outside brackets (a tuple such as ``(2, 16, 32, 32)``
  or an interval keeps its commas).
* **Parentheses** that hold Chinese are full-width: ``（见第 2 节）``, not ``(见第 2 节)``.
* **Citations**, one style, that of d2l-zh's rendered citations with Chinese brackets: authors as
  published, ``&`` before the last of two or more, ``et al.`` for three or more in running text;
  a comma and the year inside full-width parentheses, ``（He et al., 2016）``,
  ``（Bengio, Simard & Frasconi, 1994; Hochreiter & Schmidhuber, 1997）``; in a sentence the year
  alone in them, ``He et al.（2016）表明``, ``Azulay & Weiss（2019）``. Not ``He 等人（2016）``,
  ``（Krizhevsky，2009）``, ``(He et al., 2016)``, ``He et al. (2016)`` or ``Smith & Topin 2019``.
* **Spaces**: none between two Chinese characters or Chinese punctuation marks, and no line break
  inside a paragraph between them (a soft line break is shown as a space).

And the figures: a Chinese markdown cell just above a code cell that draws one of the course's
diagrams (``draw_sliding_window(...)`` and the others of :data:`course_tools.figures.FIGURES`) shows
the Chinese drawing as a cell attachment, ``![…](attachment:NAME.png)``, which JupyterLab, GitHub,
Colab (a notebook without its repository) and Sphinx/myst-nb all display; every attachment is the
file of the same name in ``images/zh/``, byte for byte. After ``make images`` redraws ``images/zh/``,
copy the files into the attachments (``course_tools/figures.py`` has no room for this under its
200 lines), from the repository's root::

    import base64, pathlib
    from course_tools.editions import read_notebook, write_notebook
    for path in pathlib.Path("notebooks/zh").glob("*.ipynb"):
        notebook = read_notebook(path)
        for cell in notebook.cells:
            for name, data in cell.get("attachments", {}).items():
                data["image/png"] = base64.b64encode(pathlib.Path("images/zh", name).read_bytes()).decode()
        write_notebook(path, notebook)
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from course_tools.editions import read_notebook
from course_tools.figures import FIGURES

ROOT = Path(__file__).resolve().parent.parent
CHINESE_NOTEBOOKS = sorted((ROOT / "notebooks" / "zh").glob("*.ipynb"))
IMAGES_ZH = ROOT / "images" / "zh"

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Han characters and the CJK and full-width punctuation marks (、。，：；！？“”‘’（）《》…).
CJK = f"{HAN}\u3000-\u303f\uff00-\uffef“”‘’…"
REFERENCES_HEADING = re.compile(r"^#{1,6}\s*(?:References|参考文献)\b.*$", re.MULTILINE)
# What is not prose, and what takes its place: code and formulas become a placeholder in lower-case
# Latin letters (no rule takes it for a word of Chinese or a name), so that the characters around
# them are not made neighbours; a link keeps its text, a tag goes.
NOT_PROSE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"```.*?```", re.DOTALL), "\n\ncode\n\n"),
    (re.compile(r"`[^`\n]*`"), "code"),
    (re.compile(r"\$\$.*?\$\$", re.DOTALL), "math"),
    (re.compile(r"\$[^$\n]+\$"), "math"),
    (re.compile(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)"), "]"),  # [text](target "title") -> [text]
    (re.compile(r"<[^>\n]*>"), ""),  # HTML tags and autolinks
    (re.compile(r"https?://\S+"), "url"),
]


def prose(markdown: str) -> str:
    """The text of a markdown cell that a reader reads as sentences (see the module's docstring)."""
    heading = REFERENCES_HEADING.search(markdown)
    text = markdown[: heading.start()] if heading else markdown
    for pattern, replacement in NOT_PROSE:
        text = pattern.sub(replacement, text)
    return text


def outside_brackets(text: str) -> str:
    """``text`` with what is inside (), [], {} blanked out: tuples, intervals and shapes keep commas."""
    kept, depth = [], 0
    for char in text:
        depth += char in "([{"
        kept.append(char if depth == 0 else " ")
        depth = max(0, depth - (char in ")]}"))
    return "".join(kept)


YEAR = r"(?:1[89]|20)\d\d[a-z]?"
NAME = r"[A-Z][A-Za-zÀ-ÿ'\-]+"
Rule = tuple[str, Callable[[str], list[str]]]


def finder(pattern: str, *, flags: int = 0, where: Callable[[str], str] = lambda text: text):
    compiled = re.compile(pattern, flags)

    def find(text: str) -> list[str]:
        searched = where(text)
        return [text[max(0, m.start() - 12) : m.end() + 12] for m in compiled.finditer(searched)]

    return find


# name -> (what to write instead, the finder of the offending places)
RULES: dict[str, Rule] = {
    "percent": ("no space before %, and an ASCII %: 86.96%", finder(r"\d\s+%|％")),
    "seconds": (
        "a time in Chinese prose is in 秒/毫秒/分钟/小时",
        finder(r"(?<![\w.])\d[\d,.]*\s*(?:s|ms|min|h)(?![\w])"),
    ),
    "two cores": ("the two-core machine is a 双核 machine", finder(r"(?<![\d.])2\s*核")),
    "corner brackets": ("quotation marks are “” (and ‘’ inside them)", finder(r"[「」『』]")),
    "ASCII quotes": ("quotation marks are “”; code and messages go in code spans", finder(r"\"")),
    "ASCII comma": (
        "list items in Chinese prose are separated by 、 or ，",
        finder(rf"[{CJK}]\s*,|,\s*[{CJK}]|\d, +(?:\d|…)", where=outside_brackets),
    ),
    "ASCII parentheses": (
        "parentheses around Chinese are full-width: （…）",
        finder(rf"\([^()]*[{HAN}][^()]*\)"),
    ),
    "citation": (
        "cite as （He et al., 2016） or He et al.（2016）",
        finder(
            rf"{NAME}\s*(?:等人|等(?=\s*[（(，,]))"  # He 等人（2016）, Goodfellow 等人所说, （He 等，2016）
            rf"|{NAME}\.?\s*[，,]?\s*\(\s*{YEAR}\s*\)"  # He et al. (2016): ASCII parentheses
            rf"|\((?:[^()]*?{NAME}[^()]*?),\s*{YEAR}[^()]*\)"  # (He et al., 2016)
            rf"|(?:{NAME}|al\.)\s*，\s*{YEAR}"  # （Krizhevsky，2009）
            rf"|(?:{NAME}|al\.)\s+{YEAR}(?!\s*年)(?![\w])"  # Smith & Topin 2019
        ),
    ),
    "spaces between Chinese characters": (
        "no space or line break between two Chinese characters",
        finder(rf"[{CJK}](?:[ \t\u3000]+|[ \t]*\n[ \t]*)[{CJK}]"),
    ),
}


def markdown_cells(path: Path) -> list[tuple[int, dict]]:
    return [
        (index, cell) for index, cell in enumerate(read_notebook(path).cells) if cell.cell_type == "markdown"
    ]


def violations(path: Path, rule: str) -> list[str]:
    _, find = RULES[rule]
    found = []
    for index, cell in markdown_cells(path):
        for excerpt in find(prose(cell.source)):
            shown = " ".join(excerpt.split()) if rule != "spaces between Chinese characters" else excerpt
            found.append(f"{path.relative_to(ROOT)} cell {index} (id {cell.id!r}): {shown!r}")
    return found


# ----------------------------------------------------------------------------- the rules themselves


@pytest.mark.parametrize(
    ("rule", "text", "found"),
    [
        ("percent", "测试准确率为 99.21 %，", True),
        ("percent", "测试准确率为 99.21%，", False),
        ("percent", "`f\"{x:.2f} %\"` 打印百分数", False),  # code
        ("seconds", "耗时 12 s（smoke）", True),
        ("seconds", "耗时 12 秒，`time.sleep(2)` 与 $t = 2 s$", False),
        ("two cores", "在一台 2 核 AMD EPYC 虚拟机上", True),
        ("two cores", "在一台双核 AMD EPYC 虚拟机上，用 32 核也行", False),
        ("corner brackets", "原文说「始于上世纪」", True),
        ("ASCII quotes", "返回 \"mat1 and mat2\" 错误", True),
        ("ASCII quotes", "返回 `\"mat1 and mat2\"` 错误，即“形状不符”", False),
        ("ASCII comma", "各窗口的起始列为 0, 2, …, 28；", True),
        ("ASCII comma", "fc1、fc2、fc3 | 线性层 | 120, 84, 10 |", True),
        ("ASCII comma", "Goodfellow, Bengio & Courville（2016）, 图 9.7", True),
        ("ASCII comma", "形状 (2, 16, 32, 32)，区间 $[0, 1]$ 与 [0, 1]，1,000 张", False),
        ("ASCII parentheses", "一个函数 (见第 2 节)", True),
        ("ASCII parentheses", "输出 (0, 0) 读取行 (row)", False),
        ("citation", "He 等人（2016）的图 1", True),
        ("citation", "CIFAR-10（Krizhevsky，2009）包含", True),
        ("citation", "残差学习 (He et al., 2016) 把", True),
        ("citation", "Azulay & Weiss (2019) 表明", True),
        ("citation", "单周期调度（Smith & Topin 2019）", True),
        ("citation", "Goodfellow 等人所说的“复杂层”", True),
        ("citation", "（He et al., 2016）；He et al.（2016）表明；（LeCun et al., 1998, §II.B）", False),
        ("citation", "Azulay & Weiss（2019）表明；1956 年；CVPR 2016 年会", False),
        ("spaces between Chinese characters", "卷积 核", True),
        ("spaces between Chinese characters", "卷积核在\n输入上滑动", True),
        ("spaces between Chinese characters", "卷积核 `k` 在输入上滑动。\n\n下一段", False),
    ],
)  # fmt: skip
def test_the_rule_itself(rule, text, found):
    _, find = RULES[rule]
    assert bool(find(prose(text))) == found, find(prose(text))


def test_prose_sets_code_formulas_links_and_references_aside():
    text = '见 [第 2 节](../02.ipynb "标题")、`a, b` 和 $x, y$。\n\n## 参考文献\n\n- He, K. (2016). "Deep".'
    assert prose(text) == "见 [第 2 节]、code 和 math。\n\n"


# ----------------------------------------------------------------------------- every Chinese notebook


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("path", CHINESE_NOTEBOOKS, ids=lambda path: f"zh/{path.stem}")
def test_chinese_typography(path, rule):
    found = violations(path, rule)
    assert not found, f"{RULES[rule][0]} ({len(found)}):\n" + "\n".join(found)


# ----------------------------------------------------------------------------- the figures

ATTACHMENT = re.compile(r"!\[[^\]]*\]\(attachment:([^)\s]+)\)")
# The code that draws each figure, by the name of its drawing function: draw_sliding_window(...)
DRAWN_BY = {name: re.compile(rf"\b{function.__name__}\(") for name, function in FIGURES.items()}


@pytest.mark.parametrize("path", CHINESE_NOTEBOOKS, ids=lambda path: f"zh/{path.stem}")
def test_each_attachment_is_the_chinese_figure_in_images_zh(path):
    problems = []
    for index, cell in markdown_cells(path):
        attachments = cell.get("attachments", {})
        shown = set(ATTACHMENT.findall(cell.source))
        for name in sorted(shown - set(attachments)):
            problems.append(f"cell {index} shows attachment:{name} but has no such attachment")
        for name in sorted(set(attachments) - shown):
            problems.append(f"cell {index} carries {name} but does not show it")
        for name, data in attachments.items():
            file = IMAGES_ZH / name
            if not file.is_file():
                problems.append(f"cell {index}: attachment {name} has no file images/zh/{name}")
            elif base64.b64decode("".join(data.get("image/png", ""))) != file.read_bytes():
                problems.append(
                    f"cell {index}: attachment {name} differs from images/zh/{name}: copy the file into the "
                    "attachment (the snippet in the docstring of tests/test_chinese_style.py)"
                )
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", CHINESE_NOTEBOOKS, ids=lambda path: f"zh/{path.stem}")
def test_the_cell_above_a_drawn_figure_shows_the_chinese_one(path):
    cells = read_notebook(path).cells
    missing = []
    for index, cell in enumerate(cells[1:], start=1):
        above = cells[index - 1]
        if cell.cell_type != "code" or above.cell_type != "markdown":
            continue
        for name, drawn in DRAWN_BY.items():
            if drawn.search(cell.source) and f"attachment:{name}" not in above.source:
                missing.append(f"cell {index - 1} (above the code that draws {name})")
    assert not missing, (
        f"{path.relative_to(ROOT)}: the code below draws an English figure; show the Chinese one from "
        "images/zh as an attachment, ![…](attachment:NAME.png):\n" + "\n".join(missing)
    )
