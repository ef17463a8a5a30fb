"""Stage configuration: dataclass defaults <- YAML file <- command-line flags.

Every stage has a ``@dataclass <Stage>Config``. A YAML file (``--config FILE``) overrides the
defaults, and ``--dotted.key value`` flags override the file, e.g.::

    pmpprag ingest --config configs/ingest/corpus.yaml --chunking.max_tokens 200

Fields are documented once, with :func:`option` (``metadata={"help": ...}``), so the CLI can
list them. Unknown keys and wrongly typed values are errors that name the key and its source.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pmpprag.errors import PmppragError

T = TypeVar("T")

__all__ = ["ConfigError", "describe", "load_config", "option", "parse_overrides", "to_dict"]


class ConfigError(PmppragError, ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with a one-line help text (shown by ``pmpprag CMD --help``)."""
    if isinstance(default, (list, dict, set)):
        value = default
        kwargs["default_factory"] = lambda: type(value)(value)
        return dataclasses.field(metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def parse_overrides(args: list[str], positionals: list[str] | None = None) -> dict[str, Any]:
    """Turn ``["--a.b", "3", "--flag", "--no-rag", "--x=y"]`` into ``{"a.b": 3, "flag": True, ...}``.

    Values are parsed as YAML scalars (``3`` -> int, ``true`` -> bool, ``2-6`` -> str). A flag with
    no value is ``True``; ``--no-NAME`` with no value is ``NAME: False``. A bare argument where an
    option is expected goes to ``positionals`` when given, else it is an error.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if positionals is not None and not arg.startswith("--"):
            positionals.append(arg)
            i += 1
            continue
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}: options look like --name value")
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            value: Any = _parse_scalar(raw)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = _parse_scalar(args[i + 1])
            i += 2
        elif key.startswith("no-"):
            key, value = key[3:], False
            i += 1
        else:
            value = True
            i += 1
        out[key.replace("-", "_")] = value
    return out


def _parse_scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # "2-6" or "1-7,13" must stay strings; yaml would read "13" as int, which is fine.
    return raw if value is None and raw != "" else value


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
        _merge(values, loaded)
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--{dotted}: {part} is not a group of options")
        node[leaf] = value
    return _build(cls, values, source=str(path) if path else "command line", prefix="")


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _build(cls: type[T], values: dict[str, Any], source: str, prefix: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown option {prefix}{key!s} (from {source}); known options: {known}"
            )
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__} (from {source}): {err}") from err


def _coerce(hint: Any, value: Any, name: str, source: str) -> Any:
    """Check ``value`` against the field type; convert the few safe cases (int -> float, str -> Path)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"option {name} (from {source}) is a group: give a mapping")
        return _build(hint, value, source, prefix=f"{name}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name, source)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"option {name} (from {source}) must be one of {list(args)}, got {value!r}"
            )
        return value
    if origin in (list, tuple):
        if isinstance(value, str) and args and args[0] in (str, Path):  # "--train a.json,b.json"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"option {name} (from {source}) must be a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(item, v, name, source) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"option {name} (from {source}) must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"option {name} (from {source}) must be a path, got {value!r}")
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "5e-5" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"option {name} (from {source}) must be {hint.__name__}, got {value!r}")
    return value


# A setting whose name holds one of these words is a secret: never written to disk or logged.
SECRET_WORDS = ("token", "secret", "password", "apikey")
REDACTED = "<redacted>"


def is_secret(name: str) -> bool:
    """``api_key``, ``judge_api_key``, ``hf_token``, ``client_secret``; not ``max_tokens`` or
    ``tokenizer``."""
    name = name.lower()
    return name.endswith(("api_key", "apikey")) or bool(set(name.split("_")) & set(SECRET_WORDS))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML-safe data (paths as strings), for ``config.yaml`` beside results.
    Secrets (``api_key``, ``judge_api_key``, ...) that are set come out as ``<redacted>``."""

    def plain(v: Any, name: str = "") -> Any:
        if v is not None and v != "" and is_secret(name):
            return REDACTED
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: plain(x, str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return {k: plain(v, k) for k, v in dataclasses.asdict(cfg).items()}


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str]]:
    """``(--flag, default, help)`` rows for every field of a config dataclass, nested ones flattened.

    ``defaults`` is the instance a nested group starts from (its field's ``default_factory``), so
    ``--sampling.max_new_tokens`` shows the stage's own default, not the group class's.
    """
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if defaults is not None:
            value = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = dataclasses.MISSING
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            nested = None if value is dataclasses.MISSING else value
            rows.extend(describe(hint, prefix=f"{prefix}{f.name}.", defaults=nested))
            continue
        default = "(required)" if value is dataclasses.MISSING else repr(value)
        rows.append((f"--{prefix}{f.name}", default, f.metadata.get("help", "")))
    return rows
