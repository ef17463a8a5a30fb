"""``pmpprag serve``: the HTTP server graders and apps call (FastAPI + uvicorn).
(It stays one module: one FastAPI app whose routes share the model workers and the queue.)

    pmpprag serve [--config configs/rag/default.yaml] [--host 127.0.0.1] [--port 8000] [--batch] [--no-rag]

Endpoints:
- ``GET /`` -> ``{"status": "ok"}``, or ``{"status": "batch"}`` in batch mode (the course contract);
- ``POST /predict`` ``{"prompt": "question"}`` -> ``{"response": "answer"}``; in batch mode
  ``{"prompt": ["q1", ...]}`` -> ``{"response": ["a1", ...]}`` in the same order. The prompt is the
  bare question: the server applies its own instructions, retrieval and length settings;
- ``POST /v1/chat/completions`` (OpenAI-compatible; ``stream: true`` sends server-sent events)
  and ``GET /v1/models``.

Concurrent requests are collected for up to ``batch_window_ms`` into one ``ask_many`` call, which
runs on one worker thread (models are not re-entrant). Bad requests (malformed JSON, deeply
nested or huge numbers, lone surrogates, empty or over-long prompts, out-of-range sampling
parameters, bodies over ``max_request_bytes``) get a 4xx with an OpenAI-style error body
(``{"error": {"message", "type", "param", "code"}}``) and never reach the model; the connection
stays open. Prompt sizes are checked in characters first, then counted in tokens off the event
loop. At most ``max_queue`` questions wait: beyond that a request gets 503 with ``Retry-After``.
A client that disconnects has its queued questions dropped. ``/docs`` and ``/openapi.json`` are
served only with ``--api_docs true``. A warm-up question runs before the server accepts requests.
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
from pydantic import ValidationError

from pmpprag.config import option
from pmpprag.generation import SamplingConfig
from pmpprag.rag.pipeline import Assistant, Question, RagConfig
from pmpprag.schema import Answer
from pmpprag.serve.openai_schema import ChatRequest
from pmpprag.serve.requests import (
    BadRequest,
    ClientGone,
    check_text,
    check_tokens,
    question_list,
    unless_disconnected,
)

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
    max_prompt_chars: int = option(8192, "longer questions get 400 before any token is counted")
    max_queue: int = option(2048, "questions waiting at most; a request beyond gets 503")
    max_tokens_limit: int = option(4096, "largest max_tokens a /v1 request may ask for")
    api_docs: bool = option(False, "serve /docs and /openapi.json")
    max_batch_items: int = option(1024, "most questions in one /predict list")
    batch_window_ms: float = option(15.0, "how long the batcher waits to fill a batch")
    max_batch_size: int = option(32, "questions per model batch")
    warmup: bool = option(True, "answer one question before accepting requests")
    batches_in_flight: int = option(
        0, "model batches run at once (0: 8 for vllm-async, which batches continuously; else 1)"
    )


# Questions answered between checks for abandoned requests in extractive mode: each takes
# ~0.1-0.4 s on 2 cores, so a question never waits more than a second or two behind a batch
# whose client left.
EXTRACTIVE_STEP = 4


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
        """Answers in order. Cancelling the caller (a client that went away) drops its questions
        that no model thread has started."""
        if self.queue.qsize() + len(questions) > self.cfg.max_queue:
            raise BadRequest(503, f"the server has {self.queue.qsize()} questions waiting (at "
                             f"most {self.cfg.max_queue}); try again shortly", retry_after=5)  # fmt: skip
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in questions]
        for question, future in zip(questions, futures, strict=True):
            self.queue.put_nowait((question, future))
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise

    async def run_in_model_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _loop(self) -> None:
        while True:
            await self.slots.acquire()  # wait for a free model thread before collecting
            batch = [await self._next()]
            deadline = time.monotonic() + self.cfg.batch_window_ms / 1000
            while (
                len(batch) < self.cfg.max_batch_size and (left := deadline - time.monotonic()) > 0
            ):
                try:
                    batch.append(await asyncio.wait_for(self._next(), left))
                except TimeoutError:
                    break
            task = asyncio.get_running_loop().create_task(self._answer(batch))
            self.running.add(task)  # keep a reference until it is done
            task.add_done_callback(self.running.discard)

    async def _next(self) -> tuple[Question, asyncio.Future[Answer]]:
        """The next question whose asker is still waiting (abandoned ones are skipped)."""
        while True:
            item = await self.queue.get()
            if not item[1].done():
                return item

    async def _answer(self, batch: list[tuple[Question, asyncio.Future[Answer]]]) -> None:
        # Extractive answers are computed one question at a time anyway, so the batch runs in
        # small steps and questions whose client went away meanwhile are dropped between steps;
        # a generating model needs the whole batch at once for its throughput.
        extractive = self.cfg.rag and self.cfg.mode == "extractive"
        step = EXTRACTIVE_STEP if extractive else self.cfg.max_batch_size
        try:
            while batch := [item for item in batch if not item[1].done()]:
                part, batch = batch[:step], batch[step:]
                try:
                    answers = await self.run_in_model_thread(
                        self.assistant.ask_many, [q for q, _ in part], self.cfg.max_batch_size
                    )
                except Exception as err:  # one failing batch must not kill the server
                    logger.exception("batch of %d failed", len(part))
                    for _, future in part:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), answer in zip(part, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self.slots.release()


def create_app(assistant: Assistant, cfg: ServeConfig) -> Any:
    from contextlib import asynccontextmanager

    batcher = Batcher(assistant, cfg)
    started_at = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        batcher.start()
        if cfg.warmup:
            started = time.perf_counter()
            await batcher.ask([Question("What is a warp in CUDA?")])
            logger.info("warm-up answered in %.1f s", time.perf_counter() - started)
        yield
        batcher.executor.shutdown(wait=False, cancel_futures=True)

    docs = {} if cfg.api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="pmpprag", lifespan=lifespan, **docs)  # type: ignore[arg-type]

    # A plain ASGI middleware, not @app.middleware("http"): Starlette's BaseHTTPMiddleware wraps
    # `receive`, and a handler behind it can no longer see that its client disconnected.
    inner = app.build_middleware_stack

    def stack() -> Any:
        downstream = inner()

        async def limit_size(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                length = dict(scope["headers"]).get(b"content-length", b"")
                if length.isdigit() and int(length) > cfg.max_request_bytes:
                    over = BadRequest(413, f"request body over {cfg.max_request_bytes} bytes")
                    await over.response()(scope, receive, send)
                    return
            await downstream(scope, receive, send)

        return limit_size

    app.build_middleware_stack = stack  # type: ignore[method-assign]

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> Any:
        return err.response()

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, err: ClientGone) -> Any:
        return JSONResponse({"error": {"message": "client closed the request"}}, status_code=499)

    async def read_json(request: Request) -> Any:
        body = await request.body()
        if len(body) > cfg.max_request_bytes:
            raise BadRequest(413, f"request body over {cfg.max_request_bytes} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as err:  # bad JSON, bad UTF-8, huge ints, deep nesting
            message = str(err)[:200] if not isinstance(err, RecursionError) else "nested too deeply"
            raise BadRequest(400, f"malformed JSON: {message}") from err

    count = assistant.count_tokens

    @app.get("/")
    async def health() -> dict[str, str]:
        return {"status": "batch" if cfg.batch else "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        prompts, is_list = question_list(await read_json(request), cfg, count)
        names = [f"prompt[{i}]" if is_list else "prompt" for i in range(len(prompts))]
        await check_tokens(prompts, names, cfg, count)
        answers = await unless_disconnected(request, batcher.ask([Question(p) for p in prompts]))
        texts = [a.plain_text for a in answers]  # the contract carries no sources list
        return {"response": texts if is_list else texts[0]}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        model = {
            "id": cfg.model_name,
            "object": "model",
            "created": started_at,
            "owned_by": "pmpprag",
        }
        return {"object": "list", "data": [model]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = ChatRequest.model_validate(await read_json(request))
        except ValidationError as err:
            first = err.errors()[0]
            param = ".".join(str(x) for x in first["loc"])
            raise BadRequest(400, f"{param}: {first['msg']}", param) from err
        user = [m.text for m in body.messages if m.role == "user"]
        if not user:
            raise BadRequest(400, "messages hold no user message", "messages")
        check_text(user[-1], "the last user message", cfg)
        await check_tokens([user[-1]], ["the last user message"], cfg, count)
        max_tokens = body.max_completion_tokens or body.max_tokens or cfg.sampling.max_new_tokens
        if max_tokens > cfg.max_tokens_limit:
            raise BadRequest(
                400, f"max_tokens is over this server's {cfg.max_tokens_limit}", "max_tokens"
            )
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:12]}"
        reply = _Reply(rid, created, cfg.model_name, body.stream_options is not None
                       and body.stream_options.include_usage)  # fmt: skip
        if cfg.rag and body.stream and cfg.mode != "extractive":  # the model may write: stream it
            stream = _threaded(batcher, assistant.stream, user[-1])
            return StreamingResponse(
                _sse(reply, stream, (count(user[-1]), None), None, cfg.sampling.max_new_tokens),
                media_type="text/event-stream",
            )
        if cfg.rag:
            answer = (await unless_disconnected(request, batcher.ask([Question(user[-1])])))[0]
            # an extractive answer is quoted, not generated: usage counts its tokens all the same
            usage = (
                answer.prompt_tokens or count(user[-1]),
                answer.completion_tokens or count(answer.text),
            )
            finish = str(answer.meta.get("finish_reason", "stop"))
            if body.stream:  # a finished answer, sent word by word
                words = answer.text.split(" ")
                pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
                return StreamingResponse(_sse(reply, _aiter(pieces), usage, finish),
                                         media_type="text/event-stream")  # fmt: skip
            return reply.completion(answer.text, usage, finish)
        sampling = SamplingConfig(
            max_new_tokens=max_tokens,
            temperature=float(body.temperature or 0.0),
            top_p=float(body.top_p or 1.0),
            repetition_penalty=float(body.repetition_penalty or cfg.sampling.repetition_penalty),
            stop=body.stops(),
        )
        messages = [{"role": m.role, "content": m.text} for m in body.messages]
        if body.stream:  # the model's own tokens as it writes them
            prompt_tokens = count(" ".join(m["content"] for m in messages))
            stream = _threaded(batcher, assistant.generator.stream, messages, sampling)
            return StreamingResponse(_sse(reply, stream, (prompt_tokens, None), None, max_tokens),
                                     media_type="text/event-stream")  # fmt: skip
        generation = (
            await unless_disconnected(
                request,
                batcher.run_in_model_thread(assistant.generator.generate, [messages], sampling),
            )
        )[0]
        usage = (generation.prompt_tokens, generation.completion_tokens)
        return reply.completion(generation.text, usage, generation.finish_reason)

    return app


@dataclass
class _Reply:
    """The fixed parts of one chat completion, and its two shapes (whole and streamed)."""

    rid: str
    created: int
    model: str
    include_usage: bool

    def completion(self, text: str, usage: tuple[int, int], finish: str) -> dict[str, Any]:
        return {"id": self.rid, "object": "chat.completion", "created": self.created,
                "model": self.model, "usage": _usage(usage),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish}]}  # fmt: skip

    def chunk(self, delta: dict[str, str], finish: str | None = None, **extra: Any) -> str:
        body = {"id": self.rid, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [{"index": 0, "delta": delta,
                                                   "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


async def _aiter(items: list[str]) -> Any:
    for item in items:
        yield item


async def _threaded(batcher: Batcher, stream: Any, *args: Any) -> Any:
    """A generator's blocking ``stream`` run on a model thread, its pieces handed to the loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    def produce() -> None:
        try:
            for piece in stream(*args):
                loop.call_soon_threadsafe(queue.put_nowait, piece)
        except Exception as err:  # handed to the consumer, which ends the stream
            loop.call_soon_threadsafe(queue.put_nowait, err)
        loop.call_soon_threadsafe(queue.put_nowait, done)

    worker = asyncio.ensure_future(batcher.run_in_model_thread(produce))
    while (piece := await queue.get()) is not done:
        if isinstance(piece, Exception):
            logger.error("stream failed: %s", piece)
            break
        yield piece
    await worker


async def _sse(
    reply: _Reply,
    pieces: Any,
    usage: tuple[int, int | None],
    finish: str | None,
    limit: int | None = None,
) -> Any:
    """Server-sent events in the OpenAI chunk format, ending with ``data: [DONE]``. A model's
    stream (``finish`` None) that reached ``limit`` pieces ends for "length"."""
    yield reply.chunk({"role": "assistant", "content": ""})
    completion = 0
    async for piece in pieces:
        completion += 1
        yield reply.chunk({"content": piece})
    done = (usage[0], usage[1] if usage[1] is not None else completion)
    if finish is None:
        finish = "length" if limit is not None and completion >= limit else "stop"
    extra = {"usage": _usage(done)} if reply.include_usage else {}
    yield reply.chunk({}, finish, **extra)
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
