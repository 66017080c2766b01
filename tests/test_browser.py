"""The built book in a real browser: headless Chromium, driven over its DevTools protocol.

Every page of a built book (book/_build/html, or $NRF_BOOK_HTML) is loaded from a local HTTP
server: it must load without console errors, every image must load with a non-zero size, every
internal link must reach a file of the book and its anchor an element of that file, no link may
point to a bare file name outside the book (as `PAPER.md` once became `http://PAPER.md`), no caption
may carry Sphinx's own "Fig. N" beside the papers' ids, every table must be an HTML table with its
caption (never inside a figure), every formula must be typeset by the MathJax shipped with the book
(the browser resolves no host but this machine's, as offline), and the search page must find a claim id.
Skips, saying why, where no Chromium or no built book is found; fails instead where $NRF_BOOK_HTML
names the book, as CI does after building the committed-records book, so that CI cannot pass by
skipping.
"""

import asyncio
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from nrf import store

BOOK = Path(os.environ.get("NRF_BOOK_HTML", store.REPO / "book" / "_build" / "html"))
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
FILE_LIKE = re.compile(r"\.(md|py|ipynb|json|ya?ml|txt|npz|pt|csv|toml|lock)$", re.I)  # a host that is a file name
TIMEOUT = 60  # seconds for one page to load


@pytest.fixture(scope="module", autouse=True)
def _needs_browser_and_book():
    missing = (
        "no Chromium found (apt-get install chromium)"
        if CHROMIUM is None
        else f"no built book at {BOOK} (make book)"
        if not (BOOK / "index.html").exists()
        else None
    )
    if missing and "NRF_BOOK_HTML" in os.environ:
        pytest.fail(f"NRF_BOOK_HTML is set but {missing}")
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def site():
    """The built book over HTTP on a free local port: its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(BOOK))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with its DevTools port: the port number."""
    profile = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: no host but the book's server
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.time() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"Chromium did not start ({CHROMIUM}, exit {proc.poll()})")
        time.sleep(0.1)
    yield int(port_file.read_text().split()[0])
    proc.terminate()
    proc.wait(timeout=10)


