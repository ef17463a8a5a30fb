"""Evaluation: readers, metrics (the course metric by hand), ragas, eval run / grade / ablate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from conftest import start_server
from pmpprag.config import load_config
from pmpprag.eval.metrics import cjk_rouge_l, course_rouge_l, keypoint_coverage, rouge_l
from pmpprag.eval.overlap import overlap_report
from pmpprag.eval.run import EvalRunConfig, score_items, summarise
from pmpprag.rag.prompts import split_choices
from pmpprag.testsets import TestItem, TestSetError, read_testset

ROOT = Path(__file__).parents[1]


# --- readers ---------------------------------------------------------------------------------


def test_shipped_sample_sets_hold_100_items_each() -> None:
    en = read_testset(ROOT / "eval" / "sample_en.jsonl")
    zh = read_testset(ROOT / "eval" / "sample_zh.txt")
    assert len(en) >= 100 and len(zh) >= 100
    assert {i.type for i in en} == {"mcq", "open"}
    assert all(i.key_points for i in en if i.type == "open")
    assert len({i.chapter for i in en}) >= 10


def test_course_text_format_with_sections_code_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(
        "一、基础题（2道，概念）\n"
        "（1. 问题：什么是warp？\n答案：warp是32个线程。\n\n"
        "（2. 问题：写一个kernel\n答案：如下：\n__global__ void k(float* a) {\n\n  a[0] = 1;\n}\n\n"
        "二、适中题（1道，算法）\n（3. 问题：tiling的作用？\n答案：减少全局内存访问。\n",
        encoding="utf-8",
    )
    items = read_testset(path)
    assert [i.id for i in items] == ["zh-001", "zh-002", "zh-003"]
    assert "a[0] = 1;" in items[1].answer and "\n\n" in items[1].answer
    assert items[0].section == "一、基础题（2道，概念）" and items[2].section.startswith("二、")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.jsonl", '{"id": "1", "question": "q", "answer": "a"}\n{not json\n', ":2: not JSON"),
        (
            "b.jsonl",
            '{"id": "1", "type": "mcq", "question": "q", "choices": ["x", "y"], "answer": "E"}\n',
            ":1: mcq answer must be a choice letter",
        ),
        ("c.txt", "（1. 问题：q\n（2. 问题：r\n答案：s\n", ":1: item zh-001 has 问题 but no 答案"),
        ("d.txt", "随便一行\n", ":1: expected an item"),
        ("e.csv", "q,a\nx,y\n", ":1: the header needs 'question' and 'answer'"),
        ("f.csv", "question,answer\n,y\n", ":2: empty question"),
        ("g.yaml", "x", "unknown test-set format"),
    ],
)
def test_malformed_test_sets_name_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TestSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_testset(path)


def test_csv_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id,question,answer\nq1,"What is a warp?","32 threads"\n', encoding="utf-8")
    (item,) = read_testset(path)
    assert (item.id, item.question, item.answer, item.type) == (
        "q1",
        "What is a warp?",
        "32 threads",
        "open",
    )


def test_inline_options_are_split_from_the_question() -> None:
    question, choices = split_choices(
        "Which is on chip?\nA. global memory\nB、shared memory\n(C) DRAM"
    )
    assert question == "Which is on chip?" and choices == ["global memory", "shared memory", "DRAM"]
    assert split_choices("A. lone line\nnot an option") == ("A. lone line\nnot an option", [])


# --- metrics ---------------------------------------------------------------------------------


def test_course_metric_on_hand_computed_examples() -> None:
    # rouge-score's default tokenizer keeps only [a-z0-9]: the Chinese words vanish, "cuda" stays
    assert course_rouge_l("共享内存 CUDA", "共享 CUDA") == pytest.approx(1.0)
    assert course_rouge_l("共享内存位于片上", "共享内存在片上") == 0.0  # no Latin token left
    assert course_rouge_l("", "anything") == 0.0 and course_rouge_l("   ", "x") == 0.0
    # 5 vs 7 tokens, LCS "warp has 32 threads" = 4: F = 2 * 4 / (5 + 7)
    assert course_rouge_l(
        "the warp has 32 threads", "a warp has 32 threads in cuda"
    ) == pytest.approx(8 / 12)
    # answer tokens {syncthreads, warp}, reference {syncthreads, block}: LCS 1, P = R = 1/2
    assert course_rouge_l(
        "使用 __syncthreads() 同步 warp", "__syncthreads() 是屏障同步，作用于 block"
    ) == pytest.approx(0.5)
    # mean over items, an empty answer counts as 0
    items = [TestItem(id=str(i), question="q", answer="warp has 32 threads") for i in range(2)]
    rows = score_items(items, ["warp has 32 threads", ""])
    assert summarise(rows, 1.0).quality.open.course_rouge_l == pytest.approx(0.5)


def test_retrieval_tokenizer_leaves_the_course_metrics_jieba_alone() -> None:
    import jieba

    from pmpprag.index.lexical import tokenize

    plain = jieba.lcut("计算与全局内存访问比")  # a glossary term, cut by the default dictionary
    assert "计算与全局内存访问比" in tokenize(
        "计算与全局内存访问比"
    )  # the retriever keeps it whole
    assert jieba.lcut("计算与全局内存访问比") == plain and len(plain) > 1


def test_cjk_variant_keeps_chinese_words() -> None:
    assert cjk_rouge_l("共享内存位于片上", "共享内存位于片上") == pytest.approx(1.0)
    assert 0 < cjk_rouge_l("共享内存位于片上", "共享内存在片上，速度快") < 1
    assert cjk_rouge_l("", "共享内存") == 0.0
    assert rouge_l("threads executing together", "a thread executes together") > 0


def test_keypoint_coverage_lexical_and_embedding() -> None:
    from pmpprag import models

    answer = "__syncthreads() is a barrier: every thread of the block waits there. Tiling cuts the number of reads from DRAM."
    lexical = keypoint_coverage(answer, ["__syncthreads barrier", "warp divergence"])
    assert lexical.matched == ["__syncthreads barrier"] and lexical.missed == ["warp divergence"]
    embedder = models.load_embedder("minilm-l6")
    semantic = keypoint_coverage(answer, ["tiling reduces global memory accesses"], embedder)
    assert semantic.how == {"tiling reduces global memory accesses": "embedding"}
    unrelated = keypoint_coverage(answer, ["MPI message passing between nodes"], embedder)
    assert unrelated.coverage == 0.0


def test_ragas_offline_metrics_and_counted_judge_failures() -> None:
    pytest.importorskip("ragas")
    from pmpprag.eval.ragas_eval import RagasConfig, score_open_answers

    rows = [{"user_input": "What is a warp?", "response": "A warp is 32 threads.",
             "reference": "A warp is a group of 32 threads.", "retrieved_contexts": ["32 threads"]},
            {"user_input": "q", "response": "unrelated words", "reference": "A warp is 32 threads.",
             "retrieved_contexts": ["x"]}]  # fmt: skip
    per_row, summary = score_open_answers(rows, RagasConfig())
    assert summary["judge"] is None
    assert per_row[0]["semantic_similarity"] > per_row[1]["semantic_similarity"]  # type: ignore[operator]
    assert summary["rouge_l"]["n"] == 2 and summary["rouge_l"]["failures"] == 0
    # a judge nobody answers: every LLM metric fails, is counted, and has no mean
    cfg = RagasConfig(judge_base_url="http://127.0.0.1:9/v1", judge_timeout_s=2)
    _, summary = score_open_answers(rows, cfg)
    for name in ("faithfulness", "answer_relevancy", "context_precision", "context_recall"):
        assert summary[name] == {"mean": None, "n": 0, "failures": 2}


def test_overlap_flags_copied_questions(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sentence = "Shared memory is an on-chip scratchpad that the threads of a block use together."
    (corpus / "ch05.md").write_text(f"# Chapter 5\n\n{sentence}\n", encoding="utf-8")
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"instruction": "为什么tiling能减少全局内存访问次数？", "output": "复用"},
                                ensure_ascii=False) + "\n", encoding="utf-8")  # fmt: skip
    items = [TestItem(id="copied", question=sentence, answer="x"),
             TestItem(id="leaked", question="为什么tiling能减少全局内存访问次数？", answer="y"),
             TestItem(id="fresh", question="How does a histogram kernel privatize bins?", answer="z")]  # fmt: skip
    report = overlap_report(items, corpus, [train], n=12)
    assert {(o["id"], o["source"].split(":")[0]) for o in report["overlaps"]} == {
        ("copied", "corpus"),
        ("leaked", "train"),
    }


def test_report_without_matplotlib_keeps_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare GPU machine has no matplotlib: the report leaves the charts out, not the tables."""
    import sys

    from pmpprag.eval.report import render_report

    items = [TestItem(id="a", question="What is a warp?", answer="32 threads", chapter=4),
             TestItem(id="b", question="什么是 warp？", answer="32 个线程", chapter=4)]  # fmt: skip
    rows = score_items(items, ["A warp is 32 threads.", "warp 是 32 个线程。"])
    for row in rows:
        row["wall_s"] = 0.5
    metrics = summarise(rows, 1.0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    report = render_report(tmp_path, rows, metrics, "no charts")
    assert "## Per chapter" in report and "| 4 | 2 |" in report and "chars/s" in report
    assert "![" not in report and not list(tmp_path.glob("*.png"))


# --- eval run / grade / ablate for real --------------------------------------------------------


def _mixed_testset(tmp_path: Path, n: int = 5) -> Path:
    items = read_testset(ROOT / "eval" / "sample_en.jsonl")
    picked = [i for i in items if i.type == "mcq"][:n] + [i for i in items if i.type == "open"][:n]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(i.model_dump_json() + "\n" for i in picked), encoding="utf-8")
    return path


