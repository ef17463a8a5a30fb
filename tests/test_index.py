"""Index and retrieval with real FAISS, bm25s and MiniLM on a small chunk set."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest

from pmpprag.index import (
    IndexConfig,
    IndexError_,
    Retriever,
    RetrieverConfig,
    add,
    build,
    load_glossary,
    tokenize,
)
from pmpprag.index.lexical import Glossary
from pmpprag.schema import Chunk, write_jsonl

PASSAGES = [
    (
        4,
        "4.3",
        "Barrier synchronization",
        "__syncthreads() is a barrier: every thread of the block waits until all threads of the block reach it.",
    ),
    (
        4,
        "4.4",
        "Warps",
        "A block is partitioned into warps of 32 threads; threadIdx.x varies fastest when threads are linearised.",
    ),
    (
        4,
        "4.5",
        "Control divergence",
        "When threads of one warp take different paths of an if-else, the warp executes both paths one after the other: control divergence.",
    ),
    (
        5,
        "5.3",
        "Memory types",
        "Shared memory is on-chip memory shared by the threads of a block; declare it with __shared__.",
    ),
    (
        5,
        "5.5",
        "Tiled matrix multiplication",
        "Tiling loads Mds and Nds tiles of TILE_WIDTH x TILE_WIDTH into shared memory to cut global memory traffic.",
    ),
    (
        6,
        "6.1",
        "Memory coalescing",
        "When consecutive threads of a warp access consecutive global memory addresses, the accesses are coalesced into few DRAM bursts.",
    ),
    (
        7,
        "7.3",
        "Constant memory",
        "Convolution filters live in constant memory, copied with cudaMemcpyToSymbol and broadcast by the constant cache.",
    ),
    (
        10,
        "10.2",
        "Reduction trees",
        "A parallel reduction sums N values with a tree in log2 N steps and N - 1 additions.",
    ),
    (
        11,
        "11.2",
        "Kogge-Stone scan",
        "The Kogge-Stone prefix sum performs O(N log N) additions in log2 N steps.",
    ),
    (14, "14.2", "CSR", "The CSR format stores rowPtrs, colIdx and values of a sparse matrix."),
]


def make_chunks(offset: int = 0, passages: list = PASSAGES) -> list[Chunk]:
    return [
        Chunk(
            chunk_id=f"c{ch:02d}.{sec}-{i + offset:03d}",
            text=text,
            chapter=ch,
            chapter_title=f"Chapter {ch}",
            section=sec,
            section_title=title,
            kind="text",
            n_tokens=len(text.split()),
            source="test",
        )
        for i, (ch, sec, title, text) in enumerate(passages)
    ]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("idx")
    write_jsonl(root / "chunks.jsonl", make_chunks())
    build(IndexConfig(chunks=root / "chunks.jsonl", out=root / "index"))
    return root / "index"


@pytest.fixture(scope="module")
def retriever(index_dir: Path) -> Retriever:
    return Retriever.load(index_dir)


def test_tokenize_keeps_cuda_identifiers_and_segments_chinese() -> None:
    tokens = tokenize(
        "What does __syncthreads() do to blockIdx.x, TILE_WIDTH and cudaMemcpyHostToDevice?"
    )
    assert {"__syncthreads", "blockidx.x", "tile_width", "cudamemcpyhosttodevice"} <= set(tokens)
    assert {"tile", "width", "host", "device"} <= set(tokens)  # parts of compound identifiers
    assert "共享内存" in tokenize("如何利用共享内存减少全局内存访问")


def test_idf_weights_the_rare_terms_of_a_question() -> None:
    from pmpprag.index.lexical import BM25Index
    from pmpprag.rag.extractive import _overlap

    index = BM25Index.build(
        ["the kernel reads a tile", "a kernel with a warp", "kernel scan 共享内存"]
    )
    assert index.idf("scan") > index.idf("kernel") > 0 and index.idf("unseen") >= index.idf("scan")
    terms = {"kernel", "scan"}
    # unweighted, either word is half the question; weighted, the rare one counts for more
    assert _overlap(terms, "a scan") == _overlap(terms, "a kernel") == 0.5
    assert _overlap(terms, "a scan", index.idf) > 0.5 > _overlap(terms, "a kernel", index.idf)
    assert _overlap(terms, "kernel scan", index.idf) == pytest.approx(1.0)


def test_glossary_is_reviewed_size_and_expands_longest_match() -> None:
    glossary = load_glossary()
    assert len(glossary.entries) >= 300
    assert glossary.entries["共享内存"][0] == "shared memory"
    assert glossary.entries["线程束"][0] == "warp"
    small = Glossary({"内存": ("memory",), "共享内存": ("shared memory",)})
    assert small.find("共享内存很快") == ["共享内存"]


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("What does __syncthreads() do?", "4.3"),
        ("How do Mds and Nds tiles reduce global memory traffic?", "5.5"),
        ("什么是线程束分歧？", "4.5"),
        ("CUDA中矩阵乘法如何利用共享内存减少全局内存访问？", "5.5"),
        ("卷积核为什么放在常量内存中？", "7.3"),
        ("什么是合并访问？", "6.1"),
    ],
)
def test_hybrid_finds_the_passage_in_english_and_chinese(
    retriever: Retriever, question: str, section: str
) -> None:
    hits = retriever.retrieve(question, k=2)
    assert hits[0].chunk.section == section, [h.chunk.section for h in hits]
    assert hits[0].rank == 1 and hits[0].score > 0 and hits[0].ranks


def test_modes_and_chapter_filter(retriever: Retriever) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        assert (
            retriever.retrieve("constant memory convolution filter", k=1, mode=mode)[
                0
            ].chunk.section
            == "7.3"
        )
    hits = retriever.retrieve("shared memory", k=5, chapters={4})
    assert hits and {h.chunk.chapter for h in hits} == {4}
    with pytest.raises(ValueError, match="no indexed chunk is in chapters"):
        retriever.retrieve("shared memory", chapters={99})
    with pytest.raises(ValueError, match="empty query"):
        retriever.retrieve("   ")


def test_manifest_records_model_and_settings(index_dir: Path) -> None:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["embedding_model"] == "minilm-l6" and manifest["dimension"] == 384
    assert manifest["chunks"] == len(PASSAGES) and manifest["faiss_type"] == "flat"
    assert set(manifest["files"]) >= {"chunks.jsonl", "dense.faiss"}


def test_corrupt_and_mismatched_files_are_named(index_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(index_dir, broken)
    with (broken / "dense.faiss").open("r+b") as fh:
        fh.seek(64)
        fh.write(b"\x00garbage\x00")
    with pytest.raises(IndexError_, match=r"dense\.faiss does not match the manifest"):
        Retriever.load(broken)
    (broken / "dense.faiss").write_bytes((broken / "dense.faiss").read_bytes()[:100])  # truncated
    with pytest.raises(IndexError_, match=r"dense\.faiss cannot be read by FAISS"):
        Retriever.load(broken, RetrieverConfig(verify=False))
    other = tmp_path / "other"
    shutil.copytree(index_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["dimension"] = 768
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexError_, match=r"dimension 384, manifest says 768"):
        Retriever.load(other)
    with pytest.raises(IndexError_, match="no index at"):
        Retriever.load(tmp_path / "nowhere")


def test_interrupted_build_keeps_previous_index(
    index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "index"
    shutil.copytree(index_dir, target)
    before = (target / "manifest.json").read_text()
    write_jsonl(tmp_path / "more.jsonl", make_chunks(100))
    build_module = importlib.import_module("pmpprag.index.build")

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module.BM25Index, "build", boom)
    with pytest.raises(KeyboardInterrupt):
        build(IndexConfig(chunks=tmp_path / "more.jsonl", out=target))
    assert (target / "manifest.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index.")]
    assert len(Retriever.load(target).chunks) == len(PASSAGES)


def test_incremental_add_embeds_only_new_chunks(
    index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "index"
    shutil.copytree(index_dir, target)
    extra = [
        (
            12,
            "12.3",
            "Co-rank",
            "The co-rank function finds how many elements of A and B precede output position k in a merge.",
        )
    ]
    write_jsonl(tmp_path / "new.jsonl", make_chunks(0) + make_chunks(50, extra))
    build_module = importlib.import_module("pmpprag.index.build")

    embedded: list[int] = []
    real = build_module.embed_chunks
    monkeypatch.setattr(
        build_module,
        "embed_chunks",
        lambda e, chunks, p, b, *twins: (
            embedded.append(len(chunks)) or real(e, chunks, p, b, *twins)
        ),
    )
    result = add(IndexConfig(chunks=tmp_path / "new.jsonl", out=target))
    assert result.added == 1 and embedded == [1]
    retriever = Retriever.load(target)
    assert len(retriever.chunks) == len(PASSAGES) + 1
    assert retriever.retrieve("co-rank function in merge", k=1)[0].chunk.section == "12.3"
    with pytest.raises(IndexError_, match="was built with 'minilm-l6'"):
        add(IndexConfig(chunks=tmp_path / "new.jsonl", out=target, embedding_model="org/other"))


@pytest.mark.parametrize("faiss_type", ["hnsw", "ivf"])
def test_approximate_index_types(tmp_path: Path, faiss_type: str) -> None:
    write_jsonl(tmp_path / "chunks.jsonl", make_chunks())
    build(IndexConfig(chunks=tmp_path / "chunks.jsonl", out=tmp_path / "ix", faiss_type=faiss_type))  # type: ignore[arg-type]
    retriever = Retriever.load(tmp_path / "ix")
    assert retriever.stored.manifest["faiss_type"] == faiss_type
    assert retriever.retrieve("CSR rowPtrs colIdx", k=1, mode="dense")[0].chunk.section == "14.2"


def test_cross_encoder_reranks_the_fused_candidates(index_dir: Path, tmp_path: Path) -> None:
    """A real (tiny, random) cross-encoder: the head of the list follows its scores."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pmpprag import models

    tokenizer = AutoTokenizer.from_pretrained(models.resolve("minilm-l6").path_or_id)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=1)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(tmp_path / "ce")
    tokenizer.save_pretrained(tmp_path / "ce")
    retriever = Retriever.load(
        index_dir, RetrieverConfig(reranker=str(tmp_path / "ce"), rerank_top=5)
    )
    query = "shared memory tiles"
    hits = retriever.retrieve(query, k=5)
    scores = CrossEncoder(str(tmp_path / "ce")).predict([(query, h.chunk.text) for h in hits])
    assert [round(h.score, 4) for h in hits] == sorted(
        (round(float(s), 4) for s in scores), reverse=True
    )
