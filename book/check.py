"""Open the built website in headless Chromium and check what a reader sees.

    python book/check.py [SITE] [--screenshots DIR]     SITE: build/book (make book), DIR: build/book-check

The site is served over HTTP from this machine (127.0.0.1), as `python -m http.server` would, and
Chromium opens both home pages and the same notebook in each edition. On each page it checks that:

* the math is typeset: MathJax drew every formula, and no raw TeX (`$...$`, `\\(...\\)`) is left in the prose;
* every image of the site loaded (naturalWidth > 0); the Colab and Binder badges come from their
  servers, which this check does not reach, and are only counted;
* Chinese text is drawn in a CJK font, none of it as missing-glyph boxes: Chromium reports, through its
  DevTools protocol, which fonts drew the Chinese characters of the page's title, and CJK fonts must have
  drawn every one (a box is drawn by a fallback font, and counts under that font's name);
* the exercises' solutions are folded (<details> elements, closed);
* the edition switch leads to the same notebook in the other language (and back);
* the search finds "convolution" on the English site and "卷积" on the Chinese one.

It saves a screenshot of each page, scrolled to the notebook's section 2 (a formula and a figure), as
small 256-colour PNGs; images/book_en.png and images/book_zh.png in the README are two of them.

Chromium is not installed with the project: Debian's `chromium` package, or any Chrome named by
$CHROMIUM; without one the check says so and exits (status 0, skipped).
If no CJK font is installed, it lends Chromium the Noto Sans CJK SC file of the mplfonts package.
"""

