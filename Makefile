# make demo: set up, run the nginx demo, then show the route of its first fork (a dozen lines);
#            every message of the run is one flag away: .venv/bin/ukernel run -v nginx 4
# make test: set up with the test extras and run the whole suite on every core (pytest-xdist; skipped tests say why: -rs).
# make bench: every bench/*.py's figures as one table of ratios (bench/all.py; BENCH_ARGS="--quick" or "--only fork trace").
# make scale: per-operation costs as the number of processes grows (bench/scale.py; SCALE_ARGS=--big adds 32,000).
# make fuzz: the fuzzers (races, hostile syscall arguments, the wire) with many more examples, and the fault sweep at every message.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench scale explore-bench explore-check lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

DEMO_TRACE := $(VENV)/demo.jsonl

demo: $(STAMP)
	@echo '$$ ukernel run --trace $(DEMO_TRACE) nginx 4'
	@$(BIN)/ukernel run --trace $(DEMO_TRACE) nginx 4
	@echo
	@echo '$$ ukernel trace route $(DEMO_TRACE)      # the messages of its first fork'
	@$(BIN)/ukernel trace route $(DEMO_TRACE)
	@echo
	@echo 'Every message of the run, one line each: $(BIN)/ukernel run -v nginx 4'

# worksteal: an idle worker takes tests queued on the other (the slowest tests take ~10 s: labs, explore).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist worksteal

fuzz: $(STAMP)
	UKERNEL_FUZZ_EXAMPLES=$${UKERNEL_FUZZ_EXAMPLES:-2000} UKERNEL_SWEEP=all $(BIN)/python -m pytest \
		tests/test_races.py tests/test_syscall_args.py tests/test_fault_sweep.py tests/test_wire.py \
		-k "fuzz or hostile or fault_at_any"

bench: $(STAMP)
	$(BIN)/python bench/all.py $(BENCH_ARGS)

scale: $(STAMP)
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# explore-bench: ukernel explore on the ports of MOSAIC's examples, beside MOSAIC's --check if MOSAIC_DIR holds a clone.
explore-bench: $(STAMP)
	$(BIN)/python bench/explore.py --mosaic $${MOSAIC_DIR:-/tmp/mosaic}

# explore-check: the reduced searches against caching alone on programs too slow for make test (parinc 2 2, condvar 1 1, the fork/reap races, the frame races...).
explore-check: $(STAMP)
	UKERNEL_EXPLORE_LONG=1 $(BIN)/python -m pytest -n auto tests/test_explore_user.py tests/test_explore_forkbuf.py tests/test_explore_words.py tests/test_explore_frames.py tests/test_explore_speed.py tests/test_explore_condvar.py tests/test_explore_lazy.py -k long

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