class Page:
    """One browser tab over the DevTools protocol: navigate, evaluate, and the errors it logged."""

    def __init__(self, port: int):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        self.ws_url = json.loads(urllib.request.urlopen(request).read())["webSocketDebuggerUrl"]
        self.next_id, self.events = 0, []

    async def open(self):
        from tornado.websocket import websocket_connect  # tornado comes with Jupyter

        self.ws = await websocket_connect(self.ws_url, max_message_size=2**28)
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.write_message(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = await self._receive(TIMEOUT)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def _receive(self, timeout: float) -> dict:
        raw = await asyncio.wait_for(self.ws.read_message(), timeout)
        if raw is None:
            raise RuntimeError("Chromium closed the DevTools connection")
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
        return message

    async def goto(self, url: str):
        """Load url and wait for its load event, then for late scripts a moment."""
        self.events.clear()
        await self.send("Page.navigate", url=url)
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            await self._receive(TIMEOUT)
        try:
            while True:
                await self._receive(0.5)
        except TimeoutError:
            pass

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads since the last goto, not the
        browser's own favicon request: a resource of another host fails too (the browser is
        offline), since the book must ship everything it loads, MathJax included."""
        found = []
        for e in self.events:
            p = e["params"]
            if e["method"] == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details["text"])
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] == "error":
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                url = p["entry"].get("url", "")
                if not url.endswith("/favicon.ico"):
                    found.append(f"{p['entry']['text']} {url}")
        return found


IMAGES = """Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';
  return i.decode().then(() => [i.src, i.naturalWidth, i.naturalHeight], () => [i.src, 0, 0]); }))"""
LINKS = "Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.href])"
FIG_NUMBERS = "Array.from(document.querySelectorAll('.caption-number')).map(e => e.textContent)"
TABLES = """[document.querySelectorAll('table').length, document.querySelectorAll('figure table').length,
  Array.from(document.querySelectorAll('.glued-table table')).filter(t => !(t.caption && t.caption.textContent.trim())).length]"""
# [formulas, formulas typeset]: MathJax puts each formula it typeset in an mjx-container element.
FORMULAS = """((window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve()).then(() =>
  [document.querySelectorAll('.math').length, document.querySelectorAll('.math mjx-container').length])"""
REMOTE_MATHJAX = re.compile(r'<script[^>]+src="(?:https?:)?//[^"]*mathjax', re.I)
SEARCH_HITS = "document.querySelectorAll('#search-results li, ul.search li').length"


@functools.cache
def anchors(path: Path) -> set[str]:
    """The ids (and names) of a built HTML file: what a #fragment can point at."""
    return set(re.findall(r'\b(?:id|name)="([^"]+)"', path.read_text(errors="replace")))


def link_problem(raw: str, resolved: str, base: str) -> str | None:
    """Why a link is broken, or None: internal links must reach a file of the book and its anchor;
    external ones must not be a bare file name."""
    parts = urlsplit(resolved)
    if parts.scheme in ("mailto", "javascript", "data"):
        return None
    if not resolved.startswith(base):
        host = parts.hostname or ""
        return f"{raw!r} points outside the book at a file name" if FILE_LIKE.search(host) or not host else None
    rel = unquote(parts.path[len(urlsplit(base).path) :]) or "index.html"
    target = BOOK / rel
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{raw!r}: no file {rel} in the book"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target):
        return f"{raw!r}: no anchor #{parts.fragment} in {rel}"
    return None


def test_every_page_in_a_browser(site, browser):
    pages = sorted(p.name for p in BOOK.glob("*.html"))
    assert "index.html" in pages and "intro.html" in pages, f"not a built book: {BOOK}"
    problems, counts = [], {"pages": 0, "images": 0, "links": 0, "tables": 0, "formulas": 0}
    problems.extend(
        f"{p.name}: loads MathJax from the network" for p in BOOK.glob("*.html") if REMOTE_MATHJAX.search(p.read_text())
    )

    async def visit():
        tab = Page(browser)
        await tab.open()
        for name in pages:
            url = urljoin(site, name)
            await tab.goto(url)
            counts["pages"] += 1
            problems.extend(f"{name}: console: {e}" for e in tab.errors())
            for src, width, height in await tab.evaluate(IMAGES):
                counts["images"] += 1
                if not (width and height):
                    problems.append(f"{name}: image {src} did not load (size {width}x{height})")
            for number in await tab.evaluate(FIG_NUMBERS):  # the papers' ids label figures, not Sphinx's count
                problems.append(f"{name}: a caption numbered {number!r} by Sphinx")
            tables, in_figures, uncaptioned = await tab.evaluate(TABLES)
            counts["tables"] += tables
            if in_figures or uncaptioned:
                problems.append(f"{name}: {in_figures} tables inside a figure, {uncaptioned} without a caption")
            formulas, typeset = await tab.evaluate(FORMULAS)
            counts["formulas"] += formulas
            if typeset < formulas:
                problems.append(f"{name}: {formulas - typeset} of {formulas} formulas not typeset by MathJax")
            for raw, resolved in await tab.evaluate(LINKS):
                counts["links"] += 1
                why = link_problem(raw, urljoin(url, raw) if not resolved else resolved, site)
                if why:
                    problems.append(f"{name}: link {why}")
        await tab.goto(urljoin(site, "search.html?q=I-T3"))
        deadline = time.time() + 30
        while not await tab.evaluate(SEARCH_HITS):
            if time.time() > deadline:
                problems.append("search.html?q=I-T3 found nothing")
                break
            await asyncio.sleep(0.5)
        tab.ws.close()

    asyncio.run(visit())
    print(", ".join(f"{n} {what}" for what, n in counts.items()) + " checked")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:50])
    assert (
        counts["images"] > 0 and counts["links"] > counts["pages"] and counts["tables"] > 0 and counts["formulas"] > 0
    )
