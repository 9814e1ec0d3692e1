"""A font with Chinese glyphs for the figures of the Chinese edition, found without any system font.

matplotlib's own font, DejaVu Sans, has no Chinese characters: a Chinese label drawn with it
comes out as empty boxes (with a "Glyph … missing from font" warning). Machines differ in the
CJK fonts they have (a fresh container or Colab has none), so the course does not rely on
them. It uses the Noto Sans CJK SC font that the pip package ``mplfonts`` ships inside its
wheel (a dependency of this package), and registers that file with matplotlib's font manager
the first time a Chinese figure is drawn: importing ``course_utils`` loads no font.

    from course_utils.fonts import cjk_font_family
    text.set_fontfamily(cjk_font_family())   # "Noto Sans CJK SC"
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from matplotlib import font_manager

__all__ = ["CJK_FONT_FILE", "CJK_FONT_PACKAGE", "cjk_font_family", "cjk_font_path"]

#: The pip package that ships the font, and the font file's path inside that package.
CJK_FONT_PACKAGE = "mplfonts"
CJK_FONT_FILE = "fonts/NotoSansCJKsc-Regular.otf"


def cjk_font_path() -> Path:
    """The path of the Noto Sans CJK SC font file inside the installed ``mplfonts`` package.

    The package is located, not imported: importing ``mplfonts`` would run its own set-up,
    and all the course needs is one of its files.

    Returns:
        The path of the ``.otf`` file.

    Raises:
        FileNotFoundError: ``mplfonts`` is not installed, or its wheel has no such font;
            the message says how to install it.
    """
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    folders = spec.submodule_search_locations if spec is not None else None
    for folder in folders or []:
        path = Path(folder) / CJK_FONT_FILE
        if path.is_file():
            return path
    where = f"in {list(folders)}" if folders else "because the package is not installed"
    raise FileNotFoundError(
        f"The Chinese figures need the font {CJK_FONT_FILE!r} of the pip package {CJK_FONT_PACKAGE!r}, "
        f"not found {where}. Install it into this Python with `python -m pip install {CJK_FONT_PACKAGE}` "
        "(it is a dependency of course_utils: `pip install -e .` installs it too)."
    )


@functools.cache
def cjk_font_family() -> str:
    """Register the CJK font with matplotlib (once per process) and return its family name.

    Give the name to a text (``text.set_fontfamily(name)``, or ``fontfamily=name``) to draw
    it in this font; the font also has Latin letters, digits and the symbols the diagrams
    use (× → …), so a mixed Chinese and English label needs no second font.

    Returns:
        The family name matplotlib knows the font by, ``"Noto Sans CJK SC"``.

    Raises:
        FileNotFoundError: see :func:`cjk_font_path`.
    """
    path = cjk_font_path()
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()
