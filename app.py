"""The Streamlit study assistant: ask the PMPP notes in English or Chinese, get cited answers.
(It stays one module: Streamlit runs one script, read top to bottom as the page is drawn.)

    streamlit run app.py                                  # http://localhost:8501
    PMPPRAG_APP_INDEX=index/pmpp streamlit run app.py     # another index folder

A thin caller of the Python API (:class:`pmpprag.api.Assistant`): the sidebar picks a RAG
config (``configs/rag/*.yaml``) and overrides, the "Ask" tab answers one question (optionally
multiple-choice), the "Batch" tab answers a ``.txt``/``.jsonl`` file with ``ask_many``.
Needs the app extra (``pip install '.[app]'``) and a built index (``pmpprag index build``).
Relative paths (configs, index folders) are taken from the folder of this file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from pmpprag.api import Answer, Assistant, RagConfig
from pmpprag.config import ConfigError, load_config
from pmpprag.index import IndexError_
from pmpprag.rag.ask import read_questions
from pmpprag.rag.prompts import LETTERS, provenance

logger = logging.getLogger("pmpprag.app")

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = "configs/rag/default.yaml"
INDEX_ENV = "PMPPRAG_APP_INDEX"  # default for the sidebar's index folder (tests, other books)
BUILD_HINT = (
    "Build one with `pmpprag index build` (the shipped notes, into `index/companion`; "
    "`make demo` does it too), or point the sidebar's *Index folder* "
    f"(or `{INDEX_ENV}`) at a built index."
)
OVERRIDE_KEYS = ("mode", "language", "rag", "k", "chapters")  # reset when the config changes
EXAMPLES = [
    "What does __syncthreads() do?",
    "How does a thread compute its global index from blockIdx.x, blockDim.x and threadIdx.x?",
    "What is a warp, and how many threads does it hold?",
    "Why does tiling with shared memory reduce global memory traffic?",
    "Why must a kernel check its index against n before writing to an array?",
    "Which memory is private to each thread?\nA. Shared memory\nB. Registers\n"
    "C. Global memory\nD. Constant memory",
    "什么是线程束分歧？它为什么会降低性能？",
    "共享内存和全局内存有什么区别？",
    "cudaMemcpy 的作用是什么？",
    "为什么一个线程块中的线程数通常取32的倍数？",
]


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose: the assistant to load and the per-question options."""

    config: str  # relative to ROOT, e.g. "configs/rag/default.yaml"
    index: Path
    mode: str
    language: str
    rag: bool
    k: int
    chapters: frozenset[int]


@dataclass
class BatchResult:
    """The answers to one uploaded file and how long ``ask_many`` took."""

    name: str
    answers: list[Answer]
    seconds: float

    @property
    def questions_per_s(self) -> float:
        return len(self.answers) / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        tokens = sum(a.completion_tokens for a in self.answers)
        return tokens / self.seconds if self.seconds > 0 else 0.0

    def jsonl(self) -> str:
        return "".join(a.model_dump_json() + "\n" for a in self.answers)


# ---------------------------------------------------------------- loading (cached per process)


@st.cache_resource(show_spinner="Loading the index and the embedding model...")
def load_base(config: str, index: str, rag: bool) -> Assistant:
    """One retriever per (config, index, rag): the expensive part, shared by all sessions."""
    logger.info("loading assistant: config=%s index=%s rag=%s", config, index, rag)
    return Assistant.load(ROOT / config, index=index, rag=rag)


@st.cache_resource(show_spinner=False)
def load_assistant(config: str, index: str, rag: bool, mode: str, language: str) -> Assistant:
    """The cached assistant for these overrides; it shares the base's retriever."""
    base = load_base(config, index, rag)
    cfg = dataclasses.replace(base.cfg, mode=mode, language=language)  # type: ignore[arg-type]
    return base.with_config(cfg)


def resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def rag_configs() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs" / "rag").glob("*.yaml"))


def chapter_titles(assistant: Assistant) -> dict[int, str]:
    """Chapters present in the index, read from the chunks the retriever already holds."""
    if assistant.retriever is None:
        return {}
    titles: dict[int, str] = {}
    for c in assistant.retriever.chunks:  # the English title (the book's), else the one there is
        if c.lang == "en" or c.chapter not in titles:
            titles[c.chapter] = c.chapter_title
    return dict(sorted(titles.items()))


