"""Evaluation: retrieval recall, held-out accuracy, the course metric, speed."""

from pmpprag.eval.mcq import McqEvalConfig
from pmpprag.eval.mcq import run as mcq
from pmpprag.eval.retrieval import RetrievalEvalConfig
from pmpprag.eval.retrieval import run as retrieval

__all__ = ["McqEvalConfig", "RetrievalEvalConfig", "mcq", "retrieval"]
