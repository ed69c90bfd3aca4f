# The two set-up commands in the README (`make demo`, `make test`) start from a fresh machine:
# each creates .venv and installs the pinned dependencies on first use.
VENV ?= .venv
BIN := $(VENV)/bin
# The machines run Node 20; jsii (under aws-cdk-lib) prints a large end-of-life banner for it on
# every synth. It is harmless (the CDK runs fine on Node 20), so silence it for Node 20 only.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: demo local replay openapi synth test lint bench mutation clean

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/nurture demo --port 0

local: $(BIN)/.installed
	$(BIN)/nurture local --clock manual

replay: $(BIN)/.installed
	$(BIN)/nurture replay events/journeys/sample.jsonl --until 2026-06-30

openapi: $(BIN)/.installed
	$(BIN)/nurture openapi --output docs/openapi.json

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The CDK CLI pinned in package.json synthesizes through cdk.json (python3 -m infra.app), with cdk-nag
# checks that fail the synth on any unacknowledged finding.
synth: $(BIN)/.installed node_modules/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" npx cdk synth -q

# mypy checks the package, infra/ and tests/ in one run, then each functions/*/handler.py in a run of its
# own: all four are module `handler`, and one run cannot hold two modules of one name.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for handler in functions/*/handler.py; do $(BIN)/mypy $$handler || exit 1; done
	$(BIN)/lint-imports

test: lint synth
	$(BIN)/python -m pytest

# Benchmarks print their figures and record them in docs/benchmarks.md (a few minutes in all).
bench: $(BIN)/.installed
	$(BIN)/python -m tests.bench.replay
	$(BIN)/python -m tests.bench.dispatch
	$(BIN)/python -m tests.bench.pipeline
	$(BIN)/python -m tests.bench.cost
	$(BIN)/python -m tests.bench.batch
	$(BIN)/python -m tests.bench.flood
	$(BIN)/python -m tests.bench.imports
	$(BIN)/python -m tests.bench.simulate
	$(BIN)/python -m tests.bench.summary

# Schemathesis against docs/openapi.json on `nurture local`: tests/e2e/test_fuzz.py (which `make test` runs bounded,
# about a minute and a half) with ten times the examples per operation (about 5 minutes). Figures: docs/reliability.md.
.PHONY: fuzz
fuzz: $(BIN)/.installed
	NURTURE_FUZZ_SCALE=10 $(BIN)/python -m pytest tests/e2e/test_fuzz.py -s -p no:cacheprovider

# Mutation testing of the modules that hold the guarantees ([tool.mutmut] in pyproject.toml; results and
# survivors in docs/testing.md). About an hour on two cores, so neither `make test` nor CI runs it.
# One module: make mutation MUTANTS='nurture.adapters.dynamodb*'
MUTATION_DIR := build/mutation
MUTATION_JOBS ?= 2
MUTANTS ?=

mutation: $(BIN)/.installed
	$(BIN)/pip install --quiet mutmut==3.8.1
	mkdir -p $(MUTATION_DIR)
	cd $(MUTATION_DIR) && for path in pyproject.toml tests content events docs functions; do ln -sfn ../../$$path $$path; done \
		&& ln -sfn ../../layers/nurture/python/nurture nurture
	cd $(MUTATION_DIR) && $(CURDIR)/$(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(foreach m,$(MUTANTS),'$(m)')
	cd $(MUTATION_DIR) && $(CURDIR)/$(BIN)/mutmut results

clean:
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache .mypy_cache .ruff_cache .hypothesis
