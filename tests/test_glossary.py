"""The notebooks write their Chinese terms as notebook 01's glossary (术语表) does.

Notebook 01 ends with the course's glossary: tables of ``| English | 中文 | in one line |``, then the
choices it makes where texts differ, and how they differ from d2l-zh (《动手学深度学习》). It is the
reference for every Chinese term in the course. These tests read it from the notebook itself and
check the markdown cells of every notebook, English and Chinese, against these rules:

1. **No known variant.** ``VARIANTS`` maps a term that other texts use for an idea the glossary
   names (权重共享 for weight sharing, 批归一化 for batch normalisation) to the glossary's term
   (权值共享, 批量规范化); no notebook may use the variant.
2. **Z-scoring is 标准化.** 归一化 (normalisation) is right for rescaling to a fixed range or to a
   sum of 1, as softmax does. Subtracting the mean and dividing by the standard deviation is
   标准化: a sentence that uses 归一化 and speaks of the mean and standard deviation is flagged.
3. **One word, one concept.** Stride is 步幅; 步长 is the optimiser's step size only: a sentence
   that uses 步长 with a number (步长为 2) or with a word of windows and convolutions (卷积, 池化,
   窗口, 填充, stride …) is flagged. A profile (smoke, quick, full) is a 档位; 配置 is a configuration:
   ``quick 配置``, ``配置（profile）`` are flagged.
4. **Terms come from the glossary.** An English notebook introduces a term as ``padding (填充)``:
   every Chinese word in parentheses must be a glossary term (or the stem of one, 平移等变 for
   平移等变性), so that a new term is added to the glossary before it is used.

Not checked: the first line of a notebook (its title, whose Chinese is a translated phrase, not a
term), the glossary cell itself (it is the source), and quotations of other texts: the English
notebooks quote the source article in corner brackets 「」, the Chinese edition in “” (its
typography, ``tests/test_chinese_style.py``, allows no other marks).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The Chinese edition (notebooks/zh/) must use the same terms: its markdown is checked by the same rules.
CHINESE_NOTEBOOKS = sorted((ROOT / "notebooks" / "zh").glob("*.ipynb"))
GLOSSARY_NOTEBOOK = ROOT / "notebooks" / "01_concepts.ipynb"
# The Chinese edition of notebook 01 has the same glossary, translated: the same rows, in the same order.
CHINESE_GLOSSARY_NOTEBOOK = ROOT / "notebooks" / "zh" / "01_concepts.ipynb"
GLOSSARY_HEADING = "## Glossary"
GLOSSARY_HEADINGS = {GLOSSARY_NOTEBOOK: GLOSSARY_HEADING, CHINESE_GLOSSARY_NOTEBOOK: "## 术语表"}

# A variant seen in other texts -> the term of the glossary. Longer variants that contain a shorter
# one are listed too, so that the message names the whole word.
VARIANTS: dict[str, str] = {
    "权重共享": "权值共享",  # weight sharing
    "批归一化": "批量规范化",  # batch normalisation (d2l-zh's term)
    "批量归一化": "批量规范化",
    "批标准化": "批量规范化",
    "批量标准化": "批量规范化",
    "批规范化": "批量规范化",
    "隐藏状态": "隐状态",  # hidden state
    "隐含状态": "隐状态",
    "梯度截断": "梯度裁剪",  # gradient clipping
    "梯度剪裁": "梯度裁剪",
    "感受域": "感受野",  # receptive field
    "特征映射": "特征图",  # feature map
    "多层感知器": "多层感知机",  # multilayer perceptron
    "激励函数": "激活函数",  # activation function
    "全联接": "全连接层",  # fully connected
    "残差链接": "残差连接",  # residual connection
    "跳跃连接": "捷径连接",  # shortcut connection
    "快捷连接": "捷径连接",
    "长短时记忆": "长短期记忆",  # LSTM
    "门限循环单元": "门控循环单元",  # GRU
    "数据扩增": "数据增强",  # data augmentation
    "数据扩充": "数据增强",
    "权重衰退": "权重衰减",  # weight decay
    "归纳偏差": "归纳偏置",  # inductive bias
    "反向传导": "反向传播",  # backpropagation
    "未归一化的分数": "原始分数",  # logits
    "未规范化的预测": "原始分数",
    "隐藏层大小": "隐状态维度",  # hidden size (of a recurrent network)
    "隐藏状态维度": "隐状态维度",
    "平均平方误差": "均方误差",  # mean squared error
}
NORMALISATION = "归一化"
Z_SCORING = "标准化"
# Words that say a sentence is about subtracting the mean and dividing by the standard deviation.
Z_SCORING_CUES = re.compile(
    r"\bmean\b|standard deviation|\bstd\b|z-scor|standardi[sz]|均值|平均值|标准差|方差", re.IGNORECASE
)

# Stride is 步幅; 步长 is an optimiser's step size. 步长 with a number, or in a sentence about windows
# and convolutions, is a stride.
STRIDE, STEP_SIZE = "步幅", "步长"
STRIDE_CUES = re.compile(
    r"步长\s*(?:为|是|取|=)?\s*\d|卷积|池化|窗口|填充|像素|下采样|感受野|跳距|特征图|\bstride|\bconv|\bpool|kernel",
    re.IGNORECASE,
)
# A profile is a 档位; 配置 is a configuration (all the settings of a run).
PROFILE = "档位"
PROFILE_AS_CONFIGURATION = re.compile(
    r"\b(?:smoke|quick|full|auto)\b`?\s*配置|配置\s*[（(]\s*profile|运行配置"
)

CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
QUOTATION = re.compile(r"「[^」]*」|“[^”]*”")
PARENTHESES = re.compile(r"[(（]([^()（）]*)[)）]")
# Paragraphs (blank lines, list items, table rows), then sentences.
PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[*+-]|\d+\.|\|)\s)")
SENTENCE_END = re.compile(r"(?<=[.;!?])\s+|(?<=[。；！？])\s*")  # Chinese: no space after 。


def load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def glossary_cell_index(notebook: nbformat.NotebookNode, heading: str = GLOSSARY_HEADING) -> int:
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and cell.source.startswith(heading):
            return index
    raise AssertionError(f"notebook 01 has no markdown cell starting with {heading!r}")


def glossary_rows(source: str) -> list[tuple[str, list[str]]]:
    """(English, Chinese terms) for each table row of the glossary cell's tables."""
    rows = []
    for line in source.splitlines():
        cells = [cell.strip() for cell in line.strip().split("|")]
        if len(cells) < 4 or not line.lstrip().startswith("|"):
            continue
        english, chinese = cells[1], cells[2]
        if chinese == "中文" or set(chinese) <= set("-: "):  # the header and the separator rows
            continue
        rows.append((english, CJK_RUN.findall(chinese)))
    return rows


