"""QA generation: team-written pairs and a teacher LLM's pairs -> a checked fine-tuning set."""

from pmpprag.qagen.filters import bigram_jaccard, check_pair, grounding, near_duplicates
from pmpprag.qagen.prompts import GeneratedPair, ParseError, build_messages, parse_pairs
from pmpprag.qagen.stage import QagenConfig, QagenResult, alpaca_record, run

__all__ = [
    "GeneratedPair",
    "ParseError",
    "QagenConfig",
    "QagenResult",
    "alpaca_record",
    "bigram_jaccard",
    "build_messages",
    "check_pair",
    "grounding",
    "near_duplicates",
    "parse_pairs",
    "run",
]
