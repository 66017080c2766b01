# Two commands do all the set-up on a fresh machine with python3 and make:
#   make book   - install the locked environment, build the book from the committed records
#   make test   - install the locked environment, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: book test lint results bench lock clean

$(BIN)/nrf: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "nrf needs Python 3.11 or newer: make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

book: $(BIN)/nrf
	$(BIN)/jupyter-book build book $(BOOKFLAGS)
	@echo "The book is at book/_build/html/index.html"

test: $(BIN)/nrf
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(TESTFLAGS)

# Lint and formatting, as configured in pyproject.toml (CI runs it)
lint: $(BIN)/nrf
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Recompute the committed records of a profile (results/PROFILE/), e.g. make results PROFILE=smoke
PROFILE ?= smoke
results: $(BIN)/nrf
	$(BIN)/nrf reproduce $(PROFILE)

# Comparison-only environment (torchattacks, ART), kept apart from the book's: nrf's core at the
# lock's versions and no book stack. ART installs with the lock as constraints, so it moves none
# of the lock's packages, plus packaging, which it imports without declaring it; torchattacks
# last and without its dependencies (torch, torchvision, numpy, scipy, tqdm: all here by then),
# because it pins requests~=2.25, below what Sphinx needs, though none of its modules imports
# requests. The stamp file exists only once every step has succeeded.
BENCH_ENV = .venv-bench/installed
$(BENCH_ENV): requirements.lock pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --upgrade pip
	.venv-bench/bin/pip install --quiet -c requirements.lock -e . "adversarial-robustness-toolbox>=1.17" packaging
	.venv-bench/bin/pip install --quiet --no-deps "torchattacks>=3.5"
	touch $@

# Each benchmark prints its table and writes it to bench/results/NAME.md, which the README quotes.
bench: $(BENCH_ENV)
	.venv-bench/bin/python bench/bench_pgd.py
	.venv-bench/bin/python bench/bench_uap.py
	.venv-bench/bin/python bench/bench_train.py

# Regenerate the lock file (needs network access to PyPI).
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra book --extra test --extra slurm \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf book/_build
