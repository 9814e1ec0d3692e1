"""Sphinx configuration of the course's website: one file for both editions.

    sphinx-build -b html -c book . OUT          the English edition (README.md, notebooks/*.ipynb)
    sphinx-build -b html -c book -t zh . OUT    the Chinese edition (README.zh-CN.md, notebooks/zh/*.ipynb)

`python book/build.py` (what `make book` runs) builds both and puts the Chinese site in the English
site's zh/ folder. The source folder is the repository itself, so that the READMEs' links to notebooks
and images resolve as they do on GitHub. Nothing is executed: the pages show the notebooks' stored
outputs. A new notebook appears by itself: book/toc.*.yml list notebooks/*, in file-name order.
"""

import base64
import json
import logging
import os
import re
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx import addnodes

ROOT = Path(__file__).resolve().parent.parent  # the repository, which is also Sphinx's source folder
REPOSITORY = "https://github.com/open-courses/cnn-rnn-pytorch"
BRANCH = "main"

# Each edition: its language, its front page, the folder of its notebooks, its place in the final site
# (relative to the English site's root) and the label of the link that leads to it.
EDITIONS = {
    "en": {
        "language": "en",
        "root": "README",
        "notebooks": "notebooks/",
        "site": "",
        "label": "English",
        "title": "CNNs and RNNs with PyTorch",
    },
    "zh": {
        "language": "zh_CN",
        "root": "README.zh-CN",
        "notebooks": "notebooks/zh/",
        "site": "zh/",
        "label": "中文",
        "title": "用 PyTorch 学卷积神经网络与循环神经网络",
    },
}
EDITION = "zh" if tags.has("zh") else "en"  # noqa: F821 (Sphinx defines `tags` in conf.py)
OTHER = "en" if EDITION == "zh" else "zh"
THIS = EDITIONS[EDITION]
if EDITION == "zh":
    import jieba  # what Sphinx's Chinese search splits words with: quiet its start-up messages

    jieba.setLogLevel(logging.WARNING)

project = THIS["title"]
html_title = THIS["title"]
author = "the course's authors"
copyright = "the course's authors, MIT License"  # noqa: A001 (Sphinx's name)
language = THIS["language"]  # <html lang="zh-CN">, the theme's own words, and the search's word splitter

extensions = ["myst_nb", "sphinx_external_toc"]
external_toc_path = f"book/toc.{EDITION}.yml"
external_toc_exclude_missing = True
# Only this edition's pages. The patterns starting with "." and the output folders are there to keep
# Sphinx from walking .venv and the datasets (it looks at every file under its source folder).
root_doc = THIS["root"]
include_patterns = [f"{THIS['root']}.md", f"{THIS['notebooks']}*.ipynb"]
exclude_patterns = [".*", "build", "data", "outputs", "runs", "checkpoints", "**.ipynb_checkpoints"]

# The notebooks as stored: never executed, so the site shows the outputs of `make outputs`.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True  # $$...$$ inside a paragraph or a list item, as Jupyter displays it

# MathJax from the sphinx-mathjax-offline package, copied into the site (below): no CDN, so the math
# renders from a plain file server with no internet as well.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_copy_source = False  # the notebooks are one click away on GitHub, Colab and Binder
html_show_sourcelink = False
html_last_updated_fmt = None
# The site's home page is the README; index.html sends a visitor there from the folder's address.
html_additional_pages = {"index": "redirect.html"}
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": BRANCH,
    "path_to_docs": "",  # the source folder is the repository's root
    "use_repository_button": True,
    "use_download_button": False,
    "launch_buttons": {
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "article_header_end": ["edition-switch.html", "article-header-buttons.html"],
    "navbar_persistent": [],  # pydata-sphinx-theme would add a second search field above the page
}


def other_edition_page(docname: str) -> str:
    """The page of the other edition that shows the same notebook, or its front page if there is none.

    notebooks/02_lenet5_mnist <-> notebooks/zh/02_lenet5_mnist, README <-> README.zh-CN.
    """
    other = EDITIONS[OTHER]
    if docname.startswith(THIS["notebooks"]):
        name = other["notebooks"] + docname.removeprefix(THIS["notebooks"])
        if (ROOT / name).with_suffix(".ipynb").exists():  # a notebook may exist in one edition only
            return name
    return other["root"]


def url_in_other_edition(from_docname: str, docname: str) -> str:
    """Relative URL from a page of this site to a page of the other one (the site works in any folder)."""
    to_english_root = "../" * from_docname.count("/") + ("../" if EDITION == "zh" else "")
    return f"{to_english_root}{EDITIONS[OTHER]['site']}{docname}.html"


