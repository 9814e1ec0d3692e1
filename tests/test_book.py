"""The course's website (book/): both editions build offline, and the built HTML holds together.

One build of the real site (book/build.py, about 15 s here) serves every test below; LinkChecker then
follows every link and image of both editions (about 5 s). The browser check (book/check.py) runs last,
where Chromium is installed.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDITIONS = {"en": ("notebooks", ""), "zh": ("notebooks/zh", "zh/")}  # notebooks' folder, site folder


def build(repository: Path, out: Path) -> None:
    """Build the site of `repository` (with its own book/) into `out`, as `make book` does."""
    subprocess.run([sys.executable, "book/build.py", str(out)], cwd=repository, check=True, timeout=600)


@pytest.fixture(scope="module")
def site():
    # Not pytest's tmp_path: LinkChecker, run as root, reads the files as the user nobody, who may not
    # enter pytest's private folders.
    folder = Path(tempfile.mkdtemp(prefix="book-test-"))
    folder.chmod(0o755)
    build(ROOT, folder / "site")
    yield folder / "site"
    shutil.rmtree(folder)


def pages(site: Path) -> list[Path]:
    """Every page of both editions (the theme's _static/ holds template fragments, no pages)."""
    return sorted(page for page in site.rglob("*.html") if "_static" not in page.relative_to(site).parts)


def article(html: str) -> str:
    """The page's own content, without the theme's navigation."""
    match = re.search(r'<article class="bd-article".*?</article>', html, re.S)
    return match.group(0) if match else ""


def notebooks(edition: str) -> list[str]:
    return sorted(path.stem for path in (ROOT / EDITIONS[edition][0]).glob("*.ipynb"))


def test_every_notebook_of_both_editions_is_a_page(site):
    for edition, (folder, prefix) in EDITIONS.items():
        assert notebooks(edition), edition
        for name in notebooks(edition):
            assert (site / f"{prefix}{folder}/{name}.html").is_file(), (edition, name)
    assert (site / "index.html").is_file() and (site / "zh" / "index.html").is_file()


def test_every_link_and_image_inside_the_site_resolves(site):
    """LinkChecker follows every page, link and image from both home pages (offline: no outside URL)."""
    result = subprocess.run(
        [sys.executable, "-m", "linkcheck", "-f", str(ROOT / "book" / "linkcheckerrc")]
        + [str(site / "index.html"), str(site / "zh" / "index.html")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0 and " 0 errors found" in report, report[-5000:]
    checked = int(re.search(r"(\d+) links? in \d+ URLs? checked", report).group(1))
    assert checked > 100, report[-2000:]  # both editions were reached, not only a home page


def test_each_page_declares_its_language(site):
    for page in pages(site):
        language = "zh-CN" if page.relative_to(site).parts[0] == "zh" else "en"
        assert re.search(rf'<html[^>]* lang="{language}"', page.read_text(encoding="utf-8")), page


def test_heading_levels_do_not_jump_and_ids_are_unique(site):
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        levels = [int(level) for level in re.findall(r"<h([1-6])[\s>]", article(html))]
        jumps = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
        assert not jumps, (page, jumps)
        duplicates = [i for i, n in Counter(re.findall(r'\sid="([^"]+)"', html)).items() if n > 1]
        assert not duplicates, (page, duplicates)


def test_edition_switch_and_launch_links_name_the_same_notebook(site):
    for edition, (folder, prefix) in EDITIONS.items():
        other, (other_folder, _) = next((e, v) for e, v in EDITIONS.items() if e != edition)
        for name in notebooks(edition):
            page = site / f"{prefix}{folder}/{name}.html"
            html = page.read_text(encoding="utf-8")
            switch = re.search(r'class="btn btn-sm edition-switch" href="([^"]+)"', html).group(1)
            target = (page.parent / switch).resolve()
            if name in notebooks(other):  # else the other edition's home page
                assert target == (site / EDITIONS[other][1] / other_folder / f"{name}.html").resolve()
            else:
                assert target.name.startswith("README") and target.exists()
            path = f"{folder}/{name}.ipynb"
            assert f"colab.research.google.com/github/open-courses/cnn-rnn-pytorch/blob/main/{path}" in html
            assert f"mybinder.org/v2/gh/open-courses/cnn-rnn-pytorch/main?urlpath=lab/tree/{path}" in html


def test_solutions_stay_folded_and_the_site_needs_no_other_server(site):
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        assert "<details open" not in html, page
        # Scripts, styles and fonts all come from the site: it works from a file server with no internet.
        assert not re.findall(r'<(?:script|link)[^>]+(?:src|href)="https?://[^"]+\.(?:js|css)', html), page
    for edition, (folder, prefix) in EDITIONS.items():
        name = notebooks(edition)[0]
        html = (site / f"{prefix}{folder}/{name}.html").read_text(encoding="utf-8")
        assert html.count("<details") >= 3 and 'class="math' in html, (edition, name)


def test_a_new_notebook_appears_without_configuration(tmp_path):
    """A notebook added to notebooks/ becomes a page, in the menu in file order, before its translation
    exists (its switch leads to the Chinese home page); a translated one is a page of both sites."""
    import nbformat

    repository = tmp_path / "repository"
    shutil.copytree(ROOT / "book", repository / "book", ignore=shutil.ignore_patterns("__pycache__"))
    (repository / "README.md").write_text("# Course\n\n[The notebook](notebooks/01_first.ipynb)\n")
    (repository / "README.zh-CN.md").write_text("# 课程\n\n[笔记本](notebooks/zh/01_first.ipynb)\n")
    for path in ("notebooks/01_first", "notebooks/zh/01_first", "notebooks/05_new"):  # 05: English only
        cells = [nbformat.v4.new_markdown_cell(f"# {path}\n\n$x^2$")]
        (repository / path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(cells=cells), repository / f"{path}.ipynb")
    site = tmp_path / "site"
    build(repository, site)

    def page(path: str) -> str:
        return (site / path).read_text(encoding="utf-8")

    menu = r'class="toctree-l1"><a class="reference internal" href="([^"]+)"'
    assert re.findall(menu, page("README.html")) == ["notebooks/01_first.html", "notebooks/05_new.html"]
    assert re.findall(menu, page("zh/README.zh-CN.html")) == ["notebooks/zh/01_first.html"]
    assert 'edition-switch" href="../zh/notebooks/zh/01_first.html"' in page("notebooks/01_first.html")
    assert 'edition-switch" href="../zh/README.zh-CN.html"' in page("notebooks/05_new.html")


def test_browser_check(site, tmp_path):
    """Math typeset, images loaded, CJK font, edition switch and search, in headless Chromium."""
    pytest.importorskip("playwright", reason="the browser check needs playwright (pip install -e '.[book]')")
    result = subprocess.run(
        [sys.executable, "book/check.py", str(site), "--screenshots", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.stdout.startswith("skipped"):
        pytest.skip(result.stdout.strip())  # no Chromium on this machine
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout and (tmp_path / "notebook_zh.png").is_file(), result.stdout
