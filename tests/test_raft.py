"""Grounded (RAFT) training data: citations, rejected answers, and a real build over the index."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pmpprag.schema import Hit, QAPair, read_jsonl
from pmpprag.train.raft import RaftConfig, cite, loop_answer, run

ROOT = Path(__file__).resolve().parent.parent


def test_cite_marks_the_first_real_sentence_and_the_last() -> None:
    assert cite("It is the barrier. All threads wait. Then they go on.", 2) == (
        "It is the barrier. [2] All threads wait. Then they go on. [2]"
    )
    # a bare verdict is not the sentence cited; Chinese takes the marker without a space
    assert (
        cite("错误。kernel 不一定能达到这个上限。", 1) == "错误。kernel 不一定能达到这个上限。[1]"
    )
    assert cite("The ceiling is 0.25 FLOP/B x 900 GB/s = 225 GFLOPS.", 3).endswith("GFLOPS. [3]")


def test_a_looping_answer_repeats_its_first_clause_without_cutting_numbers() -> None:
    assert loop_answer("The ceiling is 0.25 FLOP/B. Then more.").count("0.25 FLOP/B") == 6
    assert loop_answer("共享内存位于片上，延迟低。") == "，".join(["共享内存位于片上"] * 6)


@pytest.mark.slow
def test_raft_build_over_the_real_index(corpus_index: Path, tmp_path: Path) -> None:
    from pmpprag.rag.pipeline import Assistant, RagConfig
    from pmpprag.rag.prompts import NOT_COVERED
    from pmpprag.train.data import load_rows, to_conversations

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    chosen = [p for p in read_jsonl(ROOT / "data/qa/authored/ch05.jsonl", QAPair)][:8]
    chosen += [p for p in read_jsonl(ROOT / "data/qa/authored/ch02.jsonl", QAPair)][:8]
    # a pair that repeats a held-out test question must not reach the training data
    held = tmp_path / "held.jsonl"
    question = (
        "In a tiled matrix multiplication kernel, why must threads call __syncthreads() twice?"
    )
    held.write_text(json.dumps({"id": "h1", "type": "open", "question": question,
                                "answer": "x"}) + "\n", encoding="utf-8")  # fmt: skip
    leak = chosen[0].model_copy(update={"id": "leak", "question": question})
    lines = [p.model_dump_json() for p in [*chosen, leak]]
    (pairs / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = RaftConfig(pairs=[pairs], index=corpus_index, out=tmp_path / "raft", held_out=[held],
                     no_gold_share=0.25, val_fraction=0.0)  # fmt: skip
    result = run(cfg)
    assert result.stats["pairs_rejected"] == {"held-out": 1}
    assert result.stats["with_gold"] == 16 and result.stats["without_gold"] >= 3
    rows = json.loads((tmp_path / "raft" / "pmpp_raft_train.json").read_text(encoding="utf-8"))
    assert all(r["id"] != "leak" for r in rows)
    by_id = {p.id: p for p in chosen}
    assistant = Assistant.load(RagConfig(index=corpus_index, mode="abstractive"))
    chunks = {c.chunk_id: c for c in assistant.retriever.stored.chunks}  # type: ignore[union-attr]
    for row in rows:
        pair = by_id[row["id"]]
        section = pair.section.split()[0]
        given = [chunks[i] for i in row["passages"]]
        # the prompt is exactly the one the assistant sends for these passages
        hits = [Hit(chunk=c, score=0.0, rank=i + 1) for i, c in enumerate(given)]
        messages, used = assistant.prompt(pair.question, hits)
        assert [h.chunk.chunk_id for h in used] == row["passages"]
        assert (row["system"], row["instruction"]) == (
            messages[0]["content"],
            messages[1]["content"],
        )
        if row["gold"]:
            cited = {int(n) for n in re.findall(r"\[(\d+)\]", row["output"])}
            assert len(cited) == 1
            gold = given[cited.pop() - 1]
            assert (gold.chapter, gold.section) == (pair.chapter, section)
            assert re.sub(r"\s*\[\d+\]", "", row["output"]).replace(" ", "") == (
                pair.answer.replace(" ", "")
            )
        else:
            assert row["output"] == NOT_COVERED[pair.lang]
            assert all((c.chapter, c.section) != (pair.chapter, section) for c in given)
    dpo = load_rows(tmp_path / "raft" / "pmpp_raft_dpo.json", "dpo")
    assert {r["rejection"] for r in dpo} >= {
        "plausible-wrong", "looping", "unsupported", "needless-refusal"}  # fmt: skip
    refusals = set(NOT_COVERED.values())
    for r in dpo:  # the refusal is chosen without the gold passage and rejected with it
        assert (r["rejection"] == "needless-refusal") == (r["rejected"] in refusals)
        assert (r["rejection"] == "unsupported") == (r["chosen"] in refusals)
    assert all(r["chosen"] != r["rejected"] for r in dpo)
    conversations = to_conversations(
        load_rows(tmp_path / "raft" / "pmpp_raft_train.json", "sft"), "sft"
    )
    assert [m["role"] for m in conversations[0]["prompt"]] == ["system", "user"]
    info = json.loads((tmp_path / "raft" / "dataset_info.json").read_text())
    assert info["pmpp_raft"]["columns"]["system"] == "system" and info["pmpp_raft_dpo"]["ranking"]
    assert (tmp_path / "raft" / "stats.png").stat().st_size > 1000


def test_training_refuses_data_edited_after_its_stage_wrote_it(tmp_path: Path) -> None:
    from pmpprag.errors import StaleError
    from pmpprag.schema import check_stage_output, write_stage_manifest
    from pmpprag.train.stage import TrainConfig
    from pmpprag.train.stage import run as train

    data = tmp_path / "pmpp_raft_train.json"
    data.write_text(json.dumps([{"instruction": "q", "input": "", "output": "a"}]), "utf-8")
    write_stage_manifest(tmp_path, [data.name], "pmpprag raft --config x/config.yaml")
    check_stage_output(data)  # as written: fine
    data.write_text(json.dumps([{"instruction": "q", "input": "", "output": "b"}]), "utf-8")
    with pytest.raises(StaleError, match=r"changed after `pmpprag raft --config x/config.yaml`"):
        train(TrainConfig(data=data, out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # refused before anything was written
