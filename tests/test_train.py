"""Training: data loading errors, and real LoRA SFT / DPO runs with trl on a tiny random Llama."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pmpprag.train import DataError, TrainConfig, load_rows, run, to_conversations

ROWS = [
    {"instruction": f"How many warps does a block of {32 * n} threads form?", "input": "",
     "output": f"A warp has 32 threads, so {32 * n} / 32 = {n} warps."}
    for n in range(1, 9)
]  # fmt: skip
DPO_ROWS = [
    {"instruction": r["instruction"], "input": "", "chosen": r["output"],
     "rejected": "It depends on the GPU's clock rate."}
    for r in ROWS
]  # fmt: skip


def _write(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_load_rows_names_the_file_row_and_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist: run `pmpprag qagen`"):
        load_rows(tmp_path / "none.json", "sft")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "q",\n "output": }]')
    with pytest.raises(DataError, match=r"bad.json:2: not valid JSON"):
        load_rows(bad, "sft")
    rows = [*ROWS[:2], {"instruction": "q", "output": ""}]
    with pytest.raises(DataError, match=r"row 2 has no output"):
        load_rows(_write(tmp_path / "x.json", rows), "sft")
    with pytest.raises(DataError, match=r"row 0 has no chosen, rejected"):
        load_rows(_write(tmp_path / "y.json", ROWS), "dpo")


def test_rows_become_trl_conversations() -> None:
    sft = to_conversations([{"instruction": "Q?", "input": "ctx", "output": "A."}], "sft")
    assert sft[0]["prompt"] == [{"role": "user", "content": "Q?\n\nctx"}]
    assert sft[0]["completion"] == [{"role": "assistant", "content": "A."}]
    dpo = to_conversations(DPO_ROWS[:1], "dpo")
    assert dpo[0]["chosen"][0]["content"].startswith("A warp has 32 threads")
    assert dpo[0]["rejected"][0]["role"] == "assistant"


def _cfg(model: Path, data: Path, out: Path, **kw: object) -> TrainConfig:
    args: dict = dict(model=str(model), data=data, out=out, batch_size=4, learning_rate=1e-2,
                      lora_r=4, logging_steps=1, save_steps=2, warmup_steps=0, device="cpu")  # fmt: skip
    return TrainConfig(**{**args, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sft_run(tiny_model_and_adapter: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    model, _ = tiny_model_and_adapter
    root = tmp_path_factory.mktemp("sft")
    data = _write(root / "pmpp_qa_train.json", ROWS)
    _write(root / "pmpp_qa_val.json", ROWS[:4])
    return run(_cfg(model, data, root / "out", max_steps=8, eval_steps=4))


def test_sft_learns_and_writes_adapter_merged_model_and_loss_curve(
    sft_run, tiny_model_and_adapter: tuple[Path, Path]
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = sft_run.metrics
    assert m["steps"] == 8 and m["val_rows"] == 4  # the *_val.json beside the data is used
    assert m["last_loss"] < m["first_loss"]  # 8 steps on 8 rows: the answers are being learnt
    assert "eval_loss" in m["eval"] and m["trainable_parameters"] > 0
    assert (sft_run.out / "loss.png").stat().st_size > 1000
    assert (sft_run.adapter / "adapter_model.safetensors").is_file()
    # the base is recorded as the user named it, not a cache path of this machine
    config = json.loads((sft_run.adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_and_adapter[0])
    # readable by another user or container under an ordinary umask (mkstemp/mkdtemp are 0600/0700)
    umask = os.umask(0)
    os.umask(umask)
    for path in (
        sft_run.adapter,
        sft_run.adapter / "adapter_config.json",
        sft_run.out / "metrics.json",
    ):
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, path

    # the merged folder is base + adapter: same logits as the adapter applied at run time
    base, _ = tiny_model_and_adapter
    ids = torch.tensor([[1, 20, 300, 4000]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(sft_run.merged).eval()(ids).logits
        peft = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base), sft_run.adapter
        )
        live = peft.eval()(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(base).eval()(ids).logits
    assert torch.allclose(merged, live, atol=1e-4)
    assert not torch.allclose(merged, plain, atol=1e-3)  # the adapter changed the model


def test_dpo_continues_the_sft_adapter_and_saves_one_adapter(
    sft_run, tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny_model_and_adapter
    data = _write(tmp_path / "pmpp_qa_dpo.json", DPO_ROWS)
    result = run(_cfg(model, data, tmp_path / "dpo", method="dpo", adapter=str(sft_run.adapter),
                      max_steps=2, merge=False, learning_rate=1e-3))  # fmt: skip
    assert result.metrics["steps"] == 2 and result.merged is None
    assert (result.adapter / "adapter_model.safetensors").is_file()
    assert not (result.adapter / "ref").exists()  # TRL's frozen reference copy is not saved
    history = json.loads((result.out / "log_history.json").read_text())
    assert any("rewards/margins" in h for h in history)


def test_sft_weight_adds_the_chosen_answers_nll_to_the_dpo_loss(
    sft_run, tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny_model_and_adapter
    data = _write(tmp_path / "pmpp_qa_dpo.json", DPO_ROWS)
    first = {}
    for weight in (0.0, 1.0):
        result = run(_cfg(model, data, tmp_path / f"dpo{weight}", method="dpo", max_steps=1,
                          adapter=str(sft_run.adapter), merge=False, sft_weight=weight))  # fmt: skip
        first[weight] = result.metrics["first_loss"]
    # policy = reference at the first step: plain DPO's loss is log 2; the NLL term adds to it
    assert first[0.0] == pytest.approx(0.6931, abs=1e-3)
    assert first[1.0] > first[0.0] + 0.5
    with pytest.raises(ValueError, match="--sft_weight must be >= 0"):
        _cfg(model, data, tmp_path / "x", method="dpo", sft_weight=-1.0)


def test_an_interrupted_run_resumes_from_its_last_checkpoint(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny_model_and_adapter
    data = _write(tmp_path / "rows.json", ROWS)
    first = run(_cfg(model, data, tmp_path / "out", max_steps=2, merge=False))
    assert first.metrics["resumed_from"] is None
    second = run(_cfg(model, data, tmp_path / "out", max_steps=4, merge=False))
    assert second.metrics["resumed_from"].endswith("checkpoint-2")
    assert second.metrics["steps"] == 4


def test_full_fine_tuning_writes_the_model_itself_and_full_dpo_continues_it(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model, adapter = tiny_model_and_adapter
    data = _write(tmp_path / "rows.json", ROWS)
    with pytest.raises(ValueError, match="not --adapter"):
        _cfg(model, data, tmp_path / "bad", finetune="full", adapter=str(adapter))
    sft = run(_cfg(model, data, tmp_path / "full", finetune="full", max_steps=6,
                   learning_rate=1e-3))  # fmt: skip
    assert sft.adapter is None and sft.merged is not None and not (sft.out / "adapter").exists()
    assert (
        sft.metrics["finetune"] == "full" and sft.metrics["last_loss"] < sft.metrics["first_loss"]
    )
    base = AutoModelForCausalLM.from_pretrained(model)
    tuned = AutoModelForCausalLM.from_pretrained(sft.merged)
    # every weight trains: the trainable count is the whole model's
    assert sft.metrics["trainable_parameters"] == sum(p.numel() for p in base.parameters())
    ids = torch.tensor([[1, 20, 300, 4000]])
    with torch.no_grad():
        assert not torch.allclose(tuned.eval()(ids).logits, base.eval()(ids).logits, atol=1e-3)
    dpo_data = _write(tmp_path / "pmpp_qa_dpo.json", DPO_ROWS)
    dpo = run(_cfg(sft.merged, dpo_data, tmp_path / "full-dpo", method="dpo", finetune="full",
                   max_steps=2, learning_rate=1e-4))  # fmt: skip
    assert dpo.adapter is None and dpo.merged is not None and dpo.metrics["steps"] == 2
    assert any(
        "rewards/margins" in h for h in json.loads((dpo.out / "log_history.json").read_text())
    )


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_the_answer_only_head_gives_the_models_own_loss_and_gradients(family: str) -> None:
    """train/head.py projects only the labelled positions; its loss and the LoRA gradients must
    equal the model's own full-logits loss (left padding, a prompt masked with -100, Gemma's
    logit soft-capping)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    from pmpprag.train.head import answer_head_loss

    torch.manual_seed(0)
    shape = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    model = (
        LlamaForCausalLM(LlamaConfig(**shape))
        if family == "llama"
        else Gemma3ForCausalLM(Gemma3TextConfig(**shape, head_dim=16, final_logit_softcapping=5.0))
    )
    model = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    ids = torch.randint(0, 300, (3, 20))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    labels = ids.clone()
    labels[:, :12] = -100  # the prompt
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def loss_and_grads(loss_fn):  # type: ignore[no-untyped-def]
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return float(loss), grads

    ours, our_grads = loss_and_grads(lambda: answer_head_loss(model, inputs))
    theirs, their_grads = loss_and_grads(lambda: model(**inputs).loss)
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(our_grads, their_grads, strict=True))
    # counting tokens over several batches (gradient accumulation) divides by that count
    half = float(answer_head_loss(model, inputs, num_items=2 * int((labels[:, 1:] != -100).sum())))
    assert half == pytest.approx(theirs / 2, rel=1e-5)


