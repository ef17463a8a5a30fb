"""The SFT loss with the output head applied only where an answer token is predicted.

gemma-3-270m's head is a 640 x 262,144 matrix: on a grounded prompt of ~900 tokens with a
~100-token answer, logits for every position are most of a training step's work and memory,
yet the loss reads only the answer's. :func:`answer_head_loss` runs the decoder body, gathers
the hidden states whose next token is a label, and projects just those.

TRL 1.16 does the same with a tiled, memory-lean head (``add_fused_lm_head``), which on the GPU
is the right trade; on this project's 2-core CPU its tiles made a step slower than plain
full logits (``benchmarks/train_step_cpu.py``), so CPU SFT uses this loss instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["answer_head_loss"]


def answer_head_loss(model: Any, inputs: dict[str, Any], num_items: Any = None) -> Any:
    """Mean next-token cross-entropy over the labelled positions (labels ``-100`` elsewhere),
    the same value as the model's own ``loss`` with full logits. ``model`` may be a PEFT model
    (adapters inside the body train as usual; the head itself carries none)."""
    import torch
    import torch.nn.functional as F

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(causal_lm, causal_lm.base_model_prefix)
    kwargs = {
        k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids")
    }
    hidden = body(**kwargs, use_cache=False).last_hidden_state[:, :-1]
    labels = inputs["labels"][:, 1:].to(hidden.device)
    mask = labels != -100
    logits = causal_lm.get_output_embeddings()(hidden[mask]).float()
    cap = getattr(causal_lm.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    total = F.cross_entropy(logits, labels[mask], reduction="sum")
    count = num_items if num_items is not None else mask.sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)
