"""The docs site and the At-GC viewer in a real browser: Debian's Chromium, driven by Playwright, started here.

The site is built the way `make docs` builds it, served from 127.0.0.1, and every page is opened; any request to
another host is blocked and counted as a failure (the site must work offline). Screenshots go to
tests/_artifacts/screenshots/."""
import fcntl, functools, http.server, json, os, re, shutil, threading
from pathlib import Path

import pytest

# one worker runs every browser test (tests/conftest.py, TOGETHER): the site is built and its pages visited once
pytestmark = pytest.mark.slow

from conftest import ROOT, run_agic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "_artifacts" / "screenshots"
VIEWER = "atgc_viewer_vgg_small_fashion-mnist.html"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium); .ci/run does")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The docs site, built by `agic docs` (what `make docs` runs, less running the library notebooks: the notebook
    tests run them in the same `make test`), served over HTTP on 127.0.0.1. Built once per run: under pytest-xdist
    the workers share this run's temporary folder, and the first to take the lock builds the site for all."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"): root = root.parent      # this run's folder, above the workers' own
    out = root / "site" / "_site"
    with open(root / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "index.html").is_file():
            tmp = root / "site" / "tmp"; tmp.mkdir(parents=True)   # the build's TMPDIR: empty again after it
            p = run_agic("docs", "--out", out, "--quiet", "--no-execute", timeout=900,
                         env={**tripwires(root / "site"), "TMPDIR": str(tmp)})
            assert p.returncode == 0, p.stderr[-3000:]
    handler = functools.partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


TRIPPED = "tripwires.log"


def tripwires(folder: Path) -> dict:
    """PATH for the docs build with `pip`, `pip3`, `sudo` and `curl` replaced by scripts that log their call into
    `folder/tripwires.log` and fail: building the site must install nothing and download nothing."""
    bin_ = folder / "tripwires"; bin_.mkdir(parents=True, exist_ok=True)
    for name in ("pip", "pip3", "sudo", "curl"):
        (bin_ / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{folder / TRIPPED}"\nexit 1\n')
        (bin_ / name).chmod(0o755)
    return {"PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def open_page(browser, url, shot=None, size=(1400, 900)):
    "Load `url`; return the page and what went wrong: console errors, page errors, failed and off-host requests."
    page, problems = start_page(browser, url, size)
    finish_page(page, shot)
    return page, problems


def start_page(browser, url, size=(1400, 900)):
    "Start loading `url` (to its first response) with every problem recorded; `finish_page` waits for the rest."
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}")
            if r.url.startswith(("http://127.0.0.1", "file://")) else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    def only_local(route):
        if route.request.url.startswith(("http://127.0.0.1", "file://", "data:", "blob:", "about:")): route.continue_()
        else: problems.append(f"off-host request: {route.request.url}"); route.abort()
    page.route("**/*", only_local)
    page.goto(url, wait_until="commit")
    return page, problems


def finish_page(page, shot=None):
    "Wait until `page` has loaded and the network has been idle for half a second; then the screenshot `shot`."
    page.wait_for_load_state("networkidle")
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / shot))


