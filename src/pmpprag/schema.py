"""Records that flow between stages, and their JSONL files.

Each stage writes its records as JSONL into its run folder; readers validate every line and
name the file and line of the first bad record. Writes are atomic: a temporary file in the
same folder, renamed into place when complete, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pmpprag.errors import PmppragError, StaleError

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Hit",
    "QAPair",
    "RecordError",
    "atomic_folder",
    "atomic_write",
    "check_stage_output",
    "file_sha256",
    "read_jsonl",
    "write_jsonl",
    "write_stage_manifest",
]

R = TypeVar("R", bound=BaseModel)


class Chunk(BaseModel):
    """A retrievable piece of the textbook, with where it came from."""

    model_config = ConfigDict(extra="forbid")

    chunk_id: str  # stable for the same input and settings: "c04.3-002-1a2b3c4d"
    text: str
    chapter: int
    chapter_title: str
    section: str  # "4.3"; "4.0" for text before the first numbered section
    section_title: str
    kind: Literal["text", "code", "mixed"]  # code: only code listings; mixed: prose and code
    n_tokens: int  # measured with the embedding model's tokenizer
    source: str  # input file name
    page_start: int | None = None  # 1-based PDF page index (None for Markdown/text input)
    page_end: int | None = None
    page_label: str | None = None  # printed page label(s): "87" or "87-88"
    line_start: int | None = None  # 1-based source line range (Markdown/text input)
    line_end: int | None = None
    lang: Literal["en", "zh"] = "en"  # the language of the prose
    twins: list[str] = Field(
        default_factory=list
    )  # the same part of the section in the other language
    meta: dict[str, str] = Field(default_factory=dict)


class Hit(BaseModel):
    """A retrieved chunk with its fused score, its rank, and its rank in each retriever."""

    chunk: Chunk
    score: float
    rank: int
    ranks: dict[str, int] = Field(default_factory=dict)  # {"dense": 3, "bm25": 1}
    scores: dict[str, float] = Field(default_factory=dict)  # {"dense": 0.61 (cosine), "bm25": 7.2}


class Citation(BaseModel):
    """Where a cited passage comes from; ``n`` is the [n] marker used in the answer text."""

    n: int
    chunk_id: str
    chapter: int
    section: str
    section_title: str
    page_label: str | None = None
    lang: Literal["en", "zh"] = "en"  # which notes: the Chinese ones are cited by section


# An inline citation "[n]" or " [n]" in an answer; a bracket right after a name, a bracket or a
# parenthesis is an index in code (Mds[ty][tx], a[1], f(x)[0]), not a citation.
CITATION_MARKER = re.compile(r"\s?(?<![\w\]\)])\[(\d{1,2})\]")


class Answer(BaseModel):
    """An answer with its evidence and measurements."""

    question: str
    text: str
    language: Literal["en", "zh"]
    mode: str  # "extractive", "abstractive", "mcq:<method>", "no-rag", "not-covered"
    citations: list[Citation] = Field(default_factory=list)
    passages: list[Hit] = Field(default_factory=list)
    choice: str | None = None  # the letter, for multiple-choice questions
    option_scores: list[float] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0
    ttft_s: float = 0.0
    wall_s: float = 0.0
    meta: dict[str, float | int | str] = Field(default_factory=dict)

    @property
    def plain_text(self) -> str:
        """The text without its inline citation markers: for a reply that carries no list of
        sources (the course's ``/predict`` contract returns text only), where "[2]" would point
        at nothing. Markers numbered past the passages are left as written."""
        return CITATION_MARKER.sub(
            lambda m: "" if 1 <= int(m.group(1)) <= len(self.passages) else m.group(0), self.text
        ).strip()


QAKind = Literal["concept", "numeric", "code", "choice", "judge"]


class QAPair(BaseModel):
    """A self-contained question and its answer, for fine-tuning (qagen -> train)."""

    model_config = ConfigDict(extra="forbid")

    id: str  # "qa-ch04-001" (authored) or "gen-<chunk id>-<n>" (generated)
    chapter: int
    section: str  # "4.3 Synchronization and transparent scalability" or "4.3"
    lang: Literal["en", "zh"]
    kind: QAKind
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    rejected: str | None = None  # a plausible wrong answer, the "rejected" side for DPO
    origin: str = "authored"  # "authored" (team-written) or "generated:<model>"
    source: str = ""  # where it came from: "<file>:<line>" or the chunk id


class RecordError(PmppragError, ValueError):
    """A JSONL file holds a line that is not a valid record; the message names file and line."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file 0600; give it the mode an ordinary open() would (0666 & ~umask),
        # so another user or a container (a vLLM image, say) can read what we write
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(target: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder that becomes ``target`` only if the block succeeds.

    ``replace=True`` swaps out an existing ``target`` (index rebuilds); ``replace=False`` is for
    caches built once: if another process finished ``target`` first, its copy is kept.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700, unlike mkdir
    try:
        yield tmp
        if target.exists() and not replace:
            return
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_jsonl(path: Path, records: Iterable[BaseModel | dict]) -> int:
    """Write records (models or plain dicts) atomically, one JSON object per line; returns the count."""
    n = 0
    with atomic_write(path) as fh:
        for record in records:
            if isinstance(record, BaseModel):
                fh.write(record.model_dump_json() + "\n")
            else:
                fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n


def read_jsonl(path: Path, model: type[R]) -> list[R]:
    """Read and validate every line; a bad line raises :class:`RecordError` with its number."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path} does not exist")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(model.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as err:
                first = str(err).splitlines()[0:3]
                raise RecordError(
                    f"{path}:{lineno}: not a valid {model.__name__} record: {' '.join(first)}"
                ) from err
    return records


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_stage_manifest(folder: Path, outputs: list[str], command: str, **extra: Any) -> None:
    """``manifest.json`` of a stage's output folder: the hash of each output file and the command
    that makes them again, so the next stage can tell when one was edited afterwards."""
    folder = Path(folder)
    manifest = {"command": command, **extra,
                "outputs": {name: file_sha256(folder / name) for name in outputs}}  # fmt: skip
    with atomic_write(folder / "manifest.json") as fh:
        json.dump(manifest, fh, indent=1, ensure_ascii=False)


def check_stage_output(path: Path) -> None:
    """Refuse a stage output that changed after its stage wrote it (the manifest beside it
    lists its hash), naming the command to re-run. Files without such a manifest pass."""
    path = Path(path)
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.is_file():
        return
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    recorded = manifest.get("outputs", {}).get(path.name)
    if recorded is not None and recorded != file_sha256(path):
        raise StaleError(
            f"{path} changed after `{manifest.get('command', 'its stage')}` wrote it: run that "
            "again (or remove the manifest.json beside it to use the edited file as it is)"
        )