# ---------------------------------------------------------------- answering


def ask(assistant: Assistant, question: str, choices: list[str], settings: Settings) -> Answer:
    """One question through the API, with the sidebar's k and chapter filter."""
    # sessions run in threads and share the assistant: a request keeps its state to itself
    return assistant.ask(
        question,
        k=settings.k,
        chapters=set(settings.chapters) or None,
        choices=choices or None,
    )


def stream(assistant: Assistant, question: str, settings: Settings) -> Answer:
    """An open question with the model's text shown as it writes it (abstractive and auto
    modes); the finished answer, with its citations, replaces it."""
    final: list[Answer] = []

    def pieces() -> Iterator[str]:
        for piece in assistant.stream_answer(
            question, k=settings.k, chapters=set(settings.chapters) or None
        ):
            if isinstance(piece, str):
                yield piece
            else:
                final.append(piece)

    live = st.empty()
    with live.container(), st.spinner("Answering..."):
        st.write_stream(pieces())
    live.empty()
    return final[0]


def answer_file(
    assistant: Assistant, name: str, data: bytes, settings: Settings, batch_size: int
) -> BatchResult:
    """Answer an uploaded .txt (one question a line) or .jsonl file with one ``ask_many`` call."""
    suffix = ".jsonl" if name.lower().endswith(".jsonl") else ".txt"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"questions{suffix}"
        path.write_bytes(data)
        try:
            questions = read_questions(path)  # the CLI's reader: same formats, same checks
        except ValueError as err:  # name the uploaded file, not the temporary copy
            raise ValueError(str(err).replace(str(path), name)) from err
    for question in questions:
        question.chapters = set(settings.chapters) or None
    started = time.perf_counter()
    answers = assistant.ask_many(questions, batch_size=batch_size, k=settings.k)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    logger.info("batch %s: %d answers in %.2f s", name, len(answers), seconds)
    return BatchResult(name, answers, seconds)


# ---------------------------------------------------------------- showing answers


def escape_markdown(text: str) -> str:
    """Show answer text literally: ``__syncthreads()`` must not turn bold, ``$`` not into LaTeX."""
    return re.sub(r"([\\`*_{}\[\]<>#|~$])", r"\\\1", text)


def citation_rows(answer: Answer) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"[n]": c.n, "chapter": c.chapter, "section": c.section, "title": c.section_title,
             "page": c.page_label or "", "chunk id": c.chunk_id}
            for c in answer.citations
        ],
        columns=["[n]", "chapter", "section", "title", "page", "chunk id"],
    )  # fmt: skip


def short_citations(answer: Answer) -> str:
    return "; ".join(
        f"[{c.n}] ch {c.chapter} §{c.section}"
        + (f" p. {c.page_label}" if c.page_label else "")
        + (" (中文笔记)" if c.lang == "zh" else "")
        for c in answer.citations
    )


def show_measurements(answer: Answer) -> None:
    mode = f"{answer.mode} ({answer.choice})" if answer.choice else answer.mode
    tokens_per_s = answer.completion_tokens / answer.wall_s if answer.completion_tokens else 0.0
    cols = st.columns(4)
    cols[0].metric("mode", mode)
    cols[1].metric("retrieval", f"{answer.retrieval_s:.3f} s")
    cols[2].metric("wall", f"{answer.wall_s:.2f} s")
    cols[3].metric("tokens/s", f"{tokens_per_s:.1f}" if tokens_per_s else "-")
    if answer.prompt_tokens or answer.completion_tokens:
        st.caption(f"{answer.prompt_tokens} prompt + {answer.completion_tokens} generated tokens")


def show_choice(answer: Answer) -> None:
    st.success(f"Chosen option: **{answer.choice}**")
    if answer.option_scores:
        letters = list(LETTERS[: len(answer.option_scores)])
        st.bar_chart(pd.DataFrame({"score": answer.option_scores}, index=letters), height=180)