def read_glossary() -> set[str]:
    notebook = load(GLOSSARY_NOTEBOOK)
    rows = glossary_rows(notebook.cells[glossary_cell_index(notebook)].source)
    return {term for _, terms in rows for term in terms}


GLOSSARY = read_glossary()


def checked_markdown(path: Path) -> list[tuple[int, str]]:
    """(cell index, text) of the notebook's markdown cells that the rules apply to, quotations removed."""
    notebook = load(path)
    skip = glossary_cell_index(notebook, GLOSSARY_HEADINGS[path]) if path in GLOSSARY_HEADINGS else None
    texts = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown" or index == skip:
            continue
        text = cell.source
        if index == 0:
            text = text.split("\n", 1)[1] if "\n" in text else ""  # the title line
        texts.append((index, QUOTATION.sub("“”", text)))
    return texts


def variants_in(text: str) -> list[tuple[str, str]]:
    """(variant, glossary term) for each known variant in the text, longest first."""
    found = []
    for variant in sorted(VARIANTS, key=len, reverse=True):
        if variant in text:
            found.append((variant, VARIANTS[variant]))
            text = text.replace(variant, "")
    return found


def sentences(text: str) -> list[str]:
    paragraphs = PARAGRAPH_BREAK.split(text)
    return [part for paragraph in paragraphs for part in SENTENCE_END.split(paragraph) if part.strip()]


def z_scoring_called_normalisation(text: str) -> list[str]:
    """The sentences that use 归一化 for subtracting the mean and dividing by the standard deviation."""
    return [
        " ".join(sentence.split())
        for sentence in sentences(text)
        if NORMALISATION in sentence and Z_SCORING_CUES.search(sentence)
    ]


