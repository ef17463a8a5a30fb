"""The transformers back-end: batched generation with left padding, CPU or GPU, LoRA adapters,
and models with a trimmed vocabulary (generation/vocab.py: ids are mapped at the model)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from pmpprag import models
from pmpprag.generation.base import (
    Generation,
    GeneratorConfig,
    Prompt,
    SamplingConfig,
    Timer,
    truncate_at_stop,
)
from pmpprag.generation.prompt import prompt_token_ids, render_prompt
from pmpprag.generation.vocab import VocabMap
from pmpprag.text import repeats_itself

__all__ = ["TransformersGenerator"]


class _FirstToken:
    """A logits processor that only notes when the first decoding step happens (= TTFT)."""

    def __init__(self, timer: Timer) -> None:
        self.timer = timer

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.timer.mark_first()
        return scores


class _Cancelled:
    """A stopping criterion that ends generation once ``event`` is set: a reader that stops
    reading a stream (a closed connection, the next question) frees the model at once."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class _NoReplyRepeat:
    """transformers' ``NoRepeatNGramLogitsProcessor`` applied to the reply only (the columns
    after ``start``, the left-padded prompt width): the reply may not repeat one of its own
    ``n``-token runs, the loops a small model falls into, while copying a code line from the
    passages stays allowed (the library's processor alone would ban that too)."""

    def __init__(self, n: int, start: int) -> None:
        from transformers import NoRepeatNGramLogitsProcessor

        self.reply_only, self.start = NoRepeatNGramLogitsProcessor(n), start

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.reply_only(input_ids[:, self.start :], scores)


class _RepeatStop:
    """A stopping criterion that ends each row of a batch once its reply (the columns after
    ``start``) repeats a run of ``span`` characters of itself (``text.repeats_itself``): a
    looping reply stops there instead of running to the token limit, and frees the batch
    sooner. Checked every ``every`` tokens, decoding each unfinished row's reply."""

    def __init__(self, span: int, start: int, decode: Any, pad_id: int, every: int = 8) -> None:
        self.span, self.start, self.decode, self.pad_id, self.every = (
            span, start, decode, pad_id, every,
        )  # fmt: skip

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if (input_ids.shape[1] - self.start) % self.every:
            return done
        for i, row in enumerate(input_ids[:, self.start :].tolist()):
            text = self.decode([t for t in row if t != self.pad_id])
            done[i] = repeats_itself(text, self.span)
        return done


def _mapped_streamer(streamer: Any, vocab: VocabMap) -> Any:
    """A streamer that maps a trimmed model's ids back to the tokenizer's before decoding."""
    put = streamer.put

    def mapped_put(value: Any) -> None:
        put(value.new_tensor(vocab.to_old(value.flatten().tolist())))

    streamer.put = mapped_put
    return streamer


