"""Merge a LoRA adapter into its base: one standard Hugging Face model folder, built on demand.

    pmpprag merge --adapter adapters/gemma3-270m-grounded --out out/merged/gemma-grounded

vLLM, CTranslate2's converter, llama.cpp's converter and any transformers tool read the folder
(``config.json``, ``model.safetensors``, the tokenizer and its chat template). The adapter ships
in the repository (15 MB); the merged model (1.1 GB in float32) is written only when asked for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pmpprag import models
from pmpprag.config import option
from pmpprag.errors import PmppragError
from pmpprag.schema import atomic_folder

logger = logging.getLogger(__name__)

__all__ = ["MergeConfig", "merge_adapter", "run"]


@dataclass
class MergeConfig:
    adapter: Path = option(Path("adapters/gemma3-270m-grounded"), "LoRA adapter folder")
    model: str = option("gemma3-270m", "its base model: registry name, folder or hub id")
    out: Path = option(Path("out/merged/gemma3-270m-grounded"), "folder for the merged model")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "weights' dtype")


def merge_adapter(base: str, adapter: Path | str, out: Path, dtype: str = "float32") -> Path:
    """Write base + adapter as one model folder at ``out`` (atomically: all or nothing)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise PmppragError(
            f"{adapter}: no adapter_config.json, so not a LoRA adapter folder; pass the "
            "adapter/ folder a `pmpprag train` run wrote, or adapters/gemma3-270m-grounded"
        )
    source = models.resolve(base).path_or_id
    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    with atomic_folder(out) as folder:
        merged.save_pretrained(folder)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        (folder / "merged_from.json").write_text(
            json.dumps({"base": base, "adapter": str(adapter), "dtype": dtype}, indent=1) + "\n"
        )
    logger.info("merged %s into %s -> %s", adapter, base, out)
    return out


def run(cfg: MergeConfig) -> Path:
    out = merge_adapter(cfg.model, cfg.adapter, cfg.out, cfg.dtype)
    print(f"merged model: {out}  (use it with --generator.model {out})")
    return out