def stride_called_step_size(text: str) -> list[str]:
    """The sentences that use 步长 (the optimiser's step size) for a stride (步幅)."""
    return [
        " ".join(sentence.split())
        for sentence in sentences(text)
        if STEP_SIZE in sentence and STRIDE_CUES.search(sentence)
    ]


def profile_called_configuration(text: str) -> list[str]:
    """Each place that calls a profile (smoke, quick, full) a 配置, with a little context."""
    return [text[max(0, m.start() - 10) : m.end() + 10] for m in PROFILE_AS_CONFIGURATION.finditer(text)]


def terms_in_parentheses(text: str) -> list[str]:
    return [term for inside in PARENTHESES.findall(text) for term in CJK_RUN.findall(inside)]


def in_glossary(term: str, glossary: set[str]) -> bool:
    return term in glossary or term + "性" in glossary  # 平移等变 (adjective) for 平移等变性


def where(path: Path, index: int) -> str:
    return f"{path.relative_to(ROOT / 'notebooks')} cell {index}"


# ----------------------------------------------------------------------------- the glossary itself


def test_the_glossary_is_read_from_notebook_01():
    assert len(GLOSSARY) >= 40, f"only {len(GLOSSARY)} terms read from the glossary: {sorted(GLOSSARY)}"
    assert {"卷积", "池化", "循环神经网络", "反向传播"} <= GLOSSARY


def test_every_preferred_term_is_in_the_glossary():
    preferred = set(VARIANTS.values()) | {NORMALISATION, Z_SCORING, STRIDE, STEP_SIZE, PROFILE}
    missing = sorted(term for term in preferred if term not in GLOSSARY)
    assert not missing, f"add these terms to the glossary of {GLOSSARY_NOTEBOOK.name}: {missing}"


def test_no_variant_is_listed_as_a_glossary_term():
    listed = sorted(variant for variant in VARIANTS if variant in GLOSSARY)
    assert not listed, f"the glossary lists variants that the notebooks must not use: {listed}"


def test_the_chinese_glossary_has_the_same_rows():
    english, chinese = load(GLOSSARY_NOTEBOOK), load(CHINESE_GLOSSARY_NOTEBOOK)
    english_rows = glossary_rows(english.cells[glossary_cell_index(english)].source)
    chinese_rows = glossary_rows(
        chinese.cells[glossary_cell_index(chinese, GLOSSARY_HEADINGS[CHINESE_GLOSSARY_NOTEBOOK])].source
    )
    assert chinese_rows == english_rows, (
        "the glossaries of notebook 01 and of its Chinese edition differ in these rows:\n"
        + "\n".join(map(str, [row for row in english_rows if row not in chinese_rows]))
        + "\n(zh):\n"
        + "\n".join(map(str, [row for row in chinese_rows if row not in english_rows]))
    )


def test_each_term_is_listed_in_one_row_only():
    notebook = load(GLOSSARY_NOTEBOOK)
    seen: dict[str, str] = {}
    repeated = []
    for english, terms in glossary_rows(notebook.cells[glossary_cell_index(notebook)].source):
        for term in set(terms):
            if term in seen:
                repeated.append(f"{term} ({seen[term]!r} and {english!r})")
            seen[term] = english
    assert not repeated, f"terms listed in two rows of the glossary: {repeated}"