@pytest.mark.slow
def test_eval_run_writes_results_metrics_and_report(corpus_index: Path, tmp_path: Path) -> None:
    from pmpprag.eval.run import run

    out = tmp_path / "run"
    metrics = run(EvalRunConfig(index=corpus_index, testset=_mixed_testset(tmp_path), out=out))
    rows = [json.loads(line) for line in (out / "results.jsonl").open(encoding="utf-8")]
    assert len(rows) == 10 and all(r["passages"] for r in rows)
    assert all("correct" in r for r in rows if r["type"] == "mcq")
    assert all(0 <= r["key_point_coverage"] <= 1 for r in rows if r["type"] == "open")
    q = metrics.quality
    assert q.mcq.n == 5
    assert q.mcq.methods and all(m.startswith("mcq:calculate") for m in q.mcq.methods)
    assert q.open.key_point_coverage is not None and metrics.ragas is not None
    assert metrics.ragas["chrf"]["n"] == 5
    assert metrics.speed.questions_per_s and metrics.speed.latency_p95_s
    assert json.loads((out / "metrics.json").read_text())["quality"] == asdict(q)
    # the resolved settings, re-loadable with --config
    again = load_config(EvalRunConfig, out / "config.yaml", {})
    assert again.index == corpus_index and str(again.testset) == metrics.testset
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "course metric" in report and "key-point coverage" in report and "## Overlap" in report
    assert (out / "chapters.png").stat().st_size > 1000 and (out / "speed.png").is_file()


