"""`pmpprag merge` and the shipped adapter (adapters/gemma3-270m-grounded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pmpprag.errors import PmppragError
from pmpprag.generation.merge import merge_adapter

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "adapters" / "gemma3-270m-grounded"


def test_merged_model_computes_what_base_plus_adapter_computes(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, adapter = tiny_model_and_adapter
    out = merge_adapter(str(model), adapter, tmp_path / "merged")
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert json.loads((out / "merged_from.json").read_text())["adapter"] == str(adapter)
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(model)
        plain = base(ids).logits
        expected = PeftModel.from_pretrained(base, str(adapter))(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    assert not torch.allclose(plain, expected, atol=1e-4)  # the adapter changes the model
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)
    assert AutoTokenizer.from_pretrained(out)("kernel")["input_ids"]


def test_merge_refuses_a_folder_that_is_no_adapter(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny_model_and_adapter
    with pytest.raises(PmppragError, match=r"adapter_config\.json"):
        merge_adapter(str(model), model, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_command_writes_the_model_folder(
    tiny_model_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    model, adapter = tiny_model_and_adapter
    done = subprocess.run(
        [sys.executable, "-m", "pmpprag.cli", "merge", "--model", str(model), "--adapter",
         str(adapter), "--out", str(tmp_path / "m")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_the_shipped_adapter_fits_gemma_3_270m_and_is_what_the_config_loads() -> None:
    """Every LoRA matrix of the committed adapter has the shape gemma-3-270m's layers need
    (hidden 640, 4 query heads and 1 key/value head of 256, MLP 2048, 18 layers), so peft
    loads it onto the base with no missing or unexpected weight; configs/rag/gemma.yaml uses it."""
    import yaml
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = json.loads((SHIPPED / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["peft_type"] == "LORA"
    weights = load_file(SHIPPED / "adapter_model.safetensors")
    assert len(weights) == 18 * 7 * 2  # 7 linear layers per decoder layer, A and B each
    assert all(torch.isfinite(w).all() for w in weights.values())
    gemma = Gemma3TextConfig(vocab_size=256, hidden_size=640, intermediate_size=2048,
                             num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1,
                             head_dim=256)  # fmt: skip
    torch.manual_seed(0)
    base = Gemma3ForCausalLM(gemma).eval()
    ids = torch.tensor([[2, 17, 33, 101]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(SHIPPED)).eval()
        after = tuned(ids).logits
    loaded = {n for n, _ in tuned.named_parameters() if "lora_" in n}
    assert len(loaded) == len(weights)
    assert not torch.allclose(before, after)  # trained, non-zero B matrices
    rag = yaml.safe_load((ROOT / "configs" / "rag" / "gemma.yaml").read_text())
    assert Path(rag["generator"]["adapter"]) == SHIPPED.relative_to(ROOT)
    provenance = json.loads((SHIPPED / "PROVENANCE.json").read_text())
    import hashlib

    digest = hashlib.sha256((SHIPPED / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert provenance["adapter_sha256"] == digest
