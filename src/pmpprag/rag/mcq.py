"""Multiple-choice answering, four ways, so the best one per model can be measured and chosen.

- ``generate``: the model reads passages, question and options and names a letter (parsed).
- ``loglik``: the model scores each option's text as the reply (mean log-probability per token).
- ``evidence``: no model reasoning; each option is scored by how strongly the retrieved passages
  support question + option (best sentence similarity + share of its distinctive terms found).
- ``combined``: z-scored ``loglik`` and ``evidence`` added with weight ``loglik_weight``.
- ``calculate``: the worked-formula calculator (:mod:`pmpprag.rag.calc`) answers the numeric
  questions it can read (exactly one option must agree with its result); ``evidence`` answers
  the rest. The result records which of the two chose.

Measured (README, "Multiple-choice methods"): SmolLM2-135M is at chance with ``generate`` and
barely above it with ``loglik``; ``calculate`` (with ``evidence`` behind it) measures best and
is the embedded default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from pmpprag.generation import Generation, Generator, Messages, SamplingConfig
from pmpprag.rag.calc import pick_option, solve
from pmpprag.rag.extractive import select_sentences, support_scores
from pmpprag.rag.prompts import LETTERS, format_choices, parse_letter, user_turn
from pmpprag.schema import Hit

__all__ = ["METHODS", "McqMethod", "McqResult", "answer_mcq"]

McqMethod = Literal["generate", "loglik", "evidence", "combined", "calculate"]
METHODS: tuple[McqMethod, ...] = ("generate", "loglik", "evidence", "combined", "calculate")


@dataclass
class McqResult:
    """The chosen letter, every option's score, the method that decided, and why."""

    letter: str
    scores: list[float]
    method: str  # the method that decided: "evidence", or "calculate->evidence" after a fallback
    reason: str
    generation: Generation | None = None


def _messages(system: str, context: str, question: str, choices: list[str]) -> Messages:
    user = user_turn(question, context, format_choices(choices))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _z(values: list[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return (x - x.mean()) / (x.std() + 1e-9)


def answer_mcq(
    method: McqMethod,
    question: str,
    choices: list[str],
    hits: list[Hit],
    context: str,
    system: str,
    embedder: Any,
    generator: Generator | None,
    loglik_weight: float = 0.3,
) -> McqResult:
    """Pick an option letter with ``method``; the reason cites the best supporting sentence."""
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(
            f"multiple-choice questions need 2-{len(LETTERS)} choices, got {len(choices)}"
        )
    if not hits and method in ("evidence", "combined"):
        method = "loglik"  # no passages to weigh: the model's own likelihood decides
    generation = None
    if method == "calculate":
        picked = pick_option(solve(question), choices)
        if picked is not None:
            index, result = picked
            scores = [1.0 if i == index else 0.0 for i in range(len(choices))]
            return McqResult(LETTERS[index], scores, "calculate", f"Worked: {result.work}.")
        # Nothing the calculator can read: the passages decide (the model, without passages).
        fallback = answer_mcq(
            "evidence", question, choices, hits, context, system, embedder, generator
        )
        return replace(fallback, method=f"calculate->{fallback.method}")
    if method == "generate":
        if generator is None:
            raise ValueError("the generate method needs a generator")
        generation = generator.generate(
            [_messages(system, context, question, choices)], SamplingConfig(max_new_tokens=24)
        )[0]
        letter = parse_letter(generation.text, len(choices))
        used = "generate"
        if letter is None:  # no letter in the reply: fall back to the passages' evidence
            scores = support_scores(embedder, question, choices, hits)
            letter, used = LETTERS[int(np.argmax(scores))], "generate->evidence"
        scores = [1.0 if LETTERS[i] == letter else 0.0 for i in range(len(choices))]
    else:
        evidence = support_scores(embedder, question, choices, hits) if method != "loglik" else None
        loglik = None
        if method in ("loglik", "combined"):
            if generator is None:
                raise ValueError(f"the {method} method needs a generator")
            prompt = _messages(system, context, question, choices)
            loglik = generator.score(
                [prompt] * len(choices), [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
            )
        if method == "combined":
            combined = loglik_weight * _z(loglik or []) + (1 - loglik_weight) * _z(evidence or [])
            scores = [float(x) for x in combined]
        else:
            scores = list(loglik if method == "loglik" else evidence)  # type: ignore[arg-type]
        letter, used = LETTERS[int(np.argmax(scores))], method
    chosen = choices[LETTERS.index(letter)]
    best = select_sentences(embedder, f"{question} {chosen}", hits, max_sentences=1)
    reason = f"{best[0].text} [{best[0].passage}]" if best else "no supporting passage found"
    return McqResult(letter, scores, used, reason, generation)
