"""``pmpprag serve``: the HTTP server graders and apps call (FastAPI + uvicorn).

    pmpprag serve [--config configs/rag/default.yaml] [--host 127.0.0.1] [--port 8000] [--batch] [--no-rag]

Endpoints:
- ``GET /`` -> ``{"status": "ok"}``, or ``{"status": "batch"}`` in batch mode (the course contract);
- ``POST /predict`` ``{"prompt": "question"}`` -> ``{"response": "answer"}``; in batch mode
  ``{"prompt": ["q1", ...]}`` -> ``{"response": ["a1", ...]}`` in the same order. The prompt is the
  bare question: the server applies its own instructions, retrieval and length settings;
- ``POST /v1/chat/completions`` (OpenAI-compatible; ``stream: true`` sends server-sent events)
  and ``GET /v1/models``.

Concurrent requests are collected for up to ``batch_window_ms`` into one ``ask_many`` call, which
runs on one worker thread (models are not re-entrant). Bad requests (malformed JSON, empty or
over-long prompts, bodies over ``max_request_bytes``) get a 4xx with a message and never reach
the model. A warm-up question runs before the server accepts requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# FastAPI reads handler annotations at run time, so Request must be a module-level name.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from pmpprag.config import option
from pmpprag.rag.pipeline import Assistant, Question, RagConfig
from pmpprag.schema import Answer
from pmpprag.serve.generation import SamplingConfig

logger = logging.getLogger(__name__)

__all__ = ["ServeConfig", "create_app", "run"]


@dataclass
class ServeConfig(RagConfig):
    host: str = option("127.0.0.1", "address to bind")
    port: int = option(8000, "port")
    batch: bool = option(False, "batch mode: GET / says 'batch' and /predict takes lists")
    model_name: str = option("pmpprag", "model id shown by /v1/models")
    max_request_bytes: int = option(2_000_000, "larger request bodies get 413")
    max_prompt_tokens: int = option(1024, "longer questions get 400")
    max_batch_items: int = option(1024, "most questions in one /predict list")
    batch_window_ms: float = option(15.0, "how long the batcher waits to fill a batch")
    max_batch_size: int = option(32, "questions per model batch")
    warmup: bool = option(True, "answer one question before accepting requests")
    batches_in_flight: int = option(
        0, "model batches run at once (0: 8 for vllm-async, which batches continuously; else 1)"
    )


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Batcher:
    """Collects questions from concurrent requests into ``ask_many`` batches.

    Batches run on a model thread pool: one thread for back-ends that decode one batch at a time,
    several for ``vllm-async``, whose engine merges concurrent batches (continuous batching).
    """

    def __init__(self, assistant: Assistant, cfg: ServeConfig) -> None:
        self.assistant, self.cfg = assistant, cfg
        self.queue: asyncio.Queue[tuple[Question, asyncio.Future[Answer]]] = asyncio.Queue()
        in_flight = cfg.batches_in_flight or (8 if cfg.generator.backend == "vllm-async" else 1)
        self.executor = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="model")
        self.slots = asyncio.Semaphore(in_flight)
        self.task: asyncio.Task[None] | None = None
        self.running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def ask(self, questions: list[Question]) -> list[Answer]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in questions]
        for question, future in zip(questions, futures, strict=True):
            await self.queue.put((question, future))
        return list(await asyncio.gather(*futures))

    async def run_in_model_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _loop(self) -> None:
        while True:
            await self.slots.acquire()  # wait for a free model thread before collecting
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.cfg.batch_window_ms / 1000
            while (
                len(batch) < self.cfg.max_batch_size and (left := deadline - time.monotonic()) > 0
            ):
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            task = asyncio.get_running_loop().create_task(self._answer(batch))
            self.running.add(task)  # keep a reference until it is done
            task.add_done_callback(self.running.discard)

    async def _answer(self, batch: list[tuple[Question, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self.run_in_model_thread(
                self.assistant.ask_many, [q for q, _ in batch], self.cfg.max_batch_size
            )
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        except Exception as err:  # one failing batch must not kill the server
            logger.exception("batch of %d failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
        finally:
            self.slots.release()


def _question_list(payload: Any, cfg: ServeConfig, count: Any) -> tuple[list[str], bool]:
    if not isinstance(payload, dict) or "prompt" not in payload:
        raise BadRequest(
            400, 'expected a JSON object {"prompt": "question"} (or a list of questions)'
        )
    prompt = payload["prompt"]
    is_list = isinstance(prompt, list)
    prompts = prompt if is_list else [prompt]
    if is_list and len(prompts) > cfg.max_batch_items:
        raise BadRequest(
            413, f"at most {cfg.max_batch_items} questions per request, got {len(prompts)}"
        )
    if not prompts:
        raise BadRequest(400, "the prompt list is empty")
    for i, text in enumerate(prompts):
        where = f"prompt[{i}]" if is_list else "prompt"
        if not isinstance(text, str):
            raise BadRequest(400, f"{where} must be a string")
        if not text.strip():
            raise BadRequest(400, f"{where} is empty")
        if count(text) > cfg.max_prompt_tokens:
            raise BadRequest(
                400, f"{where} is over the {cfg.max_prompt_tokens}-token limit for a question"
            )
    return prompts, is_list


def create_app(assistant: Assistant, cfg: ServeConfig) -> Any:
    from contextlib import asynccontextmanager

    batcher = Batcher(assistant, cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        batcher.start()
        if cfg.warmup:
            started = time.perf_counter()
            await batcher.ask([Question("What is a warp in CUDA?")])
            logger.info("warm-up answered in %.1f s", time.perf_counter() - started)
        yield
        batcher.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="pmpprag", lifespan=lifespan)

    @app.middleware("http")
    async def limit_size(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cfg.max_request_bytes:
            return JSONResponse(
                {"error": f"request body over {cfg.max_request_bytes} bytes"}, status_code=413
            )
        return await call_next(request)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> Any:
        return JSONResponse({"error": err.message}, status_code=err.status)

    async def read_json(request: Request) -> Any:
        body = await request.body()
        if len(body) > cfg.max_request_bytes:
            raise BadRequest(413, f"request body over {cfg.max_request_bytes} bytes")
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BadRequest(400, f"malformed JSON: {err}") from err

    count = assistant.count_tokens

    @app.get("/")
    async def health() -> dict[str, str]:
        return {"status": "batch" if cfg.batch else "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        prompts, is_list = _question_list(await read_json(request), cfg, count)
        answers = await batcher.ask([Question(p) for p in prompts])
        texts = [a.text for a in answers]
        return {"response": texts if is_list else texts[0]}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": cfg.model_name, "object": "model", "owned_by": "pmpprag"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        payload = await read_json(request)
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role")
                for m in messages
            )
        ):
            raise BadRequest(400, "messages must be a non-empty list of {role, content} objects")
        user = [m["content"] for m in messages if m["role"] == "user"]
        if not user or not user[-1].strip():
            raise BadRequest(400, "the last user message is empty")
        if count(user[-1]) > cfg.max_prompt_tokens:
            raise BadRequest(
                400, f"the user message is over the {cfg.max_prompt_tokens}-token limit"
            )
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if cfg.rag:
            answer = (await batcher.ask([Question(user[-1])]))[0]
            text, usage = answer.text, (answer.prompt_tokens, answer.completion_tokens)
        else:
            try:
                sampling = SamplingConfig(
                    max_new_tokens=int(payload.get("max_tokens") or cfg.sampling.max_new_tokens),
                    temperature=float(payload.get("temperature") or 0.0),
                    top_p=float(payload.get("top_p") or 1.0),
                    repetition_penalty=float(
                        payload.get("repetition_penalty") or cfg.sampling.repetition_penalty
                    ),
                    stop=[payload["stop"]]
                    if isinstance(payload.get("stop"), str)
                    else list(payload.get("stop") or []),
                )
            except (TypeError, ValueError) as err:
                raise BadRequest(400, f"bad sampling parameter: {err}") from err
            generation = (
                await batcher.run_in_model_thread(
                    assistant.generator.generate, [messages], sampling
                )
            )[0]
            text, usage = generation.text, (generation.prompt_tokens, generation.completion_tokens)
        if payload.get("stream"):
            return StreamingResponse(
                _sse(rid, created, cfg.model_name, text, usage, payload),
                media_type="text/event-stream",
            )
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": cfg.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }

    return app


async def _sse(
    rid: str, created: int, model: str, text: str, usage: tuple[int, int], payload: dict
) -> Any:
    """Server-sent events in the OpenAI chunk format; the answer is sent word by word."""

    def event(delta: dict[str, str], finish: str | None = None, extra: dict | None = None) -> str:
        chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}  # fmt: skip
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    words = text.split(" ")
    for i, word in enumerate(words):
        yield event({"content": word + (" " if i < len(words) - 1 else "")})
    extra = None
    if (payload.get("stream_options") or {}).get("include_usage"):
        extra = {
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            }
        }
    yield event({}, "stop", extra)
    yield "data: [DONE]\n\n"


def run(cfg: ServeConfig) -> None:
    import uvicorn

    assistant = Assistant.load(cfg)
    if cfg.generator.backend.startswith("vllm"):
        assistant.generator  # vLLM starts its engine from the main thread  # noqa: B018
    app = create_app(assistant, cfg)
    logger.info(
        "serving on http://%s:%d (batch mode %s, RAG %s)", cfg.host, cfg.port, cfg.batch, cfg.rag
    )
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