def test_cpu_sft_trains_with_the_answer_only_head_and_matches_trls_loss(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    """On the CPU ``lm_head: auto`` picks the answer-only head; the same 3 steps with TRL's own
    head log the same losses (same data order, same seed), so only the speed differs."""
    model, _ = tiny_model_and_adapter
    data = _write(tmp_path / "pmpp_qa_train.json", ROWS)
    losses = {}
    for head in ("auto", "trl"):
        result = run(_cfg(model, data, tmp_path / head, max_steps=3, lm_head=head))
        history = json.loads((result.out / "log_history.json").read_text())
        losses[head] = [h["loss"] for h in history if "loss" in h]
    assert len(losses["auto"]) == 3
    assert losses["auto"] == pytest.approx(losses["trl"], rel=1e-4)

    from pmpprag.train.stage import _build_trainer

    trainer = _build_trainer(_cfg(model, data, tmp_path / "x"), "cpu", ROWS, None)
    assert type(trainer).__name__ == "AnswerHeadSFTTrainer"
    trainer = _build_trainer(_cfg(model, data, tmp_path / "y", lm_head="trl"), "cpu", ROWS, None)
    assert type(trainer).__name__ == "SFTTrainer"


def test_unlikelihood_candidates_are_each_positions_earlier_answer_tokens() -> None:
    """Per sequence, a labelled position's candidates are the tokens earlier labelled positions
    of the same sequence predicted, minus its own target, each once; the prompt and padding
    (-100) give none, and sequences do not see each other's tokens."""
    import torch

    from pmpprag.train.head import previous_token_pairs

    labels = torch.tensor([[-100, 5, 7, 5, 9, 7], [-100, -100, 3, 3, 5, -100]])
    row, token = previous_token_pairs(labels)
    pairs = sorted(zip(row.tolist(), token.tolist(), strict=True))
    # positions 0..4 are sequence 0's targets 5 7 5 9 7, positions 5..7 sequence 1's 3 3 5
    assert pairs == [(1, 5), (2, 7), (3, 5), (3, 7), (4, 5), (4, 9), (7, 3)]
    row, token = previous_token_pairs(torch.full((2, 4), -100))  # nothing labelled
    assert row.numel() == token.numel() == 0


def test_unlikelihood_loss_adds_minus_log_one_minus_p_of_used_tokens() -> None:
    """The loss with ``unlikelihood`` equals cross-entropy plus the weighted sum of
    -log(1 - p) over each position's earlier answer tokens, computed here from the model's own
    full logits with a dense candidate mask; one step on it makes the answer's repeated token
    less likely where it is not the next token."""
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    from pmpprag.train.head import answer_head_loss

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1))  # fmt: skip
    ids = torch.tensor([[1, 2, 3, 10, 11, 10, 11, 10, 11, 12]])
    labels = ids.clone()
    labels[:, :3] = -100
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    logits = model(input_ids=ids).logits[0, :-1]
    targets = labels[0, 1:]
    log_probs = F.log_softmax(logits.float(), dim=-1)
    positions = (targets != -100).nonzero().flatten().tolist()
    expected = 0.0
    for k, t in enumerate(positions):
        expected -= float(log_probs[t, targets[t]])
        used = {int(targets[u]) for u in positions[:k]} - {int(targets[t])}
        expected -= 0.5 * sum(float(torch.log1p(-log_probs[t, c].exp())) for c in used)
    ours = answer_head_loss(model, inputs, unlikelihood=0.5)
    assert float(ours) == pytest.approx(expected / len(positions), rel=1e-5)
    assert float(ours) > float(answer_head_loss(model, inputs))

    def p_repeat() -> float:  # probability of 10 again right after "10 11" (the target is 10
        with torch.no_grad():  # there; after the last "10 11" it is 12)
            return float(model(input_ids=ids).logits[0, 8].softmax(-1)[10])

    before = p_repeat()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        answer_head_loss(model, inputs, unlikelihood=1.0).backward()
        optimizer.step()
    assert p_repeat() < before