import argparse
import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "01_concepts"  # the notebook opened in both editions: math, figures, folded solutions
HOMES = {"": "README.html", "zh/": "README.zh-CN.html"}  # site folder: the page its index.html opens
PAGES = {  # what each page is called in the screenshots, and its path in the site
    "home_en": "README.html",
    "home_zh": "zh/README.zh-CN.html",
    "notebook_en": f"notebooks/{NOTEBOOK}.html",
    "notebook_zh": f"zh/notebooks/zh/{NOTEBOOK}.html",
}
SEARCHES = {"": "convolution", "zh/": "卷积"}  # site folder: a word its pages use
HAN = re.compile(r"[\u3400-\u9fff]")
# Fonts that have Chinese glyphs, as Chromium names them (book/_static/book.css lists the same).
CJK_FONT = re.compile(r"CJK|Han Sans|Han Serif|PingFang|Hiragino|YaHei|WenQuanYi|Noto Sans SC|SimHei|SimSun")


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome executable: $CHROMIUM, else the first one on PATH."""
    import os

    names = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(name) for name in names if name and shutil.which(name)), None)


def fontconfig_with_cjk(folder: Path) -> dict[str, str]:
    """Environment for Chromium that makes a CJK font available: nothing if the system has one.

    Otherwise a fontconfig file that adds the fonts folder of mplfonts (Noto Sans CJK SC, in the dev
    extra for the Chinese figures) to the system's fonts, for Chromium alone.
    """
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    if found.stdout.strip():
        return {}
    import mplfonts

    fonts = Path(mplfonts.__file__).parent / "fonts"
    config = folder / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{fonts}</dir>\n  <cachedir>{folder / 'cache'}</cachedir>\n</fontconfig>\n"
    )
    return {"FONTCONFIG_FILE": str(config)}


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    """A static file server on a free port of 127.0.0.1, as `python -m http.server` (stop: .shutdown())."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # one line per file would drown the report
            pass

    handler = functools.partial(QuietHandler, directory=site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# JavaScript run in the page. Raw TeX is looked for in the text outside code, scripts and typeset math.
RAW_TEX = r"""() => {
  const article = document.querySelector('article').cloneNode(true);
  article.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
  return article.textContent.match(/\$\$?[^$\n]+\$\$?|\\\(|\\\[/g) || [];
}"""
IMAGES = """async () => {
  const all = Array.from(document.images);
  const local = all.filter(i => new URL(i.src).origin === location.origin);
  await Promise.all(local.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
  const broken = local.filter(i => i.naturalWidth === 0).map(i => i.getAttribute('src'));
  return {loaded: local.length - broken.length, broken: broken, external: all.length - local.length};
}"""


def check_page(page, name: str, problems: list[str]) -> str:
    """Check one open page (math, images, CJK font); return a one-line summary. Failures go to problems."""
    formulas = page.locator("article .math").count()
    if formulas:  # Sphinx loads MathJax only on pages with math
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise")
    typeset = page.locator("article .math mjx-container").count()
    if typeset < formulas:
        problems.append(f"{name}: MathJax typeset {typeset} of {formulas} formulas")
    raw = page.evaluate(RAW_TEX)
    if raw:
        problems.append(f"{name}: raw TeX left in the text: {raw[:3]}")
    images = page.evaluate(IMAGES)
    if images["broken"]:
        problems.append(f"{name}: images that did not load: {images['broken']}")
    details = page.evaluate("() => Array.from(document.querySelectorAll('article details')).map(d => d.open)")
    if any(details):
        problems.append(f"{name}: {sum(details)} of {len(details)} solutions are unfolded")
    fonts = fonts_of_chinese_characters(page, "article h1")
    han = len(HAN.findall(page.locator("article h1").first.text_content()))
    drawn = sum(count for family, count in fonts.items() if CJK_FONT.search(family))
    if drawn < han:
        problems.append(f"{name}: the title's Chinese characters drawn in fonts with no CJK glyphs: {fonts}")
    return (
        f"{name}: {typeset}/{formulas} formulas typeset, {images['loaded']} images loaded "
        f"({images['external']} external, not fetched), {len(details)} folded solutions, "
        f"the title's Chinese characters drawn in {fonts}"
    )


# A span, appended to the element, that holds only its Chinese characters, in the element's own style: the
# fonts that draw it draw nothing else (a CJK font also has Latin letters, which would hide a missing one).
CHINESE_ONLY = """element => {
  const span = document.createElement('span');
  span.id = 'book-check-chinese';
  span.textContent = (element.textContent.match(/[\\u3400-\\u9fff]/g) || []).join('');
  element.appendChild(span);
  return span.textContent.length;
}"""


def fonts_of_chinese_characters(page, selector: str) -> dict[str, int]:
    """The fonts Chromium drew the Chinese characters of the first element matching `selector` with:
    {family: glyphs}, from its DevTools protocol ({} if the element has none). A missing glyph (a box) is
    drawn by a fallback font that has no CJK glyphs, and shows up under that font's name."""
    if not page.locator(selector).first.evaluate(CHINESE_ONLY):
        page.evaluate("() => document.getElementById('book-check-chinese').remove()")
        return {}
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    document = cdp.send("DOM.getDocument", {"depth": 0})
    query = {"nodeId": document["root"]["nodeId"], "selector": "#book-check-chinese"}
    node = cdp.send("DOM.querySelector", query)
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
    cdp.detach()
    page.evaluate("() => document.getElementById('book-check-chinese').remove()")
    return {font["familyName"]: font["glyphCount"] for font in fonts}


def save_screenshot(page, path: Path) -> None:
    """The visible part of the page as a PNG of 256 colours, about a third of the size of the full one."""
    from PIL import Image  # Pillow, which matplotlib installs

    page.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


def check_home_pages(page, base: str, problems: list[str]) -> None:
    """The address of each edition's folder must open its README (index.html sends the browser there)."""
    for folder, home in HOMES.items():
        page.goto(base + folder)
        try:
            page.wait_for_url(base + folder + home, timeout=10_000)
        except Exception:  # playwright's TimeoutError
            problems.append(f"/{folder} stayed at {page.url} instead of opening {home}")
    print("home pages: / and /zh/ open their README")


def check_edition_switch(page, base: str, problems: list[str]) -> None:
    """From the notebook's English page, the switch must lead to its Chinese page, and back."""
    page.goto(base + PAGES["notebook_en"])
    for expected, language in [(PAGES["notebook_zh"], "zh-CN"), (PAGES["notebook_en"], "en")]:
        page.locator("a.edition-switch").first.click()
        page.wait_for_load_state()
        lang = page.get_attribute("html", "lang")
        if page.url != base + expected or lang != language:
            problems.append(f"the edition switch led to {page.url} (lang={lang}), not to {expected}")
    print(f"edition switch: {NOTEBOOK}, English -> Chinese -> English")


SEARCH_DONE = "document.querySelector('#search-results ul.search li') && Search._pulse_status === -1"


def check_search(page, base: str, folder: str, word: str, screenshots: Path, problems: list[str]) -> None:
    """The site's search page (Sphinx's, run in the browser) must list pages for `word`."""
    page.goto(f"{base}{folder}search.html?q={word}")
    results = page.locator("#search-results ul.search li")
    try:  # Sphinx lists the results one by one, then stops its progress "pulse" (-1)
        # 60 s: under make test's three processes on 2 cores, 20 s once passed with no result listed yet
        page.wait_for_function(f"() => {SEARCH_DONE}", timeout=60_000)
    except Exception:  # playwright's TimeoutError
        listed = results.count()
        outcome = f"listed {listed} results but had not finished" if listed else "listed nothing"
        problems.append(f"the search for {word!r} in /{folder} {outcome} in 60 s")
        return
    print(f"search /{folder}: {word!r} gave {results.count()} results (pages and their sections)")
    save_screenshot(page, screenshots / f"search_{word}.png")


def run_checks(site: Path, screenshots: Path, chromium: str) -> list[str]:
    """Open the pages, check them, save screenshots; print what was seen and return the problems."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    screenshots.mkdir(parents=True, exist_ok=True)
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with tempfile.TemporaryDirectory(prefix="book-fonts-") as fonts, sync_playwright() as playwright:
            environment = fontconfig_with_cjk(Path(fonts))
            browser = playwright.chromium.launch(executable_path=chromium, env=environment)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            check_home_pages(page, base, problems)
            for name, path in PAGES.items():
                page.goto(base + path)
                print(check_page(page, name, problems))
                section_2 = page.locator("article h2", has_text=re.compile(r"^2\. "))
                if section_2.count():  # scrolled by script: a #link would highlight the heading
                    section_2.first.evaluate("heading => heading.scrollIntoView()")
                save_screenshot(page, screenshots / f"{name}.png")
            check_edition_switch(page, base, problems)
            for folder, word in SEARCHES.items():
                check_search(page, base, folder, word, screenshots, problems)
            browser.close()
    finally:
        server.shutdown()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=ROOT / "build" / "book")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "build" / "book-check")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("skipped: no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
        return 0
    if not (args.site / "index.html").exists():
        print(f"no site in {args.site}: run make book first")
        return 1
    problems = run_checks(args.site.resolve(), args.screenshots, chromium)
    for problem in problems:
        print("FAILED:", problem)
    print(f"screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
