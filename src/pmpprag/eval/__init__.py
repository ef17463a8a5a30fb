"""Evaluation: retrieval recall, held-out accuracy, the course metric, speed."""

from pmpprag.eval.retrieval import RetrievalEvalConfig
from pmpprag.eval.retrieval import run as retrieval

__all__ = ["RetrievalEvalConfig", "retrieval"]
