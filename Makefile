# The two entry points: `make demo` and `make test`. Both create or reuse .venv and install
# everything (Debian packages included) before they run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python builds from source: portable CPU flags so the wheel cache works on any x86-64.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
DEMO_OUT ?= demo-out

.PHONY: demo test install system-packages lint typecheck pytest bench clean

demo: install
	$(BIN)/omnifuse demo --out $(DEMO_OUT)

test: install lint typecheck pytest

install: system-packages $(VENV)/.installed

system-packages:
	@bash scripts/install-system-packages.sh

# The Debian packages come first even under `make -j`: a bare image has no venv module.
$(VENV)/bin/python: | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[all,dev]'
	touch $@

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# pytest exits 5 when it collected no test: treat that as a failure, never as a pass.
pytest: install
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: install
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/encode.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
