# Two commands: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Two test processes, one test file each at a time (module fixtures stay in one process); PYTEST_ARGS= runs serially.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test install system-deps bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install system-deps
	$(VENV)/bin/cristal demo

# Debian packages: PostgreSQL server binaries (tests) and Chromium (the Operator, demo and tests); installed once.
system-deps:
	bash scripts/install-system-deps.sh

# pytest exits 5 when it collects no test; that is not a failure of the setup.
test: install system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# Schemathesis against a real `cristal serve` (a throwaway workspace, a scripted model on loopback), as a
# member; fails on any server error or answer that differs from the OpenAPI document. FUZZ_ARGS="--max-examples 20 --seed 1"
fuzz: install
	$(PY) scripts/fuzz.py $(FUZZ_ARGS)

bench: install system-deps
	$(PY) -m pip install -q -e '.[test,bench]'
	# bench_operator.py runs browser-use side by side in its own virtualenv (its pins clash with ours)
	for b in benchmarks/bench_*.py; do echo "== $$b"; CRISTAL_BENCH_BROWSER_USE_VENV=$${CRISTAL_BENCH_BROWSER_USE_VENV:-$(HOME)/.cache/cristal/bench-browser-use} $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