def test_unlikelihood_trains_through_the_answers_head_only(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny_model_and_adapter
    data = _write(tmp_path / "pmpp_qa_train.json", ROWS)
    with pytest.raises(ValueError, match="answers head"):
        _cfg(model, data, tmp_path / "a", unlikelihood=1.0, lm_head="trl")
    with pytest.raises(ValueError, match="answers head"):
        _cfg(model, data, tmp_path / "b", unlikelihood=1.0, method="dpo")
    losses = {}
    for weight in (0.0, 1.0):
        result = run(_cfg(model, data, tmp_path / str(weight), max_steps=2, unlikelihood=weight))
        history = json.loads((result.out / "log_history.json").read_text())
        losses[weight] = [h["loss"] for h in history if "loss" in h]
    assert losses[1.0][0] > losses[0.0][0]  # same data, same start: the added term shows


def test_a_trimmed_vocabulary_copy_is_refused_as_a_training_base(tmp_path: Path) -> None:
    """A trimmed copy (generation/vocab.py) keeps the full tokenizer, whose ids overrun its
    embedding: training on it failed deep inside torch with "index out of range"."""
    (tmp_path / "vocab_map.json").write_text("{}")
    with pytest.raises(ValueError, match="trimmed-vocabulary copy"):
        _cfg(tmp_path, tmp_path / "rows.json", tmp_path / "out")
