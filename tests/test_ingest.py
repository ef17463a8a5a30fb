"""Ingestion on real PDFs: synthetic books with known truth, the corpus PDF, and bad inputs."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pymupdf
import pytest

from pmpprag.ingest import (
    ChunkingConfig,
    CorpusPdfConfig,
    IngestConfig,
    IngestError,
    build_pdf,
    parse_chapters,
    read_pdf,
    run,
)
from pmpprag.ingest.markdown import parse_markdown
from pmpprag.ingest.synthetic import BookTruth, make_book
from pmpprag.schema import Chunk, read_jsonl

CORPUS = Path(__file__).parents[1] / "data" / "corpus"


@pytest.fixture(scope="module", params=[True, False], ids=["outline", "no-outline"])
def book(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, BookTruth]:
    path = tmp_path_factory.mktemp("book") / "book.pdf"
    return path, make_book(path, chapters=3, sections=3, outline=request.param)


@pytest.fixture(scope="module")
def book_chunks(
    book: tuple[Path, BookTruth], tmp_path_factory: pytest.TempPathFactory
) -> list[Chunk]:
    out = tmp_path_factory.mktemp("ingest")
    return run(IngestConfig(pdf=book[0], out=out)).chunks


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9_]+", unicodedata.normalize("NFKC", text))


def test_chapters_and_sections_match_truth(book: tuple[Path, BookTruth]) -> None:
    path, truth = book
    chapters, _, labels = read_pdf(path)
    got = [
        (c.number, c.title, c.page_start, [(s.number, s.title, s.page) for s in c.sections])
        for c in chapters
    ]
    want = [
        (c.number, c.title, c.page, [(s.number, s.title, s.page) for s in c.sections])
        for c in truth.chapters
    ]
    assert got == want
    assert chapters[0].source == ("outline" if pymupdf.open(path).get_toc() else "typography")
    # printed page numbers (from the footers) are one less than the PDF page index
    assert all(labels[p] == str(p - truth.label_offset) for p in range(2, truth.pages + 1))


def test_clean_text(book: tuple[Path, BookTruth], book_chunks: list[Chunk]) -> None:
    _, truth = book
    text = "\n".join(c.text for c in book_chunks)
    for header in truth.headers:
        assert header not in text
    # no page number survives: the only digits in prose are section/figure numbers
    prose = "\n".join(c.text for c in book_chunks if c.kind == "text")
    assert not re.search(r"(?<![\d.])\b\d+\b(?![.\d])", re.sub(r"Figure \d+\.\d+", "", prose))
    # hyphenated line breaks are rejoined; hyphenated compounds keep their hyphen
    assert truth.hyphenated and all(word in text for word in truth.hyphenated)
    assert not re.search(r"[a-z]- [a-z]", text)
    assert "thread-level" in text and "threadlevel" not in text
    # captions kept as labelled text, stray figure labels dropped
    assert "Figure 1.2: Threads of one block share a tile in on-chip memory." in text
    assert "SM 0" not in text and not re.search(r"\bx0\b", text)


def test_code_kept_verbatim(book_chunks: list[Chunk]) -> None:
    code = next(c for c in book_chunks if "__global__ void scale" in c.text)
    assert code.kind in ("code", "mixed")
    assert (
        "```\n__global__ void scale(float* x, float a, int n) {\n    int i = blockIdx.x"
        in code.text
    )
    assert "\n        x[i] = a * x[i];\n    }\n}\n```" in code.text


def test_page_provenance(book: tuple[Path, BookTruth], book_chunks: list[Chunk]) -> None:
    path, truth = book
    doc = pymupdf.open(path)
    pages = {i + 1: re.sub(r"-\s*\n", "", doc[i].get_text()) for i in range(doc.page_count)}
    for chunk in book_chunks:
        assert chunk.page_start is not None and chunk.page_end is not None
        span = " ".join(pages[p] for p in range(chunk.page_start, chunk.page_end + 1))
        words, first, last = _words(span), _words(chunk.text)[:5], _words(chunk.text)[-5:]
        joined = " ".join(words)
        assert " ".join(first) in joined and " ".join(last) in joined, chunk.chunk_id
        first_label = str(chunk.page_start - truth.label_offset)
        assert chunk.page_label is not None and chunk.page_label.split("-")[0] == first_label


def test_chunk_budget_sections_and_stable_ids(
    book: tuple[Path, BookTruth], book_chunks: list[Chunk], tmp_path: Path
) -> None:
    _, truth = book
    assert all(c.n_tokens <= 200 for c in book_chunks)
    sections = {(c.chapter, c.section) for c in book_chunks}
    assert {(ch.number, s.number) for ch in truth.chapters for s in ch.sections} <= sections
    again = run(IngestConfig(pdf=book[0], out=tmp_path)).chunks
    assert [c.chunk_id for c in again] == [c.chunk_id for c in book_chunks]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["chunks"] == len(again) and set(manifest["chunks_per_chapter"]) == {
        "1",
        "2",
        "3",
    }
    assert read_jsonl(tmp_path / "chunks.jsonl", Chunk) == again


def test_chapter_selection_and_missing_chapter(
    book: tuple[Path, BookTruth], tmp_path: Path
) -> None:
    chunks = run(IngestConfig(pdf=book[0], chapters="2-3", out=tmp_path / "a")).chunks
    assert {c.chapter for c in chunks} == {2, 3}
    with pytest.raises(
        IngestError, match=r"book\.pdf: chapter\(s\) 7 not found; the document has chapters 1, 2, 3"
    ):
        run(IngestConfig(pdf=book[0], chapters="2,7", out=tmp_path / "b"))
    assert not (tmp_path / "b").exists()


def test_parse_chapters() -> None:
    assert parse_chapters("1-7,13,16,17,20") == {1, 2, 3, 4, 5, 6, 7, 13, 16, 17, 20}
    assert parse_chapters("all") is None
    with pytest.raises(ValueError, match="runs backwards"):
        parse_chapters("6-2")


def test_chapter_map_override(tmp_path: Path) -> None:
    pdf = tmp_path / "odd.pdf"
    truth = make_book(pdf, chapters=2, sections=2, outline=False)
    ch2 = truth.chapters[1]
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "chapters:\n"
        f"  - {{number: 9, title: Renamed, page: {ch2.page}, sections: "
        f"[{{number: '2.1', title: {ch2.sections[0].title}, page: {ch2.sections[0].page}}}]}}\n"
    )
    chapters, elements, _ = read_pdf(pdf, chapter_map=mapping)
    assert {e.chapter for e in elements} == {9} and "2.1" in {e.section for e in elements}
    assert [(c.number, c.title, c.page_start, c.source) for c in chapters] == [
        (9, "Renamed", ch2.page, "map")
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("chapters:\n  - {title: x}\n")
    with pytest.raises(IngestError, match=r"bad\.yaml: entry 1 needs number, title and page"):
        read_pdf(pdf, chapter_map=bad)


def _encrypted(path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret text " * 20)
    doc.save(str(path), encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="o", user_pw="u")


def _scanned(path: Path) -> None:
    doc = pymupdf.open()
    for _ in range(3):
        page = doc.new_page()
        pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 50, 50), False)
        pix.clear_with(200)
        page.insert_image(page.rect, pixmap=pix)
    doc.save(str(path))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_encrypted, r"is encrypted: decrypt it first"),
        (_scanned, r"almost no text layer .* run OCR first"),
        (lambda p: p.write_bytes(b""), r"is an empty file"),
        (lambda p: p.write_text("just some notes\n"), r"is not a PDF .* use --markdown FOLDER"),
        (lambda p: p.write_bytes(b"%PDF-1.7\n garbage"), r"damaged PDF|no pages"),
    ],
    ids=["encrypted", "scanned", "empty", "not-pdf", "damaged"],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(make, message: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "input.pdf"
    make(path)
    with pytest.raises(IngestError, match=message) as info:
        run(IngestConfig(pdf=path, out=tmp_path / "out"))
    assert "input.pdf" in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def corpus_pdf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("corpus") / "corpus.pdf"
    return out, build_pdf(CorpusPdfConfig(corpus=CORPUS, out=out)).headings


def test_corpus_pdf_is_book_like(corpus_pdf: tuple[Path, list]) -> None:
    path, _ = corpus_pdf
    doc = pymupdf.open(path)
    toc = doc.get_toc()
    assert toc[0][:2] == [1, "Chapter 1: Introduction"] and any(level == 2 for level, _, _ in toc)
    assert doc[0].get_label() == "i" and doc[2].get_label() == "1"
    page_text = doc[12].get_text(sort=True)
    assert re.search(r"^(CHAPTER \d+ |\d+\.\d+ )", page_text.strip())  # a running header


def test_corpus_pdf_ingests_to_the_markdown_truth(
    corpus_pdf: tuple[Path, list], tmp_path: Path
) -> None:
    path, _ = corpus_pdf
    result = run(IngestConfig(pdf=path, out=tmp_path, chunking=ChunkingConfig()))
    truth = {}
    for f in sorted(CORPUS.glob("ch*.md")):
        blocks = parse_markdown(f)
        truth[int(blocks[0].number)] = (
            blocks[0].text,
            [(b.number, b.text) for b in blocks if b.kind == "section"],
        )
    got = {c.number: (c.title, [(s.number, s.title) for s in c.sections]) for c in result.chapters}
    assert got == truth
    text = "\n".join(c.text for c in result.chunks)
    assert not re.search(r"CHAPTER \d", text)  # even-page running headers
    assert not re.search(r"\n\d+\.\d+  [A-Z]", text)  # odd-page running headers
    doc = pymupdf.open(path)
    for chunk in result.chunks[::7]:
        assert chunk.page_start is not None and chunk.page_end is not None
        span = " ".join(doc[p - 1].get_text() for p in range(chunk.page_start, chunk.page_end + 1))
        head = " ".join(_words(chunk.text.replace("```", ""))[:6])
        assert head in " ".join(_words(span)), chunk.chunk_id
        assert chunk.page_label == doc[
            chunk.page_start - 1
        ].get_label() or chunk.page_label.startswith(doc[chunk.page_start - 1].get_label() + "-")


def test_markdown_folder_ingestion(tmp_path: Path) -> None:
    result = run(IngestConfig(markdown=CORPUS, chapters="2-6", out=tmp_path))
    assert {c.chapter for c in result.chunks} == {2, 3, 4, 5, 6}
    tiled = [c for c in result.chunks if "Mds[ty][tx]" in c.text]
    assert 5 in {c.chapter for c in tiled} and all(c.line_start and c.line_end for c in tiled)
    assert all(c.source.startswith("ch0") for c in result.chunks)


def test_damaged_pdfs_fail_or_warn_loudly_and_never_lose_chapters_silently(
    corpus_pdf: tuple[Path, list], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = corpus_pdf[0].read_bytes()
    cut = tmp_path / "half.pdf"
    cut.write_bytes(good[: len(good) // 2])  # a download that stopped half-way
    overwritten = tmp_path / "overwritten.pdf"
    # zeros over an object's header a third of the way in (not only inside one stream, where
    # a reader may never notice: that depends on how the typesetter laid the file out)
    middle = good.index(b" obj", len(good) // 3) - 50
    overwritten.write_bytes(good[:middle] + b"\0" * 20_000 + good[middle + 20_000 :])
    tiny = tmp_path / "tiny.pdf"
    tiny.write_bytes(good[:300_000])
    for path in (cut, overwritten, tiny):
        with pytest.raises(IngestError, match=rf"{path.name} is (damaged|a damaged PDF)") as info:
            run(IngestConfig(pdf=path, out=tmp_path / "out"))
        assert "\n" not in str(info.value)  # one line, naming the file
        assert not (tmp_path / "out").exists()
    # with the explicit flag it ingests what can be read, with a warning that says so
    result = run(IngestConfig(pdf=cut, out=tmp_path / "out", allow_repaired=True))
    assert result.chunks and "DAMAGED" in caplog.text


@pytest.mark.parametrize("contents", [False, True], ids=["no-contents", "contents-page"])
@pytest.mark.parametrize("layout", ["big-label", "small-label", "one-line", "number-only"])
def test_chapter_openings_found_by_typography_in_common_layouts(
    layout: str, contents: bool, tmp_path: Path
) -> None:
    """No outline: the chapter table comes from the opening pages' typography alone."""
    path = tmp_path / "book.pdf"
    truth = make_book(path, chapters=3, sections=2, outline=False, layout=layout, contents=contents)
    chapters, _, _ = read_pdf(path)
    assert [(c.number, c.title, c.page_start) for c in chapters] == [
        (c.number, c.title, c.page) for c in truth.chapters
    ]
    assert all(c.source == "typography" for c in chapters)
    assert [[s.number for s in c.sections] for c in chapters] == [
        [s.number for s in c.sections] for c in truth.chapters
    ]


def test_inline_code_keeps_its_asterisks_and_bold_outside_code_is_dropped() -> None:
    """`void **` is C: the ``**`` of two code spans in one line are not a bold pair."""
    from pmpprag.ingest.corpus_pdf import _inline
    from pmpprag.ingest.markdown import plain_inline

    line = "The type is `void **`, so cast: `(void **)&A_d`. A **pointer** to a `float *`."
    assert (
        plain_inline(line) == "The type is void **, so cast: (void **)&A_d. A pointer to a float *."
    )
    assert _inline(line) == (
        "The type is <code>void **</code>, so cast: <code>(void **)&amp;A_d</code>. "
        "A <b>pointer</b> to a <code>float *</code>."
    )
    bold_code = "It goes to **`(N - totalOnes) + onesBefore[i]`**, see **the `scan` result**."
    assert plain_inline(bold_code) == (
        "It goes to (N - totalOnes) + onesBefore[i], see the scan result."
    )
    assert _inline(bold_code) == (
        "It goes to <b><code>(N - totalOnes) + onesBefore[i]</code></b>, "
        "see <b>the <code>scan</code> result</b>."
    )
