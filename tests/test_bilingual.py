"""The bilingual knowledge base: Chinese notes parsed, chunks linked to their twins, retrieval in
the question's language, a stale index refused, and answers that stay with their own question
when threads share one assistant. Real MiniLM, FAISS and bm25s; the shipped notes where named."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import start_server
from pmpprag.api import Assistant, RagConfig
from pmpprag.errors import StaleError
from pmpprag.index import IndexConfig, IndexError_, Retriever, build
from pmpprag.index.build import stale_inputs
from pmpprag.index.twins import link_twins
from pmpprag.ingest import IngestConfig
from pmpprag.ingest import run as ingest
from pmpprag.ingest.markdown import MarkdownError, parse_markdown
from pmpprag.ingest.stage import check_chunks
from pmpprag.rag.prompts import NOT_COVERED
from pmpprag.schema import Chunk, read_jsonl
from pmpprag.text import cjk_share, english_terms, prose_language

ROOT = Path(__file__).parents[1]
EN, ZH = ROOT / "data" / "corpus", ROOT / "data" / "corpus_zh"


def _chunk(cid: str, lang: str, section: str, text: str) -> Chunk:
    return Chunk(chunk_id=cid, text=text, chapter=5, chapter_title="t", section=section,
                 section_title="s", kind="text", n_tokens=10, source="x", lang=lang)  # fmt: skip


def test_every_english_chapter_has_a_chinese_twin_with_the_same_sections_and_listings() -> None:
    fence = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
    for english in sorted(EN.glob("ch*.md")):
        chinese = ZH / english.name
        assert chinese.is_file(), f"{chinese} is missing"
        en_blocks, zh_blocks = parse_markdown(english), parse_markdown(chinese)
        assert en_blocks[0].number == zh_blocks[0].number
        sections = [
            [b.number for b in blocks if b.kind == "section"] for blocks in (en_blocks, zh_blocks)
        ]
        assert sections[0] == sections[1], chinese.name
        zh_text = chinese.read_text(encoding="utf-8")
        missing = [
            b for b in fence.findall(english.read_text(encoding="utf-8")) if b not in zh_text
        ]
        assert not missing, f"{chinese.name}: a listing of {english.name} is not there verbatim"
        hanzi = len(re.findall(r"[\u4e00-\u9fff]", zh_text))
        # chapters 2-6 (the course's core) at least 8,000 Chinese characters, the others 3,000
        assert hanzi >= (8000 if 2 <= int(en_blocks[0].number) <= 6 else 3000), chinese.name


def test_chinese_chapter_heading_parses_and_a_wrong_one_is_named(tmp_path: Path) -> None:
    good = tmp_path / "ch05.md"
    good.write_text(
        "# 第 5 章：内存架构\n\n## 5.1 为什么\n\n共享内存（shared memory）很快。\n", "utf-8"
    )
    blocks = parse_markdown(good)
    assert (blocks[0].kind, blocks[0].number, blocks[0].text) == ("chapter", "5", "内存架构")
    assert blocks[1].number == "5.1"
    bad = tmp_path / "bad.md"
    bad.write_text("# 第五章 内存\n", "utf-8")
    with pytest.raises(MarkdownError, match=r"bad.md:1: heading"):
        parse_markdown(bad)


def test_language_of_prose_counts_chinese_characters_against_english_words() -> None:
    assert (
        prose_language("`__syncthreads()` 是线程块内的屏障同步（barrier synchronization）。")
        == "zh"
    )
    assert prose_language("__syncthreads() is a barrier for the threads of a block.") == "en"
    assert cjk_share("") == 0.0


def test_kernel_and_warp_stay_english_in_chinese_prose() -> None:
    assert english_terms("核函数（kernel）启动是异步的。") == "kernel 启动是异步的。"
    assert english_terms("每个 SM 最多 64 个线程束。") == "每个 SM 最多 64 个 warp。"
    assert (
        english_terms("线程束（warp）由 32 个线程组成，在核函数中")
        == "warp 由 32 个线程组成，在 kernel 中"
    )
    assert english_terms("线程块与网格") == "线程块与网格"  # block and grid stay Chinese


def test_twins_follow_the_shared_words_and_listings_in_order() -> None:
    listing = "```\nMds[ty][tx] = M[Row * Width + ph * TILE_WIDTH + tx];\n```"
    chunks = [
        _chunk("e0", "en", "5.4", "Shared memory is on-chip; a block's threads share it."),
        _chunk("e1", "en", "5.4", "Tiling loads Mds and Nds tiles.\n\n" + listing),
        _chunk("e2", "en", "5.4", "Boundary checks guard Row < Width and Col < Width."),
        _chunk("z0", "zh", "5.4", "共享内存位于芯片上，由线程块内的线程共享。"),
        _chunk("z1", "zh", "5.4", "分块把 Mds 与 Nds 载入。\n\n" + listing),
        _chunk("z2", "zh", "5.4", "边界检查保证 Row < Width 且 Col < Width。"),
        _chunk("z3", "zh", "5.5", "另一节没有英文对应，它没有孪生块。"),
    ]
    twins = {c.chunk_id: c.twins for c in link_twins(chunks)}
    assert twins["e1"] == ["z1"] and twins["z1"] == ["e1"]  # the shared listing
    assert "z2" in twins["e2"] and "e2" in twins["z2"]
    assert all(twins[c] for c in ("e0", "e1", "e2", "z0", "z1", "z2"))  # every chunk has one
    assert twins["z3"] == []


@pytest.fixture(scope="module")
def bilingual(corpus_index: Path) -> Retriever:
    return Retriever.load(corpus_index)


def test_retrieval_answers_in_the_question_language_through_either_text(
    bilingual: Retriever,
) -> None:
    zh = bilingual.retrieve("共享内存如何减少全局内存访问？", k=5)
    assert zh.language == "zh" and all(h.chunk.lang == "zh" for h in zh)
    assert any(name.endswith("~") for h in zh for name in h.ranks)  # found via the English text
    assert 0 < zh.confidence <= 1 and zh.seconds > 0
    en = bilingual.retrieve("How does shared memory reduce global memory traffic?", k=5)
    assert all(h.chunk.lang == "en" for h in en)
    forced = bilingual.retrieve("How does tiling work?", k=3, language="zh")
    assert all(h.chunk.lang == "zh" for h in forced)


def test_chinese_extractive_answer_writes_warp_in_english(corpus_index: Path) -> None:
    question = "什么是线程束分歧？它为什么会降低性能？"
    answer = Assistant.load(RagConfig(index=corpus_index)).ask(question)
    assert answer.mode.startswith("extractive") and answer.language == "zh"
    assert "warp" in answer.text and "线程束" not in answer.text
    notes = Assistant.load(RagConfig(index=corpus_index, english_terms=False)).ask(question)
    assert "线程束" in notes.text  # the notes' own wording, when asked for


def test_min_confidence_gate_applies_in_bm25_mode(corpus_index: Path) -> None:
    assistant = Assistant.load(RagConfig(index=corpus_index), **{"retriever.mode": "bm25"})
    assert assistant.ask("What is the best recipe for sourdough bread?").mode == "not-covered"


SIXTEEN = [
    "What does __syncthreads() do?", "什么是线程束分歧？", "How is a CSR matrix stored?",
    "What is the best recipe for sourdough bread?", "常量内存有什么特点？",
    "What is a Kogge-Stone scan?", "Which football club won the 1998 cup final?",
    "什么是合并访问？",
] * 2  # fmt: skip


def test_sixteen_threads_get_the_answers_of_their_own_questions(corpus_index: Path) -> None:
    assistant = Assistant.load(RagConfig(index=corpus_index))
    questions = SIXTEEN
    alone = [assistant.ask(q) for q in questions]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(assistant.ask, questions))
    for a, b in zip(alone, together, strict=True):
        assert b.question == a.question and b.mode == a.mode and b.text == a.text
        assert [h.chunk.chunk_id for h in b.passages] == [h.chunk.chunk_id for h in a.passages]
        assert [c.chunk_id for c in b.citations] == [c.chunk_id for c in a.citations]


@pytest.mark.slow
def test_sixteen_concurrent_requests_to_a_rag_server_with_eight_model_threads(
    corpus_index: Path, tmp_path: Path
) -> None:
    """Through the server, with RAG on and 8 batches in flight on one assistant: every reply
    (its quoted sentences and its not-covered decision are in the text; /predict's text has no
    citation markers) is its own question's."""
    import httpx

    answers = Assistant.load(RagConfig(index=corpus_index)).ask_many(SIXTEEN)
    expected = [a.plain_text for a in answers]
    assert sum(t in NOT_COVERED.values() for t in expected) >= 2  # the two off-topic questions
    args = ["--index", str(corpus_index), "--batches_in_flight", "8", "--batch_window_ms", "0"]
    server = start_server(args, tmp_path)
    url = next(server)

    def ask(question: str) -> str:
        reply = httpx.post(f"{url}/predict", json={"prompt": question}, timeout=120)
        return str(reply.raise_for_status().json()["response"])

    try:
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(ask, SIXTEEN))
    finally:
        server.close()  # stops the server process
    assert got == expected


