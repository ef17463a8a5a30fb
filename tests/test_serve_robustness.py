"""Probes a careless or hostile client sends, against a real ``pmpprag serve`` on 127.0.0.1: each
gets a 4xx with an OpenAI-style error body, the keep-alive connection survives it, and queued
work of a client that gave up is dropped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import start_server

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_server(
        ["--index", str(corpus_index), "--batch", "--max_queue", "300"],
        tmp_path_factory.mktemp("srv"),
    )


@pytest.fixture(scope="module")
def bare_server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """No retrieval: /v1 requests reach the model with their sampling parameters."""
    yield from start_server(
        ["--index", str(corpus_index), "--rag", "false", "--warmup", "false"],
        tmp_path_factory.mktemp("bare"),
    )


PREDICT_PROBES = {
    "lone-surrogate": b'{"prompt": "what is \\ud800 a warp"}',
    "surrogate-in-batch": b'{"prompt": ["What is a warp?", "\\udfff"]}',
    "deep-nesting": b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge-integer": b'{"prompt": ' + b"7" * 5000 + b"}",
    "one-long-word": json.dumps({"prompt": "w" * 1_000_000}).encode(),
    "not-an-object": b"[1, 2, 3]",
}


@pytest.mark.parametrize("name", sorted(PREDICT_PROBES))
def test_predict_probe_gets_400_and_keeps_the_connection(server: str, name: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post("/predict", content=PREDICT_PROBES[name], headers=JSON)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (
            error["type"] == "invalid_request_error" and error["code"] == 400 and error["message"]
        )
        assert r.headers.get("connection", "").lower() != "close"
        again = client.post("/predict", json={"prompt": ["What is a warp?"]})  # same connection
        assert again.status_code == 200 and again.json()["response"][0]


CHAT_PROBES = {
    "n": {"n": 2},
    "negative-max-tokens": {"max_tokens": -5},
    "huge-max-tokens": {"max_tokens": 10**30},
    "float-max-tokens": {"max_tokens": 1e30},
    "top-p": {"top_p": 5},
    "stop-not-strings": {"stop": [1, 2]},
    "string-boolean": {"stream": "yes"},
    "stream-options": {"stream": True, "stream_options": "yes"},
    "no-messages": {"messages": []},
    "bad-role": {"messages": [{"role": "wizard", "content": "hi"}]},
}


@pytest.mark.parametrize("name", sorted(CHAT_PROBES))
def test_chat_probe_gets_400_with_an_openai_error(bare_server: str, name: str) -> None:
    body = {
        "model": "pmpprag",
        "messages": [{"role": "user", "content": "Hi"}],
        **CHAT_PROBES[name],
    }
    with httpx.Client(base_url=bare_server, timeout=60) as client:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400, r.text
        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}
        assert client.get("/v1/models").status_code == 200  # the connection is still usable


def test_chat_accepts_text_parts_and_reports_usage_and_finish_reason(bare_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=bare_server + "/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="pmpprag",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is a warp?"}]}],
        max_tokens=4,
    )
    assert reply.choices[0].finish_reason == "length"  # 4 tokens cannot finish an answer
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == 4
    streamed = client.chat.completions.create(
        model="pmpprag", messages=[{"role": "user", "content": "What is a warp?"}],
        max_tokens=6, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(streamed)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2  # the model's tokens, as it wrote them
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(pieces)
    models = client.models.list().data
    assert models[0].created > 0


def test_docs_are_not_served_by_default(server: str) -> None:
    assert httpx.get(server + "/docs").status_code == 404
    assert httpx.get(server + "/openapi.json").status_code == 404


def test_a_full_queue_answers_503_with_retry_after(server: str) -> None:
    r = httpx.post(server + "/predict", json={"prompt": ["What is a warp?"] * 301}, timeout=60)
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["type"] == "server_busy"


def test_an_abandoned_batch_is_dropped(server: str) -> None:
    questions = [f"What is shared memory, part {i}?" for i in range(200)]
    with pytest.raises(httpx.TimeoutException):  # the client gives up after a second
        httpx.post(server + "/predict", json={"prompt": questions}, timeout=1.0)
    time.sleep(0.5)  # the server notices the closed connection within 0.25 s
    started = time.perf_counter()
    r = httpx.post(server + "/predict", json={"prompt": ["What is a warp?"]}, timeout=120)
    waited = time.perf_counter() - started
    assert r.status_code == 200
    # 200 extractive answers take ~20 s on 2 cores; dropped, at most the batch in progress
    # (32 questions) delays this one
    assert waited < 10, waited


def test_abstractive_rag_answers_stream_the_model_tokens(
    corpus_index: Path, tmp_path: Path
) -> None:
    from openai import OpenAI

    args = ["--index", str(corpus_index), "--mode", "abstractive", "--warmup", "false",
            "--sampling.max_new_tokens", "8"]  # fmt: skip
    for url in start_server(args, tmp_path):
        client = OpenAI(base_url=url + "/v1", api_key="unused")
        chunks = list(client.chat.completions.create(
            model="pmpprag", messages=[{"role": "user", "content": "What is a warp in CUDA?"}],
            stream=True,
        ))  # fmt: skip
        pieces = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        assert len(pieces) >= 3  # token by token, not one finished answer
        assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_a_stream_its_reader_leaves_frees_the_model_at_once(
    tiny_model_and_adapter: tuple[Path, Path],
) -> None:
    """A client that closes its stream (or the next question in the app) must not wait behind
    the rest of the abandoned answer: transformers generates in a thread holding the model."""
    from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator

    model, _ = tiny_model_and_adapter
    generator = load_generator(GeneratorConfig(backend="transformers", model=str(model)))
    stream = generator.stream("a warp is", SamplingConfig(max_new_tokens=1500, min_new_tokens=1500))
    next(stream)
    stream.close()  # the reader leaves after the first piece
    lock = generator._lock  # type: ignore[attr-defined]
    assert lock.acquire(blocking=False), "the abandoned generation still holds the model"
    lock.release()


def test_no_repeat_ngram_stops_a_loop_in_the_reply_but_lets_it_copy_the_prompt(
    tiny_model_and_adapter: tuple[Path, Path],
) -> None:
    """The random tiny model repeats a 2-token run within 80 greedy tokens; with
    ``no_repeat_ngram`` its reply holds none. The ban looks at the reply only: a run that is in
    the prompt may still be written (transformers' own ``no_repeat_ngram_size`` forbids that)."""
    import torch

    from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator
    from pmpprag.generation.hf import _NoReplyRepeat

    model, _ = tiny_model_and_adapter
    generator = load_generator(GeneratorConfig(backend="transformers", model=str(model)))
    hf_model, tokenizer = generator.model, generator.tokenizer  # type: ignore[attr-defined]
    prompt = tokenizer("a warp is", return_tensors="pt")["input_ids"]
    replies = {}
    for n in (0, 2):
        processors = [_NoReplyRepeat(n, prompt.shape[1])] if n else []
        out = hf_model.generate(prompt, max_new_tokens=80, min_new_tokens=80, do_sample=False,
                                logits_processor=processors)  # fmt: skip
        ids = out[0, prompt.shape[1] :].tolist()
        replies[n] = len({tuple(ids[i : i + 2]) for i in range(len(ids) - 1)}), len(ids) - 1
    assert replies[0][0] < replies[0][1], "the bare tiny model repeats a run"
    assert replies[2][0] == replies[2][1], "no run repeats in the reply"
    texts = [
        generator.generate(["a warp is"], SamplingConfig(max_new_tokens=80, no_repeat_ngram=n))[0]
        for n in (0, 2)
    ]
    assert texts[0].text != texts[1].text  # the option reaches the generator's decoding

    # the processor itself: prompt [7, 8, 9 | reply 7, 8] may go on with 9 (the prompt's run),
    # and a reply [1, 2, 3, 1, 2] may not go on with 3
    out = _NoReplyRepeat(3, start=3)(torch.tensor([[7, 8, 9, 7, 8]]), torch.zeros(1, 10))
    assert torch.isfinite(out).all()
    out = _NoReplyRepeat(3, start=0)(torch.tensor([[1, 2, 3, 1, 2]]), torch.zeros(1, 10))
    assert out[0, 3] == float("-inf") and torch.isfinite(out[0, :3]).all()


def test_stop_on_repeat_ends_each_looping_row_of_a_batch_where_it_repeats(
    tiny_model_and_adapter: tuple[Path, Path],
) -> None:
    """The random tiny model's greedy replies repeat themselves; with ``stop_on_repeat`` each
    row of a batch ends soon after its reply first repeats a run of that many characters (checked
    every 8 tokens), with the same text up to there, while the unchecked reply runs on."""
    from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator
    from pmpprag.text import repeats_itself

    model, _ = tiny_model_and_adapter
    generator = load_generator(GeneratorConfig(backend="transformers", model=str(model)))
    prompts = ["a warp is", "shared memory tiling reduces global memory traffic because"]
    full = generator.generate(prompts, SamplingConfig(max_new_tokens=96, min_new_tokens=96))
    cut = generator.generate(prompts, SamplingConfig(max_new_tokens=96, stop_on_repeat=6))
    for whole, stopped in zip(full, cut, strict=True):
        assert repeats_itself(whole.text, 6), "the bare tiny model repeats itself"
        assert stopped.completion_tokens < whole.completion_tokens == 96
        assert repeats_itself(stopped.text, 6)  # it stopped because of a repeat...
        assert whole.text.startswith(stopped.text)  # ...on the same greedy path
    with pytest.raises(ValueError, match="stop_on_repeat must be >= 0"):
        SamplingConfig(stop_on_repeat=-1)


def test_a_vllm_async_stream_its_reader_leaves_is_cancelled() -> None:
    """The async vLLM back-end pumps the engine's outputs on its own event loop; a reader that
    leaves must cancel that pump (vLLM aborts a cancelled request), not leave it decoding. The
    engine here is a stand-in that counts what it was asked for (vLLM needs a GPU)."""
    import asyncio
    import threading
    import time
    from types import SimpleNamespace

    from pmpprag.generation import SamplingConfig
    from pmpprag.generation.vllm_engine import VLLMAsyncGenerator

    produced: list[int] = []
    cancelled = threading.Event()

    class Endless(VLLMAsyncGenerator):
        def __init__(self) -> None:  # the event loop thread only, no engine
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, daemon=True).start()

        async def _deltas(self, prompt, sampling):  # type: ignore[no-untyped-def]
            text = ""
            try:
                while True:
                    text += "x"
                    produced.append(1)
                    yield SimpleNamespace(outputs=[SimpleNamespace(text=text)])
                    await asyncio.sleep(0.005)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    generator = Endless()
    stream = generator.stream("a warp is", SamplingConfig(max_new_tokens=10_000))
    assert next(stream) == "x"
    stream.close()  # the reader leaves after the first piece
    assert cancelled.wait(5), "the abandoned request was not cancelled"
    count = len(produced)
    time.sleep(0.1)
    assert len(produced) == count  # and nothing more is decoded for it
    generator._loop.call_soon_threadsafe(generator._loop.stop)
