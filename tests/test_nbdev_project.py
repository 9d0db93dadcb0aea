"The nbdev project: agic/ is exactly what the notebooks export, notebooks are clean, tags survive, README in step."
import filecmp, json, subprocess

import nbformat

from conftest import BIN, ROOT, project_copy


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_library_is_exactly_what_nbdev_export_makes(tmp_path):
    work = project_copy(tmp_path, "settings.ini", "nbs", "agic")
    res = run([str(BIN / "nbdev_export")], work)
    assert res.returncode == 0, res.stderr
    cmp = filecmp.dircmp(ROOT / "agic", work / "agic", ignore=["__pycache__"])
    assert not (cmp.diff_files or cmp.left_only or cmp.right_only), (cmp.diff_files, cmp.left_only, cmp.right_only)


def test_notebooks_are_clean(tmp_path):
    work = project_copy(tmp_path, "settings.ini", "nbs")
    res = run([str(BIN / "nbdev_clean")], work)
    assert res.returncode == 0, res.stderr
    changed = [p.name for p in (ROOT / "nbs").glob("*.ipynb") if p.read_bytes() != (work / "nbs" / p.name).read_bytes()]
    assert not changed, f"nbdev_clean changes {changed}: run 'make export' and commit"


def test_papermill_parameters_tag_survives_nbdev_clean(tmp_path):
    work = project_copy(tmp_path, "settings.ini")
    (work / "nbs").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("model: str = 'vgg_small'  # zoo name"),
                                         nbformat.v4.new_code_cell("print(model)")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.cells[1].metadata["scrolled"] = True  # not an allowed key: nbdev_clean must drop it
    nbformat.write(nb, work / "nbs" / "exp.ipynb")
    res = run([str(BIN / "nbdev_clean")], work)
    assert res.returncode == 0, res.stderr
    cleaned = json.loads((work / "nbs" / "exp.ipynb").read_text())
    assert cleaned["cells"][0]["metadata"].get("tags") == ["parameters"]
    assert "scrolled" not in cleaned["cells"][1]["metadata"]


def test_readme_is_generated_from_index(tmp_path):
    res = run([str(BIN / "jupyter"), "nbconvert", "--to", "markdown", str(ROOT / "nbs" / "index.ipynb"),
               "--output-dir", str(tmp_path), "--output", "README",
               "--RegexRemovePreprocessor.patterns=^\\#\\|\\s*hide",
               "--log-level", "WARN"], ROOT)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "README.md").read_text() == (ROOT / "README.md").read_text(), (
        "README.md is stale: run 'make readme'")
    assert "make setup" in (ROOT / "README.md").read_text() and "make test" in (ROOT / "README.md").read_text()


def test_every_notebook_exports_one_module_or_nothing():
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        src = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        default_exp = [s for s in src if s.startswith("#| default_exp")]
        assert len(default_exp) <= 1, path.name
        if any("#| export" in s for s in src): assert default_exp, f"{path.name} exports without default_exp"


def test_every_notebook_summary_is_one_line():
    "nbdev puts only the first `> ` line under a page's title: a summary on two lines is cut on the docs site."
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        if path.name == "index.ipynb": continue   # the home page has its own opening, no summary
        first = nbformat.read(path, as_version=4).cells[0].source.splitlines()
        quoted = [i for i, line in enumerate(first) if line.startswith(">")]
        assert len(quoted) == 1, (path.name, [first[i] for i in quoted])


