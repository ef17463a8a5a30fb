"""QA generation: parsing teacher replies, the quality checks, the export, resuming, a real LLM."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pmpprag.generation import Generation, GeneratorConfig, SamplingConfig
from pmpprag.qagen import (
    ParseError,
    QagenConfig,
    bigram_jaccard,
    build_messages,
    check_pair,
    grounding,
    near_duplicates,
    parse_pairs,
    run,
)
from pmpprag.schema import Chunk, QAPair, RecordError
from pmpprag.testsets import HeldOut, read_testset

ROOT = Path(__file__).parents[1]
AUTHORED = ROOT / "data" / "qa" / "authored"


def _pair(**kw: object) -> QAPair:
    fields: dict = dict(id="t-1", chapter=4, section="4.4 Warps", lang="en", kind="concept",
                        question="How many threads does a CUDA warp have?",
                        answer="A warp has 32 threads.", rejected="A warp has 16 threads.")  # fmt: skip
    return QAPair(**{**fields, **kw})


def test_parse_pairs_accepts_fenced_or_wrapped_json_and_rejects_the_rest() -> None:
    reply = 'Sure!\n```json\n{"pairs": [{"kind": "concept", "question": "What is a warp in CUDA?", "answer": "32 threads."}]}\n```'
    assert parse_pairs(reply)[0].question == "What is a warp in CUDA?"
    wrapped = 'Here: {"pairs": [{"question": "Why tile matrix multiply?", "answer": "Reuse."}]} ok'
    assert parse_pairs(wrapped)[0].kind == "concept"
    for bad, why in [("no json here", "no JSON object"), ('{"pairs": [}', "invalid JSON"),
                     ('{"pairs": []}', "not a pairs object"),
                     ('{"pairs": [{"question": "short", "answer": "x"}]}', "not a pairs object")]:  # fmt: skip
        with pytest.raises(ParseError, match=why):
            parse_pairs(bad)


def test_messages_hold_one_worked_example_then_the_chunk() -> None:
    chunk = Chunk(chunk_id="c04.4-000-x", text="A warp is 32 threads.", chapter=4,
                  chapter_title="Compute", section="4.4", section_title="Warps and SIMD hardware",
                  kind="text", n_tokens=6, source="notes.md")  # fmt: skip
    messages = build_messages(chunk, 3, "zh")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "write 1 question" in messages[0]["content"]
    assert json.loads(messages[1]["content"])["pairs"][0]["question"].startswith("CUDA中")
    assert "write 3 question" in messages[2]["content"] and "简体中文" in messages[2]["content"]
    assert "Chapter 4, 4.4 Warps and SIMD hardware" in messages[2]["content"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"question": "According to the passage, what is a warp?"}, "not-self-contained"),
        ({"lang": "zh", "question": "根据上文，warp有多少个线程？", "answer": "32个。"}, "not-self-contained"),
        ({"lang": "zh"}, "language"),
        ({"lang": "zh", "question": "warp有多少个线程？", "answer": "A warp always has thirty two threads in total, whatever the block size."},
         "language"),
        ({"lang": "zh", "question": "192个线程有几个warp？", "answer": "192 / 32 = 6。"}, None),
        ({"question": "什么是warp？"}, "language"),
        ({"question": "Warp?"}, "length"),
        ({"kind": "choice"}, "choice-format"),
        ({"kind": "choice", "question": "Warp size?\nA. 8\nB. 16\nC. 32\nD. 64", "answer": "32"},
         "choice-format"),
        ({"kind": "choice", "question": "Warp size?\nA. 8\nB. 16\nC. 32\nD. 64", "answer": "C. 32."},
         None),
        ({"kind": "judge", "answer": "A warp has 32 threads."}, "judge-format"),
        ({"kind": "judge", "lang": "zh", "question": "判断正误：warp有32个线程。", "answer": "正确。是32个。"},
         None),
    ],
)  # fmt: skip
def test_check_pair(changes: dict, reason: str | None) -> None:
    assert check_pair(_pair(**changes)) == reason


def test_grounding_and_near_duplicates() -> None:
    source = "A warp has 32 threads; __syncthreads() waits for every thread of the block."
    assert grounding("__syncthreads() waits for every thread of the block", source) == 1.0
    assert grounding("It flushes the L2 cache to DRAM", source) < 0.5
    vectors = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0], [1.0, 0.0]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    questions = ["What is a warp?", "What's a warp?", "What is a block?", "what is a WARP"]
    assert near_duplicates(questions, vectors @ vectors.T, threshold=0.95) == [1, 3]
    chinese = ["什么是线程束（warp）？", "什么是线程束warp？", "共享内存有什么作用？"]
    similarity = bigram_jaccard(chinese)
    assert similarity[0, 1] > 0.7 > similarity[0, 2]
    assert near_duplicates(chinese, similarity, threshold=0.7) == [1]


def test_the_shipped_team_pairs_pass_every_check() -> None:
    pairs = [p for path in sorted(AUTHORED.glob("*.jsonl")) for p in _read(path)]
    assert len(pairs) >= 300
    assert len({p.id for p in pairs}) == len(pairs)
    assert [p for p in pairs if check_pair(p)] == []
    # pairs that repeat a sample or development item are known and dropped by `pmpprag qagen`
    held_out = HeldOut.of([i for name in ("eval/sample_en.jsonl", "eval/sample_zh.txt", "data/dev/mcq_dev.jsonl")
                           for i in read_testset(ROOT / name)])  # fmt: skip
    repeats = {p.id for p in pairs if held_out.match(p.question, p.answer)}
    assert len(repeats) <= 10, repeats
    langs = Counter(p.lang for p in pairs)
    assert abs(langs["en"] - langs["zh"]) <= 0.1 * len(pairs)
    assert all(p.rejected for p in pairs)  # every pair can also train DPO


def _read(path: Path) -> list[QAPair]:
    from pmpprag.schema import read_jsonl

    pairs = read_jsonl(path, QAPair)
    assert {p.chapter for p in pairs} == {int(path.stem[2:])}, path
    return pairs


def _authored(tmp_path: Path) -> Path:
    folder = tmp_path / "authored"
    folder.mkdir()
    rows = [
        _pair(id="a-1"),
        _pair(id="a-2", question="How many threads are in one CUDA warp?"),  # near-duplicate
        _pair(id="a-3", question="According to the text, what is a block?"),  # not self-contained
        _pair(id="a-4", lang="zh", question="共享内存的作用是什么？", answer="让同一线程块的线程共享数据。",
              rejected=None),
        _pair(id="a-5", chapter=5, question="Why does tiling reduce global memory traffic?",
              answer="Each element loaded into shared memory is reused by TILE_WIDTH threads."),
    ]  # fmt: skip
    (folder / "ch04.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in rows))
    return folder


def test_qagen_checks_dedupes_splits_and_exports_llama_factory_files(tmp_path: Path) -> None:
    held_out = tmp_path / "test.jsonl"  # a test item that pair a-5 repeats nearly word for word
    held_out.write_text(json.dumps({"id": "t-9", "type": "open", "question": "why does TILING reduce "
                        "global memory traffic??", "answer": "Reuse."}) + "\n")  # fmt: skip
    result = run(QagenConfig(authored=_authored(tmp_path), out=tmp_path / "out", val_fraction=0.0,
                             held_out=[held_out]))  # fmt: skip
    out = tmp_path / "out"
    assert [p.id for p in result.pairs] == ["a-1", "a-4"]
    assert result.rejected == {"not-self-contained": 1, "held-out-overlap": 1, "duplicate": 1}
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["pmpp_qa"]["file_name"] == "pmpp_qa_train.json"
    assert info["pmpp_qa_dpo"]["ranking"] is True
    train = json.loads((out / "pmpp_qa_train.json").read_text())
    assert train[1] == {
        "instruction": "共享内存的作用是什么？",
        "input": "",
        "output": "让同一线程块的线程共享数据。",
    }
    dpo = json.loads((out / "pmpp_qa_dpo.json").read_text())
    assert len(dpo) == 1 and set(dpo[0]) == {"instruction", "input", "chosen", "rejected"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["by_chapter"] == {"4": {"en": 1, "zh": 1}}
    assert (out / "stats.png").stat().st_size > 1000
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert {r["id"]: r["reason"] for r in rejected} == {
        "a-3": "not-self-contained",
        "a-5": "held-out-overlap",
        "a-2": "duplicate",
    }


def test_qagen_names_the_bad_line_of_a_pair_file(tmp_path: Path) -> None:
    folder = _authored(tmp_path)
    with (folder / "ch04.jsonl").open("a") as fh:
        fh.write('{"id": "a-9", "chapter": 4}\n')
    with pytest.raises(RecordError, match=r"ch04.jsonl:6: not a valid QAPair"):
        run(QagenConfig(authored=folder, out=tmp_path / "out", held_out=[]))
    assert not (tmp_path / "out" / "pairs.jsonl").exists()


def _chunks(tmp_path: Path, n: int) -> Path:
    text = ("Within a block, __syncthreads() is a barrier: every thread of the block must reach "
            "it before any thread continues, and writes before it are visible after it.")  # fmt: skip
    chunks = [Chunk(chunk_id=f"c04.3-{i:03d}-x", text=f"{text} (part {i})", chapter=4, chapter_title="Compute",
                    section="4.3", section_title="Synchronization", kind="text", n_tokens=40,
                    source="notes.md") for i in range(n)]  # fmt: skip
    path = tmp_path / "chunks.jsonl"
    path.write_text("".join(c.model_dump_json() + "\n" for c in chunks))
    return path


class ScriptedTeacher:
    """Replies with one good pair, except for chunk part 1 (not JSON)."""

    name = "scripted"
    context_window = 8192

    def __init__(self) -> None:
        self.prompts = 0

    def generate(self, prompts: list, sampling: SamplingConfig) -> list[Generation]:
        self.prompts += len(prompts)
        out = []
        for messages in prompts:
            text = messages[-1]["content"]
            chinese = "简体中文" in text
            pair = {"kind": "concept",
                    "question": "CUDA中__syncthreads()的作用是什么？" if chinese else "What does __syncthreads() do within a block?",
                    "answer": "它是线程块内的屏障。" if chinese else "It is a barrier: every thread of the block must reach it before any continues.",
                    "rejected": "It synchronizes the whole grid."}  # fmt: skip
            reply = "I cannot" if "(part 1)" in text else json.dumps({"pairs": [pair]})
            out.append(Generation(reply, 10, 10, 0.0, 0.1))
        return out


def test_generation_counts_bad_replies_and_resumes_saved_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pmpprag.qagen import stage

    teacher = ScriptedTeacher()
    monkeypatch.setattr(stage, "load_generator", lambda cfg: teacher)
    cfg = QagenConfig(authored=None, chunks=_chunks(tmp_path, 3), out=tmp_path / "out",
                      batch_size=2, val_fraction=0.0, held_out=[])  # fmt: skip
    result = run(cfg)
    assert teacher.prompts == 6  # 3 chunks x (en, zh)
    assert result.parse_failures == 2  # chunk 001, both languages
    # the 4 good replies are the same two questions: one per language survives de-duplication
    assert sorted(p.lang for p in result.pairs) == ["en", "zh"]
    assert result.rejected == {"duplicate": 2}
    assert len(list((tmp_path / "out" / "raw").glob("batch-*.json"))) == 3

    (tmp_path / "out" / "raw" / "batch-00002.json").unlink()  # as if interrupted in batch 2
    again = run(cfg)
    assert teacher.prompts == 6 + 2  # only the missing batch is generated again
    assert again.parse_failures == 2 and len(again.pairs) == 2


@pytest.mark.slow
def test_generation_with_a_real_llm(tmp_path: Path, model_cache: Path) -> None:
    """SmolLM2-135M as the teacher: every reply is either a checked pair or a counted failure."""
    cfg = QagenConfig(authored=None, chunks=_chunks(tmp_path, 2), out=tmp_path / "out",
                      languages=["en"], generator=GeneratorConfig(), held_out=[],
                      sampling=SamplingConfig(max_new_tokens=160))  # fmt: skip
    result = run(cfg)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    replies = stats["parse_failures"] + len(
        {p.source for p in result.pairs} | {r for r in _rejected_sources(tmp_path / "out")}
    )
    assert replies == 2
    assert stats["parse_failures"] == result.parse_failures
    for batch in (tmp_path / "out" / "raw").glob("*.json"):
        saved = json.loads(batch.read_text())
        assert all(f["reply"] for f in saved["failures"])  # the raw reply is kept for inspection


def _rejected_sources(out: Path) -> set[str]:
    lines = (out / "rejected.jsonl").read_text().splitlines()
    return {json.loads(line)["source"] for line in lines}
