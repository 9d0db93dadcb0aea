# agic: the three commands of the README, plus the nbdev plumbing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := .venv/bin
# free disk (GB) make setup asks for before it creates .venv (6.6 GB measured)
SETUP_MIN_GB ?= 7
# OpenMP threads sleep while they wait (a shared machine stays usable; no cost alone: tests/thread_probe.py)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test test-fast prune figures check-figures docs train bench export readme check-sync clean

## set-up: Debian's dataset-fashion-mnist and chromium (when root and missing), .venv (refused with a message when the
## disk has under 7 GB free), agic editable with dev extras, the default data checked
setup:
	@free=$$(df -Pk . | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ ! -x .venv/bin/python ] && [ "$$free" -lt $(SETUP_MIN_GB) ]; then \
		echo "make setup: $$free GB free here; .venv takes 6.6 GB (pip takes PyTorch's CUDA build on x86-64)," \
		     "so free $(SETUP_MIN_GB) GB or more and run make setup again" >&2; exit 1; fi
	@need=""; [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need="dataset-fashion-mnist"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	if [ -n "$$need" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make setup: installing Debian's $$need"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$need; } || \
		echo "make setup: apt-get could not install $$need"; \
	elif [ -n "$$need" ]; then echo "make setup: not root: please run sudo apt-get install $$need"; fi
	$(PYTHON) -m venv .venv
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	@# jupyter-events' extra installs rfc3987-syntax; jsonschema (under nbformat, papermill, nbdev) then compiles
	@# its 38 grammars at import: 3 s in every process that reads a notebook, 7 s beside a job. Nothing here checks IRIs
	$(BIN)/pip uninstall --quiet --yes rfc3987-syntax
	$(BIN)/agic data --dataset fashion-mnist

## test: the whole suite with pytest on two workers (pytest-xdist), each pinned to a core of its own (tests/conftest.py):
## every notebook as a test (tests/test_notebooks.py, what nbdev_test runs), the pruning experiment with papermill,
## the CLI, the docs site in Chromium. pytest prints the test count and the slowest tests
test:
	$(BIN)/pytest tests -n 2

## test-fast: the same without the tests marked slow (a developer's loop, a few minutes); CI runs `make test`
test-fast:
	$(BIN)/pytest tests -n 2 -m "not slow"

## main job: the pruning experiment, end to end, on the default CNN (vgg_small, Fashion-MNIST) -> figures/
prune:
	mkdir -p runs
	AGIC_PROGRESS=lines $(BIN)/papermill --log-output --no-progress-bar nbs/04_pruning.ipynb runs/pruning_vgg_small.ipynb

## every table and figure of figures/ from figures.yml (papermill runs into runs/), and figures/README.md
figures:
	$(BIN)/agic figures

## regenerate every run into a scratch folder and compare each number with the committed figures/ (exact, within its
## tolerance, beyond); fails on a number beyond its tolerance or a flipped verdict. One run: RUNS="pruning_vgg_small"
check-figures:
	$(BIN)/agic figures --check $(if $(RUNS),--only $(RUNS))

## the docs site, offline (nbdev's proc_nbs + MkDocs Material) -> _site/index.html
docs:
	$(BIN)/agic docs --out _site

## train the default CNN and print its test accuracy
train:
	$(BIN)/agic train --model vgg_small --dataset fashion-mnist

## benchmark of the At-GC builder (vs shap.DeepExplainer and vs fwd+bwd passes) -> figures/bench_graphs.*
bench:
	$(BIN)/agic bench-graphs --model vgg_small --dataset fashion-mnist

## notebooks -> agic/ and cleaned notebooks
export:
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

## README.md from nbs/index.ipynb, offline (nbconvert; '#| hide' cells left out)
readme:
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README \
		--RegexRemovePreprocessor.patterns='^\#\|\s*hide' --log-level WARN

## what CI checks: nbdev_export and nbdev_clean change nothing
check-sync:
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@git diff --exit-code -- agic nbs || (echo "nbdev_export/nbdev_clean changed the files above: run 'make export' and commit" && false)
	@test -z "$$(git status --porcelain -- agic nbs)" || (git status --porcelain -- agic nbs; echo "untracked files after nbdev_export" && false)

clean:
	rm -rf _docs _proc _site build dist *.egg-info