@pytest.fixture(scope="module")
def batch_server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_server(["--index", str(corpus_index), "--batch"], tmp_path_factory.mktemp("g"))


@pytest.mark.slow
def test_eval_grade_against_our_own_server(batch_server: str, tmp_path: Path) -> None:
    from pmpprag.eval.grade import GradeConfig, run

    out = tmp_path / "grade"
    metrics = run(GradeConfig(url=batch_server, testset=ROOT / "eval" / "sample_zh.txt",
                              limit=24, out=out))  # fmt: skip
    rows = [json.loads(line) for line in (out / "results.jsonl").open(encoding="utf-8")]
    zh = read_testset(ROOT / "eval" / "sample_zh.txt")[:24]
    assert [r["id"] for r in rows] == [i.id for i in zh]  # answered in order
    assert all(r["answer"].strip() for r in rows)
    assert metrics.mode == "batch" and metrics.speed.chars_per_s
    assert metrics.quality.open.cjk_rouge_l is not None and 0 < metrics.quality.open.cjk_rouge_l < 1
    # mcq items go out with their options and are scored by the reply's letter
    mcq = run(
        GradeConfig(url=batch_server, testset=_mixed_testset(tmp_path, 4), out=tmp_path / "m")
    )
    assert mcq.quality.mcq.n == 4 and mcq.quality.mcq.accuracy is not None