def show_passages(answer: Answer) -> None:
    st.markdown(f"**Retrieved passages** ({len(answer.passages)})")
    for hit in answer.passages:
        parts = ", ".join(f"{name} {score:.3f}" for name, score in hit.scores.items())
        with st.expander(f"[{hit.rank}] {provenance(hit)} · score {hit.score:.4f}"):
            st.caption(f"{hit.chunk.chunk_id} · {parts} · ranks {hit.ranks}")
            st.code(hit.chunk.text, language=None, wrap_lines=True)


def show_answer(answer: Answer) -> None:
    st.subheader("Answer")
    st.markdown(escape_markdown(answer.text))
    if answer.choice:
        show_choice(answer)
    show_measurements(answer)
    if answer.citations:
        st.markdown("**Citations**")
        st.dataframe(citation_rows(answer), hide_index=True)
    elif answer.passages:
        st.caption("No passage is cited in this answer.")
    if answer.passages:
        show_passages(answer)


def show_history(history: list[Answer]) -> None:
    with st.expander(f"Session history ({len(history)} questions)"):
        st.dataframe(
            pd.DataFrame(
                [
                    {"question": a.question, "answer": a.text, "mode": a.mode,
                     "citations": short_citations(a), "wall s": round(a.wall_s, 2)}
                    for a in reversed(history)
                ]
            ),
            hide_index=True,
        )  # fmt: skip
        if st.button("Clear history", key="clear_history"):
            st.session_state.history = []
            st.rerun()


# ---------------------------------------------------------------- page


def reset_overrides() -> None:
    """A newly chosen config brings its own mode, k, ...: forget the previous overrides."""
    for key in OVERRIDE_KEYS:
        st.session_state.pop(key, None)


def use_example() -> None:
    if st.session_state.example:
        st.session_state.question = st.session_state.example


def sidebar_config() -> tuple[str, RagConfig, str]:
    """The chosen config file, its values, and the index folder typed in (blank: the config's)."""
    configs = rag_configs()
    config = st.sidebar.selectbox(
        "RAG config",
        configs,
        index=configs.index(DEFAULT_CONFIG) if DEFAULT_CONFIG in configs else 0,
        key="config",
        on_change=reset_overrides,
    )
    cfg = load_config(RagConfig, ROOT / config)
    # Only the project's index folders (and the one the operator set in the environment): a
    # browser user must not be able to load, or probe for, any other path on the server.
    choices = index_folders()
    preset = os.environ.get(INDEX_ENV, "")
    if preset and preset not in choices:
        choices.insert(0, preset)
    index = st.sidebar.selectbox(
        "Index folder (blank: the config's)",
        ["", *choices],
        index=1 if preset else 0,
        key="index",
    )
    return config, cfg, index.strip()


def index_folders() -> list[str]:
    """The index folders under index/, relative to the project."""
    return sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "index").glob("*/manifest.json"))


def sidebar() -> tuple[Assistant, Settings]:
    """Sidebar widgets and the cached assistant they select; stops the page on a load error."""
    st.sidebar.header("Settings")
    try:
        config, cfg, index_text = sidebar_config()
    except ConfigError as err:
        st.error(f"Cannot read the config: {err}")
        st.stop()
    modes, languages = ["extractive", "abstractive", "auto"], ["auto", "en", "zh"]
    mode = st.sidebar.radio("Mode", modes, index=modes.index(cfg.mode), key="mode", horizontal=True)
    language = st.sidebar.radio(
        "Answer language", languages, index=languages.index(cfg.language), key="language",
        horizontal=True,
    )  # fmt: skip
    rag = st.sidebar.toggle("Retrieval (RAG)", value=cfg.rag, key="rag")
    index = resolve(index_text or cfg.index)
    try:
        assistant = load_assistant(config, str(index), rag, mode, language)
    except IndexError_ as err:
        st.error(f"**No usable index at `{index}`.** {err}\n\n{BUILD_HINT}")
        st.stop()
    except (ConfigError, ValueError) as err:
        st.error(f"Cannot load the assistant from `{config}`: {err}")
        st.stop()
    k = st.sidebar.slider("Passages (k)", 1, 20, value=cfg.retriever.k, key="k", disabled=not rag)
    titles = chapter_titles(assistant)
    chapters = st.sidebar.multiselect(
        "Chapters (none: all)", list(titles), key="chapters", disabled=not titles,
        format_func=lambda n: f"{n} · {titles.get(n, '')}",
    )  # fmt: skip
    if assistant.retriever is not None:
        st.sidebar.caption(
            f"Index `{index}`: {len(assistant.retriever.chunks)} chunks, {len(titles)} chapters, "
            f"{assistant.retriever.stored.manifest['embedding_model']} embeddings."
        )
    settings = Settings(config, index, mode, language, rag, k, frozenset(chapters))
    return assistant, settings


