"""Draw the course's diagrams as PNG files: English ones into ``images/``, Chinese ones into ``images/zh/``.

    python -m course_tools.figures [FOLDER]    # what `make images` runs; FOLDER: the checkout's images/

The drawings are those of :mod:`course_utils.diagrams`. This tool adds what only the files of the
Chinese edition need: :data:`ZH`, the Chinese of every English label (the terms of the course
glossary, notebook 01), and a font with Chinese glyphs. matplotlib's own font, DejaVu Sans, has
none: a Chinese label drawn in it comes out as empty boxes, with a "Glyph … missing from font"
warning. Machines differ in the CJK fonts they have (a fresh container has none), so the tool
uses Noto Sans CJK SC from the wheel of the pip package ``mplfonts`` (in the ``dev`` extra).
The files carry no date or software version: drawing them again gives the same bytes.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text

from course_utils import diagrams

IMAGES = Path(__file__).resolve().parent.parent / "images"
DPI = 150

#: File name -> the function that draws it (with its defaults).
FIGURES: dict[str, Callable[..., Figure]] = {
    "sliding_window.png": diagrams.draw_sliding_window,
    "unrolled_rnn.png": diagrams.draw_unrolled_rnn,
    "lenet5_architecture.png": diagrams.draw_lenet5_architecture,
    "residual_block.png": diagrams.draw_residual_block,
}

#: English label (a ``str.format`` template, as written in course_utils/diagrams.py) -> its Chinese.
#: Both fill in the same numbers and formulas.
ZH: dict[str, str] = {
    # draw_sliding_window
    "A {k}×{k} window on a {n}×{n} input, padding {p}, stride {s}{dilation} → {out}×{out} output\n"
    "output size {formula}": (
        "{k}×{k} 窗口在 {n}×{n} 输入上滑动：填充 {p}，步幅 {s}{dilation} → {out}×{out} 输出\n"
        "输出尺寸 {formula}"
    ),
    ", dilation {d}": "，空洞 {d}",
    "output ({row}, {col}) reads rows {top}…{bottom}, cols {left}…{right}": (
        "输出 ({row}, {col}) 读取行 {top}…{bottom}、列 {left}…{right}"
    ),
    "padded input (grey: padding = 0)": "填充后的输入（灰色：填充值 0）",
    "output": "输出",
    # draw_unrolled_rnn
    "An RNN reads the image row by row: {formula}   (the same weights at every step)": (
        "RNN 逐行读取图像：{formula}   （每个时间步使用同一组权重）"
    ),
    "{steps}×{width} image = {steps} steps\nof {width} pixels": (
        "{steps}×{width} 图像 = {steps} 个时间步，\n每步 {width} 个像素"
    ),
    "{x} = row {row}": "{x} = 第 {row} 行",
    "RNN cell\ntanh": "循环单元\ntanh",
    "fc\n10 logits": "全连接层\n10 个分数",
    "shared weights: one $W_{{xh}}$, one $W_{{hh}}$, one $b$ for all {steps} steps; "
    "training backpropagates through time (BPTT)": (
        "权值共享：全部 {steps} 个时间步共用一个 $W_{{xh}}$、一个 $W_{{hh}}$ 和一个 $b$；"
        "训练时随时间反向传播（BPTT）"
    ),
    # draw_lenet5_architecture
    "LeNet-5 (LeCun et al., 1998) in its modern form: {total:,} parameters": (
        "现代形式的 LeNet-5（LeCun et al., 1998）：共 {total:,} 个参数"
    ),
    "input": "输入",
    "image": "图像",
    "flatten": "展平",
    "reshape": "改变形状",
    "{kernel} conv{padding}": "{kernel} 卷积{padding}",
    ", pad {p}": "，填充 {p}",
    "max-pool {k}×{k}\nstride {s}": "最大池化 {k}×{k}\n步幅 {s}",
    "avg-pool {k}×{k}\nstride {s}": "平均池化 {k}×{k}\n步幅 {s}",
    "linear\n{inputs} → {outputs}": "全连接层\n{inputs} → {outputs}",
    "(logits)": "（原始分数）",
    "{count:,} params": "{count:,} 个参数",
    "no params": "无参数",
    # draw_residual_block
    "Residual learning (He et al., 2016): the layers learn F(x), the shortcut carries x to the addition\n"
    "(BN: batch normalisation; option A is the paper's choice for CIFAR-10, section 4.2)": (
        "残差学习（He et al., 2016）：各层学习 F(x)，捷径连接把 x 送到加法处\n"
        "（BN：批量规范化；方案 A 是论文在 CIFAR-10 上的选择，见第 4.2 节）"
    ),
    "plain block": "普通块",
    "basic residual block": "基本残差块",
    "shape changes, option {option}": "形状改变，方案 {option}",
    "conv 3×3, {channels}": "3×3 卷积，{channels}",
    ", stride {stride}": "，步幅 {stride}",
    "identity\n$x$\n{params}": "恒等映射\n$x$\n{params}",
    "every 2nd pixel,\n+{channels} zero channels\n{params}": (
        "隔行隔列取样，\n+{channels} 个全零通道\n{params}"
    ),
    "1×1 conv, stride {stride}\n+ BN\n{params}": "1×1 卷积，步幅 {stride}\n+ BN\n{params}",
    "shortcut": "捷径",
}

#: Language -> (its folder inside images/, its translation of the labels). The English notebooks
#: link ``../images/NAME.png``, the Chinese ones ``../../images/zh/NAME.png``.
EDITIONS: dict[str, tuple[str, dict[str, str]]] = {"en": (".", {}), "zh": ("zh", ZH)}

#: The pip package that ships the CJK font, and the font file's path inside that package.
CJK_FONT_PACKAGE = "mplfonts"
CJK_FONT_FILE = "fonts/NotoSansCJKsc-Regular.otf"


@functools.cache
def cjk_font_family() -> str:
    """Register the Noto Sans CJK SC file of ``mplfonts`` with matplotlib (once) and return its family name.

    The package is located, not imported (importing it runs its own set-up). The font also has
    Latin letters, digits and the symbols the diagrams use (× → …), so a mixed label needs no second font.

    Raises:
        FileNotFoundError: ``mplfonts`` is not installed, or its wheel has no such font.
    """
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    paths = [Path(folder) / CJK_FONT_FILE for folder in folders if (Path(folder) / CJK_FONT_FILE).is_file()]
    if not paths:
        where = f"in {folders}" if folders else "because the package is not installed"
        raise FileNotFoundError(
            f"The Chinese figures need the font {CJK_FONT_FILE!r} of the pip package {CJK_FONT_PACKAGE!r}, "
            f"not found {where}. Install it with `python -m pip install {CJK_FONT_PACKAGE}` "
            "(or `pip install -e .[dev]`)."
        )
    font_manager.fontManager.addfont(paths[0])
    return font_manager.FontProperties(fname=paths[0]).get_name()


def draw(name: str, language: str) -> Figure:
    """The figure saved as ``name`` (a key of :data:`FIGURES`), in ``language``: ``"en"`` or ``"zh"``.

    A Chinese figure gets its words from :data:`ZH`, and every text is then set in the CJK font.
    """
    if language not in EDITIONS:
        raise ValueError(f"language must be one of {', '.join(map(repr, EDITIONS))}, got {language!r}")
    fig = FIGURES[name](labels=EDITIONS[language][1])
    if language == "zh":
        family = cjk_font_family()
        for text in fig.findobj(Text):
            text.set_fontfamily(family)
            # The package ships the regular weight only: ask for it, rather than have matplotlib
            # log "Failed to find font weight bold" and fall back to it for every bold label.
            text.set_fontweight("normal")
    return fig


def write_figures(folder: str | Path, language: str, dpi: int = DPI) -> list[Path]:
    """Draw every figure of :data:`FIGURES` in ``language`` and save it as a PNG file in ``folder``.

    Returns:
        The paths written, in the order of :data:`FIGURES`.

    Raises:
        ValueError: the language is not ``"en"`` or ``"zh"`` (and no folder is created).
        FileNotFoundError: ``language="zh"`` and the CJK font is not installed.
    """
    if language not in EDITIONS:
        raise ValueError(f"language must be one of {', '.join(map(repr, EDITIONS))}, got {language!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)  # the models are built only for their shapes, but keep even that fixed
    written = []
    for name in FIGURES:
        path = folder / name
        draw(name, language).savefig(
            path,
            dpi=dpi,
            bbox_inches="tight",
            facecolor="white",
            metadata={"Software": None},  # no matplotlib version: the same bytes on every run
            pil_kwargs={"optimize": True},  # smaller files, same pixels
        )
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_tools.figures [FOLDER]``: English figures into FOLDER, Chinese into FOLDER/zh."""
    parser = argparse.ArgumentParser(description="Draw the course's diagrams as PNG files.")
    parser.add_argument("folder", nargs="?", default=IMAGES, type=Path, help="default: images/")
    folder = parser.parse_args(argv).folder
    for language, (subfolder, _) in EDITIONS.items():
        for path in write_figures(folder / subfolder, language):
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
