"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache shared by the session's tests, so a packaged GGUF is converted once.

    ``PMPPRAG_TEST_CACHE`` points it at a persistent folder for quicker local re-runs.
    """
    path = Path(os.environ.get("PMPPRAG_TEST_CACHE") or tmp_path_factory.mktemp("pmpprag-cache"))
    os.environ["PMPPRAG_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped corpus, typeset, ingested and indexed for real (about a minute on 2 cores)."""
    from pmpprag.index import IndexConfig, build
    from pmpprag.ingest import CorpusPdfConfig, IngestConfig, build_pdf, run

    root = tmp_path_factory.mktemp("corpus-index")
    corpus = Path(__file__).parents[1] / "data" / "corpus"
    pdf = build_pdf(CorpusPdfConfig(corpus=corpus, out=root / "corpus.pdf")).path
    run(IngestConfig(pdf=pdf, out=root / "ingest"))
    build(IndexConfig(chunks=root / "ingest" / "chunks.jsonl", out=root / "index"))
    return root / "index"
