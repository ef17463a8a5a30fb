"""A trimmed vocabulary for CPU decoding: keep only the tokens our texts use.

gemma-3-270m has a 262,144-token vocabulary: its embedding and LM head are 168M of its 268M
parameters, and on the CPU the head's logits are most of every decoding step. The notes, the QA
data and the prompts use about 12k of those tokens. A trimmed model keeps the embedding (and
tied head) rows of those tokens plus every special token and the 256 byte tokens, so it computes
~12k logits a step instead of 262k (2.4x faster greedy decoding measured on this 2-core CPU:
``benchmarks/vocab_trim.py``).

The tokenizer stays the original one; :class:`VocabMap` maps ids at the model's boundary: a
prompt's ids go to the trimmed ids, and a token the trimmed model lacks is spelled with byte
tokens (as byte fallback would spell it), so any text can still be read; generated ids go back
to the original ids before decoding. A greedy step picks the same token as the full model
whenever the full model's best token is one we kept. The map is ``vocab_map.json`` in the
trimmed model's folder; the transformers back-end applies it when it finds it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmpprag.schema import atomic_folder

__all__ = ["MAP_FILE", "VocabMap", "build_vocab_map", "trim_model", "write_trimmed"]

logger = logging.getLogger(__name__)

MAP_FILE = "vocab_map.json"
_TEMPLATE_PROBES = [
    [{"role": r, "content": "x"} for r in roles]
    for roles in (("system", "user", "assistant"), ("user", "assistant"))
]
_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass
class VocabMap:
    """``keep[new_id] = original_id`` (sorted), and the original id of each byte token."""

    keep: list[int]
    byte_ids: dict[int, int]  # byte value -> original id of its <0xNN> token
    _new: dict[int, int] = field(init=False, repr=False)
    _pieces: dict[str, int] = field(init=False, repr=False)  # kept piece -> original id

    def __post_init__(self) -> None:
        self._new = {old: new for new, old in enumerate(self.keep)}
        self._pieces = {}
        missing = [b for b, old in self.byte_ids.items() if old not in self._new]
        if missing:
            raise ValueError(f"vocabulary map: byte tokens {missing[:5]} are not kept")

    def __len__(self) -> int:
        return len(self.keep)

    def new_id(self, original: int) -> int | None:
        return self._new.get(original)

    def to_new(self, ids: Iterable[int], tokenizer: Any) -> list[int]:
        """Original ids -> trimmed ids. A token not kept is spelled with the longest kept
        pieces that make it up ("▁triggers" -> "▁trigger" + "s"), and a character no kept
        piece covers with its byte tokens, as byte fallback spells it."""
        out: list[int] = []
        for old in ids:
            new = self._new.get(old)
            out += [new] if new is not None else self._spell(tokenizer, old)
        return out

    def _spell(self, tokenizer: Any, old: int) -> list[int]:
        if not self._pieces:
            pieces = tokenizer.convert_ids_to_tokens(self.keep)
            self._pieces = {p: i for p, i in zip(pieces, self.keep, strict=True) if p}
        piece = tokenizer.convert_ids_to_tokens(int(old))  # never a byte token: all are kept
        out: list[int] = []
        start = 0
        while start < len(piece):
            for end in range(min(len(piece), start + 32), start, -1):  # longest match first
                found = self._pieces.get(piece[start:end])
                if found is not None:
                    out.append(self._new[found])
                    start = end
                    break
            else:  # no kept piece starts here: the character's bytes
                char = piece[start].replace("\u2581", " ")
                out += [self._new[self.byte_ids[b]] for b in char.encode("utf-8")]
                start += 1
        return out

    def missing(self, tokenizer: Any, texts: Iterable[str]) -> list[str]:
        """The tokens of ``texts`` this map dropped (pieces, each once, in order of first use)."""
        out: dict[str, None] = {}
        for text in texts:
            for old in tokenizer(text, add_special_tokens=False)["input_ids"]:
                if old not in self._new:
                    out[str(tokenizer.convert_ids_to_tokens(int(old)))] = None
        return list(out)

    def to_old(self, ids: Iterable[int]) -> list[int]:
        return [self.keep[i] for i in ids]

    def save(self, folder: Path) -> None:
        data = {"keep": self.keep, "byte_ids": {str(b): i for b, i in self.byte_ids.items()}}
        (folder / MAP_FILE).write_text(json.dumps(data))

    @classmethod
    def load(cls, folder: str | Path) -> VocabMap | None:
        """The map in a model folder, or None for an untrimmed model (or a hub id)."""
        path = Path(folder) / MAP_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(list(data["keep"]), {int(b): int(i) for b, i in data["byte_ids"].items()})


def build_vocab_map(tokenizer: Any, texts: Iterable[str]) -> VocabMap:
    """Every token the texts use, every special and added token, and the 256 byte tokens."""
    vocab = tokenizer.get_vocab()
    byte_ids = {
        int(m.group(1), 16): i for piece, i in vocab.items() if (m := _BYTE.fullmatch(piece))
    }
    if len(byte_ids) != 256:
        raise ValueError(
            f"the tokenizer has {len(byte_ids)} of the 256 byte tokens <0x00>..<0xFF>: without "
            "byte fallback a trimmed vocabulary could not spell every text"
        )
    used: set[int] = set(byte_ids.values()) | set(tokenizer.all_special_ids)
    used |= set(tokenizer.get_added_vocab().values())
    if tokenizer.chat_template:  # the template's own words ("user", "model", ...)
        for turns in _TEMPLATE_PROBES:
            try:
                used.update(tokenizer.apply_chat_template(turns, tokenize=True, return_dict=False,
                                                          add_generation_prompt=True))  # fmt: skip
            except Exception:  # a template that refuses a role (Gemma: no system role)
                continue
    for text in texts:
        used.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return VocabMap(sorted(used), byte_ids)


def trim_model(model: Any, vmap: VocabMap) -> None:
    """Keep the embedding (and LM-head) rows of ``vmap.keep``, in place; special token ids in
    the model's and generation configs are mapped to the trimmed ids."""
    import torch

    index = torch.tensor(vmap.keep)
    embed = model.get_input_embeddings()
    embed.weight = torch.nn.Parameter(embed.weight.data[index].clone())
    embed.num_embeddings = len(vmap)
    head = model.get_output_embeddings()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if head is not None and not tied:
        head.weight = torch.nn.Parameter(head.weight.data[index].clone())
    if head is not None:
        head.out_features = len(vmap)
    model.config.vocab_size = len(vmap)
    if tied:
        model.tie_weights()
    for config in (model.config, model.generation_config):
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(config, name, None)
            if value is None:
                continue
            ids = value if isinstance(value, list) else [value]
            mapped = [vmap.new_id(i) for i in ids]
            if any(m is None for m in mapped):
                raise ValueError(f"{name} {value} is not in the trimmed vocabulary")
            setattr(config, name, mapped if isinstance(value, list) else mapped[0])


def write_trimmed(source: str, out: Path, texts: Iterable[str]) -> VocabMap:
    """Load ``source`` (registry name or folder), trim it to ``texts``, write it to ``out``
    (model, the original tokenizer, vocab_map.json), atomically."""
    from pmpprag import models

    model, tokenizer = models.load_causal_lm(source)
    vmap = build_vocab_map(tokenizer, texts)
    before = model.config.vocab_size
    trim_model(model, vmap)
    with atomic_folder(out, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        vmap.save(tmp)
    logger.info("trimmed %s: %d of %d tokens kept -> %s", source, len(vmap), before, out)
    return vmap
