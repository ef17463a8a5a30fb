"""The HTTP server for real on 127.0.0.1: grading contract, OpenAI API, concurrency, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import start_server
from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator
from pmpprag.schema import CITATION_MARKER
from pmpprag.testsets import read_testset
from pmpprag.text import cjk_share

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_server(["--index", str(corpus_index)], tmp_path_factory.mktemp("srv"))


@pytest.fixture(scope="module")
def batch_server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_server(
        ["--index", str(corpus_index), "--batch"], tmp_path_factory.mktemp("srv")
    )


def _chinese_questions(n: int) -> list[str]:
    questions = [i.question for i in read_testset(ROOT / "eval" / "sample_zh.txt")]
    for name in ("retrieval_gold.jsonl", "retrieval_holdout.jsonl"):
        questions += [
            json.loads(x)["question"] for x in (ROOT / "eval" / name).open() if '"lang": "zh"' in x
        ]
    assert len(questions) >= n
    return questions[:n]


def test_health_and_single_predict(server: str) -> None:
    assert httpx.get(server + "/").json() == {"status": "ok"}
    reply = httpx.post(
        server + "/predict", json={"prompt": "What does __syncthreads() do?"}, timeout=60
    ).json()
    assert isinstance(reply["response"], str) and "__syncthreads" in reply["response"]
    # the contract returns text only: no "[n]" pointing into a sources list it does not carry
    assert not CITATION_MARKER.search(reply["response"])


def test_batch_mode_92_chinese_questions_in_order(batch_server: str) -> None:
    assert httpx.get(batch_server + "/").json() == {"status": "batch"}
    questions = _chinese_questions(92)
    reply = httpx.post(batch_server + "/predict", json={"prompt": questions}, timeout=600).json()
    answers = reply["response"]
    assert isinstance(answers, list) and len(answers) == 92
    assert all(isinstance(a, str) and a for a in answers)
    for i in (0, 45, 91):  # the same question alone gets the same answer: the order is kept
        single = httpx.post(
            batch_server + "/predict", json={"prompt": [questions[i]]}, timeout=60
        ).json()
        assert single["response"] == [answers[i]]


def test_200_concurrent_requests_all_answered(server: str) -> None:
    questions = [
        f"What is {t}?" for t in ["a warp", "shared memory", "occupancy", "tiling", "a kernel"]
    ] * 40

    def ask(q: str) -> tuple[str, str]:
        r = httpx.post(server + "/predict", json={"prompt": q}, timeout=300)
        r.raise_for_status()
        return q, r.json()["response"]

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(ask, questions))
    assert [q for q, _ in results] == questions
    by_question: dict[str, set[str]] = {}
    for q, a in results:
        by_question.setdefault(q, set()).add(a)
    assert all(
        len(a) == 1 for a in by_question.values()
    )  # each question got its own answer, every time


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (json.dumps({"prompt": ""}).encode(), 400, "prompt is empty"),
        (json.dumps({"prompt": ["ok question", "  "]}).encode(), 400, r"prompt\[1\] is empty"),
        (json.dumps({"prompt": 42}).encode(), 400, "must be a string"),
        (json.dumps({"question": "x"}).encode(), 400, "expected a JSON object"),
        (json.dumps({"prompt": "warp " * 3000}).encode(), 400, "token limit"),
        (json.dumps({"prompt": "x" * 3_000_000}).encode(), 413, "over"),
    ],
    ids=["malformed", "empty", "empty-in-list", "not-string", "no-prompt", "too-long", "too-big"],
)
def test_bad_input_gets_4xx_and_server_survives(
    server: str, body: bytes, status: int, message: str
) -> None:
    r = httpx.post(
        server + "/predict", content=body, headers={"content-type": "application/json"}, timeout=60
    )
    assert r.status_code == status
    assert __import__("re").search(message, r.json()["error"]["message"])
    assert httpx.get(server + "/").json() == {"status": "ok"}


def test_openai_client_chat_completions_and_stream(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["pmpprag"]
    reply = client.chat.completions.create(
        model="pmpprag", messages=[{"role": "user", "content": "什么是合并访问？"}]
    )
    text = reply.choices[0].message.content or ""
    assert cjk_share(text) >= 0.5 and "[" in text  # a Chinese answer, cited
    chunks = client.chat.completions.create(
        model="pmpprag", messages=[{"role": "user", "content": "What is a warp?"}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client.chat.completions.create(
        model="pmpprag", messages=[{"role": "user", "content": "What is a warp?"}]
    )
    assert streamed == plain.choices[0].message.content


@pytest.mark.slow
def test_openai_backend_against_our_model_server(tmp_path: Path) -> None:
    """The openai back-end end to end: our server without RAG generates with SmolLM2 (ct2)."""
    for url in start_server(["--no-rag", "--sampling.max_new_tokens", "24"], tmp_path):
        generator = load_generator(
            GeneratorConfig(backend="openai", base_url=url + "/v1", model="pmpprag")
        )
        results = generator.generate(
            ["What is a GPU?", "Name a color."] * 2, SamplingConfig(max_new_tokens=16)
        )
        assert len(results) == 4 and all(r.text and r.completion_tokens > 0 for r in results)
        assert results[0].text == results[2].text  # greedy
        assert all(r.extra["usage_reported"] and r.ttft_s <= r.wall_s for r in results)


@pytest.mark.slow
def test_transformers_batch_matches_single_greedy() -> None:
    generator = load_generator(GeneratorConfig(backend="transformers"))
    prompts = [
        [{"role": "user", "content": q}]
        for q in ["What is a warp?", "Hi", "Explain shared memory in CUDA."]
    ]
    sampling = SamplingConfig(max_new_tokens=12)
    batched = generator.generate(prompts, sampling)  # type: ignore[arg-type]
    singles = [generator.generate([p], sampling)[0] for p in prompts]  # type: ignore[list-item]
    assert [b.text for b in batched] == [s.text for s in singles]
    assert all(
        b.prompt_tokens == s.prompt_tokens and b.ttft_s < b.wall_s
        for b, s in zip(batched, singles, strict=True)
    )
    streamed = "".join(generator.stream(prompts[0], sampling))  # type: ignore[arg-type]
    assert streamed.strip() == singles[0].text


@pytest.mark.slow
def test_repetition_penalty_stops_a_loop() -> None:
    """The fp32 transformers back-end: its output is the same on every CPU, unlike int8."""
    generator = load_generator(GeneratorConfig(backend="transformers"))
    prompt = [{"role": "user", "content": "Write the word warp twenty times, separated by spaces."}]

    def distinct_share(penalty: float) -> float:
        sampling = SamplingConfig(max_new_tokens=40, repetition_penalty=penalty)
        text = generator.generate([prompt], sampling)[0].text  # type: ignore[list-item]
        tokens = generator.tokenizer.tokenize(text)  # type: ignore[attr-defined]
        return len(set(tokens)) / len(tokens)

    plain, penalised = distinct_share(1.0), distinct_share(1.5)
    assert plain < 0.5 and penalised > plain, (plain, penalised)  # the loop is broken
    with pytest.raises(ValueError, match="repetition_penalty"):
        SamplingConfig(repetition_penalty=0)


@pytest.mark.slow
def test_ctranslate2_passes_the_repetition_penalty_to_every_call() -> None:
    """CTranslate2's int8 kernels differ by CPU, so no exact text is asserted: a spy around the
    real ctranslate2.Generator checks that the penalty reaches generate_batch and generate_tokens,
    and the real calls still return text."""
    generator = load_generator(GeneratorConfig(backend="ctranslate2"))
    real = generator.model  # type: ignore[attr-defined]
    seen: list[float] = []

    class Spy:
        def __getattr__(self, name: str) -> object:
            method = getattr(real, name)

            def call(*args: object, **kwargs: object) -> object:
                seen.append(float(kwargs["repetition_penalty"]))  # type: ignore[arg-type]
                return method(*args, **kwargs)

            return call

    generator.model = Spy()  # type: ignore[attr-defined]
    try:
        prompt = [{"role": "user", "content": "What is a warp?"}]
        sampling = SamplingConfig(max_new_tokens=8, repetition_penalty=1.3)
        assert generator.generate([prompt], sampling)[0].text  # type: ignore[list-item]
        assert "".join(generator.stream(prompt, sampling))  # type: ignore[arg-type]
    finally:
        generator.model = real  # type: ignore[attr-defined]
    assert seen == [1.3, 1.3]