class TransformersGenerator:
    name = "transformers"

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.cfg = cfg
        self.model, self.tokenizer = models.load_causal_lm(
            cfg.model, device=cfg.device, dtype=cfg.dtype
        )
        if cfg.adapter:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, cfg.adapter).eval()
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._lock = threading.Lock()  # one generate() at a time: a model is not re-entrant
        self.vocab = VocabMap.load(models.resolve(cfg.model).path_or_id)
        self.pad_id = int(self.tokenizer.pad_token_id)
        if self.vocab is not None:  # the model reads trimmed ids
            pad = self.vocab.new_id(self.pad_id)
            if pad is None:
                raise ValueError(f"{cfg.model}: the pad token is not in the trimmed vocabulary")
            self.pad_id = pad

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        """Left-padded input ids (in the model's ids) and attention mask, on the model's device."""
        import torch

        rows = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if self.vocab is not None:
            rows = [self.vocab.to_new(r, self.tokenizer) for r in rows]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return {
            "input_ids": ids.to(self.model.device),
            "attention_mask": mask.to(self.model.device),
        }

    def _decode(self, ids: list[int]) -> str:
        if self.vocab is not None:
            ids = self.vocab.to_old(ids)
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The ids the model reads for ``prompt`` (the one chat template, no extra BOS)."""
        return prompt_token_ids(self.tokenizer, prompt)

    def _kwargs(self, sampling: SamplingConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": self.pad_id,
        }
        if sampling.min_new_tokens:
            kwargs["min_new_tokens"] = sampling.min_new_tokens
        if sampling.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = sampling.repetition_penalty
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop and self.vocab is None:  # (trimmed ids: stop strings cut the text after)
            kwargs.update(stop_strings=sampling.stop, tokenizer=self.tokenizer)
        return kwargs

    def _processors(self, sampling: SamplingConfig, inputs: dict[str, Any]) -> list[Any]:
        if not sampling.no_repeat_ngram:
            return []
        return [_NoReplyRepeat(sampling.no_repeat_ngram, inputs["input_ids"].shape[1])]

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        inputs = self._encode([render_prompt(self.tokenizer, p) for p in prompts])
        width = inputs["input_ids"].shape[1]
        stops = (
            [_RepeatStop(sampling.stop_on_repeat, width, self._decode, self.pad_id)]
            if sampling.stop_on_repeat
            else []
        )
        with self._lock:
            torch.manual_seed(sampling.seed)
            timer = Timer()
            with torch.no_grad():
                out = self.model.generate(
                    **inputs,
                    logits_processor=LogitsProcessorList(
                        [_FirstToken(timer), *self._processors(sampling, inputs)]
                    ),
                    stopping_criteria=StoppingCriteriaList(stops),
                    **self._kwargs(sampling),
                )
            wall = timer.elapsed
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        new = out[:, inputs["input_ids"].shape[1] :]
        results = []
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        for row, n_prompt in zip(new.tolist(), prompt_lengths, strict=True):
            ids = [t for t in row if t != self.pad_id]
            ended = len(ids) < len(row) or (bool(ids) and ids[-1] in eos_ids)
            text, stopped = truncate_at_stop(self._decode(ids), sampling.stop)
            results.append(
                Generation(
                    text.strip(),
                    int(n_prompt),
                    len(ids),
                    timer.first or wall,
                    wall,
                    "stop" if ended or stopped else "length",
                )
            )
        return results

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        """Mean log-probability per token of each continuation after its prompt."""
        import torch

        out = []
        for prompt, continuation in zip(prompts, continuations, strict=True):
            head = prompt_token_ids(self.tokenizer, prompt)
            tail = self.tokenizer(continuation, add_special_tokens=False)["input_ids"] or [
                self.tokenizer.eos_token_id
            ]
            if self.vocab is not None:
                head, tail = (
                    self.vocab.to_new(head, self.tokenizer),
                    self.vocab.to_new(tail, self.tokenizer),
                )
            ids = torch.tensor([head + tail], device=self.model.device)
            with self._lock, torch.no_grad():
                logits = self.model(ids).logits[0, len(head) - 1 : -1].float()
            logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(head) :, None])
            out.append(float(logprobs.mean()))
        return out

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        from transformers import LogitsProcessorList, StoppingCriteriaList, TextIteratorStreamer

        inputs = self._encode([render_prompt(self.tokenizer, prompt)])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if self.vocab is not None:  # the streamer decodes original ids
            streamer = _mapped_streamer(streamer, self.vocab)
        cancelled = threading.Event()
        kwargs = {**inputs, **self._kwargs(sampling), "streamer": streamer,
                  "stopping_criteria": StoppingCriteriaList([_Cancelled(cancelled)]),
                  "logits_processor": LogitsProcessorList(self._processors(sampling, inputs))}  # fmt: skip

        def work() -> None:
            with self._lock:
                self.model.generate(**kwargs)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        seen = ""
        try:
            for piece in streamer:
                seen += piece
                cut, stopped = truncate_at_stop(seen, sampling.stop)
                if stopped:
                    yield piece[: len(piece) - (len(seen) - len(cut))]
                    break
                yield piece
        finally:  # a stop string, or a reader that left: end the generation, free the model
            cancelled.set()
            thread.join()
