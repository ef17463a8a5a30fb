"""On-policy DPO pairs: which model answers become the rejected side, and a real run of the
stage with transformers on a tiny random model (answers written, resumed, and tied to their
prompts)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pmpprag.errors import PmppragError
from pmpprag.generation import GeneratorConfig, SamplingConfig
from pmpprag.rag.prompts import NOT_COVERED
from pmpprag.train.onpolicy import OnPolicyConfig, choose_rejected, run

CHOSEN = "__syncthreads() 是块内的屏障：块中所有线程都到达后才继续执行。[1]"
ROW = {"instruction": "Passages: ...\n\nQuestion: __syncthreads 做什么？", "input": "",
       "chosen": CHOSEN, "rejected": "它让整个网格同步。"}  # fmt: skip


def _generated(text: str, finish: str = "stop") -> dict:
    return {"text": text, "finish_reason": finish}


def test_the_models_mistakes_become_the_rejected_side() -> None:
    loop = "__syncthreads() 是屏障，" * 40
    assert choose_rejected(ROW, _generated(loop, "length"), 0.9) == (loop, "on-policy-length")
    wrong = "__syncthreads() 让主机等待设备上的所有 kernel 完成。[2]"
    assert choose_rejected(ROW, _generated(wrong), 0.9) == (wrong, "on-policy")
    assert choose_rejected(ROW, _generated("  "), 0.9) == ("", "on-policy-empty")


def test_an_answer_that_is_no_mistake_keeps_the_original_rejection() -> None:
    # the chosen answer again, cited differently: not a mistake to push away from
    same = CHOSEN.replace("[1]", "[3]")
    assert choose_rejected(ROW, _generated(same), 0.9) == (ROW["rejected"], "kept")
    # the passages lack the answer: declining is right, answering is the mistake
    refusal = {**ROW, "chosen": NOT_COVERED["zh"], "rejected": CHOSEN}
    assert choose_rejected(refusal, _generated(NOT_COVERED["zh"] + "[1]"), 0.9) == (
        CHOSEN,
        "kept",
    )
    answer = "它是块内屏障。"
    assert choose_rejected(refusal, _generated(answer), 0.9) == (answer, "on-policy-unsupported")


def test_bad_input_names_the_file_and_row(tmp_path: Path) -> None:
    # the training loader's checks (train/data.py): the DPO file as `pmpprag train` reads it
    with pytest.raises(PmppragError, match=r"none\.json does not exist"):
        run(OnPolicyConfig(data=tmp_path / "none.json", out=tmp_path / "o"))
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "q",\n "chosen": }]', encoding="utf-8")
    with pytest.raises(PmppragError, match=r"bad.json:2: not valid JSON"):
        run(OnPolicyConfig(data=bad, out=tmp_path / "o"))
    bad.write_text(json.dumps([{"instruction": "q", "chosen": "a"}]), encoding="utf-8")
    with pytest.raises(PmppragError, match="row 0 has no rejected"):
        run(OnPolicyConfig(data=bad, out=tmp_path / "o"))


def test_a_real_run_answers_resumes_and_ties_answers_to_their_prompts(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny_model_and_adapter
    rows = [{**ROW, "instruction": f"Question {n}: what does __syncthreads do?"} for n in range(5)]
    data = tmp_path / "dpo.json"
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    cfg = OnPolicyConfig(
        data=data, out=tmp_path / "out", batch_size=2,
        generator=GeneratorConfig(backend="transformers", model=str(model), adapter=None),
        sampling=SamplingConfig(max_new_tokens=6),
    )  # fmt: skip
    result = run(cfg)
    answers = tmp_path / "out" / "generations.jsonl"
    lines = answers.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and result.pairs == 5
    pairs = json.loads((tmp_path / "out" / "pmpp_onpolicy_dpo.json").read_text(encoding="utf-8"))
    texts = {json.loads(x)["row"]: json.loads(x)["text"].strip() for x in lines}
    # a random model's 6 tokens are nothing like the chosen answer: every rejection is its own
    assert [p["rejected"] for p in pairs] == [texts[i] for i in range(5)]
    assert [p["chosen"] for p in pairs] == [r["chosen"] for r in rows]
    assert sum(result.stats["rejected"].values()) == 5
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["pmpp_onpolicy_dpo"]["ranking"] is True

    # a second run answers nothing again; a changed prompt is answered anew
    run(cfg)
    assert answers.read_text(encoding="utf-8").splitlines() == lines
    rows[2]["instruction"] = "Question 2, reworded: what does __syncthreads do?"
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    run(cfg)
    assert len(answers.read_text(encoding="utf-8").splitlines()) == 6

    # the same answers, added beside the rule-made pairs, of one kind only (no model is loaded:
    # every prompt has its answer already)
    finished = {json.loads(x)["row"]: json.loads(x)["finish_reason"] for x in
                answers.read_text(encoding="utf-8").splitlines()}  # fmt: skip
    long = sum(1 for reason in finished.values() if reason == "length")
    assert long  # a random model runs to the limit
    added = run(replace(cfg, kinds="on-policy-length", keep_rules=True))
    pairs = json.loads((tmp_path / "out" / "pmpp_onpolicy_dpo.json").read_text(encoding="utf-8"))
    assert added.pairs == len(pairs) == 5 + long
    assert [p["rejected"] for p in pairs].count(ROW["rejected"]) == 5
    assert sum(p.get("rejection") == "on-policy-length" for p in pairs) == long
    assert added.stats["rejected"].get("on-policy-length", 0) == long
    with pytest.raises(ValueError, match="--kinds: unknown"):
        replace(cfg, kinds="loops")
