"""The SFT loss with the output head applied only where an answer token is predicted.

gemma-3-270m's head is a 640 x 262,144 matrix: on a grounded prompt of ~900 tokens with a
~100-token answer, logits for every position are most of a training step's work and memory,
yet the loss reads only the answer's. :func:`answer_head_loss` runs the decoder body, gathers
the hidden states whose next token is a label, and projects just those.

TRL 1.16 does the same with a tiled, memory-lean head (``add_fused_lm_head``), which on the GPU
is the right trade; on this project's 2-core CPU its tiles made a step slower than plain
full logits (``benchmarks/train_step_cpu.py``), so CPU SFT uses this loss instead.

``unlikelihood`` adds token-level unlikelihood training (Welleck et al. 2019, "Neural Text
Generation with Unlikelihood Training"): at each answer position, every token the answer has
already used (except the one that comes next) is pushed down by ``-log(1 - p)``. Maximum
likelihood alone lets a small model fall into repeating a span it has just written; this term
makes "say again what was said" unlikely where the reference does not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["answer_head_loss", "previous_token_pairs"]


def previous_token_pairs(labels: Any) -> tuple[Any, Any]:
    """The unlikelihood candidates of a batch of shifted labels (``-100`` where no answer token
    is predicted): pairs (row, token), row indexing the labelled positions in row-major order,
    token one that an earlier labelled position of the same sequence predicted and this one
    does not; each pair once."""
    import torch

    rows, tokens = [], []
    offset = 0
    for sequence in labels:
        targets = sequence[sequence != -100]
        n = targets.numel()
        later, earlier = torch.tril_indices(n, n, offset=-1, device=labels.device)
        keep = targets[earlier] != targets[later]
        rows.append(later[keep] + offset)
        tokens.append(targets[earlier][keep])
        offset += n
    row, token = torch.cat(rows), torch.cat(tokens)
    width = max(int(labels.max()), 0) + 1 if labels.numel() else 1  # all -100: no pairs
    unique = torch.unique(row * width + token)
    return unique // width, unique % width


def answer_head_loss(
    model: Any, inputs: dict[str, Any], num_items: Any = None, unlikelihood: float = 0.0
) -> Any:
    """Mean next-token cross-entropy over the labelled positions (labels ``-100`` elsewhere),
    the same value as the model's own ``loss`` with full logits. ``model`` may be a PEFT model
    (adapters inside the body train as usual; the head itself carries none). With
    ``unlikelihood`` > 0, plus that weight times the summed ``-log(1 - p)`` of each position's
    earlier answer tokens (:func:`previous_token_pairs`), divided by the same token count."""
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
    targets = labels[mask]
    if not unlikelihood:
        total = F.cross_entropy(logits, targets, reduction="sum")
    else:
        log_probs = F.log_softmax(logits, dim=-1)
        total = F.nll_loss(log_probs, targets, reduction="sum")
        row, token = previous_token_pairs(labels)
        used = log_probs[row, token].exp().clamp(max=1 - 1e-6)
        total = total - unlikelihood * torch.log1p(-used).sum()
    count = num_items if num_items is not None else mask.sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)
