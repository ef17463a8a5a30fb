"""The RAG pipeline: retrieve from the textbook index, answer, cite.
(It stays one module: every answer path of the Assistant shares its retrieval, prompt and citations.)

    from pmpprag.api import Assistant
    assistant = Assistant.load()                      # embedded default (configs/rag/default.yaml)
    answer = assistant.ask("What does __syncthreads() do?")
    answers = assistant.ask_many(questions, batch_size=8)

Modes: ``extractive`` answers with the passages' best sentences, each cited (the embedded
default: a 135M model writes fluent but wrong prose); ``abstractive`` lets the model write from
the numbered passages (for capable models, and the tuned generator); ``auto`` chooses per
question: the worked-formula calculator's extractive answer when a solver reads the question
(a small model cannot do the arithmetic), the model's grounded answer otherwise, and the
extractive answer again when the model declines passages the retriever judged relevant (its
reply is held back while it may still be that refusal, so a stream never shows it) or when its
reply loops: runs to the token limit, or repeats a run of ``loop_span`` characters of itself (a
stream stops there; the app shows the finished answer in place of the streamed text). A question
whose best passage is below ``min_confidence`` gets "not covered" instead of an invented
answer; multiple-choice questions go to the MCQ methods in every mode.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pmpprag import models
from pmpprag.config import load_config, option
from pmpprag.generation import (
    Generation,
    Generator,
    GeneratorConfig,
    Messages,
    SamplingConfig,
    load_generator,
)
from pmpprag.index import Retriever, RetrieverConfig
from pmpprag.rag.calc import solve, worked_text
from pmpprag.rag.extractive import (
    LEXICAL_WEIGHT,
    asks_for_code,
    asks_to_write_code,
    joined_listings,
    key_code_line,
    select_sentences,
    sub_questions,
)
from pmpprag.rag.mcq import McqMethod, answer_mcq
from pmpprag.rag.prompts import (
    ANSWER_INSTRUCTIONS,
    CALCULATOR_HINT,
    CONCISE,
    DECLINES,
    KEY_CODE,
    KEY_LISTING,
    NOT_COVERED,
    WORKED_LEAD,
    build_context,
    cited_numbers,
    declines,
    split_choices,
    trim_texts,
    user_turn,
)
from pmpprag.schema import CITATION_MARKER, Answer, Citation, Hit
from pmpprag.text import english_terms, has_cjk, repeats_itself

logger = logging.getLogger(__name__)

# A question that asks for code to be written gets the notes' listing that holds the key line,
# up to this many statements, not the line alone (the team's Chinese code dev set,
# data/dev/code_zh_dev.jsonl, 27 items: course metric / CJK ROUGE-L / key points 0.315 / 0.187
# / 0.64 -> 0.452 / 0.269 / 0.79; 12 statements about as 30; the Chinese dev set 0.342 / 0.239
# -> 0.343 / 0.240, the English one unchanged).
LISTING_STATEMENTS = 30


__all__ = ["Assistant", "Question", "RagConfig", "loop_verdict"]


def loop_verdict(text: str, finish_reason: str, loop_span: int) -> str:
    """Why a reply counts as a loop: "ran_on" (it ran to the token limit), "repeated" (it
    repeats a ``loop_span``-character run of itself; 0 turns that rule off), or "" (it does
    not). Auto mode replaces such a reply with the extractive answer."""
    if finish_reason == "length":
        return "ran_on"
    return "repeated" if loop_span > 0 and repeats_itself(text, loop_span) else ""


# The best multiple-choice method per model, measured on the team's sample set (README).
MCQ_DEFAULTS: dict[str, McqMethod] = {
    "smollm2-135m-instruct": "calculate",
    "gemma3-270m": "calculate",
}


@dataclass
class RagConfig:
    index: Path = option(Path("index/companion"), "index folder")
    retriever: RetrieverConfig = option(default_factory=RetrieverConfig, help="retrieval settings")
    generator: GeneratorConfig = option(default_factory=GeneratorConfig, help="generation back-end")
    sampling: SamplingConfig = option(
        default_factory=lambda: SamplingConfig(max_new_tokens=96), help="decoding settings"
    )
    mode: Literal["extractive", "abstractive", "auto"] = option(
        "extractive", "answer style: extractive, abstractive, or auto per question (module doc)"
    )
    language: Literal["auto", "en", "zh"] = option(
        "auto", "answer language; auto follows the question"
    )
    concise: bool = option(True, "short answers that keep the terms a grader looks for")
    context_tokens: int = option(700, "token budget for the numbered passages in the prompt")
    max_sentences: dict[str, int] = option(
        default_factory=lambda: {"en": 4, "zh": 6},
        help="extractive mode: sentences per answer, by language (measured on the team's dev "
        "sets: English 3/4/5 -> course metric 0.236/0.237/0.234, key points 0.51/0.55/0.60; "
        "Chinese, whose reference answers run ~470 characters, best at 6)",
    )
    english_terms: bool = option(
        True,
        "extractive mode: Chinese answers write 核函数 / 线程束 as kernel / warp, as course-style "
        "Chinese does (the team's Chinese dev set: course metric 0.335 -> 0.342, CJK ROUGE-L "
        "0.237 -> 0.239)",
    )
    calculator: bool = option(
        True,
        "when the worked-formula calculator reads the question, its result leads extractive "
        "answers and is given to the model with the passages in abstractive mode",
    )
    min_confidence: float = option(
        0.3, "below this best-passage cosine the answer is 'not covered'"
    )
    mcq_method: Literal["auto", "generate", "loglik", "evidence", "combined", "calculate"] = option(
        "auto", "multiple-choice method; auto = the measured best for the model"
    )
    rag: bool = option(True, "retrieve passages (false: the bare model answers)")
    cut_to_extractive: bool = option(
        True,
        "auto mode: a reply that ran to the token limit (the tuned gemma looping) gives way to "
        "the extractive answer (the team's Chinese dev set, shipped adapter: course metric "
        "0.318 -> 0.331)",
    )
    loop_span: int = option(
        32,
        "auto mode: so does a reply that repeats a run of this many characters of itself (0: "
        "off; the team's dev sets, shipped adapter, after the cut rule: Chinese 0.331 -> 0.337, "
        "English 0.260 -> 0.262; 16: 0.341 and 0.251)",
    )

    def __post_init__(self) -> None:
        if self.loop_span < 0:
            raise ValueError("--loop_span must be >= 0 (0 = off)")
        if self.sampling.no_repeat_ngram and self.generator.backend != "transformers":
            raise ValueError(
                f"--sampling.no_repeat_ngram works with --generator.backend transformers only, "
                f"not {self.generator.backend}: set it to 0"
            )


@dataclass
class Question:
    """A question, optionally multiple-choice, optionally restricted to some chapters."""

    text: str
    choices: list[str] | None = None
    chapters: set[int] | None = None


class _LazyGenerator:
    """A generator loaded on first use, once, even when several threads ask at the same time;
    assistants with the same generator settings share one (:meth:`Assistant.with_config`)."""

    def __init__(self, cfg: GeneratorConfig, generator: Generator | None = None) -> None:
        self.cfg = cfg
        self._generator = generator
        self._lock = threading.Lock()

    def get(self) -> Generator:
        with self._lock:
            if self._generator is None:
                self._generator = load_generator(self.cfg)
                _check_trimmed(self._generator, self.cfg.model)
            return self._generator


def _check_trimmed(generator: Generator, name: str) -> None:
    """Warn when a trimmed vocabulary lacks tokens of the served prompt's frame (one built
    before :func:`trim_texts` rendered it): the model would read, and cite, unlike in training."""
    vocab, tokenizer = getattr(generator, "vocab", None), getattr(generator, "tokenizer", None)
    if vocab is None or tokenizer is None:
        return
    missing = vocab.missing(tokenizer, trim_texts())
    if missing:
        logger.warning(
            "%s: its trimmed vocabulary lacks %d tokens of the served prompt (%s): rebuild it "
            "with `pmpprag models trim`", name, len(missing), ", ".join(map(repr, missing[:5])),
        )  # fmt: skip


class Assistant:
    """Retriever + generator. ``cfg.rag`` is the one retrieval switch: with it on the assistant
    holds a retriever, with it off none. The generator loads on first need: extractive answers
    and evidence-scored choices never need it. Requests keep no state on the assistant, so one
    assistant serves many threads."""

    def __init__(
        self, cfg: RagConfig, retriever: Retriever | None, generator: Generator | None = None
    ) -> None:
        if cfg.rag and retriever is None:
            raise ValueError("rag is on but no retriever was given (Assistant.load loads one)")
        self.cfg = cfg
        self.retriever = retriever if cfg.rag else None
        self._lazy = _LazyGenerator(cfg.generator, generator)
        self._listings = joined_listings(self.retriever.chunks) if self.retriever else {}

    @classmethod
    def load(cls, config: RagConfig | str | Path | None = None, **overrides: Any) -> Assistant:
        """From a RagConfig, a YAML file, or an index folder; ``overrides`` are dotted options."""
        if isinstance(config, RagConfig):
            cfg = config
        elif config is not None and Path(config).is_dir():
            cfg = load_config(RagConfig, None, {"index": str(config), **overrides})
        else:
            cfg = load_config(RagConfig, config, overrides)
        retriever = Retriever.load(cfg.index, cfg.retriever) if cfg.rag else None
        return cls(cfg, retriever)

    def with_config(self, cfg: RagConfig) -> Assistant:
        """An assistant for ``cfg`` that shares this one's loaded models where the settings
        allow: the retriever for the same index and retriever settings, the generator (loaded
        now or later) for the same generator settings. Everything else loads anew."""
        retriever = None
        if cfg.rag:
            same = cfg.index == self.cfg.index and cfg.retriever == self.cfg.retriever
            if same and self.retriever is not None:
                retriever = self.retriever
            else:
                retriever = Retriever.load(cfg.index, cfg.retriever)
        other = Assistant(cfg, retriever)
        if cfg.generator == self.cfg.generator:
            other._lazy = self._lazy
        return other

    @property
    def generator(self) -> Generator:
        return self._lazy.get()

    @property
    def mcq_method(self) -> McqMethod:
        if self.cfg.mcq_method != "auto":
            return self.cfg.mcq_method
        if self.cfg.generator.model in MCQ_DEFAULTS:
            return MCQ_DEFAULTS[self.cfg.generator.model]
        return (
            "generate"
            if self.cfg.generator.backend in ("openai", "vllm", "vllm-async")
            else "combined"
        )

    def _extracts(self, question: str) -> bool:
        """Whether the passages' sentences answer ``question`` (not the model): always in
        extractive mode; in auto mode when the calculator reads the question."""
        if self.cfg.mode == "auto":
            return self.cfg.calculator and bool(solve(question))
        return self.cfg.mode == "extractive"

    def _not_covered(
        self, question: str, language: Literal["en", "zh"], hits: list[Hit], retrieval_s: float,
        started: float, **meta: Any,
    ) -> Answer:  # fmt: skip
        """The answer for a question whose best passage is below ``min_confidence``, or for
        which no sentence of the passages was chosen."""
        return Answer(question=question, text=NOT_COVERED[language], language=language,
                      mode="not-covered", passages=hits, retrieval_s=retrieval_s,
                      wall_s=time.perf_counter() - started, meta=meta)  # fmt: skip

    def _language(self, question: str) -> Literal["en", "zh"]:
        if self.cfg.language != "auto":
            return self.cfg.language
        return "zh" if has_cjk(question) else "en"

    def _system(self, language: str) -> str:
        return ANSWER_INSTRUCTIONS[language] + (CONCISE[language] if self.cfg.concise else "")

    def ask(self, question: str, *, k: int | None = None, chapters: set[int] | None = None,
            choices: list[str] | None = None) -> Answer:  # fmt: skip
        """Answer one question (see :meth:`ask_many` for batches)."""
        return self.ask_many([Question(question, choices, chapters)], k=k)[0]

    def ask_many(self, questions: list[str | Question], batch_size: int = 8, *,
                 k: int | None = None) -> list[Answer]:  # fmt: skip
        """Answer many questions; generated answers run through the generator in true batches."""
        items = [q if isinstance(q, Question) else Question(q) for q in questions]
        for n, item in enumerate(items):
            if not item.text or not item.text.strip():
                raise ValueError("empty question")
            if item.choices is None:  # options written into the question text ("A. ...")
                text, choices = split_choices(item.text)
                if choices:
                    items[n] = Question(text, choices, item.chapters)
        answers: list[Answer | None] = [None] * len(items)
        pending: list[tuple[int, Any, list[Hit], float]] = []  # waiting for batched generation
        for i, item in enumerate(items):
            started = time.perf_counter()
            language = self._language(item.text)
            hits: list[Hit] = []
            retrieval_s = 0.0
            if self.retriever is not None:
                query = item.text if not item.choices else f"{item.text} {' '.join(item.choices)}"
                found = self.retriever.retrieve(
                    query, k=k, chapters=item.chapters, language=language
                )
                hits, retrieval_s = found.hits, found.seconds
                if found.confidence < self.cfg.min_confidence:
                    answers[i] = self._not_covered(
                        item.text,
                        language,
                        found.hits,
                        found.seconds,
                        started,
                        confidence=found.confidence,
                    )
                    continue
            context = (
                build_context(hits, self.cfg.context_tokens, self.count_tokens) if hits else None
            )
            if item.choices:
                answers[i] = self._mcq(item, language, hits, context, retrieval_s, started)
            elif self.retriever is not None and self._extracts(item.text):
                answers[i] = self._extractive(item.text, language, hits, retrieval_s, started)
            else:
                pending.append((i, context, hits, retrieval_s))
        # Similar prompt lengths share a batch: less padding in every batched forward pass.
        pending.sort(key=lambda p: len(p[1].text) if p[1] is not None else 0)
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            prompts = [self._prompt(items[i].text, ctx) for i, ctx, _, _ in batch]
            generations = self.generator.generate(prompts, self._batch_sampling())  # type: ignore[arg-type]
            for (i, ctx, given, retrieval_s), generation in zip(batch, generations, strict=True):
                answer = self._abstractive(items[i].text, ctx, generation, retrieval_s, len(batch))
                why = "declined" if self._declined(generation.text) else self._loops(generation)
                if given and why:
                    answer = self._extractive_instead(items[i].text, given, answer, why)
                answers[i] = answer
        return [a for a in answers if a is not None]

    def stream(self, question: str) -> Iterator[str]:
        """One answer in pieces: the model's text as it writes it when the model answers;
        otherwise the finished answer at once (see :meth:`stream_answer` for its citations)."""
        streamed = False
        for piece in self.stream_answer(question):
            if isinstance(piece, str):
                streamed = True
                yield piece
            elif not streamed:
                yield piece.text

    def stream_answer(
        self, question: str, *, k: int | None = None, chapters: set[int] | None = None
    ) -> Iterator[str | Answer]:
        """The model's text in pieces as it writes it, then the finished :class:`Answer` (its
        citations checked, as :meth:`ask` gives them). Answers the model does not write
        (extractive, calculator, multiple choice, not covered) come as the Answer alone."""
        language = self._language(question)
        if self.retriever is None or self._extracts(question) or split_choices(question)[1]:
            yield self.ask(question, k=k, chapters=chapters)
            return
        started = time.perf_counter()
        found = self.retriever.retrieve(question, k=k, chapters=chapters, language=language)
        if found.confidence < self.cfg.min_confidence:
            yield self._not_covered(
                question, language, found.hits, found.seconds, started, confidence=found.confidence
            )
            return
        context = build_context(found.hits, self.cfg.context_tokens, self.count_tokens)
        prompt = self._prompt(question, context)
        started, first, pieces = time.perf_counter(), 0.0, []
        held = self.cfg.mode == "auto"  # held back while the text may still be a refusal
        stream = self.generator.stream(prompt, self.cfg.sampling)
        try:
            for piece in stream:
                first = first or time.perf_counter() - started
                pieces.append(piece)
                if self._repeats("".join(pieces)):
                    break  # a loop: the extractive answer follows; closing the stream stops it
                if not held:
                    yield piece
                elif self._declined("".join(pieces)):
                    break  # no need to hear the rest: closing the stream stops the generation
                elif not self._may_decline("".join(pieces)):
                    held = False
                    yield "".join(pieces)
        finally:
            getattr(stream, "close", lambda: None)()
        text = "".join(pieces)
        completion_tokens = self.generator.count_tokens(text) if text else 0
        generation = Generation(
            text=text,
            prompt_tokens=self.generator.count_tokens("\n".join(m["content"] for m in prompt)),
            completion_tokens=completion_tokens,
            ttft_s=first,
            wall_s=time.perf_counter() - started,
            # a stream tells no finish reason: a reply as long as the limit was cut by it
            finish_reason="length"
            if completion_tokens >= self.cfg.sampling.max_new_tokens
            else "stop",
        )
        answer = self._abstractive(question, context, generation, found.seconds, 1)
        why = "declined" if self._declined(text) else self._loops(generation)
        if found.hits and why:  # the app shows this answer in place of the streamed text
            yield self._extractive_instead(question, found.hits, answer, why)
            return
        if held and text:  # the whole reply was a prefix of a refusal, and so never shown
            yield text
        yield answer

    @staticmethod
    def _may_decline(text: str) -> bool:
        """Could the model's reply so far still open like the not-covered sentence?"""
        return any(p.startswith(text.lstrip()) for p in DECLINES)

    def _declined(self, text: str) -> bool:
        """Auto mode: the model opened with the not-covered sentence although retrieval found
        passages above ``min_confidence``. The first gemma adapter did this for most Chinese
        questions (71 of the Chinese dev set's 100 after DPO, 32 after SFT; the second, whose DPO
        data rejects needless refusals, for none), and the retrieval gate, measured on held-out
        questions, is the better judge of coverage."""
        return self.cfg.mode == "auto" and self.retriever is not None and declines(text)

    def _cuts_loops(self) -> bool:
        """Auto mode with ``cut_to_extractive``: a looping reply gives way to the extractive
        answer."""
        return self.cfg.mode == "auto" and self.cfg.cut_to_extractive and self.retriever is not None

    def _loops(self, generation: Generation) -> str:
        """Why the reply counts as a loop ("ran_on": it ran to the token limit; "repeated": it
        repeats a ``loop_span``-character run of itself), or "" when it does not (or the rule is
        off). The shipped gemma adapter ran on in 18 of the Chinese dev set's 79 model answers
        (26 of sample_zh's 85), and there the extractive answer scores higher (dev: course metric
        0.389 against 0.320)."""
        if not self._cuts_loops():
            return ""
        return loop_verdict(generation.text, generation.finish_reason, self.cfg.loop_span)

    def _repeats(self, text: str) -> bool:
        """A stream so far (no finish reason yet) already loops, by :func:`loop_verdict`."""
        return self._cuts_loops() and loop_verdict(text, "", self.cfg.loop_span) == "repeated"

    def _batch_sampling(self) -> SamplingConfig:
        """The configured decoding; a reply that repeats itself is replaced, so the back-end may
        stop writing it there (``stop_on_repeat``; a stream stops listening)."""
        if not (self._cuts_loops() and self.cfg.loop_span):
            return self.cfg.sampling
        return dataclasses.replace(self.cfg.sampling, stop_on_repeat=self.cfg.loop_span)

    def _extractive_instead(
        self, question: str, hits: list[Hit], replaced: Answer, why: str
    ) -> Answer:
        """The extractive answer over the same passages, for a reply that declined or ran on
        (``meta`` says which: ``model_declined``, ``model_ran_on`` or ``model_repeated``)."""
        language = self._language(question)
        answer = self._extractive(
            question, language, hits, replaced.retrieval_s, time.perf_counter()
        )
        return answer.model_copy(
            update={"wall_s": replaced.wall_s + answer.wall_s,
                    "ttft_s": replaced.wall_s + answer.wall_s,
                    "meta": {**answer.meta, f"model_{why}": 1}}
        )  # fmt: skip

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the embedding model's tokenizer (budgets, request limits)."""
        embedder = self.retriever.embedder if self.retriever else None
        if getattr(embedder, "tokenizer", None) is None:  # about 4 characters per token
            return max(1, len(text) // 4)
        return models.count_tokens(embedder, text)

    def prompt(self, question: str, hits: list[Hit]) -> tuple[Messages, list[Hit]]:
        """The generator's chat messages for ``question`` over ``hits``, exactly as
        :meth:`ask` sends them (the passages within the context budget), and the passages
        given, in ``[n]`` order. Training data is written with this, so the tuned model sees
        the prompt it is served."""
        context = build_context(hits, self.cfg.context_tokens, self.count_tokens) if hits else None
        return self._prompt(question, context), context.hits if context else []

    def _prompt(self, question: str, context: Any) -> list[dict[str, str]]:
        language = self._language(question)
        if context is None:
            return [{"role": "user", "content": question}]
        user = user_turn(question, context.text)
        worked = solve(question) if self.cfg.calculator else []
        if worked:  # a tool result the model may use; it cannot do the arithmetic itself
            user += "\n\n" + CALCULATOR_HINT[language].format(
                work=worked_text(worked, language=language)
            )
        return [
            {"role": "system", "content": self._system(language)},
            {"role": "user", "content": user},
        ]

    @staticmethod
    def _citations(hits: list[Hit], numbers: list[int]) -> list[Citation]:
        out = []
        for n in sorted(set(numbers)):
            c = hits[n - 1].chunk
            out.append(Citation(n=n, chunk_id=c.chunk_id, chapter=c.chapter, section=c.section,
                                section_title=c.section_title, page_label=c.page_label, lang=c.lang))  # fmt: skip
        return out

    def _extractive(
        self, question: str, language: str, hits: list[Hit], retrieval_s: float, started: float
    ) -> Answer:
        retriever = self.retriever
        assert retriever is not None, "extractive answers quote retrieved passages"
        query = retriever.expand(question)[0]
        asked = [(retriever.expand(p)[0], p) for p in sub_questions(question)]
        sentences = select_sentences(retriever.embedder, query, hits,
                                     self.cfg.max_sentences.get(language, 3), question=question,
                                     lexical_weight=LEXICAL_WEIGHT[language], idf=retriever.idf,
                                     parts=asked)  # fmt: skip
        gap = "" if language == "zh" else " "  # Chinese sentences run on without spaces
        # a run of sentences from one passage is cited once, after its last sentence
        terms = language == "zh" and self.cfg.english_terms
        texts = [english_terms(s.text) if terms else s.text for s in sentences]
        parts = [
            text if i + 1 < len(sentences) and sentences[i + 1].passage == s.passage
            else f"{text}{gap}[{s.passage}]"
            for i, (text, s) in enumerate(zip(texts, sentences, strict=True))
        ]  # fmt: skip
        cited = [s.passage for s in sentences]
        code = None
        if asks_for_code(question):
            # a listing is often split over chunks: the rest of each passage's section counts too,
            # and the chunk holding the chosen line joins the passages so that it can be cited
            listings = hits + self._section_listings(hits)
            whole = LISTING_STATEMENTS if asks_to_write_code(question) else 0
            if whole:  # a listing cut over chunks is offered whole, so a window of it can be shown
                listings = [self._joined_listing(h) for h in listings]
            code = key_code_line(question, listings, sentences, whole)
            if code is not None and code[1] > len(hits):
                hits = [*hits, listings[code[1] - 1].model_copy(update={"rank": len(hits) + 1})]
                code = (code[0], len(hits))
        if code is not None:
            frame = KEY_LISTING if "\n" in code[0] else KEY_CODE
            parts.append(frame[language].format(code=code[0]) + f"{gap}[{code[1]}]")
            cited.append(code[1])
        worked = solve(question) if self.cfg.calculator else []
        lead = (
            WORKED_LEAD[language].format(work=worked_text(worked, language=language))
            if worked
            else ""
        )
        if not parts and not worked:  # no sentence passed the choice and no listing matched
            return self._not_covered(question, language, hits, retrieval_s, started)  # type: ignore[arg-type]
        wall = time.perf_counter() - started
        return Answer(question=question, text=lead + gap.join(parts), language=language,  # type: ignore[arg-type]
                      mode="extractive+calculate" if worked else "extractive", citations=self._citations(hits, cited),
                      passages=hits, retrieval_s=retrieval_s, ttft_s=wall, wall_s=wall)  # fmt: skip

    def _section_listings(self, hits: list[Hit]) -> list[Hit]:
        """The other code-holding chunks of the hits' sections, in the hits' language."""
        if self.retriever is None:
            return []
        given = {h.chunk.chunk_id for h in hits}
        wanted = {(h.chunk.chapter, h.chunk.section, h.chunk.lang) for h in hits}
        return [
            Hit(chunk=c, score=0.0, rank=0)
            for c in self.retriever.chunks
            if (c.chapter, c.section, c.lang) in wanted
            and c.chunk_id not in given
            and "```" in c.text
        ]

    def _joined_listing(self, hit: Hit) -> Hit:
        """The hit, with a listing the chunker cut over several chunks joined into one fenced
        block (:func:`~pmpprag.rag.extractive.joined_listings`), still cited as this chunk."""
        joined = self._listings.get(hit.chunk.chunk_id)
        if joined is None:
            return hit
        return hit.model_copy(update={"chunk": hit.chunk.model_copy(update={"text": joined})})

    def _abstractive(
        self, question: str, context: Any, generation: Generation, retrieval_s: float, batch: int
    ) -> Answer:
        language = self._language(question)
        hits = context.hits if context else []
        numbers = cited_numbers(generation.text)
        valid = [n for n in numbers if 1 <= n <= len(hits)]
        # a marker that points at no given passage is removed, never shown as a citation
        text = CITATION_MARKER.sub(
            lambda m: m.group(0) if 1 <= int(m.group(1)) <= len(hits) else "", generation.text
        )
        return Answer(question=question, text=text.strip(), language=language,
                      mode="abstractive" if hits else "no-rag", citations=self._citations(hits, valid),
                      passages=hits, prompt_tokens=generation.prompt_tokens,
                      completion_tokens=generation.completion_tokens, retrieval_s=retrieval_s,
                      ttft_s=generation.ttft_s, wall_s=retrieval_s + generation.wall_s,
                      meta={"invalid_citations": len(numbers) - len(valid), "batch": batch,
                            "finish_reason": generation.finish_reason})  # fmt: skip

    def _mcq(
        self,
        item: Question,
        language: str,
        hits: list[Hit],
        context: Any,
        retrieval_s: float,
        started: float,
    ) -> Answer:
        method = self.mcq_method
        # without passages every method but generate falls back on the model's likelihood
        needs_model = method not in ("evidence", "calculate") or not hits
        result = answer_mcq(method, item.text, item.choices or [], context.hits if context else hits,
                            context.text if context else "", self._system(language),
                            self.retriever.embedder if self.retriever else None,
                            self.generator if needs_model else None)  # fmt: skip
        numbers = cited_numbers(result.reason)
        gen = result.generation
        return Answer(question=item.text, text=f"{result.letter}. {result.reason}", language=language,  # type: ignore[arg-type]
                      mode=f"mcq:{result.method}", choice=result.letter, option_scores=result.scores,
                      citations=self._citations(hits, [n for n in numbers if 1 <= n <= len(hits)]),
                      passages=hits, prompt_tokens=gen.prompt_tokens if gen else 0,
                      completion_tokens=gen.completion_tokens if gen else 0, retrieval_s=retrieval_s,
                      ttft_s=gen.ttft_s if gen else 0.0, wall_s=time.perf_counter() - started)  # fmt: skip
