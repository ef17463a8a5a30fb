"""A decoder for the `fast` back-end, built from a transformers config and state dict.
(It stays one module: its weights, KV cache, prefill and decode step share one memory layout.)

Covers the four families the project serves: ``llama`` (SmolLM2), ``qwen2``, ``qwen3`` (QK-norm)
and ``gemma3_text`` (sandwich norms with ``1 + w``, scaled embedding, GELU-tanh, sliding-window
and global layers with their own RoPE bases, query_pre_attn_scalar, optional soft-capping).

Memory layout:

- weights are fused where one GEMM can replace several: ``qkv`` = [q; k; v] projections and
  ``gate_up`` = [gate; up], so a layer is 4 GEMMs + 4 fused kernels (kernels.py);
- the KV cache is static and slotted, ``[layers, slots + 1, kv_heads, max_len, head_dim]``: a
  request owns one slot of ``max_len`` positions for its lifetime; the extra last slot is
  scratch space for the padding rows of a CUDA-graph batch bucket.

:meth:`FastDecoder.decode_step` only launches kernels on tensors whose shapes depend on the
batch size alone (no host syncs, no data-dependent shapes), so engine.py can capture it once per
batch-size bucket in a ``torch.cuda.CUDAGraph`` and replay it. Prefill is eager.
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pmpprag.fast import kernels

logger = logging.getLogger(__name__)

# model_type -> (transformers module, rotary embedding class): the tables come from
# transformers' own rotary module, so RoPE scaling variants match by construction.
FAMILIES = {
    "llama": ("llama", "LlamaRotaryEmbedding"),
    "qwen2": ("qwen2", "Qwen2RotaryEmbedding"),
    "qwen3": ("qwen3", "Qwen3RotaryEmbedding"),
    "gemma3_text": ("gemma3", "Gemma3RotaryEmbedding"),
}
ACTIVATIONS: dict[str, kernels.Activation] = {
    "silu": "silu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_tanh": "gelu_tanh",
}


@dataclass(frozen=True)
class DecoderSpec:
    """What the decode path needs from a transformers config."""

    family: str  # transformers model_type, a key of FAMILIES
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    eps: float  # RMSNorm epsilon
    activation: kernels.Activation
    gemma: bool  # Gemma norms: 1 + w in float32, post-attention/-feedforward norms
    qk_norm: bool  # per-head RMSNorm on q and k before RoPE (Qwen3, Gemma 3)
    attn_scale: float  # head_dim ** -0.5, or query_pre_attn_scalar ** -0.5 for Gemma
    attn_softcap: float  # 0: none
    final_softcap: float  # 0: none
    embed_scale: float  # sqrt(hidden) for Gemma, 1 otherwise
    layer_types: tuple[str, ...]  # "full_attention" | "sliding_attention" per layer
    windows: tuple[int, ...]  # sliding window per layer, 0 for global layers

    def kv_slot_bytes(self, length: int, element_size: int) -> int:
        """Bytes of one KV-cache slot: every layer's keys and values for ``length`` positions."""
        return 2 * self.num_layers * self.num_kv_heads * length * self.head_dim * element_size

    @classmethod
    def from_config(cls, config: Any) -> DecoderSpec:
        """Read a transformers config (LlamaConfig, Qwen2Config, Qwen3Config, Gemma3TextConfig)."""
        family = config.model_type
        if family not in FAMILIES:
            raise ValueError(
                f"fast back-end: model_type {family!r} is not one of {sorted(FAMILIES)}"
            )
        gemma = family == "gemma3_text"
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        act_name = config.hidden_activation if gemma else config.hidden_act
        if act_name not in ACTIVATIONS:
            raise ValueError(f"fast back-end: activation {act_name!r} is not supported")
        if getattr(config, "mlp_bias", False):
            raise ValueError("fast back-end: mlp_bias=True is not supported")
        layers = config.num_hidden_layers
        layer_types = tuple(getattr(config, "layer_types", None) or ["full_attention"] * layers)
        window = getattr(config, "sliding_window", None) or 0
        windows = tuple(window if t == "sliding_attention" else 0 for t in layer_types)
        scale = (config.query_pre_attn_scalar if gemma else head_dim) ** -0.5
        return cls(
            family=family, vocab_size=config.vocab_size, hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size, num_layers=layers, num_heads=heads,
            num_kv_heads=config.num_key_value_heads, head_dim=head_dim, eps=config.rms_norm_eps,
            activation=ACTIVATIONS[act_name], gemma=gemma, qk_norm=family in ("qwen3", "gemma3_text"),
            attn_scale=scale, attn_softcap=float(getattr(config, "attn_logit_softcapping", 0) or 0),
            final_softcap=float(getattr(config, "final_logit_softcapping", 0) or 0),
            embed_scale=config.hidden_size**0.5 if gemma else 1.0,
            layer_types=layer_types, windows=windows,
        )  # fmt: skip