def add_edition_switch(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Give every page's template the link to the same page in the other edition (edition-switch.html)."""
    context["edition_switch"] = {
        "url": url_in_other_edition(pagename, other_edition_page(pagename)),
        "label": EDITIONS[OTHER]["label"],
        "lang": EDITIONS[OTHER]["language"].replace("_", "-"),
    }


def link_outside_pages(app, doctree: nodes.document) -> None:
    """Turn the READMEs' links to repository paths that are no page of this site into working links.

    A link to the other edition's README or notebooks goes to that page of the other site; any other
    file or folder of the repository (notebooks/zh/, a benchmark's results) goes to GitHub. MyST would
    otherwise warn and leave a dead link (folders), or copy the file into the site as a download.
    """
    docname = app.env.docname
    links = [*doctree.findall(addnodes.pending_xref), *doctree.findall(addnodes.download_reference)]
    for node in links:
        if node.get("reftype") != "myst":
            continue
        if node.get("refdomain") == "doc":  # a Markdown file or notebook: MyST gives its name and anchor
            name, anchor = node["reftarget"], node.get("reftargetid")
            if name in app.env.found_docs:
                continue  # a page of this site: MyST resolves it
            candidates = [ROOT / f"{name}.md", ROOT / f"{name}.ipynb"]
            path = next((file for file in candidates if file.exists()), ROOT / name)
        else:  # any other path, relative to the page
            target, _, anchor = node["reftarget"].partition("#")
            path = Path(os.path.normpath(ROOT / PurePosixPath(docname).parent / target))
            name = None
        if not path.exists() or ROOT not in path.parents:
            continue  # not in the repository: MyST reports it as a broken link, as it should
        if name and (name == EDITIONS[OTHER]["root"] or name.startswith(EDITIONS[OTHER]["notebooks"])):
            uri = url_in_other_edition(docname, name)
        else:
            kind = "tree" if path.is_dir() else "blob"
            uri = f"{REPOSITORY}/{kind}/{BRANCH}/{PurePosixPath(path.relative_to(ROOT))}"
        uri += f"#{anchor}" if anchor else ""
        node.replace_self(nodes.reference("", "", *node.children, refuri=uri, internal=False))


def write_attachments(app, doctree: nodes.document) -> None:
    """Show the images that a notebook's Markdown cells carry as attachments (`![...](attachment:x.png)`).

    The Chinese notebooks hold their figures (images/zh/) that way; myst-nb does not read attachments yet
    (MyST-NB issue #492). Each one is written to a file beside myst-nb's outputs, and the image points there.
    """
    images = [node for node in doctree.findall(nodes.image) if node["uri"].startswith("attachment:")]
    if not images:
        return
    notebook = json.loads(Path(app.env.doc2path(app.env.docname)).read_text(encoding="utf-8"))
    attachments = {}
    for cell in notebook["cells"]:
        attachments.update(cell.get("attachments", {}))
    folder = Path(app.outdir).parent / "attachments" / app.env.docname
    for node in images:
        name = node["uri"].removeprefix("attachment:")
        if name not in attachments:
            continue  # Sphinx reports the image as missing
        (encoded,) = attachments[name].values()  # {mime type: base64}, one of each
        file = folder / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(base64.b64decode("".join(encoded)))
        node["uri"] = "/" + os.path.relpath(file, app.srcdir)  # "/": relative to the source folder


# Wide characters: CJK ideographs, CJK and full-width punctuation. MyST keeps each place where the Markdown
# source was wrapped as a line break, which a browser shows as a space, even inside a Chinese sentence.
WIDE = re.compile("[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
VERBATIM = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw)


def join_wrapped_chinese_lines(app, doctree: nodes.document) -> None:
    """Remove the line breaks (MyST's soft breaks, text nodes "\\n") between two Chinese characters."""
    for paragraph in doctree.findall(nodes.TextElement):
        if isinstance(paragraph, VERBATIM):
            continue
        children = paragraph.children
        breaks = [i for i, node in enumerate(children) if isinstance(node, nodes.Text) and node == "\n"]
        for i in reversed(breaks):  # from the end, so that the positions before stay right
            before = children[i - 1].astext()[-1:] if i > 0 else ""
            after = children[i + 1].astext()[:1] if i + 1 < len(children) else ""
            if WIDE.match(before) and WIDE.match(after):
                del paragraph[i]


def copy_mathjax(app, exception: Exception | None) -> None:
    """Copy the part of MathJax 3 that the pages load (its TeX input, HTML output and fonts), 4 of 24 MB."""
    import shutil
    from importlib.util import find_spec

    if exception is not None or app.builder.format != "html":
        return
    source = Path(find_spec("sphinx-mathjax-offline").origin).parent / "static" / "mathjax"
    target = Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "tex-chtml.js", target)
    for folder in ("input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y"):
        shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)


def setup(app) -> None:
    app.connect("html-page-context", add_edition_switch)
    # Before Sphinx's own handlers (priority 500), which would register the downloads.
    app.connect("doctree-read", link_outside_pages, priority=400)
    app.connect("doctree-read", write_attachments, priority=400)
    app.connect("doctree-read", join_wrapped_chinese_lines)
    app.connect("build-finished", copy_mathjax)
