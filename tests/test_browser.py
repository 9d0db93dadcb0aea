"""The docs site and the At-GC viewer in a real browser: Debian's Chromium, driven by Playwright, started here.

The site is built the way `make docs` builds it, served from 127.0.0.1, and every page is opened; any request to
another host is blocked and counted as a failure (the site must work offline). Screenshots go to
tests/_artifacts/screenshots/."""
import fcntl, functools, http.server, os, re, shutil, threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

from conftest import ROOT, run_agic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "_artifacts" / "screenshots"
VIEWER = "atgc_viewer_vgg_small_fashion-mnist.html"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium); .ci/run does")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
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
            p = run_agic("docs", "--out", out, "--quiet", "--no-execute", timeout=900)
            assert p.returncode == 0, p.stderr[-3000:]
    handler = functools.partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def open_page(browser, url, shot=None, size=(1400, 900)):
    "Load `url`; return the page and what went wrong: console errors, page errors, failed and off-host requests."
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}") if "127.0.0.1" in r.url else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    def only_local(route):
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")): route.continue_()
        else: problems.append(f"off-host request: {route.request.url}"); route.abort()
    page.route("**/*", only_local)
    page.goto(url, wait_until="networkidle")
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / shot))
    return page, problems


def broken_images(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)""")


def test_site_has_every_page_and_fetches_nothing(site):
    out, _ = site
    from agic.tools.docs import check_offline
    notebooks = {p.stem for p in (ROOT / "nbs").glob("*.ipynb")} - {"index"}
    pages = {p.stem for p in out.glob("*.html")}
    assert notebooks | {"index", "figures", "viewer"} <= pages, sorted(notebooks | {"index", "figures", "viewer"} - pages)
    assert check_offline(out) == []
    assert "<math" in (out / "03_graphs.html").read_text()                 # formulas are MathML, drawn without MathJax
    home = (out / "index.html").read_text()
    for png in (ROOT / "figures").glob("*.png"): assert f"figures/{png.name}" in home, f"gallery misses {png.name}"


def test_every_docs_page_loads_without_errors(browser, site):
    out, url = site
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html") if p.name != "404.html")
    failures = {}
    for rel in pages:
        name = rel.replace("/", "_").removesuffix(".html")
        page, problems = open_page(browser, f"{url}/{rel}", shot=f"docs_{name}.png")
        problems += [f"broken image: {src}" for src in broken_images(page)]
        if not rel.startswith("figures/"):
            title = page.title()
            if not title or "404" in title: problems.append(f"bad title {title!r}")
        page.close()
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
            && !(i.closest('a') && i.closest('a').getAttribute('href').endsWith(i.getAttribute('src')))).map(i => i.src)""")
        assert not small, (name, small[:3])
        assert "`" not in " ".join(page.locator("figcaption").all_text_contents()), name
        assert not problems, problems
        page.close()

def test_api_docs_and_viewer_are_on_the_site(browser, site):
    out, url = site
    page, problems = open_page(browser, f"{url}/06_viz.html")
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
    drawn = page.evaluate("() => Array.from(document.querySelectorAll('line.edge')).filter(l => l.style.display !== 'none').length")
    return said, drawn


def test_viewer_draws_reacts_to_slider_hover_and_click(browser, site):
    out, url = site
    assert (out / "figures" / VIEWER).is_file(), f"figures/{VIEWER} is missing: make figures writes it (nbs/04_pruning.ipynb)"
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
    last = page.evaluate("() => { const g = window.atgcViewer.current(); return g.nodes.filter(n => n.layer === g.layers.length - 1 && g.inc[g.nodes.indexOf(n)].length)[0].id; }")
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
        return Array.from(document.querySelectorAll('line.edge.hl')).every(l => lit.has(l.dataset.src) && lit.has(l.dataset.dst)); }""")
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
