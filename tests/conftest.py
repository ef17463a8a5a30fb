"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set for the whole session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pmpprag.eval.grade import GradeError, wait_ready

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
    """The shipped notes as the product indexes them, for real (about 1.5 minutes on 2 cores):
    the English notes typeset and ingested as a PDF, the Chinese notes ingested as Markdown."""
    from pmpprag.index import IndexConfig, build
    from pmpprag.ingest import CorpusPdfConfig, IngestConfig, build_pdf, run

    root = tmp_path_factory.mktemp("corpus-index")
    corpus = Path(__file__).parents[1] / "data" / "corpus"
    pdf = build_pdf(CorpusPdfConfig(corpus=corpus, out=root / "corpus.pdf")).path
    run(IngestConfig(pdf=pdf, out=root / "ingest"))
    run(IngestConfig(markdown=corpus.parent / "corpus_zh", out=root / "ingest-zh"))
    build(
        IndexConfig(
            chunks=root / "ingest" / "chunks.jsonl",
            zh_chunks=root / "ingest-zh" / "chunks.jsonl",
            out=root / "index",
        )
    )
    return root / "index"


@pytest.fixture(scope="session")
def tiny_model_and_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-layer random Llama with SmolLM2's tokenizer, and a random LoRA adapter for it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pmpprag import models

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(models.resolve("smollm2-135m-instruct").path_or_id)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    model = LlamaForCausalLM(config)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(root / "adapter")
    return root / "model", root / "adapter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: list[str], tmp: Path) -> Iterator[str]:
    """``pmpprag serve ARGS`` in a subprocess on a free port; yields its URL once GET / answers."""
    port = free_port()
    log = (tmp / f"server-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pmpprag.cli", "serve", "--port", str(port), *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client() as client:
            wait_ready(client, url, 300, alive=lambda: proc.poll() is None)
    except GradeError as err:
        proc.kill()
        raise RuntimeError(f"{err}: {(tmp / f'server-{port}.log').read_text()[-2000:]}") from err
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
