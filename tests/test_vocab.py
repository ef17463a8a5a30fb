"""Trimmed vocabularies (generation/vocab.py): the id map round-trips any text, the trimmed model
scores kept tokens exactly as the full one, and the transformers back-end generates and streams
through the map. A small byte-fallback tokenizer (built here, like Gemma's) and a tiny random
Llama stand in for the real ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from pmpprag.generation import GeneratorConfig, SamplingConfig
from pmpprag.generation.hf import TransformersGenerator
from pmpprag.generation.vocab import VocabMap, build_vocab_map, trim_model

PIECES = ["▁shared", "▁memory", "▁sh", "ared", "▁mem", "ory", "共享", "内存", "共", "享", "▁tile",
          "▁is", "▁a", "▁block", "▁of", "▁threads", "▁warp", "▁", "s", "t", "e", "a", "h", "r"]  # fmt: skip


def make_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = [("<pad>", 0.0), ("<eos>", 0.0), ("<bos>", 0.0), ("<unk>", 0.0)]
    vocab += [(f"<0x{b:02X}>", 0.0) for b in range(256)]
    vocab += [(p, -1.0 - 0.1 * len(vocab) / 100) for p in PIECES]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                 bos_token="<bos>", unk_token="<unk>")  # fmt: skip
    hf.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    return hf


TEXTS = ["shared memory is a tile of threads", "共享内存"]
ODD = ["sharedX memory 😀 warp", "共享 共 内", "tiles of blocks", "shhh"]


def test_id_map_round_trips_every_text() -> None:
    tok = make_tokenizer()
    vmap = build_vocab_map(tok, TEXTS)
    assert len(vmap) < len(tok) and len(vmap.byte_ids) == 256
    assert tok.convert_tokens_to_ids("▁warp") not in vmap.keep  # never used: dropped
    for text in TEXTS + ODD:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        mapped = vmap.to_new(ids, tok)
        assert all(0 <= i < len(vmap) for i in mapped)
        assert tok.decode(vmap.to_old(mapped)) == tok.decode(ids) == text

    # a dropped token is spelled with the longest kept pieces, bytes only where none covers it
    def spelled(piece: str) -> list[str]:
        return list(
            tok.convert_ids_to_tokens(
                vmap.to_old(vmap.to_new([tok.convert_tokens_to_ids(piece)], tok))
            )
        )

    assert spelled("▁sh") == ["▁", "s", "h"]  # kept pieces
    assert spelled("▁warp")[:2] == ["▁", "<0x77>"]  # "w" is no kept piece: its byte
    pieces = tok.convert_ids_to_tokens(
        vmap.to_old(vmap.to_new([tok.convert_tokens_to_ids("共")], tok))
    )
    assert pieces == ["<0xE5>", "<0x85>", "<0xB1>"]  # 共 alone is not kept: its UTF-8 bytes


def test_map_survives_save_and_load(tmp_path: Path) -> None:
    vmap = build_vocab_map(make_tokenizer(), TEXTS)
    vmap.save(tmp_path)
    again = VocabMap.load(tmp_path)
    assert again is not None and again.keep == vmap.keep and again.byte_ids == vmap.byte_ids
    assert VocabMap.load(tmp_path / "elsewhere") is None


def tiny_llama(vocab: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         pad_token_id=0, eos_token_id=1, bos_token_id=2)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # sharp logits: no near-ties between the two models' greedy picks
        model.model.embed_tokens.weight.mul_(8)
    return model


def test_trimmed_model_scores_kept_tokens_as_the_full_model() -> None:
    tok = make_tokenizer()
    vmap = build_vocab_map(tok, TEXTS)
    full = tiny_llama(len(tok))
    small = tiny_llama(len(tok))
    trim_model(small, vmap)
    assert small.config.vocab_size == len(vmap) and small.lm_head.weight.shape[0] == len(vmap)
    assert small.config.eos_token_id == vmap.new_id(1)
    ids = tok(TEXTS[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = full(torch.tensor([ids])).logits[0][:, vmap.keep]
        got = small(torch.tensor([vmap.to_new(ids, tok)])).logits[0]
    torch.testing.assert_close(got, expected)


@pytest.fixture
def trimmed_folders(tmp_path: Path) -> tuple[Path, Path, VocabMap]:
    tok = make_tokenizer()
    vmap = build_vocab_map(tok, TEXTS)
    full, small = tiny_llama(len(tok)), tiny_llama(len(tok))
    trim_model(small, vmap)
    folders = tmp_path / "full", tmp_path / "trimmed"
    for folder, model in zip(folders, (full, small), strict=True):
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    vmap.save(folders[1])
    return folders[0], folders[1], vmap


def test_transformers_backend_generates_through_the_map(trimmed_folders: Any) -> None:
    from transformers import LogitsProcessorList

    full_dir, small_dir, vmap = trimmed_folders
    small = TransformersGenerator(GeneratorConfig(backend="transformers", model=str(small_dir)))
    assert small.vocab is not None
    full = TransformersGenerator(GeneratorConfig(backend="transformers", model=str(full_dir)))
    prompts = [[{"role": "user", "content": t}] for t in ("shared memory", "共享内存 is a tile")]
    sampling = SamplingConfig(max_new_tokens=6, min_new_tokens=6)
    got = [g.text for g in small.generate(prompts, sampling)]  # a padded batch of two

    # the reference: the full model, allowed only the kept tokens, one prompt at a time
    keep = torch.tensor(vmap.keep)

    def kept_only(input_ids: Any, scores: Any) -> Any:
        masked = torch.full_like(scores, float("-inf"))
        masked[:, keep] = scores[:, keep]
        return masked

    expected = []
    for prompt in prompts:
        ids = torch.tensor([full.prompt_ids(prompt)])
        out = full.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=6, min_new_tokens=6, pad_token_id=0,
                                  logits_processor=LogitsProcessorList([kept_only]))  # fmt: skip
        expected.append(full.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    assert got == [e.strip() for e in expected]
    assert "".join(small.stream(prompts[0], sampling)).strip() == got[0]
    assert small.score(prompts[:1], ["memory"])[0] < 0  # a log-probability, through the map


def test_other_backends_refuse_a_trimmed_model(trimmed_folders: Any) -> None:
    from pmpprag.generation import load_generator

    _, small_dir, _ = trimmed_folders
    with pytest.raises(ValueError, match="trimmed vocabulary"):
        load_generator(GeneratorConfig(backend="ctranslate2", model=str(small_dir)))


def test_trim_texts_hold_every_word_the_served_prompt_adds() -> None:
    """The served prompt's own words (the user turn's frame, passage headers, instructions,
    calculator hint, MCQ options) are among the texts a trimmed vocabulary keeps: a frame token
    left out is spelled in pieces, and the tuned model then reads a prompt it was not tuned on.
    Words, not tokens (the real tokenizer is not installed here): every Latin or CJK run of the
    prompt, less the passages' and the question's own text, occurs in the trim texts."""
    import re

    from pmpprag.rag.mcq import _messages
    from pmpprag.rag.pipeline import Assistant, RagConfig
    from pmpprag.rag.prompts import trim_texts
    from pmpprag.schema import Chunk, Hit

    questions = ("什么是共享内存？", "What is a warp?", "一个 block 有 256 个线程，共多少个 warp？")
    known = "\n".join(trim_texts(questions))
    assert "。[1]" in known  # one token: how the tuned model cites after a Chinese sentence
    own = ["PASSAGEONE", "PASSAGETWO", "KERNELTITLE", "卷积标题"]

    def hit(rank: int, lang: str, text: str, title: str, page: str | None) -> Hit:
        chunk = Chunk(chunk_id=f"c07.2-{rank}", text=text, chapter=7, chapter_title="t",
                      section="7.2", section_title=title, kind="text", n_tokens=5, source="x",
                      page_label=page, lang=lang)  # fmt: skip
        return Hit(chunk=chunk, score=1.0, rank=rank)

    hits = [hit(1, "zh", own[0], own[3], None), hit(2, "en", own[1], own[2], "88")]
    assistant = Assistant(RagConfig(rag=False), None)
    for question in questions:
        messages, given = assistant.prompt(question, hits)
        assert len(given) == 2
        messages += _messages("", "[1] (x)\nPASSAGEONE", question, ["PASSAGEONE", "PASSAGETWO"])
        for message in messages:
            text = message["content"].replace(question, " ")
            for word in own:
                text = text.replace(word, " ")
            for word in re.findall(r"[A-Za-z]+|[\u4e00-\u9fff]+", text):
                assert word in known, f"{word!r} of the served prompt is not in the trim texts"


def test_trim_reads_json_lines_as_strings(tmp_path: Path) -> None:
    from pmpprag.cli import trim_file_texts
    from pmpprag.errors import PmppragError

    good = tmp_path / "qa.jsonl"
    good.write_text('{"q": "共享内存\\n• tile", "tags": ["warp"], "n": 3}\n\n', encoding="utf-8")
    assert trim_file_texts(good) == ["共享内存\n• tile", "warp"]  # a newline, not "\\n"
    notes = tmp_path / "notes.md"
    notes.write_text("# 共享内存\n", encoding="utf-8")
    assert trim_file_texts(notes) == ["# 共享内存\n"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "a"}\n{"q": \n', encoding="utf-8")
    with pytest.raises(PmppragError, match=r"bad\.jsonl:2: not a valid JsonLine record"):
        trim_file_texts(bad)


def test_a_trimmed_vocabulary_without_the_served_frame_is_reported(caplog: Any) -> None:
    import logging
    from types import SimpleNamespace

    from pmpprag.rag.pipeline import _check_trimmed
    from pmpprag.rag.prompts import trim_texts

    tok = make_tokenizer()
    stale = build_vocab_map(tok, TEXTS)  # built before the frame was among the trim texts
    assert "▁block" in stale.missing(tok, ["shared block"])  # "a block" is in the frame's samples
    assert stale.missing(tok, TEXTS) == []
    fresh = build_vocab_map(tok, TEXTS + trim_texts())
    for vmap, warned in ((stale, True), (fresh, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            _check_trimmed(SimpleNamespace(vocab=vmap, tokenizer=tok), "gemma-trimmed")  # type: ignore[arg-type]
        assert ("rebuild it with `pmpprag models trim`" in caplog.text) is warned