def broken_images(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"""
                         """.map(i => i.src)""")


def test_site_has_every_page_and_fetches_nothing(site):
    out, _ = site
    from agic.tools.docs import check_offline
    notebooks = {p.stem for p in (ROOT / "nbs").glob("*.ipynb")} - {"index"}
    pages = {p.stem for p in out.glob("*.html")}
    assert notebooks | {"index", "figures", "viewer"} <= pages, sorted(
        notebooks | {"index", "figures", "viewer"} - pages)
    assert check_offline(out) == []
    assert "<math" in (out / "03_graphs.html").read_text()                 # formulas are MathML, drawn without MathJax
    home = (out / "index.html").read_text()
    for png in (ROOT / "figures").glob("*.png"): assert f"figures/{png.name}" in home, f"gallery misses {png.name}"


PAGE_JS = """() => { const article = document.querySelector('article');
    const prose = article ? article.cloneNode(true) : document.createElement('div');
    prose.querySelectorAll('.language-python').forEach(e => e.remove());
    return { title: document.title, hrefs: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
             broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
             streams: Array.from(document.querySelectorAll('.nb-stream code')).map(c => c.textContent),
             prose: prose.textContent, formula_in_code: document.querySelectorAll('pre math, code math').length }; }"""


@pytest.fixture(scope="session")
def visited(browser, site, tmp_path_factory):
    """Every page of the site opened once, served, with a screenshot: what went wrong loading it and what it shows
    (title, links, images, outputs, prose, API entries), and the address it was served from. Several tests read it,
    so each page is loaded once per run, not four times (a page waits for the network to be idle, half a second at
    least): under pytest-xdist the first worker to take the lock visits, the other reads what it saw."""
    out, url = site
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"): root = root.parent
    saved = root / "site" / "visited.json"
    with open(root / "visited.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if saved.is_file(): return json.loads(saved.read_text())
        # one tab for every page: a new tab starts a renderer of its own (68 s for the site's 52 pages on one core,
        # against 90 s for a tab per page, six at a time)
        page, problems = start_page(browser, "about:blank")
        pages = {}
        for p in sorted(out.rglob("*.html")):
            rel = p.relative_to(out).as_posix()
            problems.clear(); page.goto(f"{url}/{rel}", wait_until="commit")
            finish_page(page, None if rel == "404.html" else f"docs_{rel.replace('/', '_').removesuffix('.html')}.png")
            info = page.evaluate(PAGE_JS)
            info["api"] = page.evaluate(ENTRIES_JS) if "api-name" in p.read_text() else None
            pages[rel] = {**info, "problems": list(problems)}
        page.close()
        saved.write_text(json.dumps({"url": url, "pages": pages}))
    return {"url": url, "pages": pages}


def test_the_docs_build_installs_nothing_and_downloads_nothing(site):
    out, _ = site
    log = out.parent / TRIPPED
    assert not log.exists(), f"the docs build called: {log.read_text()}"
    assert (out.parent / "tripwires" / "pip").is_file()   # the tripwires were in place


def test_the_docs_build_leaves_no_temporary_folder(site):
    out, _ = site
    left = sorted(p.name for p in (out.parent / "tmp").iterdir())
    assert not left, f"the docs build left {len(left)} entries in its TMPDIR: {left[:5]}"


def test_every_docs_page_loads_without_errors(visited):
    visited = visited["pages"]
    pages = sorted(rel for rel in visited if rel != "404.html")
    failures = {}
    for rel in pages:
        v = visited[rel]
        problems = v["problems"] + [f"broken image: {src}" for src in v["broken"]]
        if not rel.startswith("figures/") and (not v["title"] or "404" in v["title"]):
            problems.append(f"bad title {v['title']!r}")
        if problems: failures[rel] = problems
    assert not failures, failures
    assert len(pages) >= 15, pages


def test_every_run_of_the_plan_has_its_executed_page(site):
    "Each notebook run of figures.yml (every model) is a page of its own, executed (runs/ is committed), no local path."
    out, _ = site
    from agic.tools.reproduce import load_plan
    runs = [r for r in load_plan(ROOT / "figures.yml", ROOT) if r.notebook]
    first = {}
    for r in runs:
        stem = Path(r.notebook).stem
        page = out / (f"{stem}.html" if stem not in first else f"{stem}__{r.name}.html")
        first.setdefault(stem, r.name)
        assert page.is_file(), f"no page for run {r.name}: {page.name}"
        text = page.read_text()
        assert f"runs/{r.name}.ipynb" in text and "Not executed" not in text, page.name
    for page in out.rglob("*.html"):
        assert str(ROOT) not in page.read_text(), f"{page.relative_to(out)} shows a path of this machine ({ROOT})"

def test_figures_can_be_read(browser, site):
    "An image shrunk below 60 % of its natural width opens at full size when clicked; captions show no raw backticks."
    out, url = site
    for name in ("index.html", "figures.html", "04_pruning.html"):
        page, problems = open_page(browser, f"{url}/{name}")
        small = page.evaluate("""() => Array.from(document.images).filter(i => i.naturalWidth > 0
            && i.getBoundingClientRect().width < 0.6 * i.naturalWidth
            && !(i.closest('a') && i.closest('a').getAttribute('href').endsWith(i.getAttribute('src'))))"""
                              """.map(i => i.src)""")
        assert not small, (name, small[:3])
        assert "`" not in " ".join(page.locator("figcaption").all_text_contents()), name
        assert not problems, problems
        page.close()


def test_figure_text_is_legible_at_the_page_width(browser, site):
    """Every figure of the home page and the gallery, shown as the browser shows it but at most `CONTENT_WIDTH` px
    wide (the docs' column at its narrowest; a thumbnail counts at the width it opens to), has text at least
    `MIN_TEXT_PX` tall: the height of its smallest text, which the PNG records in its own pixels, scaled to that
    width."""
    from PIL import Image
    from agic.viz import CONTENT_WIDTH, MIN_TEXT_PX, TEXT_PX_KEY
    out, url = site
    sizes, unrecorded = {}, set()
    for name in ("index.html", "figures.html"):
        page, problems = open_page(browser, f"{url}/{name}")
        shown = page.evaluate("""() => Array.from(document.images).map(i => [i.getAttribute('src'),
            i.getBoundingClientRect().width, i.naturalWidth,
            !!(i.closest('a') && i.closest('a').getAttribute('href').endsWith(i.getAttribute('src')))])
            .filter(([src]) => src.includes('figures/') && src.endsWith('.png'))""")
        page.close()
        assert shown and not problems, (name, problems)
        for src, width, natural, opens in shown:
            recorded = Image.open(out / src).text.get(TEXT_PX_KEY)
            if recorded is None: unrecorded.add(Path(src).name); continue
            sizes[f"{name}: {src}"] = float(recorded) * min(natural if opens else width, CONTENT_WIDTH) / natural
    small = {k: round(v, 1) for k, v in sizes.items() if v < MIN_TEXT_PX}
    assert len(sizes) >= 4 and not small, (len(sizes), small)
    assert not unrecorded, f"figures without their smallest text's record (`agic.viz.save_png`): {sorted(unrecorded)}"


def test_api_docs_and_viewer_are_on_the_site(browser, site):
    out, url = site
    page, problems = open_page(browser, f"{url}/06a_viewer.html")
    assert not problems, problems
    headings = page.eval_on_selector_all("h2, h3, h4", "els => els.map(e => e.textContent.trim())")
    assert any(h.startswith("atgc_viewer") for h in headings), headings     # show_doc of the exported function
    page.close()
    page, problems = open_page(browser, f"{url}/viewer.html", shot="docs_viewer_page.png", size=(1400, 1200))
    frame = page.frame_locator("iframe").first
    frame.locator("circle.node").first.wait_for()
    assert frame.locator("circle.node").count() > 100 and not problems, problems
    page.close()


def expected_kernels(model: str = "vgg_small") -> int:
    "Kernels of the model, counted from the model itself: one node per conv output channel, plus the input's channels."
    from torch import nn
    from agic.data import load_dataset
    from agic.models import build_model
    info = load_dataset("fashion-mnist").info
    net = build_model(model, info)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    return convs[0].in_channels + sum(m.out_channels for m in convs)


def shown_edges(page) -> tuple[int, int]:
    "(edges the page says it shows, edge lines actually displayed)"
    said = int(page.get_attribute("#edge-count", "data-shown"))
    drawn = page.evaluate("() => Array.from(document.querySelectorAll('line.edge'))"
                          ".filter(l => l.style.display !== 'none').length")
    return said, drawn


def test_viewer_draws_reacts_to_slider_hover_and_click(browser, site):
    out, url = site
    assert (out / "figures" / VIEWER).is_file(), (f"figures/{VIEWER} is missing: make figures writes it "
                                                  "(nbs/04_pruning.ipynb)")
    page, problems = open_page(browser, f"{url}/figures/{VIEWER}", shot="viewer_initial.png", size=(1500, 1000))
    n_nodes = page.locator("circle.node").count()
    assert n_nodes == expected_kernels(), (n_nodes, expected_kernels())
    total = page.evaluate("() => window.atgcViewer.current().edges.length")
    said, drawn = shown_edges(page)
    assert said == drawn and 0 < drawn <= total
    # threshold slider: a higher threshold shows strictly fewer edges, 0 shows them all
    page.fill("#threshold", "0.5")
    said_hi, drawn_hi = shown_edges(page)
    assert said_hi == drawn_hi and drawn_hi < drawn, (drawn, drawn_hi)
    assert re.match(rf"{drawn_hi} of {total} edges shown", page.text_content("#edge-count"))
    page.screenshot(path=str(SHOTS / "viewer_threshold.png"))
    page.fill("#threshold", "0")
    assert shown_edges(page) == (total, total)
    page.fill("#threshold", "0.2")
    # hover: a kernel of the last conv layer (it has incoming edges) shows its id, SA score and strongest edges
    last = page.evaluate("() => { const g = window.atgcViewer.current(); "
                         "return g.nodes.filter(n => n.layer === g.layers.length - 1 "
                         "&& g.inc[g.nodes.indexOf(n)].length)[0].id; }")
    page.hover(f'circle.node[data-id="{last}"]')
    tip = page.locator("#tooltip")
    assert tip.is_visible()
    text = tip.text_content()
    assert last in text and "SA score: 0." in text and "strongest incoming" in text, text
    # ... and what the kernel sees: its most-exciting training patches, a decoded image of a few thumbnails
    assert "most-exciting training patches" in text, text
    size = page.evaluate("""() => { const i = document.querySelector('#tooltip img.patches');
                                    return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null; }""")
    assert size and size[0] > 2 * size[1] > 0, size
    box = tip.bounding_box()                                              # all of it inside the window
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1500 and box["y"] + box["height"] <= 1000, box
    page.screenshot(path=str(SHOTS / "viewer_hover.png"))
    # click: the paths through the kernel stay lit, everything else dims; the background clears it
    page.click(f'circle.node[data-id="{last}"]')
    assert page.get_attribute("#atgc", "data-selected") == last
    lit, dim = page.locator("line.edge.hl").count(), page.locator("circle.node.dim").count()
    assert lit > 0 and 0 < dim < n_nodes, (lit, dim)
    assert page.evaluate("""() => {   // every lit edge joins two lit kernels
        const lit = new Set(Array.from(document.querySelectorAll('circle.node.hl')).map(c => c.dataset.id));
        return Array.from(document.querySelectorAll('line.edge.hl'))"""
                         """.every(l => lit.has(l.dataset.src) && lit.has(l.dataset.dst)); }""")
    page.screenshot(path=str(SHOTS / "viewer_click.png"))
    page.mouse.click(8, page.locator("#atgc").bounding_box()["y"] + 8)
    assert page.locator(".dim").count() == 0 and page.get_attribute("#atgc", "data-selected") is None
    # colour by SA score: kernels take several viridis colours; off, they are all grey
    fills = lambda: set(page.eval_on_selector_all("circle.node", "cs => cs.map(c => c.getAttribute('fill'))"))
    assert page.is_checked("#color-by-score") and len(fills()) > 10
    page.uncheck("#color-by-score")
    assert fills() == {"#bbb"}
    page.check("#color-by-score")
    # a class-level graph from the selector: same kernels, another title
    options = page.locator("#graph-select option").count()
    assert options >= 2
    before = page.text_content("#title")
    page.select_option("#graph-select", "1")
    assert page.text_content("#title") != before and "Class-level" in page.text_content("#title")
    assert page.locator("circle.node").count() == n_nodes
    page.hover(f'circle.node[data-id="{last}"]')                          # the class-level graph shows the patches too
    assert page.locator("#tooltip img.patches").is_visible()
    page.screenshot(path=str(SHOTS / "viewer_class.png"))
    assert not problems, problems
    page.close()


def test_deep_viewer_is_legible_zooms_and_pans(browser, site):
    "resnet20 (20 conv layers): labels and kernels at legible sizes, few enough edges by default, zoom and drag-to-pan."
    out, url = site
    name = "atgc_viewer_resnet20_fashion-mnist.html"
    assert (out / "figures" / name).is_file(), f"figures/{name} is missing: make figures writes it (04_pruning)"
    page, problems = open_page(browser, f"{url}/figures/{name}", shot="viewer_resnet20.png", size=(1400, 900))
    assert page.locator("circle.node").count() == expected_kernels("resnet20")
    sizes = page.evaluate("""() => {
        const labels = Array.from(document.querySelectorAll('text.layer-label')).map(t => t.getBoundingClientRect());
        const nodes = Array.from(document.querySelectorAll('circle.node')).map(c => c.getBoundingClientRect().width);
        const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        return { label: Math.min(...labels.map(r => r.height)), node: Math.min(...nodes),
                 overlaps: labels.filter((a, i) => labels.some((b, j) => j !== i && overlap(a, b))).length }; }""")
    assert sizes["label"] >= 8 and sizes["node"] >= 5 and sizes["overlaps"] == 0, sizes
    said, drawn = shown_edges(page)
    assert said == drawn and 0 < drawn <= 1500, drawn
    zoom = lambda: float(page.get_attribute("#atgc", "data-zoom"))
    before = zoom(); page.click("#zoom-in"); assert zoom() > before
    page.click("#zoom-fit"); assert zoom() < before                        # fitted: all 20 layers in 1400 px
    page.click("#zoom-in"); page.click("#zoom-in"); page.click("#zoom-in")
    box = page.locator("#stage").bounding_box()
    page.mouse.move(box["x"] + 600, box["y"] + 300); page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 200, steps=5); page.mouse.up()
    assert page.evaluate("() => document.getElementById('stage').scrollLeft") > 0          # dragged: panned
    page.screenshot(path=str(SHOTS / "viewer_resnet20_zoomed.png"))
    assert not problems, problems
    page.close()


# The reader's bars of issue 18: a real API reference, links that stay on the site (served and from disk), search from
# disk, outputs without noise, formulas that fit, and a page for the command line.

def public_symbols() -> list:
    "Every public function and class of agic (each module's `__all__`), once each: (module, name, object)."
    import importlib, inspect, pkgutil
    import agic
    seen, found = set(), []
    for info in sorted(pkgutil.walk_packages(agic.__path__, "agic."), key=lambda i: i.name):
        if info.name.endswith("_modidx"): continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if name.startswith("_") or not (inspect.isfunction(obj)
                                            or inspect.isclass(obj)) or id(obj) in seen: continue
            seen.add(id(obj)); found.append((info.name, name, obj))
    return found


ENTRIES_JS = ("""() => Array.from(document.querySelectorAll('h3.api-name, h4.api-name')).map(h => {
    const own = [], block = [];                  // the entry's own elements; and its class's, up to the next h3
    for (let e = h.nextElementSibling; e && !/^H[1-4]$/.test(e.tagName); e = e.nextElementSibling) own.push(e);
    for (let e = h.nextElementSibling; e && !/^H[1-3]$/.test(e.tagName); e = e.nextElementSibling) block.push(e);
    const sig = own.map(e => e.querySelector('pre code')).find(c => c);
    const table = own.map(e => e.matches('.api-params') ? e : e.querySelector('.api-params')).find(t => t);
    return { id: h.id, sig: sig ? sig.textContent.trim() : null, """
              """cut: sig ? sig.scrollWidth > sig.clientWidth + 1 : null,
             table: table ? table.textContent : null, text: own.map(e => e.textContent).join(' '),
             links: block.flatMap(e => Array.from(e.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))) };
})""")


def entry_problems(name: str, obj, entry: dict, ids: set) -> list[str]:
    "What the rendered entry of `obj` lacks: a true signature, a parameter list, its docstring, its public methods."
    import dataclasses, inspect
    found, sig = [], entry["sig"] or ""
    kind = "class" if inspect.isclass(obj) else "def"
    if not re.match(rf"(@dataclass\n)?{kind} {re.escape(name)}\(", sig): found.append(f"signature {sig[:60]!r}")
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and not sig.startswith("@dataclass"):
        found.append("not shown as a dataclass")
    if entry["cut"]: found.append("signature cut (scrolls at 1400 px)")
    if entry["table"] is None: found.append("no parameter table")
    try: params = inspect.signature(obj).parameters
    except (TypeError, ValueError): params = {}
    from agic.tools.api_pages import _docments
    docs, shown = _docments(obj), " ".join((entry["table"] or "").split())
    for p in params:
        if p not in sig or p not in (entry["table"] or ""): found.append(f"parameter {p} missing")
        elif not docs.get(p): found.append(f"parameter {p} undocumented (no docment)")
        elif " ".join(docs[p].replace("`", "").split())[:30] not in shown:
            found.append(f"parameter {p}'s docment not shown")
    if not inspect.isclass(obj) and inspect.signature(obj).return_annotation is not inspect.Signature.empty:
        if " -> " not in sig or "returns" not in (entry["table"] or ""): found.append("return type missing")
    if "Call self as a function" in entry["text"]: found.append("a docstring that is not its own")
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if isinstance(doc, str) and not doc.startswith(f"{name}("):
        first = " ".join(doc.split())[:40].replace("`", "")
        if first not in " ".join(entry["text"].split()): found.append(f"docstring {first!r} missing")
    if inspect.isclass(obj):
        for k, v in obj.__dict__.items():
            if k.startswith("_") or not (inspect.isfunction(v) or isinstance(v, (property, staticmethod, classmethod))):
                continue
            if f"{name}.{k}" not in ids and not any(h.endswith(f"#{name}.{k}") for h in entry["links"]):
                found.append(f"method {k} missing")
    return found


def test_every_public_symbol_has_its_api_entry(visited):
    """Each public function and class: `class X(` / `def x(`, whole signature, parameter table with every parameter's
    description (its docment), docstring, methods."""
    entries = {}
    for rel, v in visited["pages"].items():
        if v["api"] is None or "/" in rel: continue
        assert not v["problems"], (rel, v["problems"])
        ids = {e["id"] for e in v["api"]}
        for e in v["api"]: entries.setdefault(e["id"], []).append({**e, "page": rel, "ids": ids})
    missing, wrong = [], {}
    for module, name, obj in public_symbols():
        if name not in entries: missing.append(f"{module}.{name}"); continue
        tries = [entry_problems(name, obj, e, e["ids"]) for e in entries[name]]
        if all(tries): wrong[f"{module}.{name}"] = tries[0]
    assert not missing, f"{len(missing)} public symbols without an API entry: {missing}"
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in wrong.items())
    assert len(public_symbols()) > 150


def link_problems(href: str, base: str, out: Path, ids: dict) -> str | None:
    "What is wrong with a link found on the site whose root is `base` (served URL or file:// URI): None if nothing."
    import urllib.parse
    if not href.startswith(base):
        return None if href.startswith(("javascript:", "blob:")) else f"off the site: {href}"
    parts = urllib.parse.urlsplit(href)
    rel = urllib.parse.unquote(parts.path)[len(urllib.parse.urlsplit(base).path):].lstrip("/")
    target = out / rel if rel and not rel.endswith("/") else out / rel / "index.html"
    if not target.is_file(): return f"no such page: {href}"
    if parts.fragment and target.suffix == ".html":
        if target not in ids:
            text = target.read_text(errors="replace")
            ids[target] = set(re.findall(r'\b(?:id|name)="([^"]+)"', text))
        if urllib.parse.unquote(parts.fragment) not in ids[target]: return f"no anchor: {href}"
    return None


def _link_failures(pages: dict, base: str, out: Path) -> dict:
    "Page -> what is wrong with its links (`pages`: page -> the links as the browser resolved them)."
    failures, ids = {}, {}
    for rel, hrefs in pages.items():
        bad = sorted({b for h in hrefs if (b := link_problems(h, base, out, ids))})
        if bad: failures[rel] = bad[:8] + ([f"... {len(bad) - 8} more"] if len(bad) > 8 else [])
    return failures


def test_no_link_leaves_the_site_or_breaks_served(visited, site):
    "Every link of every page (404.html included), served over HTTP, stays on the site and finds its page and anchor."
    out, _ = site
    pages = {rel: v["hrefs"] for rel, v in visited["pages"].items()}
    assert not (failures := _link_failures(pages, visited["url"] + "/", out)), failures
    assert sum(map(len, pages.values())) > 1000


def test_no_link_leaves_the_site_or_breaks_from_disk(browser, site):
    """The same, for the site opened from disk (file://), as the README also says it can be read. Each page is read
    once its scripts have run (the `load` event): its links are set by then, and nothing is fetched from disk later."""
    out, _ = site
    base, pages, page = out.as_uri() + "/", {}, browser.new_page()
    for p in sorted(out.rglob("*.html")):
        page.goto(base + p.relative_to(out).as_posix(), wait_until="load")
        pages[p.relative_to(out).as_posix()] = page.evaluate(
            "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    page.close()
    assert not (failures := _link_failures(pages, base, out)), failures
    assert sum(map(len, pages.values())) > 1000


class SubFolderHandler(QuietHandler):
    "The site under /agic/, with its 404.html for any address that is not there, as GitHub Pages serves a project."
    def translate_path(self, path):
        import urllib.parse
        p = urllib.parse.urlsplit(path).path
        return super().translate_path(p[len("/agic"):] if p.startswith("/agic/") else "/no-such-file")
    def send_error(self, code, message=None, explain=None):
        if code != 404: return super().send_error(code, message, explain)
        body = (Path(self.directory) / "404.html").read_bytes()
        self.send_response(404); self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)


def test_404_page_works_in_sub_folders(browser, site):
    "Served from a sub-folder, a missing page at any depth shows the 404 page with its style and working links."
    out, _ = site
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SubFolderHandler, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_address[1]}/agic/"
    try:
        for missing in ("no-such-page.html", "figures/no/such/figure.html", "a/b/c/d.html"):
            page, problems = open_page(browser, root + missing, shot=f"docs_404_{missing.count('/')}.png")
            # the page itself is a 404, and so are the folders it asks for its 404.html when it looks for the root
            problems = [p for p in problems if not (p.endswith((root + missing, "/404.html"))
                                                    or "Failed to load resource" in p)]
            styled = page.evaluate("() => getComputedStyle(document.querySelector('.md-header')).position")
            hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            page.close()
            bad = sorted({b for h in hrefs if (b := link_problems(h, root, out, {}))})
            assert styled == "sticky" and not bad and not problems and len(hrefs) > 20, (missing, styled, bad, problems)
    finally:
        server.shutdown()


def test_search_finds_shap_from_disk(browser, site):
    "Opened as a file (as the README says), the search box answers: 'SHAP' lists pages, each one there."
    out, _ = site
    page, problems = open_page(browser, (out / "index.html").as_uri())
    page.click("input.md-search__input")
    page.keyboard.type("SHAP")
    page.locator(".md-search-result__item").first.wait_for(timeout=15000)
    hrefs = page.eval_on_selector_all(".md-search-result__item > a", "as => as.map(a => a.href)")
    page.screenshot(path=str(SHOTS / "docs_search_from_disk.png"))
    page.close()
    assert len(hrefs) >= 3 and not problems, (hrefs, problems)
    assert all(link_problems(h, out.as_uri() + "/", out, {}) is None for h in hrefs), hrefs


def test_stray_pages_are_not_searched(site):
    "Every page in the search index is one the navigation lists (no stray figures/ pages)."
    import json as _json
    out, _ = site
    index = _json.loads((out / "search" / "search_index.json").read_text())
    searched = {d["location"].split("#")[0] or "index.html" for d in index["docs"]}
    nav = set(re.findall(r'class="md-nav__link[^"]*"[^>]*href="([^"#]+)"|href="([^"#]+)"[^>]*class="md-nav__link',
                         (out / "index.html").read_text()))
    nav = {a or b for a, b in nav} | {"index.html"}
    assert searched <= nav, sorted(searched - nav)


def test_outputs_are_short_quiet_and_pathless(visited):
    """No output block over 40 lines, no progress bar shown twice, no library warning; no path of this machine
    anywhere but in code the notebooks' authors wrote; no formula inside code."""
    frame = re.compile(r"^(.*?)\s*\d+%\|")
    machine = re.compile(rf"({re.escape(str(ROOT))}|/tmp/|/root/|/home/|site-packages)")
    failures = {}
    for rel, v in visited["pages"].items():
        if "/" in rel: continue
        found = []
        for text in v["streams"]:
            lines = text.rstrip("\n").split("\n")
            bars = [m.group(1) for l in lines if (m := frame.match(l))]
            if len(lines) > 40: found.append(f"{len(lines)} lines: {lines[0][:60]}")
            if len(bars) != len(set(bars)): found.append(f"progress frames: {bars[:3]}")
            if re.search(r"(Future|Deprecation|Tqdm)Warning", text): found.append(f"warning: {text[:80]}")
        prose = v["prose"]
        found += [f"machine path: …{prose[max(m.start() - 30, 0):m.end() + 30]}…" for m in machine.finditer(prose)]
        if v["formula_in_code"]: found.append("a formula inside code")
        if found: failures[rel] = found
    assert not failures, failures


@pytest.mark.parametrize("width", [1400, 390])
def test_display_formulas_fit_or_scroll(browser, site, width):
    "A display formula never runs past the text column: it fits (on a desktop, always), or scrolls in its own box."
    out, url = site
    for name in ("03_graphs.html", "03b_scoring.html", "index.html"):
        page, problems = open_page(browser, f"{url}/{name}", size=(width, 900))
        boxes = page.evaluate("""() => {
            const col = document.querySelector('.md-content__inner').getBoundingClientRect();
            return Array.from(document.querySelectorAll('math[display=block]')).map(m => {
                const box = m.closest('.math-block'), r = (box || m).getBoundingClientRect();
                return { boxed: !!box, inside: r.right <= col.right + 1 && r.left >= col.left - 1,
                         scroll: box ? ['auto', 'scroll'].includes(getComputedStyle(box).overflowX) : false,
                         wide: box ? box.scrollWidth > box.clientWidth : false }; }); }""")
        page.screenshot(path=str(SHOTS / f"docs_math_{name[:-5]}_{width}.png"))
        page.close()
        if name == "03_graphs.html": assert boxes, "03_graphs shows no display formula"
        assert all(b["boxed"] and b["inside"] and b["scroll"] for b in boxes) and not problems, (name, boxes)
        if width == 1400: assert not any(b["wide"] for b in boxes), (name, boxes)   # on a desktop: all of it seen


def test_cli_page_documents_every_subcommand(browser, site):
    "The command line's page: each subcommand of `agic` under its own heading, with its --help (every option)."
    import argparse
    from agic.__main__ import parser
    out, url = site
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    every = {"train", "data", "graphs", "pretrain", "sa", "prune", "bench-graphs", "figures", "docs", "models"}
    assert every <= set(sub.choices), every - set(sub.choices)
    page, problems = open_page(browser, f"{url}/09_cli.html", shot="docs_cli.png")
    for name, q in sub.choices.items():
        heading = page.locator(f"#agic-{name}")
        assert heading.count() == 1, f"no section for agic {name}"
        text = page.evaluate(f"""() => {{ let e = document.getElementById('agic-{name}').nextElementSibling;
            while (e && !e.querySelector('pre')) e = e.nextElementSibling; return e ? e.textContent : ''; }}""")
        assert text.startswith(f"usage: agic {name}"), (name, text[:80])
        options = [o for a in q._actions for o in a.option_strings if o.startswith("--")]
        assert all(o in text for o in options), (name, [o for o in options if o not in text])
    assert not problems, problems
    page.close()


VERDICTS_JS = """() => Array.from(document.querySelectorAll('article table')).filter(t =>
    Array.from(t.querySelectorAll('th')).some(h => h.textContent.trim() === 'verdict')).flatMap(t =>
    Array.from(t.querySelectorAll('tbody tr')).map(r => { const c = r.cells[r.cells.length - 1];
        const s = c.querySelector('strong, em') || c;
        return { text: c.textContent.trim(), weight: Number(getComputedStyle(s).fontWeight) }; }))"""


def test_home_page_reads_in_five_minutes(browser, site):
    """At 1400 px the Quick start begins within the first 1,500 px, after one paragraph and one At-GC picture; every
    verdict reads held, MISSED, within noise or n/a, MISSED as bold as held; no claim in its prose says more than its
    verdict; the run times are the records' (one row per run of the plan); the paper is cited with DOI and BibTeX."""
    import html
    from agic.tools.reproduce import CLAIM, CLAIMS_END, CLAIMS_START, claim_problems, load_plan
    out, url = site
    page, problems = open_page(browser, f"{url}/index.html", shot="home_1400.png")
    top = page.evaluate("() => document.getElementById('quick-start').getBoundingClientRect().top + window.scrollY")
    assert top < 1500, f"Quick start starts {top:.0f} px down"
    verdicts = page.evaluate(VERDICTS_JS)
    assert len(verdicts) >= 30 and {v["text"] for v in verdicts} <= {"held", "MISSED", "within noise", "n/a"}, verdicts
    weight = lambda word: {v["weight"] for v in verdicts if v["text"] == word}
    assert weight("MISSED") == weight("held") and min(weight("held")) >= 600, (weight("held"), weight("MISSED"))
    assert weight("within noise"), "no verdict within noise: the noise is not shown"
    # the claims as the page holds them: their markers are comments the page keeps, tags dropped, entities read
    claims = page.content().split(CLAIMS_START, 1)[1].split(CLAIMS_END, 1)[0]
    claims = html.unescape(re.sub(r"<(?!!--)[^>]*>", "", claims))
    assert len(CLAIM.findall(claims)) >= 15, claims[:300]
    assert claim_problems(claims, ROOT / "figures") == [], claim_problems(claims, ROOT / "figures")
    times = page.evaluate("""() => { const rows = [];       // the tables of the section 'Run times'
        for (let e = document.getElementById('run-times').nextElementSibling; e && e.tagName !== 'H2';
             e = e.nextElementSibling) e.querySelectorAll('tbody tr').forEach(r => rows.push(r.cells[0].textContent));
        return rows.map(t => t.trim()); }""")
    runs = [r.name for r in load_plan(ROOT / "figures.yml", ROOT)]
    assert sorted(set(times)) == sorted(runs), (times, runs)
    unlinked = page.evaluate("""() => Array.from(document.querySelectorAll('article code')).filter(c =>
        /^nbs\\/\\w+\\.ipynb$/.test(c.textContent) && !c.closest('a, pre')).map(c => c.textContent)""")
    named = [u for u in unlinked if (out / f"{u[4:-6]}.html").is_file()]
    assert not named, f"notebook names in prose that are not links to their pages: {named[:5]}"
    text = page.inner_text("article")
    assert "10.1016/j.neunet.2024.106597" in text and "@article{zheng2024agic" in text
    assert text.index("Cite the paper") < text.index("Quick start"), "the citation comes first"
    assert not problems, problems
    page.close()


def test_paper_page_relates_our_results_to_the_paper(browser, site):
    "The 'Reproducing AGIC' page: the citation, what the paper specifies and what we chose, the limitations."
    out, url = site
    page, problems = open_page(browser, f"{url}/11_paper.html", shot="paper_1400.png")
    headings = [h.strip() for h in page.locator("article h2").all_inner_texts()]
    for want in ("The paper", "What the paper specifies", "Limitations"):
        assert any(h.startswith(want) for h in headings), (want, headings)
    text = page.inner_text("article")
    assert "10.1016/j.neunet.2024.106597" in text and "@article{zheng2024agic" in text
    assert not problems, problems
    page.close()
