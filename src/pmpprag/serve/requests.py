"""Checks on what a client sends ``pmpprag serve``, before anything reaches a model.

Cheap checks (types, emptiness, encodability, size in characters) run on the event loop; token
counts run in a worker thread, so a long prompt never stalls other requests. Every failure is a
``BadRequest`` that the server answers with an OpenAI-style error body and status.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from pmpprag.serve.server import ServeConfig

__all__ = [
    "BadRequest",
    "ClientGone",
    "check_text",
    "check_tokens",
    "question_list",
    "unless_disconnected",
]


class BadRequest(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.retry_after = (
            status,
            message,
            param,
            retry_after,
        )

    def response(self) -> JSONResponse:
        kind = "server_busy" if self.status == 503 else "invalid_request_error"
        body = {"error": {"message": self.message, "type": kind, "param": self.param,
                          "code": self.status}}  # fmt: skip
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def question_list(payload: Any, cfg: ServeConfig, count: Any) -> tuple[list[str], bool]:
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
        check_text(text, f"prompt[{i}]" if is_list else "prompt", cfg)
    return prompts, is_list


def check_text(text: Any, where: str, cfg: ServeConfig) -> None:
    """Type, emptiness, encodability and size in characters: cheap checks, on the event loop."""
    if not isinstance(text, str):
        raise BadRequest(400, f"{where} must be a string", where)
    if not text.strip():
        raise BadRequest(400, f"{where} is empty", where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate such as "\ud800"
        raise BadRequest(400, f"{where} is not valid Unicode text ({err.reason})", where) from err
    if len(text) > cfg.max_prompt_chars:
        raise BadRequest(400, f"{where} is over the {cfg.max_prompt_tokens}-token limit for a "
                         f"question ({len(text)} characters)", where)  # fmt: skip


async def check_tokens(texts: list[str], where: list[str], cfg: ServeConfig, count: Any) -> None:
    """Token counts, in a worker thread: a tokenizer on a long text would stall every request."""
    counts = await asyncio.to_thread(lambda: [count(t) for t in texts])
    for n, name in zip(counts, where, strict=True):
        if n > cfg.max_prompt_tokens:
            raise BadRequest(
                400, f"{name} is over the {cfg.max_prompt_tokens}-token limit for a question", name
            )


async def unless_disconnected(request: Request, work: Any) -> Any:
    """Await ``work``; if the client goes away first, cancel it (its queued questions are
    dropped) and raise ``ClientGone``."""
    task = asyncio.ensure_future(work)
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if not done and await request.is_disconnected():
            task.cancel()
            raise ClientGone()
    return task.result()


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""
