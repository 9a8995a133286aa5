#!/usr/bin/env python3
"""The built site (`make site`) in a real browser: headless Chromium driven by Playwright.

`check SITE [--screenshots DIR]` serves SITE on 127.0.0.1 and opens every page: each answers
200, logs no console error and no uncaught exception, every image has loaded, every link to
another file of the site answers 200, each notebook page's Colab links name its own notebook,
and a search for "AdaBN" lists notebook 08. It saves screenshots of the landing page and of
04's page into DIR. `screenshot SITE PNG` saves only 04's page, scrolled to its first figure
(`make site-screenshot`, the README's picture).

The browser fetches nothing from outside 127.0.0.1: a request elsewhere (the Colab and Kaggle
badges' images, GitHub's API for the repository's stars) is blocked, counted, and its image is
not held against the page, so the result does not depend on a network. It uses Debian's
`chromium`, never a browser Playwright downloads.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag

NOTEBOOK_04 = "notebooks/04_pneumonia_training_gpu/"
SEARCH_TERM, SEARCH_FINDS = "AdaBN", "08_domain_shift_and_adaptation"
VIEWPORT = {"width": 1280, "height": 900}
# every image eagerly loaded and decoded, then whether each has pixels
IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  images.forEach((image) => { image.loading = "eager"; });
  await Promise.all(images.map((image) => image.decode().catch(() => null)));
  return images.map((image) => [image.currentSrc || image.src, image.naturalWidth > 0]);
}"""
FIGURE = ".jp-OutputArea-output img"  # an image a notebook cell drew, not a badge


def missing_browser(
    test: str = "the site's browser test", also: tuple[str, ...] = ()
) -> str | None:
    """What `test` is missing to run, and how to install it; None when nothing is. `also` names
    further missing things, with their install commands."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install 'playwright>=1.40')")
    if not shutil.which("chromium"):
        missing.append("Debian's chromium (apt-get install chromium)")
    missing += also
    if not missing:
        return None
    return (
        f"{test} needs {' and '.join(missing)}; "
        "`playwright install` is not needed: Debian's chromium is the browser it drives"
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would drown the report
        pass


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve `site` on 127.0.0.1 on a free port, in a thread; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def page_paths(site: Path) -> list[str]:
    """Every page of the site as a URL path relative to its root ('' is the landing page)."""
    paths = []
    for html in sorted(site.rglob("*.html")):
        relative = html.relative_to(site).as_posix()
        if relative == "404.html":
            continue
        paths.append(relative.removesuffix("index.html"))
    return paths


@contextlib.contextmanager
def browser_context(base: str, blocked: list[str]) -> Iterator:
    """A Chromium context whose requests outside `base` are aborted and listed in `blocked`."""
    problem = missing_browser()
    if problem:
        raise RuntimeError(problem)
    from playwright.sync_api import sync_playwright

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(base) or url.startswith("data:"):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.route("**/*", route)
            yield context
        finally:
            browser.close()


def check_page(context, base: str, path: str, blocked: list[str]) -> tuple[list[str], set[str]]:
    """Open one page: its problems, and the URLs of the site's files it links to."""
    page, errors = context.new_page(), []  # (message, URL of the resource it is about)
    page.on("pageerror", lambda error: errors.append((f"uncaught exception: {error}", "")))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and errors.append((f"console error: {message.text}", message.location.get("url", "")))
        ),
    )
    response = page.goto(base + path, wait_until="load")
    problems = [] if response.status == 200 else [f"answers {response.status}"]
    for src, loaded in page.evaluate(IMAGES_JS):
        if not loaded and src.startswith((base, "data:")):
            problems.append(f"image not loaded: {src[:80]}")
    page.wait_for_load_state("networkidle")
    for text, url in errors:
        if not (url in blocked and "Failed to load resource" in text):  # blocked on purpose
            problems.append(text)
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map((link) => link.href)")
    if path.startswith("notebooks/"):
        problems += colab_problems(page, path.strip("/").split("/")[-1])
    page.close()
    internal = {urldefrag(href).url for href in hrefs if href.startswith(base)}
    return [f"/{path}: {problem}" for problem in problems], internal


