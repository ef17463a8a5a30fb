"""Fine-tuning: LoRA SFT and DPO with peft + trl, then a merged standard Hugging Face model.

    pmpprag train --config configs/train/sft.yaml          # SFT on qagen's Alpaca file
    pmpprag train --config configs/train/dpo.yaml          # DPO, starting from the SFT adapter
    pmpprag train --config configs/train/gemma-sft-full.yaml   # full fine-tuning, no adapter

SFT trains a LoRA adapter on prompt/completion conversations (loss on the answer only). DPO
continues the SFT adapter on chosen/rejected answers; its reference model is a frozen copy of
that SFT adapter (TRL adds it), so the result is again one adapter on the original base model.
Writes into ``--out``: ``adapter/`` (for ``--generator.adapter`` and ``eval ablate``),
``merged/`` (base + adapter as one standard model folder, for vLLM or any HF tool),
``metrics.json``, ``log_history.json``, ``loss.png`` and ``config.yaml``. Checkpoints go to
``checkpoints/``; a run started again with the same ``--out`` resumes from the last one.

``--finetune full`` trains every weight instead: no adapter, and ``merged/`` is the tuned model
itself. Full DPO starts from ``--model`` (a full SFT run's ``merged/``), and TRL keeps a frozen
copy of it as the reference.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pmpprag import models
from pmpprag.config import option, to_dict
from pmpprag.generation.vocab import MAP_FILE
from pmpprag.schema import atomic_folder, atomic_write, check_stage_output
from pmpprag.train.data import load_rows, to_conversations

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "plot_losses", "run"]


@dataclass
class TrainConfig:
    method: Literal["sft", "dpo"] = option("sft", "sft (LoRA on QA pairs) or dpo (preferences)")
    data: Path = option(
        Path("out/qagen/pmpp/pmpp_qa_train.json"), "Alpaca JSON (sft) or ranking JSON (dpo)"
    )
    val_data: Path | None = option(None, "validation file (default: the *_val.json beside --data)")
    model: str = option("smollm2-135m-instruct", "base model: registry name, folder or hub id")
    adapter: str | None = option(None, "dpo: the SFT adapter to start from (also the reference)")
    out: Path = option(Path("out/train/sft"), "run folder")
    finetune: Literal["lora", "full"] = option(
        "lora", "lora (an adapter on the frozen base) or full (every weight; writes merged/ only)"
    )
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scale numerator (scale = alpha / r)")
    lora_dropout: float = option(0.05, "dropout on the LoRA input")
    target_modules: str = option("all-linear", "layers that get adapters (peft syntax)")
    epochs: float = option(3.0, "passes over the data")
    max_steps: int = option(-1, "stop after this many optimizer steps (-1: run all epochs)")
    learning_rate: float = option(2e-4, "peak learning rate (cosine schedule)")
    warmup_steps: float = option(0.03, "warm-up: steps, or a fraction of all steps when < 1")
    batch_size: int = option(8, "sequences per device step")
    grad_accum: int = option(1, "device steps per optimizer step")
    max_length: int = option(512, "tokens per sequence (longer ones are truncated)")
    beta: float = option(0.1, "dpo: strength of the pull towards the reference model")
    sft_weight: float = option(
        0.0, "dpo: weight of an added NLL loss on the chosen answers (RPO; 0: plain DPO)"
    )
    unlikelihood: float = option(
        0.0,
        "sft: weight of token-level unlikelihood on tokens the answer already used (against "
        "loops, Welleck et al. 2019; train/head.py); needs the answers head (0: off)",
    )
    logging_steps: int = option(5, "log the loss every N steps")
    eval_steps: int = option(50, "validation loss every N steps")
    save_steps: int = option(100, "checkpoint every N steps (for resuming)")
    device: str = option("auto", "auto (cuda when available), cuda or cpu")
    merge: bool = option(True, "also write merged/ (base + adapter as one model)")
    attn_implementation: str | None = option(
        None, "attention kernel for training: eager for Gemma 3 (sdpa diverged to NaN in bf16)"
    )
    seed: int = option(0, "seed for data order and adapter initialisation")
    lm_head: Literal["auto", "answers", "trl"] = option(
        "auto",
        "SFT loss: answers (the output head only at answer positions, train/head.py), trl "
        "(TRL's tiled fused head), auto (answers on the CPU, where it measured 2.8x faster a "
        "step than full logits and 4x than trl's; trl on the GPU)",
    )

    def __post_init__(self) -> None:
        if self.lm_head not in ("auto", "answers", "trl"):
            raise ValueError(f"--lm_head {self.lm_head!r}: use auto, answers or trl")
        if self.method not in ("sft", "dpo"):
            raise ValueError(f"--method {self.method!r}: use sft or dpo")
        if self.sft_weight < 0:
            raise ValueError("--sft_weight must be >= 0")
        if self.unlikelihood < 0:
            raise ValueError("--unlikelihood must be >= 0")
        if self.unlikelihood and (self.method != "sft" or self.lm_head == "trl"):
            raise ValueError(
                "--unlikelihood is an SFT loss of the answers head: use --method sft and "
                "--lm_head auto or answers"
            )
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("--lora_r, --batch_size and --grad_accum must be at least 1")
        if self.finetune not in ("lora", "full"):
            raise ValueError(f"--finetune {self.finetune!r}: use lora or full")
        if (Path(self.model).expanduser() / MAP_FILE).is_file():
            raise ValueError(
                f"--model {self.model} is a trimmed-vocabulary copy (it has {MAP_FILE}), made for "
                "CPU decoding only: its tokenizer gives ids of the full vocabulary. Train the full "
                "model (--model gemma3-270m); adapters on the decoder body serve both."
            )
        if self.finetune == "full" and self.adapter:
            raise ValueError(
                "--finetune full trains the weights of --model: give it the folder to start from "
                "(a full SFT run's merged/), not --adapter"
            )


@dataclass
class TrainResult:
    out: Path
    adapter: Path | None  # None after full fine-tuning: merged/ is the model
    merged: Path | None
    metrics: dict[str, Any]


def _device(spec: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device here; use --device cpu")
    return spec


def _val_path(cfg: TrainConfig) -> Path | None:
    if cfg.val_data is not None:
        return cfg.val_data
    sibling = Path(str(cfg.data).replace("_train.json", "_val.json"))
    return sibling if cfg.method == "sft" and sibling != cfg.data and sibling.is_file() else None


def _trainer_args(cfg: TrainConfig, device: str, has_val: bool) -> dict[str, Any]:
    return {
        "output_dir": str(Path(cfg.out) / "checkpoints"),
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": "cosine",
        "warmup_steps": cfg.warmup_steps,
        "logging_steps": cfg.logging_steps,
        "eval_strategy": "steps" if has_val else "no",
        "eval_steps": cfg.eval_steps,
        "save_steps": cfg.save_steps,
        "save_total_limit": 2,
        "max_length": cfg.max_length,
        "bf16": device == "cuda",
        "use_cpu": device == "cpu",
        "gradient_checkpointing": False,  # a 135M model fits; recomputation only costs time
        "report_to": "none",
        "seed": cfg.seed,
        "disable_tqdm": False,
    }


def _last_checkpoint(out: Path) -> str | None:
    checkpoints = sorted(
        (out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
    )
    return str(checkpoints[-1]) if checkpoints else None


def _loss_chart(out: Path, history: list[dict[str, Any]], method: str) -> None:
    try:
        import matplotlib
    except ModuleNotFoundError:  # a bare GPU box: plot later with plot_losses(out)
        logger.warning("loss.png skipped: matplotlib is not installed here")
        return

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for key, label in (("loss", "train"), ("eval_loss", "validation")):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(
                *zip(*points, strict=True), marker="." if key == "eval_loss" else "", label=label
            )
    ax.set(xlabel="optimizer step", ylabel=f"{method.upper()} loss", title=f"{method.upper()} loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)


def plot_losses(out: Path) -> Path:
    """Draw ``loss.png`` again from a finished run's ``log_history.json`` (a run on a machine
    without matplotlib writes the history but skips the chart)."""
    out = Path(out)
    history = json.loads((out / "log_history.json").read_text(encoding="utf-8"))
    method = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["method"]
    _loss_chart(out, history, method)
    return out / "loss.png"


def _build_trainer(cfg: TrainConfig, device: str, train_rows: list, val_rows: list | None) -> Any:
    import torch
    from peft import LoraConfig, PeftModel
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from pmpprag.models import load_causal_lm

    # LoRA trains a bf16 base on the GPU; full fine-tuning keeps float32 weights (bf16 autocast),
    # since at its small learning rates most bf16 weight updates would round away
    dtype = "bfloat16" if device == "cuda" and cfg.finetune == "lora" else "float32"
    model, tokenizer = load_causal_lm(
        cfg.model, device=device, dtype=dtype, attn_implementation=cfg.attn_implementation
    )
    model.train()
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    peft_config: LoraConfig | None = lora if cfg.finetune == "lora" else None
    if cfg.adapter:  # continue this adapter; for DPO, TRL copies it as the frozen reference
        model = PeftModel.from_pretrained(model, cfg.adapter, is_trainable=True)
        peft_config = None
    args = _trainer_args(cfg, device, val_rows is not None)
    train = to_conversations(train_rows, cfg.method)
    val = to_conversations(val_rows, cfg.method) if val_rows else None
    if cfg.method == "sft":
        head = cfg.lm_head if cfg.lm_head != "auto" else "answers" if device == "cpu" else "trl"
        answers_head = head == "answers" or cfg.unlikelihood > 0  # unlikelihood lives there
        trainer_class = (
            _answer_head_sft_trainer(SFTTrainer, cfg.unlikelihood) if answers_head else SFTTrainer
        )
        return trainer_class(
            model=model,
            args=SFTConfig(**args),
            train_dataset=train,
            eval_dataset=val,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
    return DPOTrainer(
        model=model,
        args=DPOConfig(beta=cfg.beta, **args, **_dpo_loss(cfg)),
        train_dataset=train,
        eval_dataset=val,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def _dpo_loss(cfg: TrainConfig) -> dict[str, Any]:
    """TRL's loss terms: the DPO sigmoid loss, plus the chosen answers' NLL when ``sft_weight``
    is set, which keeps their likelihood from falling with the rejected ones'."""
    if not cfg.sft_weight:
        return {}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, cfg.sft_weight]}


