"""RAG: retrieve textbook passages and answer with citations (English and Chinese)."""

from pmpprag.rag.pipeline import Assistant, Question, RagConfig

__all__ = ["Assistant", "Question", "RagConfig"]