def dead_links(context, base: str, links: set[str]) -> list[str]:
    """Each link within the site requested once: those that do not answer 200."""
    problems = []
    for url in sorted(links):
        status = context.request.get(url).status
        if status != 200:
            problems.append(f"link /{url.removeprefix(base)} answers {status}")
    return problems


def colab_problems(page, name: str) -> list[str]:
    """A notebook page has an "Open in Colab" link, and every Colab link names its notebook."""
    hrefs = page.eval_on_selector_all(
        "a[href*='colab.research.google.com']", "links => links.map((link) => link.href)"
    )
    own = f"/notebooks/{name}.ipynb"
    problems = [f"Colab link to another notebook: {h}" for h in hrefs if not h.endswith(own)]
    if not page.get_by_role("link", name="Open in Colab", exact=True).count():
        problems.append("no 'Open in Colab' link")
    return problems


def search_problems(context, base: str, timeout_ms: int = 20_000) -> list[str]:
    """Type the search term into Material's search box; the results must list notebook 08."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(base, wait_until="load")
    try:
        page.locator("input.md-search__input").press_sequentially(SEARCH_TERM)
        page.locator(f".md-search-result__item a[href*='{SEARCH_FINDS}']").first.wait_for()
        return []
    except PlaywrightTimeout:
        listed = page.locator(".md-search-result__meta").all_inner_texts()
        return [f"a search for {SEARCH_TERM!r} does not list {SEARCH_FINDS} ({listed})"]
    finally:
        page.close()


def screenshot_04(context, base: str, png: Path) -> bool:
    """04's page, the viewport scrolled to its first figure (the top of the page if none);
    whether it has a figure."""
    page = context.new_page()
    page.goto(base + NOTEBOOK_04, wait_until="load")
    figure = page.locator(FIGURE).first
    drawn = bool(figure.count())
    if drawn:
        figure.evaluate("image => image.scrollIntoView({block: 'center'})")
    png.parent.mkdir(parents=True, exist_ok=True)
    # the header's title fades from the site's name to the page's on scrolling: its end state
    page.screenshot(path=str(png), animations="disabled")
    page.close()
    return drawn


def check_site(site: Path, screenshots: Path | None = None) -> tuple[list[str], dict]:
    """Every check on the built `site`: its problems (none when it passes) and what was seen."""
    paths, problems, blocked, links = page_paths(site), [], [], set()
    with serve(site) as base, browser_context(base, blocked) as context:
        for path in paths:
            found, internal = check_page(context, base, path, blocked)
            problems += found
            links |= internal
        problems += dead_links(context, base, links)
        problems += search_problems(context, base)
        if screenshots:
            screenshots.mkdir(parents=True, exist_ok=True)
            page = context.new_page()
            page.goto(base, wait_until="load")
            page.screenshot(path=str(screenshots / "site-index.png"))
            page.close()
            if not screenshot_04(context, base, screenshots / "site-04.png"):
                problems.append(f"/{NOTEBOOK_04}: no figure for the screenshot to show")
    seen = {"pages": len(paths), "internal links": len(links), "blocked": sorted(set(blocked))}
    return problems, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="every check; screenshots into --screenshots")
    check.add_argument("site", type=Path)
    check.add_argument("--screenshots", type=Path)
    shot = sub.add_parser("screenshot", help="04's page, scrolled to its first figure")
    shot.add_argument("site", type=Path)
    shot.add_argument("png", type=Path)
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"no built site in {args.site}: `make site` builds one", file=sys.stderr)
        return 2
    if problem := missing_browser():
        print(problem, file=sys.stderr)
        return 2
    if args.command == "screenshot":
        with serve(args.site) as base, browser_context(base, []) as context:
            drawn = screenshot_04(context, base, args.png)
        print(f"wrote {args.png}" + ("" if drawn else f"; /{NOTEBOOK_04} shows no figure"))
        return 0 if drawn else 1
    problems, seen = check_site(args.site, args.screenshots)
    print(
        f"{seen['pages']} pages, {seen['internal links']} links within the site; "
        f"{len(seen['blocked'])} requests outside 127.0.0.1 blocked"
    )
    print("\n".join(problems) or "no problem found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
