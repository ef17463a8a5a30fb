"""Extractive answers and evidence scoring: no model reasoning, only the textbook's sentences.
It stays one module: splitting, scoring, choosing and the code line share one sentence model.

A 135M-parameter generator writes fluent, wrong prose; the retrieved passages are right. So the
extractive mode answers with the passages' most relevant sentences (scored by embedding
similarity to the question plus overlap with its terms, de-duplicated, each cited): a sentence
that defines the asked term first, as the direct answer, then the others in the book's own
order, so that a mechanism reads as the notes build it up, then, for a question about code, the
listing line that best matches it (:func:`key_code_line`).

Chinese passages (the Chinese companion notes) are split at 。！？ and scored the same way,
except that the English-only embedding model reads a Chinese sentence through its English
bridge (the glossary's English for its terms and the identifiers it spells) and jieba words
carry the lexical overlap. The same sentence scorer ranks multiple-choice options by how
strongly the passages support each one (:func:`support_scores`).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from pmpprag.index.lexical import load_glossary, tokenize
from pmpprag.index.twins import bridge_text
from pmpprag.schema import Chunk, Hit
from pmpprag.text import CJK, FENCED, INLINE_CODE, has_cjk, prose

__all__ = [
    "LEXICAL_WEIGHT",
    "Sentence",
    "asks_for_code",
    "asks_to_write_code",
    "key_code_line",
    "select_sentences",
    "split_sentences",
    "sub_questions",
    "support_scores",
]

# Weight of the question's terms against the embedding cosine when scoring sentences: Chinese
# sentences reach the English-only embedder only through their bridge, so their own words
# count more (the team's Chinese dev set: 0.5 -> 1.0 lifts course ROUGE-L 0.270 -> 0.274).
LEXICAL_WEIGHT = {"en": 0.5, "zh": 1.0}

# English sentence ends: not after "i.e." / "e.g." / "vs." ("... = 4 blocks, i.e. 4 x 256 ...")
_SPLIT = re.compile(r"(?<![ (]i\.e\.)(?<![ (]e\.g\.)(?<! vs\.)(?<=[.!?])\s+(?=[A-Z0-9(`_])")
_EN_END = (".", "!", '."', ".)", ".`")  # not ? (a question is no answer) nor : (it leads a list)
# Whole sentences: a clause after ； leans on the one before it (the team's Chinese dev set, CJK
# ROUGE-L: 0.241 split at ； too, 0.242 not).
_ZH_SPLIT = re.compile(r"(?<=[。！？])")
_ZH_END = "。！；）」”"  # not ？ (a question is no answer) nor ： (it leads into a list)
MIN_HANZI = 12  # shorter runs are headings and list labels (dev set: 8 -> 12 lifts 0.289 -> 0.291)
_DEFINES = re.compile(r"是|指|称为|叫做|表示|用于|负责|意味着|\bis\b|\bare\b|\bmeans\b|\brefers\b")
# A question that asks for code to be written, completed or fixed (not one about code): its
# answer gets the whole listing (:func:`key_code_line`'s ``whole``).
_WRITE_CODE = re.compile(
    r"写出|编写|写一个|写一段|补全|改正|改写|伪代码|实现.{0,6}(?:kernel|核函数|函数|代码)"
    r"|\b(?:write|implement|complete|fix)\b",
    re.IGNORECASE,
)
_HOST_CODE = re.compile(
    r"主机(?:端)?(?:的)?(?:桩)?(?:代码|函数|程序)|\bhost(?:-side)? (?:code|function|program|stub)",
    re.IGNORECASE,
)
_KERNEL = re.compile(r"kernel|核函数", re.IGNORECASE)  # a question about (or asking for) a kernel
_HOST_CALL = re.compile(r"<<<|\bcuda[A-Z]\w*\s*\(")  # a launch or a runtime call: host code
_DEVICE_CODE = re.compile(r"__global__|__device__|__shared__|__syncthreads|\b(?:thread|block)Idx\b")
_ONE_STATEMENT = re.compile(r"关键(?:语句|代码行)|\bkey (?:statement|line)\b", re.IGNORECASE)
_CODE_QUESTION = re.compile(
    r"代码|写出|语句|声明|调用|\b(?:code|listing|statement|declare|write|call)s?\b", re.IGNORECASE
)
# Chinese words that carry no topic: they would match every sentence (the sentence scorer's;
# BM25 drops only the question words, index.lexical.ZH_QUESTION_WORDS).
ZH_STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 或 对 中 有 为 会 能 要 把 被 将 从 到 以 由 而 并 也 都 就 这 那 其 "
    "什么 如何 怎样 怎么 为什么 哪些 哪个 哪 吗 呢 请 说明 解释 简述 描述 简要 分别 一个 这个 "
    "那个 这些 可以 需要 应该 是否 多少 几个 之间 区别 作用 含义 意思 主要 通常 以及 时候 "
    "情况 进行 使用 用来 用于 问题 为何 作用是 有何 哪种 不同 相同 下面 以下 代码 给出".split()
)
# A sentence that opens with a connective leans on the one before it: a weak direct answer.
_CONNECTIVE = re.compile(
    r"^(因此|所以|但是|而且|同时|此外|另外|然而|不过|于是|也就是说|换句话说|反之|相反|"
    r"Therefore|Thus|So|But|However|Also|Hence|This|These|It)\b|^(因此|所以|但|而)"
)
# Where a question that asks several things splits into its parts (:func:`sub_questions`).
_SUBQUESTION = re.compile(r"(?<=[？?；;])")
# Sections that list mistakes ("常见误区", "Common pitfalls"): each item opens with the mistake.
_PITFALLS = re.compile(r"常见(?:误区|错误|陷阱)|pitfall|mistake", re.IGNORECASE)
# a function definition's name: "__global__ void vecAddKernel(" (a prototype ends in ";")
_FUNCTION_NAME = re.compile(r"\b(?:void|int|float|double|bool|char)\s*\*?\s+(\w+)\s*\(")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\(\))?")


@dataclass
class Sentence:
    text: str
    passage: int  # 1-based [n] of the passage it comes from
    position: int  # order inside the passage
    score: float = 0.0
    label: str = ""  # what the sentence is, said before it in an answer: "常见误区"


def _whole_chinese_sentence(sentence: str) -> bool:
    """A statement: enough Chinese characters and a proper end, so never a fragment cut
    mid-way, a question from a self-test, an exercise's statement or a line leading a list."""
    return (
        len(CJK.findall(sentence)) >= MIN_HANZI
        and sentence[-1] in _ZH_END
        and not sentence.startswith(("题目", "问：", "练习"))
    )


