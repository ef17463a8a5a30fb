"""pmpprag: an open study assistant for *Programming Massively Parallel Processors*.

Stages (one subpackage each, named like the CLI verbs): ingest -> index -> qagen -> train ->
serve -> rag -> eval. See README.md for the architecture and the two set-up commands.
"""

__version__ = "0.1.0"
