# repo-butler developer commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-wheel test-stress lint typecheck pytest bench clean venv postgres-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# An editable install built by meson-python (meson.build): the C/C++ parts are compiled into
# build/ now, and rebuilt on the next import after their sources change. The dependencies are
# installed first, as usual; the project then with --no-build-isolation --no-deps, since an
# editable meson-python install needs its build tools in the venv (.ci/requirements.py says why
# not everything at once).
$(STAMP): $(BIN)/python pyproject.toml meson.build
	$(BIN)/python .ci/requirements.py all test > $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements.txt \
		'meson-python>=0.16' 'meson>=1.2.0' 'ninja>=1.10'
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pip install --quiet --no-build-isolation \
		--no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/rb demo ./demo-repo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# PostgreSQL server binaries for the registry tests: Debian's package, installed when missing and
# we are root; otherwise the `postgres` fixture skips with the reason.
postgres-server:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's postgresql package for the registry tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql \
			>/dev/null) || echo "could not install postgresql: PostgreSQL tests will be skipped"; \
	else \
		echo "no PostgreSQL server and not root: PostgreSQL tests will be skipped"; \
	fi

# `make test` deselects the tests marked stress (the long fault-injection variants: races,
# crashes, full-size corruptions); `make test-stress` runs only those.
test: lint typecheck postgres-server
	$(BIN)/python -m pytest -q -m "not stress"

# The packaging proof (docs/development.md#packaging): sdist -> wheel -> fresh venv, then `rb demo`
# and the make-warp tests with no compiler on PATH. About 5 minutes; CI runs it after `make test`.
test-wheel: $(STAMP)
	VENV=$(VENV) bash .ci/test-wheel

test-stress: $(STAMP) postgres-server
	$(BIN)/python -m pytest -q -m stress

bench: $(STAMP)
	$(BIN)/python bench/butler_ops.py
	$(BIN)/python bench/warp_bench.py

clean:
	rm -rf $(VENV) build dist demo-repo .pytest_cache .mypy_cache .ruff_cache