@pytest.mark.slow
def test_eval_grade_single_mode_with_concurrent_requests(
    corpus_index: Path, tmp_path: Path
) -> None:
    from pmpprag.eval.grade import GradeConfig, run

    server = start_server(["--index", str(corpus_index)], tmp_path)
    url = next(server)
    try:
        metrics = run(GradeConfig(url=url, testset=ROOT / "eval" / "sample_zh.txt", limit=12,
                                  concurrency=4, out=tmp_path / "single"))  # fmt: skip
    finally:
        server.close()
    rows = [json.loads(line) for line in (tmp_path / "single" / "results.jsonl").open()]
    assert metrics.mode == "ok" and len(rows) == 12
    assert [r["id"] for r in rows] == [
        i.id for i in read_testset(ROOT / "eval" / "sample_zh.txt")[:12]
    ]
    assert all(r["answer"].strip() and r["wall_s"] > 0 for r in rows)


def test_eval_grade_says_when_no_server_answers(tmp_path: Path) -> None:
    from pmpprag.eval.grade import GradeConfig, GradeError, run

    with pytest.raises(GradeError, match="did not become ready"):
        run(GradeConfig(url="http://127.0.0.1:9", testset=ROOT / "eval" / "sample_zh.txt",
                        ready_timeout_s=2, out=tmp_path))  # fmt: skip
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_waiting_for_a_server_whose_process_exited_fails_at_once() -> None:
    import httpx

    from pmpprag.eval.grade import GradeError, wait_ready

    with httpx.Client() as client, pytest.raises(GradeError, match="exited before it was ready"):
        wait_ready(client, "http://127.0.0.1:9", 3, alive=lambda: False)


@pytest.mark.slow
def test_eval_ablate_runs_every_variant_on_a_tiny_model(
    corpus_index: Path, tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    from pmpprag.eval.ablate import VARIANTS, AblateConfig, run
    from pmpprag.eval.ragas_eval import RagasConfig
    from pmpprag.generation import GeneratorConfig, SamplingConfig

    model, adapter = tiny_model_and_adapter
    cfg = AblateConfig(index=corpus_index, testset=_mixed_testset(tmp_path, 3), out=tmp_path / "ab",
                       lora=str(adapter), full=str(model / "."),  # the tiny model stands in
                       generator=GeneratorConfig(backend="transformers", model=str(model)),
                       sampling=SamplingConfig(max_new_tokens=8), ragas=RagasConfig(enabled=False),
                       variants=list(VARIANTS))  # fmt: skip
    report = run(cfg)
    rows = {r["variant"]: r for r in report["rows"]}
    assert list(rows) == list(VARIANTS)
    assert rows["+DPO+RAG"]["skipped"] == "no --dpo adapter given"
    full = json.loads((Path(rows["+full+RAG"]["folder"]) / "metrics.json").read_text())
    assert full["model"] == str(model / ".") and rows["+full+RAG"]["adapter"] is None
    assert rows["extractive"]["key_point_coverage"] is not None
    extractive_settings = json.loads(
        (Path(rows["extractive"]["folder"]) / "metrics.json").read_text()
    )
    assert extractive_settings["mode"] == "extractive" and rows["extractive"]["adapter"] is None
    assert rows["+LoRA"]["adapter"] == str(adapter) and rows["base"]["adapter"] is None
    assert rows["base"]["mcq_methods"] == ["mcq:loglik"]  # no passages: the model decides
    assert rows["+RAG"]["mcq_methods"] == ["mcq:combined"]  # auto for an unmeasured model
    for name in ("base", "+RAG", "+LoRA", "+LoRA+RAG"):
        assert (
            rows[name]["mcq_accuracy"] is not None and rows[name]["key_point_coverage"] is not None
        )
        assert (Path(rows[name]["folder"]) / "results.jsonl").is_file()
    assert (tmp_path / "ab" / "ablation.png").stat().st_size > 1000
    assert "skipped: no --dpo adapter given" in (tmp_path / "ab" / "ablation.md").read_text()