# ----------------------------------------------------------------------------- the rules themselves


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the same weights at every position (权重共享 weight sharing)", [("权重共享", "权值共享")]),
        ("批量归一化 after every convolution", [("批量归一化", "批量规范化")]),
        ("批归一化（BN）", [("批归一化", "批量规范化")]),
        ("returns **logits** (未归一化的分数)", [("未归一化的分数", "原始分数")]),
        ("weight sharing (权值共享)", []),
        ("batch normalisation (批量规范化)", []),
    ],
)
def test_the_variant_rule(text, expected):
    assert variants_in(text) == expected


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("* why we normalise (归一化) its pixels with the training set's mean and standard deviation;", True),
        ("Each channel is standardised (标准化), `x' = (x / 255 − mean) / std`.", False),
        (
            "**Batch normalisation** (批量规范化) standardises each channel over the batch: mean 0, std 1",
            False,
        ),
        ("returns **logits** (原始分数), ten unnormalised scores; softmax sums them to 1", False),
        ("We use 归一化 here.\n\nThe mean and standard deviation come later.", False),  # another paragraph
    ],
)
def test_the_z_scoring_rule(text, flagged):
    assert bool(z_scoring_called_normalisation(text)) == flagged


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Padding (填充), stride (步长) and dilation", True),
        ("步长为 2 时输出减半。", True),
        ("窗口每次移动的距离称为步长。", True),
        ("padding (填充), stride (步幅) and dilation; 步幅为 2 时输出减半。", False),
        ("AdamW 采用 Adam 的逐参数步长。", False),
        ("Adam 的步长受学习率限制。\n\n卷积的步幅为 2。", False),  # two paragraphs
    ],
)
def test_the_stride_rule(text, flagged):
    assert bool(stride_called_step_size(text)) == flagged


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("在 quick 配置、双核 CPU 上", True),
        ("每种运行配置（profile）的工作量都相同", True),
        ("smoke `配置`", False),
        ("在 quick 档位、双核 CPU 上；`configure` 把参数变成本次运行的配置", False),
    ],
)
def test_the_profile_rule(text, flagged):
    assert bool(profile_called_configuration(text)) == flagged


def test_the_parentheses_rule():
    text = "padding (填充), a (new term, 新术语) and 「引文（不查）」 and “引文（不查）” and $(0, 1)$"
    assert terms_in_parentheses(QUOTATION.sub("“”", text)) == ["填充", "新术语"]
    assert in_glossary("平移等变", {"平移等变性"}) and not in_glossary("新术语", {"平移等变性"})


# ----------------------------------------------------------------------------- every notebook

each_notebook = pytest.mark.parametrize(
    "path", NOTEBOOKS + CHINESE_NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT / "notebooks"))
)


@each_notebook
def test_no_variant_of_a_glossary_term(path):
    problems = [
        f"{where(path, index)}: {variant} -> {preferred}"
        for index, text in checked_markdown(path)
        for variant, preferred in variants_in(text)
    ]
    assert not problems, "use the glossary's terms (notebook 01):\n" + "\n".join(problems)


@each_notebook
def test_z_scoring_is_standardisation_not_normalisation(path):
    problems = [
        f"{where(path, index)}: {NORMALISATION} -> {Z_SCORING} in {sentence!r}"
        for index, text in checked_markdown(path)
        for sentence in z_scoring_called_normalisation(text)
    ]
    assert not problems, (
        f"subtracting the mean and dividing by the standard deviation is {Z_SCORING} "
        f"({NORMALISATION} is rescaling to a range or to sum 1):\n" + "\n".join(problems)
    )


@each_notebook
def test_stride_is_bufu_and_step_size_is_buchang(path):
    problems = [
        f"{where(path, index)}: {sentence!r}"
        for index, text in checked_markdown(path)
        for sentence in stride_called_step_size(text)
    ]
    assert not problems, (
        f"stride is {STRIDE}; {STEP_SIZE} is the optimiser's step size only (glossary, notebook 01):\n"
        + "\n".join(problems)
    )


@each_notebook
def test_a_profile_is_a_dangwei(path):
    problems = [
        f"{where(path, index)}: {excerpt!r}"
        for index, text in checked_markdown(path)
        for excerpt in profile_called_configuration(text)
    ]
    assert not problems, (
        f"a profile (smoke, quick, full) is a {PROFILE}; 配置 is a configuration (glossary, notebook 01):\n"
        + "\n".join(problems)
    )


# English notebooks only: there a Chinese word in parentheses is a term's translation, and must be
# the glossary's; in the Chinese edition parentheses hold ordinary Chinese asides (and the English).
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_terms_in_parentheses_are_in_the_glossary(path):
    problems = [
        f"{where(path, index)}: {term}"
        for index, text in checked_markdown(path)
        for term in terms_in_parentheses(text)
        if not in_glossary(term, GLOSSARY)
    ]
    assert not problems, (
        "Chinese terms not in the glossary of notebook 01: add them there, or use the glossary's term:\n"
        + "\n".join(problems)
    )
