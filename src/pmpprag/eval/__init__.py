"""Evaluation: held-out accuracy, the course metric, ragas, speed, ablations, retrieval recall."""

from pmpprag.eval.ablate import AblateConfig
from pmpprag.eval.ablate import run as ablate
from pmpprag.eval.grade import GradeConfig
from pmpprag.eval.grade import run as grade
from pmpprag.eval.mcq import McqEvalConfig
from pmpprag.eval.mcq import run as mcq
from pmpprag.eval.overlap import OverlapConfig
from pmpprag.eval.overlap import run as overlap
from pmpprag.eval.retrieval import RetrievalEvalConfig
from pmpprag.eval.retrieval import run as retrieval
from pmpprag.eval.run import EvalRunConfig
from pmpprag.eval.run import run as run_testset

__all__ = [
    "AblateConfig",
    "EvalRunConfig",
    "GradeConfig",
    "McqEvalConfig",
    "OverlapConfig",
    "RetrievalEvalConfig",
    "ablate",
    "grade",
    "mcq",
    "overlap",
    "retrieval",
    "run_testset",
]
