# make demo: set up and run the nginx demo with its message trace.
# make test: set up with the test extras and run the whole suite.
# make fuzz: the fuzzers (races, hostile syscall arguments) with many more examples, and the fault sweep at every message.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench explore-bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ukernel run -v nginx 4

test: $(STAMP)
	$(BIN)/python -m pytest

fuzz: $(STAMP)
	UKERNEL_FUZZ_EXAMPLES=$${UKERNEL_FUZZ_EXAMPLES:-2000} UKERNEL_SWEEP=all $(BIN)/python -m pytest \
		tests/test_races.py tests/test_syscall_args.py tests/test_fault_sweep.py -k "fuzz or hostile or fault_at_any"

bench: $(STAMP)
	$(BIN)/python bench/fork.py
	$(BIN)/python bench/mm.py
	$(BIN)/python bench/remote.py

# explore-bench: ukernel explore on the ports of MOSAIC's examples, beside MOSAIC's --check if MOSAIC_DIR holds a clone.
explore-bench: $(STAMP)
	$(BIN)/python bench/explore.py --mosaic $${MOSAIC_DIR:-/tmp/mosaic}

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
