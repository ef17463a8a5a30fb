"""Index and retrieval: FAISS dense vectors + BM25, fused; Chinese questions via a glossary."""

from pmpprag.index.build import IndexConfig, IndexResult, add, build
from pmpprag.index.lexical import Glossary, load_glossary, tokenize
from pmpprag.index.retriever import Mode, Retrieval, Retriever, RetrieverConfig
from pmpprag.index.store import IndexError_, load_index

__all__ = [
    "Glossary",
    "IndexConfig",
    "IndexError_",
    "IndexResult",
    "Mode",
    "Retrieval",
    "Retriever",
    "RetrieverConfig",
    "add",
    "build",
    "load_glossary",
    "load_index",
    "tokenize",
]
