# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv on first use,
# needing only Python >= 3.11 and the package registries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-quality bench-throughput bench-service bench-soak bench-disk bench-fuzz bench-faults check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamwatch demo

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/streamwatch check

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/quality.py

bench-throughput: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

bench-service: $(STAMP)
	$(BIN)/python benchmarks/service.py

bench-soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

bench-disk: $(STAMP)
	$(BIN)/python benchmarks/disk.py

bench-fuzz: $(STAMP)
	$(BIN)/python benchmarks/fuzz.py

bench-faults: $(STAMP)
	$(BIN)/python benchmarks/faults.py

bench: bench-quality bench-throughput bench-service bench-fuzz bench-faults

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