def test_the_chain_names_the_stage_to_rerun_when_an_input_changes(tmp_path: Path) -> None:
    notes = tmp_path / "corpus_zh"
    notes.mkdir()
    chapter = next(ZH.glob("ch07-*.md"))
    shutil.copy(chapter, notes / chapter.name)
    chunks_file = tmp_path / "ingest" / "chunks.jsonl"
    ingest(IngestConfig(markdown=notes, out=tmp_path / "ingest"))
    manifest = json.loads((tmp_path / "ingest" / "manifest.json").read_text())
    assert manifest["languages"] == ["zh"] and manifest["notes_sha256"]
    index = tmp_path / "index"
    build(IndexConfig(chunks=chunks_file, out=index))
    chunks = read_jsonl(index / "chunks.jsonl", Chunk)
    assert {c.lang for c in chunks} == {"zh"} and all("-zh" in c.chunk_id for c in chunks)
    # the index records what its chunks were ingested from
    meta = json.loads((index / "manifest.json").read_text())
    assert meta["inputs"] == [
        {"path": str(notes), "kind": "notes", "sha256": manifest["notes_sha256"]}
    ]
    assert stale_inputs(meta) == []
    with (notes / chapter.name).open("a", encoding="utf-8") as fh:
        fh.write("\n新增的一段笔记。\n")
    assert stale_inputs(meta) == [str(notes)]
    # each stage says what to run: the retriever the index build, the build the ingest
    with pytest.raises(IndexError_, match=r"older than .*corpus_zh.*`pmpprag index build "
                       r"--chunks .*chunks.jsonl --out .*index`"):  # fmt: skip
        Retriever.load(index, None)
    with pytest.raises(StaleError, match=r"older than .*corpus_zh.*`pmpprag ingest --markdown "
                       r".*corpus_zh --out .*ingest`"):  # fmt: skip
        build(IndexConfig(chunks=chunks_file, out=index))
    ingest(IngestConfig(markdown=notes, out=tmp_path / "ingest"))
    assert check_chunks(chunks_file) is not None
    # chunks edited by hand after the ingest are caught too
    with chunks_file.open("a", encoding="utf-8") as fh:
        fh.write(chunks_file.read_text(encoding="utf-8").splitlines()[0] + "\n")
    with pytest.raises(StaleError, match=r"changed after `pmpprag ingest` wrote it"):
        check_chunks(chunks_file)