# A sentence that runs on into a one-line code block ("the element at (row, col) is at" +
# ```index = row * width + col```): the formula is the end of the sentence.
_RUNS_INTO_CODE = re.compile(
    r"([^\s.!?。！？])[ \t]*\n+```[^\n]*\n([^\n]{1,120})\n```[ \t]*(?=\n|$)"
)


def _inline_formulas(text: str, chinese: bool) -> str:
    """Finish each sentence that runs on into a one-line code block with that line, in
    backticks (its ``//`` comment dropped); longer listings stay listings."""

    def finish(match: re.Match[str]) -> str:
        code = match.group(2).split("//")[0].strip()
        if not code:
            return match.group(0)
        gap = "" if chinese and match.group(1) in "：:" else " "
        return f"{match.group(1)}{gap}`{code}`{'。' if chinese else '.'}"

    return _RUNS_INTO_CODE.sub(finish, text)


def _whole_english_sentence(sentence: str) -> bool:
    """A statement of five words or more with a proper end: not a heading (no end), a question
    from a worked example or self-test, nor the line that leads into a list."""
    return len(sentence.split()) >= 5 and sentence.endswith(_EN_END)


def split_sentences(hits: list[Hit]) -> list[Sentence]:
    """Prose sentences of the passages (code listings and very short fragments are skipped; a
    sentence that ends in a one-line formula keeps it, :func:`_inline_formulas`)."""
    out: list[Sentence] = []
    for n, hit in enumerate(hits, 1):
        chinese = hit.chunk.lang == "zh"
        text = _inline_formulas(hit.chunk.text, chinese)
        without_code = prose(text)
        position = 0
        pitfalls = _PITFALLS.search(hit.chunk.section_title) is not None
        for paragraph in without_code.split("\n"):
            pieces = (_ZH_SPLIT if chinese else _SPLIT).split(paragraph.strip())
            # an item of a pitfalls list opens with the mistake itself: say that it is one
            mistake = pitfalls and paragraph.startswith(("- ", "\u2022 "))
            for k, sentence in enumerate(pieces):
                sentence = sentence.strip().lstrip("-\u2022 ").strip()
                if chinese and re.match(r"\d+\.\s", sentence):  # a numbered list item's "1. "
                    sentence = sentence.split(" ", 1)[1]
                sentence = re.sub(r"^(答|问)[:：]\s*", "", sentence)  # self-test answers
                keep = (
                    _whole_chinese_sentence(sentence)
                    if chinese and has_cjk(sentence)
                    else _whole_english_sentence(sentence)
                )
                if keep:
                    label = hit.chunk.section_title if mistake and k == 0 else ""
                    out.append(Sentence(sentence, n, position, label=label))
                    position += 1
    return out


