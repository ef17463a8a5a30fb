"""Check team-written grounded QA files (data/qa/grounded/chNN.jsonl) before they are committed.

Usage: python scripts/check_grounded.py data/qa/grounded/ch05.jsonl [more files]

Every line must be a QAPair that passes qagen's checks, name a `## N.M` section that exists in
both the English and the Chinese notes of its chapter, carry a plausible wrong answer in the
same language, keep to the answer lengths the generator is trained on, and not repeat another
question of the team's (grounded or authored). Prints one line per problem and a summary;
exits 1 when any line is wrong.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from pmpprag.qagen.filters import check_pair
from pmpprag.schema import CITATION_MARKER, QAPair
from pmpprag.text import char_ngrams, has_cjk, normalise

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"^gr-ch(\d\d)-(en|zh)-\d{3}$")
SECTION = re.compile(r"^## (\d+\.\d+)\b", re.MULTILINE)
FORBIDDEN = re.compile(
    r"根据(?:笔记|教材|上文|本节|资料)|笔记中|教材中|according to the (?:notes|book|passage)"
    r"|in the notes|\[G\]",
    re.IGNORECASE,
)
HANZI = re.compile(r"[\u4e00-\u9fff]")
DUPLICATE_JACCARD = 0.6
# Chinese answers run 300-450 characters, as course-style answers do (the tuned model wrote what it
# was trained on: ~115-character answers reached half the recall of the extractive ones)
MAX_HANZI = 380


def _sections(chapter: int) -> tuple[set[str], str]:
    found: list[set[str]] = []
    text = ""
    for folder in ("corpus", "corpus_zh"):
        files = sorted((ROOT / "data" / folder).glob(f"ch{chapter:02d}-*.md"))
        if not files:
            return set(), ""
        body = files[0].read_text(encoding="utf-8")
        text += body
        found.append(set(SECTION.findall(body)))
    return found[0] & found[1], text


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def _others(path: Path) -> list[tuple[str, set[str]]]:
    """Questions of every other team file (authored and grounded) as character bigram sets."""
    out = []
    qa = ROOT / "data" / "qa"
    for other in sorted(qa.glob("authored/*.jsonl")) + sorted(qa.glob("grounded/*.jsonl")):
        if other.resolve() == path.resolve():
            continue
        for line in other.read_text(encoding="utf-8").splitlines():
            try:
                q = json.loads(line)["question"]
            except (ValueError, KeyError):
                continue
            out.append((f"{other.name}", char_ngrams(normalise(q), 2)))
    return out


def check_file(path: Path) -> list[str]:
    problems: list[str] = []
    seen_ids: set[str] = set()
    mine: list[tuple[str, set[str]]] = []
    others = _others(path)
    counts: Counter[tuple[str, str]] = Counter()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path}:{n}"
        if not line.strip():
            continue
        try:
            pair = QAPair.model_validate_json(line)
        except ValueError as exc:
            problems.append(f"{where}: not a QAPair: {str(exc).splitlines()[0]}")
            continue
        match = ID.match(pair.id)
        if not match or int(match.group(1)) != pair.chapter or match.group(2) != pair.lang:
            problems.append(f"{where}: id {pair.id!r} must be gr-chNN-<lang>-NNN for its chapter")
        if pair.id in seen_ids:
            problems.append(f"{where}: duplicate id {pair.id}")
        seen_ids.add(pair.id)
        reason = check_pair(pair)
        if reason:
            problems.append(f"{where}: fails qagen check {reason!r}")
        sections, notes = _sections(pair.chapter)
        if pair.section not in sections:
            problems.append(f"{where}: section {pair.section!r} is not a '## N.M' of both notes")
        texts = pair.question + pair.answer + (pair.rejected or "")
        # a citation marker as the citation parser reads one (`P[2]` is an index, not a marker)
        if FORBIDDEN.search(texts) or CITATION_MARKER.search(texts):
            problems.append(f"{where}: refers to the notes or carries a citation marker")
        if not pair.rejected or normalise(pair.rejected) == normalise(pair.answer):
            problems.append(f"{where}: needs a plausible wrong 'rejected' answer")
        elif pair.lang == "zh" and not has_cjk(pair.rejected):
            problems.append(f"{where}: a Chinese pair's rejected answer must be Chinese")
        if pair.lang == "zh":
            hanzi = len(HANZI.findall(pair.answer))
            if not 25 <= hanzi <= MAX_HANZI:
                problems.append(f"{where}: Chinese answer has {hanzi} hanzi (want 25-{MAX_HANZI})")
        else:
            words = len(pair.answer.split())
            if not 12 <= words <= 140:
                problems.append(f"{where}: English answer has {words} words (want 12-140)")
        for span in re.findall(r"`([^`]+)`", pair.answer):
            if re.search(r"[(\[=;]", span) and normalise(span) not in normalise(notes):
                problems.append(f"{where}: warning: code `{span}` is not in the notes' text")
        grams = char_ngrams(normalise(pair.question), 2)
        for name, other in mine + others:
            if _jaccard(grams, other) >= DUPLICATE_JACCARD:
                problems.append(f"{where}: question nearly repeats one in {name}")
                break
        mine.append((f"{path.name} ({pair.id})", grams))
        counts[(pair.lang, pair.kind)] += 1
    summary = ", ".join(f"{lang}/{kind} {k}" for (lang, kind), k in sorted(counts.items()))
    print(f"{path}: {sum(counts.values())} pairs ({summary})")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    problems = [p for arg in argv for p in check_file(Path(arg))]
    for problem in problems:
        print(problem)
    errors = [p for p in problems if ": warning: " not in p]
    print(f"{len(errors)} errors, {len(problems) - len(errors)} warnings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