@dataclass
class _Layer:
    qkv: torch.Tensor  # [(heads + 2 kv_heads) * head_dim, hidden]
    qkv_bias: torch.Tensor | None  # Qwen2
    o: torch.Tensor
    gate_up: torch.Tensor  # [2 * intermediate, hidden]
    down: torch.Tensor
    input_norm: torch.Tensor
    post_attn_norm: torch.Tensor
    pre_ff_norm: torch.Tensor | None  # Gemma
    post_ff_norm: torch.Tensor | None  # Gemma
    q_norm: torch.Tensor | None  # Qwen3, Gemma
    k_norm: torch.Tensor | None


def rope_tables(
    config: Any, max_len: int, device: torch.device, dtype: torch.dtype, rotary: Any = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """cos/sin tables [max_len, head_dim / 2] per layer type, from transformers' rotary module.

    Computed by that module's own forward (float32 angles, cos/sin, then cast to the model dtype
    exactly as transformers does before applying them). Pass ``rotary`` (``model.model.rotary_emb``)
    to reuse a loaded model's buffers; otherwise a fresh module is built from the config.
    """
    module_name, class_name = FAMILIES[config.model_type]
    if rotary is None:
        module = importlib.import_module(
            f"transformers.models.{module_name}.modeling_{module_name}"
        )
        rotary = getattr(module, class_name)(config)
    rotary = copy.deepcopy(rotary).to(device)  # leave the caller's model where it is
    x = torch.zeros(1, device=device, dtype=dtype)
    positions = torch.arange(max_len, device=device)[None]
    half = (
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    ) // 2
    tables = {}
    with torch.no_grad():
        for layer_type in sorted(set(getattr(config, "layer_types", None) or ["full_attention"])):
            if config.model_type == "gemma3_text":
                cos, sin = rotary(x, positions, layer_type)
            else:
                cos, sin = rotary(x, positions)
            tables[layer_type] = (cos[0, :, :half].contiguous(), sin[0, :, :half].contiguous())
    return tables


class FastDecoder:
    """The decoder's weights, RoPE tables and static slotted KV cache, and its two passes."""

    def __init__(
        self,
        spec: DecoderSpec,
        state_dict: Mapping[str, torch.Tensor],
        tables: dict[str, tuple[torch.Tensor, torch.Tensor]],
        max_slots: int,
        max_len: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.spec, self.max_slots, self.max_len = spec, max_slots, max_len
        self.device, self.dtype = device, dtype
        self.tables = tables

        def get(name: str) -> torch.Tensor:
            return state_dict[name].to(device=device, dtype=dtype).contiguous()

        def opt(name: str) -> torch.Tensor | None:
            return get(name) if name in state_dict else None

        if "model.embed_tokens.weight" not in state_dict:
            raise ValueError(
                "fast back-end: expected a *ForCausalLM state dict (model.embed_tokens...)"
            )
        self.embed = get("model.embed_tokens.weight")
        lm_head = opt("lm_head.weight")
        self.lm_head = self.embed if lm_head is None else lm_head  # None: tied embeddings
        self.final_norm = get("model.norm.weight")
        self.embed_scale = torch.tensor(spec.embed_scale).to(device=device, dtype=dtype)
        self.layers = []
        for i in range(spec.num_layers):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            biases = [opt(a + n + "_proj.bias") for n in "qkv"]
            self.layers.append(
                _Layer(
                    qkv=torch.cat([get(a + n + "_proj.weight") for n in "qkv"]),
                    qkv_bias=None if biases[0] is None else torch.cat(biases),  # type: ignore[arg-type]
                    o=get(a + "o_proj.weight"),
                    gate_up=torch.cat(
                        [get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")]
                    ),
                    down=get(p + "mlp.down_proj.weight"),
                    input_norm=get(p + "input_layernorm.weight"),
                    post_attn_norm=get(p + "post_attention_layernorm.weight"),
                    pre_ff_norm=opt(p + "pre_feedforward_layernorm.weight"),
                    post_ff_norm=opt(p + "post_feedforward_layernorm.weight"),
                    q_norm=opt(a + "q_norm.weight") if spec.qk_norm else None,
                    k_norm=opt(a + "k_norm.weight") if spec.qk_norm else None,
                )
            )
        # one extra scratch slot (index max_slots) for the padding rows of a graph bucket
        shape = (spec.num_layers, max_slots + 1, spec.num_kv_heads, max_len, spec.head_dim)
        self.k_cache = torch.zeros(shape, device=device, dtype=dtype)
        self.v_cache = torch.zeros(shape, device=device, dtype=dtype)
        gib = (max_slots + 1) * spec.kv_slot_bytes(max_len, self.k_cache.element_size()) / 2**30
        logger.info("fast %s: %d layers, KV cache %d slots x %d positions = %.2f GiB",
                    spec.family, spec.num_layers, max_slots, max_len, gib)  # fmt: skip

    @classmethod
    def from_config(
        cls,
        config: Any,
        state_dict: Mapping[str, torch.Tensor],
        max_slots: int,
        max_len: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        rotary: Any = None,
    ) -> FastDecoder:
        """Build from a transformers config and a ``*ForCausalLM`` state dict.

        Args:
            config: the model's transformers config.
            state_dict: its weights (``model.state_dict()`` or loaded safetensors).
            max_slots: concurrent sequences (KV-cache slots).
            max_len: positions per slot: the longest prompt + new tokens.
            device: where weights and cache live.
            dtype: compute dtype (default: the embedding's dtype).
            rotary: a loaded model's rotary module, to reuse its exact buffers.
        """
        device = torch.device(device)
        dtype = dtype or state_dict["model.embed_tokens.weight"].dtype
        tables = rope_tables(config, max_len, device, dtype, rotary)
        return cls(
            DecoderSpec.from_config(config), state_dict, tables, max_slots, max_len, device, dtype
        )

    # -- the layers, shared by prefill and decode -------------------------------------------

    def _forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        slots: torch.Tensor,
        attend: Callable[[int, torch.Tensor], torch.Tensor | kernels.AttentionParts],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All layers over a flat batch of tokens; returns (last sublayer output, residual)."""
        spec = self.spec
        h = F.embedding(tokens, self.embed)
        if spec.gemma:
            h = h * self.embed_scale
        residual: torch.Tensor | None = None
        pending_norm: torch.Tensor | None = None  # Gemma's post-feedforward norm of the last layer
        rows = tokens.shape[0]
        # kernels.norm_linear runs each norm inside the projection after it and the activation
        # inside the gate|up projection for a few rows (batch-1 decode: 6 kernels a layer, not
        # 9); for more rows it runs add + RMSNorm, cuBLAS and act-and-multiply kernels.
        for i, layer in enumerate(self.layers):
            qkv, residual = kernels.norm_linear(h, layer.qkv, layer.qkv_bias, layer.input_norm,
                                                residual, spec.eps, spec.gemma, pending_norm)  # fmt: skip
            cos, sin = self.tables[spec.layer_types[i]]
            q = kernels.rope_and_cache_write(
                qkv, positions, slots, cos, sin, self.k_cache[i], self.v_cache[i],
                spec.num_heads, spec.num_kv_heads, layer.q_norm, layer.k_norm, spec.eps, spec.gemma,
            )  # fmt: skip
            attended = attend(i, q)  # split attention comes uncombined: o combines it
            if not isinstance(attended, kernels.AttentionParts):
                attended = attended.reshape(rows, -1)
            h, _ = kernels.norm_linear(attended, layer.o)
            # Gemma: residual + post_attn_norm(h), then pre_feedforward_norm; others: one norm
            norm, pre = (
                (layer.pre_ff_norm, layer.post_attn_norm)
                if spec.gemma
                else (layer.post_attn_norm, None)
            )
            act, residual = kernels.norm_linear(h, layer.gate_up, None, norm, residual, spec.eps,
                                                spec.gemma, pre, spec.activation)  # fmt: skip
            h, _ = kernels.norm_linear(act, layer.down)
            pending_norm = layer.post_ff_norm
        assert residual is not None
        return h, residual

    def _logits(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Final norm (with Gemma's last post-feedforward norm folded in) and the LM head."""
        spec = self.spec
        pending = self.layers[-1].post_ff_norm
        x, _ = kernels.add_rms_norm(h, residual, self.final_norm, spec.eps, spec.gemma, pending)
        logits = F.linear(x, self.lm_head)
        if spec.final_softcap:  # as transformers does it, in the logits' dtype
            logits = torch.tanh(logits / spec.final_softcap) * spec.final_softcap
        return logits

    # -- prefill ------------------------------------------------------------------------------

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], slots: list[int]) -> torch.Tensor:
        """Run prompts (right-padded into one [requests, longest] batch) into their cache slots.

        Padding tokens write keys/values past each prompt's end: decode overwrites a position
        before any query can see it, so they never leak into attention.

        Returns:
            [requests] the greedy first new token of each prompt (int64, on the device).
        """
        requests, longest = len(prompts), max(len(p) for p in prompts)
        if longest > self.max_len:
            raise ValueError(f"prompt of {longest} tokens exceeds max_len={self.max_len}")
        dev = self.device
        tokens = torch.zeros(requests, longest, dtype=torch.long)
        for r, prompt in enumerate(prompts):
            tokens[r, : len(prompt)] = torch.tensor(prompt)
        slot_t = torch.tensor(slots, dtype=torch.long, device=dev)
        last = torch.tensor([len(p) - 1 for p in prompts], dtype=torch.long, device=dev)
        return self.prefill_padded(tokens.to(dev), slot_t, last)

    def prefill_padded(
        self, tokens: torch.Tensor, slots: torch.Tensor, last: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`prefill` on device tensors of fixed shapes, so a CUDA graph can capture it.

        Args:
            tokens: [requests, length] int64 prompts, right-padded.
            slots: [requests] int64 cache slot of each prompt.
            last: [requests] int64 index of each prompt's last token in its row.

        Returns:
            [requests] the greedy first new token of each prompt.
        """
        requests, longest = tokens.shape
        dev = self.device
        positions = torch.arange(longest, device=dev).repeat(requests)
        # a contiguous copy (kernels index it flat); repeat_interleave would sync with the host
        flat_slots = slots[:, None].expand(requests, longest).contiguous().view(-1)
        masks = {w: self._prefill_mask(longest, w) for w in set(self.spec.windows)}

        def attend(i: int, q: torch.Tensor) -> torch.Tensor:
            return self._prefill_attention(i, q, slots, longest, masks[self.spec.windows[i]])

        h, residual = self._forward(tokens.reshape(-1), positions, flat_slots, attend)
        rows = torch.arange(requests, device=dev) * longest + last
        logits = self._logits(h[rows], residual[rows])
        return logits.argmax(-1)

    def _prefill_mask(self, length: int, window: int) -> torch.Tensor:
        q = torch.arange(length, device=self.device)[:, None]
        k = torch.arange(length, device=self.device)[None, :]
        mask = k <= q
        if window:  # transformers' sliding_window_overlay: kv_idx > q_idx - window
            mask &= k > q - window
        return mask

    def _prefill_attention(
        self, i: int, q: torch.Tensor, slots: torch.Tensor, length: int, mask: torch.Tensor
    ) -> torch.Tensor:
        spec = self.spec
        requests = slots.shape[0]
        qb = q.view(requests, length, spec.num_heads, spec.head_dim).transpose(1, 2)
        k = self.k_cache[i].index_select(0, slots)[:, :, :length]
        v = self.v_cache[i].index_select(0, slots)[:, :, :length]
        group = spec.num_heads // spec.num_kv_heads
        if group > 1:  # transformers' repeat_kv order: q head h reads kv head h // group
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        if spec.attn_softcap:
            scores = torch.matmul(qb, k.transpose(2, 3)) * spec.attn_scale
            scores = torch.tanh(scores / spec.attn_softcap) * spec.attn_softcap
            scores = scores.masked_fill(~mask, float("-inf"))
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(probs, v)
        elif not spec.windows[i] or spec.windows[i] >= length:  # plain causal: SDPA's fused kernels
            out = F.scaled_dot_product_attention(qb, k, v, is_causal=True, scale=spec.attn_scale)
        else:
            out = F.scaled_dot_product_attention(qb, k, v, attn_mask=mask, scale=spec.attn_scale)
        return out.transpose(1, 2).reshape(requests * length, -1)

    # -- decode -------------------------------------------------------------------------------

    def decode_step(
        self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        """One greedy decode step for a batch of rows; CUDA-graph capturable.

        Args:
            tokens: [rows] int64 last token of each row (fed at ``positions``).
            positions: [rows] int64 position of that token.
            slots: [rows] int64 cache slot of each row (``max_slots`` for padding rows).

        Returns:
            [rows] int64 next tokens (argmax, first index on ties like ``torch.argmax``).
        """
        spec = self.spec
        lengths = positions + 1

        def attend(i: int, q: torch.Tensor) -> torch.Tensor | kernels.AttentionParts:
            return kernels.decode_attention(q, self.k_cache[i], self.v_cache[i], slots, lengths,
                                            spec.attn_scale, spec.windows[i], spec.attn_softcap,
                                            partial=q.shape[0] <= kernels.SMALL_ROWS)  # fmt: skip

        h, residual = self._forward(tokens, positions, slots, attend)
        return kernels.argmax(self._logits(h, residual))

    def weight_bytes(self) -> int:
        """Bytes of weights one decode step reads (embedding rows aside): the bandwidth bound."""
        tensors = [self.lm_head, self.final_norm]
        for layer in self.layers:
            tensors += [t for t in vars(layer).values() if isinstance(t, torch.Tensor)]
        return sum(int(t.numel() * t.element_size()) for t in tensors)


def sharpen_random_weights(model: Any) -> None:
    """Give a randomly initialised transformers model weights whose greedy choices are not
    near-ties, so greedy equality with transformers is a meaningful check (benchmark and tests):
    matrices ~ N(0, 1.5^2 / fan_in), biases ~ N(0, 0.01), norm weights near their identity (Gemma
    multiplies by 1 + w, the others by w)."""
    gemma = model.config.model_type == "gemma3_text"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, 1.5 / p.shape[1] ** 0.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
            else:
                p.uniform_(-0.5, 0.5).add_(0.0 if gemma else 1.0)