def _terms(text: str) -> set[str]:
    """Topic words: tokens less stop words and single Chinese characters."""
    return {t for t in tokenize(text) if t not in ZH_STOPWORDS and not (len(t) == 1 and has_cjk(t))}


def _overlap(query_tokens: set[str], text: str, idf: Callable[[str], float] | None = None) -> float:
    """The share of the question's terms in ``text``, each weighted by its ``idf`` when given
    (a rare term such as "Kogge-Stone" counts for more than "kernel")."""
    if not query_tokens:
        return 0.0
    found = query_tokens & set(tokenize(text))
    if idf is None:
        return len(found) / len(query_tokens)
    total = sum(idf(t) for t in query_tokens)
    return sum(idf(t) for t in found) / total if total else 0.0


def _embedded(sentence: str) -> str:
    """What the English-only embedder reads: a Chinese sentence through its English bridge."""
    return (bridge_text(sentence) or sentence) if has_cjk(sentence) else sentence


def score_sentences(
    embedder: Any, query: str, sentences: list[Sentence], lexical_weight: float = 0.5,
    terms_query: str | None = None, idf: Callable[[str], float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(scores, sentence vectors): cosine(query, sentence) + lexical_weight * share of the
    question's terms found in the sentence (idf-weighted when ``idf`` is given). ``query`` is
    what the embedder reads (English); ``terms_query`` (default ``query``) gives the terms, in
    the question's own language."""
    vectors = embedder.encode(
        [query] + [_embedded(s.text) for s in sentences],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    cosine = vectors[1:] @ vectors[0]
    terms = _terms(terms_query or query)
    lexical = np.array([_overlap(terms, s.text, idf) for s in sentences])
    return np.asarray(cosine + lexical_weight * lexical), vectors[1:]


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def _redundant(a: Sentence, b: Sentence, cosine: float, limit: float) -> bool:
    """Near-duplicates: close vectors, or (Chinese, whose bridge vectors are coarse) sharing
    most character pairs."""
    if has_cjk(a.text) and has_cjk(b.text):
        x, y = _bigrams(a.text), _bigrams(b.text)
        return len(x & y) / max(1, min(len(x), len(y))) > 0.6
    return cosine > limit


def sub_questions(question: str) -> list[str]:
    """The parts of a question that asks several things ("X 是什么？为什么 Y？"), split after each
    question mark or semicolon; a part shorter than six characters joins the one before it. One
    part for a question that asks one thing."""
    parts: list[str] = []
    for piece in _SUBQUESTION.split(question.strip()):
        if parts and len(piece.strip()) < 6:
            parts[-1] += piece.rstrip()
        elif piece.strip():
            parts.append(piece.strip())
    return parts


def select_sentences(
    embedder: Any, query: str, hits: list[Hit], max_sentences: int = 3, redundancy: float = 0.85,
    question: str | None = None, lexical_weight: float = 0.5,
    idf: Callable[[str], float] | None = None, parts: list[tuple[str, str]] | None = None,
) -> list[Sentence]:  # fmt: skip
    """The best ``max_sentences`` sentences, near-duplicates dropped: when the best one defines a
    term of the question it leads, as the direct answer; the others follow in the book's order
    (:func:`_book_order`). ``question`` (default ``query``) is the question in its own language,
    for the lexical terms; a sentence that defines one of them ("X 是 ...", "X is ...") gets
    a small bonus. ``parts``, (embedder query, own-language text) for each sub-question of a
    question that asks several things (:func:`sub_questions`), first reserve the best sentence
    for each part, so that a later part is answered too, then the rest go by the whole
    question's scores."""
    sentences = split_sentences(hits)
    if not sentences:
        return []
    question = question or query
    scores, vectors = score_sentences(embedder, query, sentences, lexical_weight, question, idf)
    terms = _terms(question)
    defines = np.zeros(len(sentences), dtype=bool)
    for i, sentence in enumerate(sentences):
        head = sentence.text[:40]
        defines[i] = any(t in head for t in terms) and bool(_DEFINES.search(head))
        if defines[i]:
            scores[i] += 0.1
        if _CONNECTIVE.match(sentence.text):
            scores[i] -= 0.1
    chosen: list[int] = []

    def fits(i: int) -> bool:  # not yet chosen, and no near-duplicate of one that is
        return i not in chosen and not any(
            _redundant(sentences[i], sentences[j], float(vectors[i] @ vectors[j]), redundancy)
            for j in chosen
        )

    if parts and len(parts) > 1:  # first the best sentence for each part
        part_vectors = embedder.encode([q for q, _ in parts], normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
        for (_, text), vector in zip(parts, part_vectors, strict=True):
            terms_part = _terms(text)
            lexical = np.array([_overlap(terms_part, s.text, idf) for s in sentences])
            ranking = np.argsort(-(vectors @ vector + lexical_weight * lexical), kind="stable")
            best = next((int(i) for i in ranking if fits(int(i))), None)
            if best is not None and len(chosen) < max_sentences:
                chosen.append(best)
    for i in np.argsort(-scores, kind="stable"):  # then the whole question's best ones
        if len(chosen) == max_sentences:
            break
        if fits(int(i)):
            chosen.append(int(i))
    # the best-scoring sentence stays first, as the candidate direct answer
    chosen.sort(key=lambda i: -scores[i])
    picked = [sentences[i] for i in chosen]
    for i, s in zip(chosen, picked, strict=True):
        s.score = float(scores[i])
        if s.label:  # said only in the answer: the scores weigh the sentence's own words
            s.text = f"{s.label}{'：' if has_cjk(s.label) else ': '}{s.text}"
    # A sentence that defines the asked term leads, as the direct answer; the others follow in
    # the book's order, not their passages' retrieval rank, as the mechanism (the team's Chinese
    # dev set, CJK ROUGE-L: 0.220 passage by passage, 0.235 in book order).
    lead = picked[:1] if chosen and defines[chosen[0]] else []
    return lead + sorted(picked[len(lead) :], key=lambda s: _book_order(hits, s))


def _book_order(hits: list[Hit], sentence: Sentence) -> tuple[int, int, int, int]:
    """Where a sentence stands in the book: its passage's chapter and first line (Markdown) or
    page (PDF), then its place in the passage."""
    chunk = hits[sentence.passage - 1].chunk
    return (
        chunk.chapter,
        chunk.line_start or chunk.page_start or 0,
        sentence.passage,
        sentence.position,
    )


def asks_to_write_code(question: str) -> bool:
    """Does the question ask for code to be written, completed or fixed ("写出 kernel", "补全")?
    Not when it asks for the key statement ("写出关键语句"): the key line answers that."""
    return _WRITE_CODE.search(question) is not None and not _ONE_STATEMENT.search(question)


def asks_for_code(question: str) -> bool:
    """Is the question about code: code words, or an identifier such as `blockIdx.x`?"""
    if _CODE_QUESTION.search(question):
        return True
    return any(
        "_" in w or "." in w or w.endswith("()") or (w[0].islower() and not w.islower())
        for w in _IDENTIFIER.findall(question)
        if len(w) > 3
    )


_C_WORDS = frozenset(
    "int float double char void const unsigned return if else for while size_t bool auto n i j".split()
)


# A line that opens with an operator continues the statement above it.
_CONTINUES = ("+", "-", "*", "/", "%", "&", "|", "^", "?", ":", ")", "]", "<<", ">>", ".")


def _statements(block: str, indent: bool = False) -> list[str]:
    """A listing's statements, comments dropped, a statement cut over lines joined again
    ("int lin = threadIdx.x" + "+ threadIdx.y * blockDim.x;" is one line); with ``indent``
    the same statements as the notes lay them out, for showing: indented, over their lines."""
    out: list[str] = []
    for line in block.split("\n"):
        code = line.split("//")[0].rstrip()
        if (
            out
            and code.strip()
            and not out[-1].endswith((";", "{", "}"))
            and (code.strip().startswith(_CONTINUES) or out[-1].endswith((",", "(")))
        ):  # an operator or an argument list carried over
            out[-1] = f"{out[-1]}\n{code}" if indent else f"{out[-1]} {code.strip()}"
        elif code.strip():
            out.append(code if indent else code.strip())
    return out


def _defined(statements: list[str]) -> tuple[set[str], set[str]]:
    """(the functions a listing defines, the kernels among them: ``__global__`` on the line or
    the one before), lower-cased; a prototype ends in ";" and defines nothing."""
    functions: set[str] = set()
    kernels: set[str] = set()
    for before, code in zip(["", *statements], statements, strict=False):
        if not code.endswith(";"):
            kernel = code.startswith("__global__") or before == "__global__"
            (kernels if kernel else functions).update(
                m.lower() for m in _FUNCTION_NAME.findall(code)
            )
    return functions, kernels


def _listing_priority(
    statements: list[str], block: str, spelled: set[str], host: bool, kernel_asked: bool, whole: int
) -> float:
    """How much a listing is what a request for code asks for, before its lines are matched: one
    that defines a function the question names (``vecAddKernel``, not a kernel when host code is
    asked for) comes first, its whole body before an empty skeleton ("{ }"); then, when a kernel
    is asked for, device code (one that defines a kernel, or a piece of one with no launch or
    runtime call) before host code."""
    functions, kernels = _defined(statements)
    named = (functions if host else functions | kernels) & spelled
    device = kernels or (_DEVICE_CODE.search(block) and not _HOST_CALL.search(block))
    return (100.0 + 0.1 * min(len(statements), whole)) * bool(named) + 50.0 * bool(
        kernel_asked and device
    )


def key_code_line(
    question: str, hits: list[Hit], chosen: list[Sentence], whole: int = 0
) -> tuple[str, int] | None:
    """(line, passage number) of the listing line that best matches the question: identifiers
    the question spells count twice, the glossary's English for its terms once, the chosen
    sentences' identifiers break ties, and a statement (ending in ";") beats a declaration; a
    line a chosen sentence already ends with (:func:`_inline_formulas`) is not repeated.
    None when no line shares at least two of them (C keywords aside). With ``whole``, the
    listing that holds that line instead: ``whole`` statements around it, one per line, the
    listings ranked first by :func:`_listing_priority`; one that names nothing the question
    quotes in backticks is not shown."""
    spelled = {t for t in tokenize(question) if t.isascii()} - _C_WORDS
    glossed = {t for term in load_glossary().english(question, 1) for t in tokenize(term)} - spelled
    context = {t for t in tokenize(" ".join(s.text for s in chosen)) if t.isascii()} - _C_WORDS
    best: tuple[float, str, int] | None = None
    host = _HOST_CODE.search(question) is not None  # then a kernel's definition is not asked for
    kernel_asked = not host and _KERNEL.search(question) is not None
    # names in the question's quoted code (`scaleParticlesSoA(float *x, ...)`), not "x" or "m"
    quoted = {t for span in INLINE_CODE.findall(question) for t in tokenize(span) if len(t) > 1}
    quoted -= _C_WORDS
    for n, hit in enumerate(hits, 1):
        for block in FENCED.findall(hit.chunk.text):
            statements = _statements(block)
            if whole and quoted and not quoted & set(tokenize(block)):
                continue  # a whole listing that names nothing the question quotes is off topic
            priority = (
                _listing_priority(statements, block, spelled, host, kernel_asked, whole)
                if whole
                else 0.0
            )
            for at, code in enumerate(statements):
                if len(code) < 8 or code.startswith(("#", "/*", "*", "}")):
                    continue
                if any(f"`{code}`" in s.text for s in chosen):  # a sentence already ends with it
                    continue
                tokens = set(tokenize(code))
                shared = len(spelled & tokens), len(glossed & tokens)
                score = (2 * shared[0] + shared[1] + 0.1 * len(context & tokens)
                         + 0.5 * code.endswith(";") + priority - 0.01 * n)  # fmt: skip
                if sum(shared) >= 2 and (best is None or score > best[0]):
                    start = max(0, min(at - whole // 3, len(statements) - whole))
                    shown = _statements(block, indent=True)[start : start + whole]
                    best = (score, textwrap.dedent("\n".join(shown)) if whole else code, n)
    return (best[1], best[2]) if best else None


def _edge_blocks(text: str) -> tuple[str | None, str | None]:
    """(the code of a fenced block the text opens with, of one it ends with); None where the
    text opens or ends with prose. A code-only text gives its one block twice."""
    blocks = list(FENCED.finditer(text))
    if not blocks:
        return None, None
    first, last = blocks[0], blocks[-1]
    lead = first.group(1).rstrip() if not text[: first.start()].strip() else None
    trail = last.group(1).rstrip() if not text[last.end() :].strip() else None
    return lead, trail


def _cut(code: str) -> bool:
    """Does the code stop inside a statement (its last line ends with ``,``, ``(`` or an
    operator: "dim3 dimGrid((Width + t - 1) / t,")?"""
    lines = [line.split("//")[0].rstrip() for line in code.split("\n")]
    last = next((line for line in reversed(lines) if line.strip()), "")
    return last.endswith(
        (",", "(", "+", "-", "*", "/", "=", "&&", "||", "?")
    ) and not last.lstrip().startswith("#")


def joined_listings(chunks: Sequence[Chunk]) -> dict[str, str]:
    """chunk id -> the whole listing, one fenced block, for every chunk that holds a piece of
    a listing the chunker cut over several. Pieces are neighbouring chunks of one section: one
    that ends with a code block, then ones that open with one (the last may go on in prose);
    they belong together when they come from one source block (Markdown: the same source lines)
    or, where chunks carry pages only (PDF), while a brace opened earlier is still open or the
    last piece stopped inside a statement."""
    runs: list[list[tuple[Chunk, str]]] = []
    depth, prev, open_end, cut = 0, None, False, False
    for chunk in chunks:
        lead, trail = _edge_blocks(chunk.text)
        joins = (
            open_end and lead is not None and prev is not None
            and (prev.chapter, prev.section, prev.lang) == (chunk.chapter, chunk.section, chunk.lang)
            and (depth > 0 or cut if chunk.line_start is None
                 else (prev.line_start, prev.line_end) == (chunk.line_start, chunk.line_end))
        )  # fmt: skip
        if joins and lead is not None:
            runs[-1].append((chunk, lead))
            depth += lead.count("{") - lead.count("}")
            open_end, cut = trail is not None and lead == trail, _cut(lead)  # code only: may go on
        elif trail is not None:
            runs.append([(chunk, trail)])
            depth = trail.count("{") - trail.count("}")
            open_end, cut = True, _cut(trail)
        else:
            open_end = False
        prev = chunk
    joined: dict[str, str] = {}
    for run in runs:
        if len(run) > 1:
            text = "```\n" + "\n".join(code for _, code in run) + "\n```"
            joined.update(dict.fromkeys((c.chunk_id for c, _ in run), text))
    return joined


def support_scores(
    embedder: Any, question: str, choices: list[str], hits: list[Hit], lexical_weight: float = 0.25
) -> list[float]:
    """How strongly the passages support each option: the best match of question + option
    against the passages' sentences and pairs of adjacent sentences (an option's evidence often
    spans two), plus ``lexical_weight`` x the share of the option's distinctive terms (those not
    in every option nor in the question) found in the passages. Needs no reasoning from the
    generator. Window and weight were chosen on the development set data/dev/mcq_dev.jsonl."""
    sentences = split_sentences(hits)
    if not sentences:
        return [0.0] * len(choices)
    texts = [s.text for s in sentences]
    texts += [f"{a.text} {b.text}" for a, b in pairwise(sentences) if a.passage == b.passage]
    sentence_vecs = embedder.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    option_vecs = embedder.encode(
        [f"{question} {choice}" for choice in choices],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    dense = (option_vecs @ sentence_vecs.T).max(axis=1)
    passage_terms = set(tokenize(" ".join(h.chunk.text for h in hits)))
    option_terms = [set(tokenize(c)) for c in choices]
    shared = set.intersection(*option_terms) if option_terms else set()
    lexical = []
    for terms in option_terms:
        distinctive = terms - shared - set(tokenize(question))
        lexical.append(len(distinctive & passage_terms) / len(distinctive) if distinctive else 0.0)
    return [float(d + lexical_weight * x) for d, x in zip(dense, lexical, strict=True)]