def ask_tab(assistant: Assistant, settings: Settings) -> None:
    st.selectbox(
        "Example questions", ["", *EXAMPLES], key="example", on_change=use_example,
        format_func=lambda q: q.splitlines()[0] if q else "(pick one to fill the box)",
    )  # fmt: skip
    st.text_area("Question (English or Chinese)", key="question", height=110)
    st.text_area(
        "Options for a multiple-choice question (optional, one per line; or write "
        "A. / B. / ... lines under the question)",
        key="options",
        height=100,
    )
    if st.button("Ask", type="primary", key="ask"):
        question = st.session_state.question.strip()
        choices = [line.strip() for line in st.session_state.options.splitlines() if line.strip()]
        if not question:
            st.warning("Write a question first.")
        else:
            try:
                if choices:
                    with st.spinner("Answering..."):
                        answer = ask(assistant, question, choices, settings)
                else:
                    answer = stream(assistant, question, settings)
                st.session_state.history.append(answer)
            except ValueError as err:
                st.error(f"Cannot answer: {err}")
    history: list[Answer] = st.session_state.history
    if history:
        show_answer(history[-1])
        show_history(history)


def batch_tab(assistant: Assistant, settings: Settings) -> None:
    st.markdown(
        "Upload a `.txt` file (one question a line) or a `.jsonl` file (objects with "
        '`"question"` and optional `"choices"`); they are answered in one `ask_many` call.'
    )
    uploaded = st.file_uploader("Questions file", type=["txt", "jsonl"], key="batch_file")
    batch_size = st.number_input("Generation batch size", 1, 256, 16, key="batch_size")
    if st.button("Answer all", type="primary", key="batch_run", disabled=uploaded is None):
        assert uploaded is not None
        try:
            with st.spinner(f"Answering {uploaded.name}..."):
                st.session_state.batch = answer_file(
                    assistant, uploaded.name, uploaded.getvalue(), settings, int(batch_size)
                )
        except ValueError as err:
            st.error(f"Cannot answer {uploaded.name}: {err}")
    if "batch" in st.session_state:
        show_batch(st.session_state.batch)


def show_batch(result: BatchResult) -> None:
    cols = st.columns(4)
    cols[0].metric("questions", len(result.answers))
    cols[1].metric("seconds", f"{result.seconds:.2f}")
    cols[2].metric("questions/s", f"{result.questions_per_s:.2f}")
    cols[3].metric(
        "generated tokens/s", f"{result.tokens_per_s:.1f}" if result.tokens_per_s else "-"
    )
    st.dataframe(
        pd.DataFrame(
            [
                {"question": a.question, "answer": a.text, "mode": a.mode,
                 "citations": short_citations(a)}
                for a in result.answers
            ]
        ),
        hide_index=True,
    )  # fmt: skip
    st.download_button(
        "Download answers (JSONL)",
        data=result.jsonl(),
        file_name=f"{Path(result.name).stem}-answers.jsonl",
        mime="application/jsonl",
        key="batch_download",
        on_click="ignore",
    )


def main() -> None:
    st.set_page_config(page_title="pmpprag study assistant", page_icon="📘", layout="wide")
    st.title("PMPP study assistant")
    st.caption(
        "Answers from the team's notes on *Programming Massively Parallel Processors*, "
        "with citations to chapter, section and page. English or Chinese."
    )
    st.session_state.setdefault("history", [])
    assistant, settings = sidebar()
    ask_pane, batch_pane = st.tabs(["Ask", "Batch"])
    with ask_pane:
        ask_tab(assistant, settings)
    with batch_pane:
        batch_tab(assistant, settings)


if __name__ == "__main__":
    main()