def _answer_head_sft_trainer(base: type, unlikelihood: float = 0.0) -> type:
    """SFTTrainer whose training loss projects only the answer positions (train/head.py), with
    the unlikelihood term at that weight."""
    from pmpprag.train.head import answer_head_loss

    class AnswerHeadSFTTrainer(base):
        def compute_loss(
            self,
            model: Any,
            inputs: Any,
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if return_outputs or not model.training:  # evaluation: TRL's own (and its metrics)
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return answer_head_loss(model, inputs, num_items_in_batch, unlikelihood)

    return AnswerHeadSFTTrainer


def _portable_base(config: Path, model: str) -> None:
    """peft records the folder the base was loaded from, here a converted copy in this machine's
    cache; record the model's hub id (a packaged model) or the name given instead, so the adapter
    means the same on another machine or in a container."""
    packaged = models.REGISTRY.get(model)
    data = json.loads(config.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = packaged.hub_id if packaged else model
    config.write_text(json.dumps(data, indent=2), encoding="utf-8")


def run(cfg: TrainConfig) -> TrainResult:
    """Train the adapter, save it (and the merged model), plot and report the losses."""
    started = time.perf_counter()
    out = Path(cfg.out)
    check_stage_output(cfg.data)  # edited after qagen/raft wrote it: a StaleError says so
    train_rows = load_rows(cfg.data, cfg.method)
    val_path = _val_path(cfg)
    if val_path:
        check_stage_output(val_path)
    val_rows = load_rows(val_path, cfg.method) if val_path else None
    device = _device(cfg.device)
    logger.info(
        "%s on %d rows (%d validation) with %s on %s",
        cfg.method.upper(),
        len(train_rows),
        len(val_rows or []),
        cfg.model,
        device,
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "config.yaml") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)

    trainer = _build_trainer(cfg, device, train_rows, val_rows)
    resume = _last_checkpoint(out)
    if resume:
        logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    final_eval = trainer.evaluate() if val_rows else {}

    model = trainer.model
    tokenizer = trainer.processing_class
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    adapter_path, merged_path = _save(cfg, model, tokenizer, out)

    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    metrics = {
        "method": cfg.method,
        "finetune": cfg.finetune,
        "model": cfg.model,
        "device": device,
        "rows": len(train_rows),
        "val_rows": len(val_rows or []),
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 2),
        "trainable_parameters": trainable,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "train_loss": result.training_loss,
        "eval": final_eval,
        "resumed_from": resume,
        "seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_write(out / "metrics.json") as fh:
        json.dump(metrics, fh, indent=1)
    with atomic_write(out / "log_history.json") as fh:
        json.dump(history, fh, indent=1)
    _loss_chart(out, history, cfg.method)
    logger.info(
        "%s done: %d steps, loss %s -> %s, %s -> %s",
        cfg.method.upper(),
        metrics["steps"],
        metrics["first_loss"],
        metrics["last_loss"],
        metrics["seconds"],
        out,
    )
    return TrainResult(out, adapter_path, merged_path, metrics)


def _save(
    cfg: TrainConfig, model: Any, tokenizer: Any, out: Path
) -> tuple[Path | None, Path | None]:
    """Write adapter/ (LoRA) and merged/ (LoRA with --merge, always after full fine-tuning)."""
    if cfg.finetune == "full":  # the trained model is the merged model
        with atomic_folder(out / "merged") as folder:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        return None, out / "merged"
    with atomic_folder(out / "adapter") as folder:
        model.save_pretrained(folder, selected_adapters=["default"])
        tokenizer.save_pretrained(folder)
        _portable_base(folder / "adapter_config.json", cfg.model)
    if not cfg.merge:
        return out / "adapter", None
    merged = model.merge_and_unload(adapter_names=["default"])
    with atomic_folder(out / "merged") as folder:
        merged.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return out / "adapter", out / "merged"
