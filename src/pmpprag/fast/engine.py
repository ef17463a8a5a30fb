"""FastEngine: greedy generation with continuous batching over the `fast` decoder.

Each request owns a KV-cache slot from its prefill until it finishes; whenever slots are free,
waiting requests are prefilled (together, as one padded batch) and join the running batch.

The decode loop runs in chunks: the host writes the batch's inputs (last token, position,
slot per row, padded up to a batch-size bucket) into static buffers, then replays the bucket's
CUDA graph ``k`` times without syncing. Each replay runs the whole step - embedding, all
layers, LM head, argmax - and also feeds the argmax back as the next input, advances the
positions and appends the tokens to an on-device buffer. One device-to-host copy per chunk then
hands the host ``k`` tokens per row to check for EOS and budgets. ``k`` never exceeds any row's
remaining budget, so no row runs past ``max_len``; a row that hits EOS mid-chunk wastes at most
``sync_every - 1`` steps. On the CPU the same step runs eagerly.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pmpprag.fast.model import FastDecoder

logger = logging.getLogger(__name__)


@dataclass
class GenerateResult:
    """Generated token ids per prompt (EOS included when hit) and where the time went."""

    tokens: list[list[int]]
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    decode_steps: int = 0  # graph replays (each advances every active row by one token)
    ttft_s: list[float] = field(default_factory=list)  # per prompt, from the call's start

    @property
    def new_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s else 0.0


@dataclass
class _Request:
    index: int
    prompt: list[int]
    max_new: int
    slot: int = -1
    out: list[int] = field(default_factory=list)

    @property
    def position(self) -> int:
        """Position of the last generated token, which is the next decode input."""
        return len(self.prompt) + len(self.out) - 1


class _Bucket:
    """Static inputs/outputs of the decode step for one padded batch size, and its graph."""

    def __init__(self, size: int, chunk: int, device: torch.device, scratch_slot: int) -> None:
        self.size = size
        self.tokens = torch.zeros(size, dtype=torch.long, device=device)
        self.positions = torch.zeros(size, dtype=torch.long, device=device)
        self.slots = torch.full((size,), scratch_slot, dtype=torch.long, device=device)
        self.out = torch.zeros(chunk, size, dtype=torch.long, device=device)
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.graph: Any = None  # torch.cuda.CUDAGraph once captured


class _PrefillGraph:
    """Static inputs of a one-prompt prefill padded to ``length`` tokens, and its graph."""

    def __init__(self, length: int, device: torch.device, scratch_slot: int) -> None:
        self.length = length
        self.tokens = torch.zeros(1, length, dtype=torch.long, device=device)
        self.slot = torch.full((1,), scratch_slot, dtype=torch.long, device=device)
        self.last = torch.zeros(1, dtype=torch.long, device=device)
        self.out: torch.Tensor | None = None  # the graph's output (the first new token)
        self.graph: Any = None


class FastEngine:
    """Greedy generation on :class:`FastDecoder` with a slotted cache and CUDA graphs."""

    def __init__(self, decoder: FastDecoder, use_cuda_graphs: bool | None = None,
                 sync_every: int = 32, prefill_tokens: int = 16384,
                 graph_prefill_max: int = 2048) -> None:  # fmt: skip
        """
        Args:
            decoder: the model with its KV cache (``max_slots`` concurrent requests).
            use_cuda_graphs: capture the decode step, and the prefill of a lone prompt of at
                most ``graph_prefill_max`` tokens (default: on CUDA).
            sync_every: decode steps replayed between two host syncs.
            prefill_tokens: padded prompt tokens per prefill batch (bounds activation memory).
            graph_prefill_max: longest lone prompt whose prefill is padded to a power of two
                and replayed as a CUDA graph (0: never). A batch-1 prefill is hundreds of small
                kernels whose launches, not their work, take the time.
        """
        self.decoder = decoder
        self.device = decoder.device
        self.use_cuda_graphs = (
            self.device.type == "cuda" if use_cuda_graphs is None else use_cuda_graphs
        )
        self.sync_every = sync_every
        self.prefill_tokens = prefill_tokens
        self.buckets: dict[int, _Bucket] = {}
        self.graph_prefill_max = graph_prefill_max if self.use_cuda_graphs else 0
        self.prefill_graphs: dict[int, _PrefillGraph] = {}
        self._pool: Any = None
        sizes = [1, 2, 4, 8, 16, 32, *range(64, decoder.max_slots, 32), decoder.max_slots]
        self.bucket_sizes = sorted({s for s in sizes if s <= decoder.max_slots})

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_model(cls, model: Any, max_slots: int = 64, max_len: int = 1024,
                   device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                   **kwargs: Any) -> FastEngine:  # fmt: skip
        """Build from a loaded transformers ``*ForCausalLM`` (its weights are copied)."""
        device = torch.device(device) if device is not None else next(model.parameters()).device
        decoder = FastDecoder.from_config(
            model.config, model.state_dict(), max_slots, max_len, device,
            dtype or next(model.parameters()).dtype, rotary=model.model.rotary_emb,
        )  # fmt: skip
        return cls(decoder, **kwargs)

    @classmethod
    def from_pretrained(cls, path: str | Path, max_slots: int = 64, max_len: int = 1024,
                        device: str = "cuda", dtype: torch.dtype = torch.bfloat16,
                        **kwargs: Any) -> FastEngine:  # fmt: skip
        """Load a Hugging Face model folder (config.json + safetensors) through transformers."""
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
        return cls.from_model(model, max_slots, max_len, device, dtype, **kwargs)

    # -- generation ---------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts_token_ids: list[list[int]],
        max_new_tokens: int,
        eos: int | Iterable[int] | None = None,
    ) -> GenerateResult:
        """Greedy continuation of each prompt, batched continuously over the cache slots.

        Args:
            prompts_token_ids: token ids per prompt (no padding).
            max_new_tokens: new tokens per prompt, unless EOS comes first.
            eos: token id(s) that end a sequence (kept in its output), or None to never stop.

        Returns:
            GenerateResult with the new tokens of each prompt in input order.
        """
        decoder = self.decoder
        eos_ids = set([eos] if isinstance(eos, int) else (eos or []))
        longest = max((len(p) for p in prompts_token_ids), default=0)
        if longest + max_new_tokens > decoder.max_len:
            raise ValueError(f"prompt ({longest}) + max_new_tokens ({max_new_tokens}) exceeds "
                             f"max_len={decoder.max_len}: build the engine with a larger max_len")  # fmt: skip
        if any(not p for p in prompts_token_ids):
            raise ValueError("empty prompt: every prompt needs at least one token")
        requests = [_Request(i, list(p), max_new_tokens) for i, p in enumerate(prompts_token_ids)]
        result = GenerateResult(tokens=[[] for _ in requests], ttft_s=[0.0] * len(requests))
        if max_new_tokens <= 0:
            return result
        waiting = deque(requests)
        free = list(range(decoder.max_slots - 1, -1, -1))
        running: list[_Request] = []
        start = time.perf_counter()

        def finish(req: _Request) -> bool:
            done = len(req.out) >= req.max_new or (bool(req.out) and req.out[-1] in eos_ids)
            if done:
                result.tokens[req.index] = req.out
                free.append(req.slot)
            return done

        while waiting or running:
            if waiting and free:
                started = time.perf_counter()
                admitted = self._admit(waiting, free)
                self._sync()
                now = time.perf_counter()
                result.prefill_s += now - started
                for req in admitted:
                    result.ttft_s[req.index] = now - start
                    if not finish(req):
                        running.append(req)
                continue  # fill every free slot before decoding
            started = time.perf_counter()
            steps = min(self.sync_every, *(r.max_new - len(r.out) for r in running))
            new = self._decode_chunk(running, steps)
            for row, req in enumerate(running):
                for token in new[:, row].tolist():
                    req.out.append(token)
                    if token in eos_ids:
                        break
            running = [r for r in running if not finish(r)]
            result.decode_s += time.perf_counter() - started
            result.decode_steps += steps
        result.total_s = time.perf_counter() - start
        return result

    def _admit(self, waiting: deque[_Request], free: list[int]) -> list[_Request]:
        """Prefill as many waiting requests as there are free slots, in padded batches."""
        admitted: list[_Request] = []
        while waiting and free:
            batch: list[_Request] = []
            longest = 0
            while waiting and free and len(batch) < len(free):
                longest_if = max(longest, len(waiting[0].prompt))
                if batch and longest_if * (len(batch) + 1) > self.prefill_tokens:
                    break
                batch.append(waiting.popleft())
                longest = longest_if
            for req in batch:
                req.slot = free.pop()
            if len(batch) == 1 and len(batch[0].prompt) <= self.graph_prefill_max:
                first = self._prefill_one(batch[0].prompt, batch[0].slot)
            else:
                first = self.decoder.prefill([r.prompt for r in batch], [r.slot for r in batch])
            for req, token in zip(batch, first.tolist(), strict=True):
                req.out.append(token)
            admitted += batch
        return admitted

    def _prefill_one(self, prompt: list[int], slot: int) -> torch.Tensor:
        """One prompt's prefill, padded to a power of two (at least 16, at most ``max_len``)
        and replayed from that length's CUDA graph (captured on first use)."""
        length = min(max(16, 1 << (len(prompt) - 1).bit_length()), self.decoder.max_len)
        pg = self._prefill_graph(length)
        padded = torch.zeros(1, length, dtype=torch.long)
        padded[0, : len(prompt)] = torch.tensor(prompt)
        pg.tokens.copy_(padded.to(self.device, non_blocking=True))
        pg.slot.fill_(slot)
        pg.last.fill_(len(prompt) - 1)
        if pg.graph is None:
            return self.decoder.prefill_padded(pg.tokens, pg.slot, pg.last)
        pg.graph.replay()
        assert pg.out is not None
        return pg.out.clone()

    def _prefill_graph(self, length: int) -> _PrefillGraph:
        pg = self.prefill_graphs.get(length)
        if pg is None:
            pg = _PrefillGraph(length, self.device, self.decoder.max_slots)
            if self.use_cuda_graphs:
                self._capture_prefill(pg)
            self.prefill_graphs[length] = pg
        return pg

    def capture_all(self) -> None:
        """Capture every decode batch bucket and every one-prompt prefill length now (a server
        at start-up), so no request waits for a capture when its batch shrinks or grows."""
        if not self.use_cuda_graphs:
            return
        started = time.perf_counter()
        self.capture(self.bucket_sizes)
        length = 16
        while length <= min(self.graph_prefill_max, self.decoder.max_len):
            self._prefill_graph(length)
            length *= 2
        logger.info("captured %d decode buckets and %d prefill lengths in %.1f s",
                    len(self.buckets), len(self.prefill_graphs), time.perf_counter() - started)  # fmt: skip

    def _capture_prefill(self, pg: _PrefillGraph) -> None:
        """As :meth:`_capture`, for a padded one-prompt prefill; warm-up and capture write only
        the scratch slot."""
        pg.slot.fill_(self.decoder.max_slots)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.decoder.prefill_padded(pg.tokens, pg.slot, pg.last)
        torch.cuda.current_stream().wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            pg.out = self.decoder.prefill_padded(pg.tokens, pg.slot, pg.last)
        pg.graph = graph
        logger.info("captured the one-prompt prefill for %d tokens", pg.length)

    def _bucket(self, rows: int) -> _Bucket:
        size = next(s for s in self.bucket_sizes if s >= rows)
        if size not in self.buckets:
            bucket = _Bucket(size, self.sync_every, self.device, self.decoder.max_slots)
            if self.use_cuda_graphs:
                self._capture(bucket)
            self.buckets[size] = bucket
        return self.buckets[size]

    def _step(self, bucket: _Bucket) -> None:
        """One decode step on the bucket's static buffers, feeding its output back."""
        nxt = self.decoder.decode_step(bucket.tokens, bucket.positions, bucket.slots)
        bucket.out.index_copy_(0, bucket.step, nxt[None])
        bucket.tokens.copy_(nxt)
        bucket.positions.add_(1)
        bucket.step.add_(1)

    def _reset_padding(self, bucket: _Bucket) -> None:
        bucket.slots.fill_(self.decoder.max_slots)
        bucket.positions.zero_()
        bucket.tokens.zero_()
        bucket.step.zero_()

    def _capture(self, bucket: _Bucket) -> None:
        """Warm up (Triton compiles, cuBLAS picks kernels) on a side stream, then capture."""
        self._reset_padding(bucket)  # warm-up and capture touch only the scratch slot
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step(bucket)
                self._reset_padding(bucket)
        torch.cuda.current_stream().wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._step(bucket)
        bucket.graph = graph
        self._reset_padding(bucket)
        logger.info("captured the decode step for batch bucket %d", bucket.size)

    def capture(self, batch_sizes: Iterable[int]) -> None:
        """Capture the buckets these batch sizes fall in now, so generate() does not pay for it."""
        if self.use_cuda_graphs:
            for rows in sorted(set(batch_sizes), reverse=True):
                self._bucket(rows)

    def _decode_chunk(self, running: list[_Request], steps: int) -> torch.Tensor:
        """Replay ``steps`` decode steps for the running rows; returns [steps, rows] on the host."""
        rows = len(running)
        bucket = self._bucket(rows)
        self._reset_padding(bucket)
        dev = self.device
        bucket.tokens[:rows].copy_(
            torch.tensor([r.out[-1] for r in running]).to(dev, non_blocking=True)
        )
        bucket.positions[:rows].copy_(
            torch.tensor([r.position for r in running]).to(dev, non_blocking=True)
        )
        bucket.slots[:rows].copy_(
            torch.tensor([r.slot for r in running]).to(dev, non_blocking=True)
        )
        for _ in range(steps):
            if bucket.graph is not None:
                bucket.graph.replay()
            else:
                self._step(bucket)
        return bucket.out[:steps, :rows].cpu()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
