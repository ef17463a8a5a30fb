"""Evaluation: held-out accuracy, the course metric, ragas, speed, ablations, retrieval recall.

Each stage is its own module with a config and a ``run``: :mod:`.run` (``eval run``),
:mod:`.grade`, :mod:`.ablate`, :mod:`.mcq`, :mod:`.overlap`, :mod:`.retrieval`. The package
exports the configs only, so ``pmpprag.eval.mcq`` stays the module (not a function).
"""

from pmpprag.eval.ablate import AblateConfig
from pmpprag.eval.grade import GradeConfig
from pmpprag.eval.mcq import McqEvalConfig
from pmpprag.eval.overlap import OverlapConfig
from pmpprag.eval.retrieval import RetrievalEvalConfig
from pmpprag.eval.run import EvalRunConfig

__all__ = [
    "AblateConfig",
    "EvalRunConfig",
    "GradeConfig",
    "McqEvalConfig",
    "OverlapConfig",
    "RetrievalEvalConfig",
]