def test_experiment_notebooks_have_a_tagged_parameters_cell():
    "papermill finds its parameters by the cell tag: every experiment notebook (one that exports nothing) has one."
    found = 0
    for path in sorted((ROOT / "nbs").glob("0[4-9]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        if any(c.cell_type == "code" and c.source.startswith("#| default_exp") for c in cells): continue
        tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        # every typed parameter line must be one papermill can read (a '=' or quote in a comment can hide it)
        import papermill
        declared = [l.split(":")[0] for l in tagged[0].source.splitlines()
                    if l and not l.startswith("#") and ":" in l.split("=")[0]]
        assert list(papermill.inspect_notebook(str(path))) == declared, (path.name, declared)
        found += 1
    assert found >= 2


def test_quarto_config_stays_valid_for_nbdev_docs(tmp_path):
    "Users with Quarto build the docs with nbdev_docs: its config must parse and its sidebar must list every notebook."
    import yaml
    quarto = yaml.safe_load((ROOT / "nbs" / "_quarto.yml").read_text())
    assert quarto["project"]["type"] == "website" and "nbdev.yml" in quarto["metadata-files"]
    assert yaml.safe_load((ROOT / "nbs" / "nbdev.yml").read_text())["website"]["title"] == "agic"
    work = project_copy(tmp_path, "settings.ini", "nbs")
    res = run([str(BIN / "nbdev_sidebar"), "--printit"], work)
    assert res.returncode == 0, res.stderr
    sidebar = res.stdout
    for nb in (ROOT / "nbs").glob("*.ipynb"): assert nb.name in sidebar, f"{nb.name} missing from nbdev's sidebar"


def test_every_public_parameter_is_documented():
    "Every parameter of every public function, class and public method of agic has a docment (the API pages show it)."
    import pkgutil
    import agic
    from agic.tools.api_pages import undocumented_parameters
    modules = [m.name for m in pkgutil.walk_packages(agic.__path__, "agic.") if not m.name.endswith("_modidx")]
    assert len(modules) > 25
    missing = undocumented_parameters(modules)
    assert not missing, f"{len(missing)} public symbols with undocumented parameters: {missing[:20]}"


def test_prose_types_no_run_time():
    "Run times on the pages are read from the runs' records (the home page's generated table), never typed in prose."
    import re
    from agic.tools.reproduce import RUNTIME_END, RUNTIME_START
    typed = re.compile(r"\b\d[\d.,]*(?:-\d+)?\s?(?:min\b|minutes?\b|hours?\b|h \d)")
    found = []
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown": continue
            text = re.sub(re.escape(RUNTIME_START) + ".*?" + re.escape(RUNTIME_END), "", cell.source, flags=re.S)
            found += [f"{path.name}: ...{text[max(0, m.start() - 40):m.end()]}" for m in typed.finditer(text)]
    assert not found, "\n".join(found)


# the entry points a user starts from, one per stage: data, model, graphs, encoder, scores, pruning, reading, figures
MAIN_ENTRY_POINTS = ["load_dataset", "build_model", "train", "AtGCBuilder", "build_store", "GraphStore", "pretrain_dgi",
                     "linear_probe", "train_classifier", "train_sa", "train_free_gates", "kernel_importance",
                     "criterion_rankings", "pruning_curves", "prune", "physical_pruning", "class_selectivity",
                     "plot_atgc", "atgc_viewer", "run_plan"]


def test_every_main_entry_point_is_followed_by_an_example():
    """Each main entry point's page shows an example in the entry's own section (before the next heading): a visible
    code cell that calls it, or a Markdown ```python block that calls it, every line of which the notebook runs."""
    import re
    missing, seen = [], set()
    directive = lambda s, what: re.search(rf"^#\|\s*{what}", s, re.M)
    for path in sorted((ROOT / "nbs").glob("0*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        ran = {l.strip() for c in cells if c.cell_type == "code" and not directive(c.source, "(export|eval: false)")
               for l in c.source.splitlines()}
        for i, cell in enumerate(cells):
            if cell.cell_type != "code" or not directive(cell.source, "export"): continue
            for name in [n for n in MAIN_ENTRY_POINTS if re.search(rf"^(def|class) {n}\b", cell.source, re.M)]:
                seen.add(name)
                ok = False
                for later in cells[i + 1:]:
                    if later.cell_type == "markdown":
                        if re.match(r"#{1,3} ", later.source): break
                        for block in re.findall(r"```python\n(.*?)```", later.source, re.S):
                            lines = [l.strip() for l in block.splitlines() if l.strip()[:1] not in ("", "#")]
                            ok = ok or (f"{name}(" in block and all(l in ran for l in lines))
                    elif not directive(later.source, "(export|hide)") and f"{name}(" in later.source: ok = True
                    if ok: break
                if not ok: missing.append(f"{path.name}: {name}")
    assert seen == set(MAIN_ENTRY_POINTS), set(MAIN_ENTRY_POINTS) - seen
    assert not missing, f"main entry points with no example in their section: {missing}"
