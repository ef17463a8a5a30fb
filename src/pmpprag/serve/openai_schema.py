"""The request body of ``POST /v1/chat/completions``, validated as the OpenAI API defines it.

Pydantic models that mirror the fields of the ``openai`` package's ``ChatCompletionCreateParams``
that this server honours, with their types and ranges: strict booleans (``"stream": "yes"`` is
an error, not true), ``n`` only 1, ``max_tokens`` within the server's limit, ``top_p`` in (0, 1],
``stop`` strings only, and message ``content`` as a string or a list of ``{"type": "text"}``
parts (what the OpenAI SDK and LangChain send). Other OpenAI fields are accepted and ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = ["ChatRequest", "Message", "TextPart"]

Number = StrictFloat | StrictInt


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: StrictStr | list[TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI fields this server does not use

    model: StrictStr | None = None
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Number, Field(gt=0, le=1)] | None = None
    n: Literal[1] = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=4)] | None = None
    repetition_penalty: Annotated[Number, Field(gt=0, le=10)] | None = None

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
