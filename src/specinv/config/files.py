"""Reading small configuration files (YAML or JSON) safely and strictly.

Experiment files and workflow configurations are written by people and sometimes come from
elsewhere.  :func:`load_mapping_file` reads one so that every problem is a one-line
:class:`~specinv.config.ConfigError` naming the file, before any work starts:

* the file must be UTF-8 text (a byte-order mark is allowed) of at most
  :data:`MAX_FILE_BYTES`; binary, Latin-1 and UTF-16 files are refused with what was found;
* a key given twice in one mapping is refused (YAML and JSON parsers keep the last value
  silently);
* nesting deeper than :data:`MAX_DEPTH` is refused before the parser recurses;
* aliases (``*name``) whose expansion would exceed :data:`MAX_NODES` values in all are
  refused (a "billion laughs" document is a few hundred bytes);
* numbers follow YAML 1.2: ``1.7e11`` and ``3e3`` are numbers (YAML 1.1, which PyYAML
  implements, reads an exponent without a dot as a string).

:func:`check_tree` applies the same depth and size bounds to data already in memory (a
configuration that Snakemake read), and :func:`as_number` turns the number strings that a
YAML 1.1 reader leaves (``"1.7e11"``) into numbers.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

#: Largest file read (configuration and experiment files are a few kB).
MAX_FILE_BYTES = 1 << 20
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 32
#: Most values (scalars, mappings, lists) a document may hold once its aliases are expanded.
MAX_NODES = 100_000

#: A number in YAML 1.2's core schema (decimal, optional fraction and signed exponent).
_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INTEGER = re.compile(r"^[-+]?[0-9]+$")


def as_number(value: Any) -> Any:
    """``value`` as an int or float when it is a string that spells a decimal number
    (``"3000"``, ``"1.7e11"``); anything else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.match(text):
            return int(text)
        if _NUMBER.match(text):
            return float(text)
    return value


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 numbers, no duplicate keys, bounded nesting and
    bounded alias expansion."""

    def __init__(self, stream, where: str):
        super().__init__(stream)
        self.where = where
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"{self.where}: nested deeper than {MAX_DEPTH} levels (line {mark.line + 1}); "
                "expected a configuration of a few levels"
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys may be overridden by the mapping's own
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise ConfigError(
                            f"{self.where}: key {key!r} given twice (lines {seen[key]} and "
                            f"{line}); expected each key once"
                        )
                    seen[key] = line
                except TypeError:  # an unhashable key: the base class reports it
                    continue
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def _expanded_size(node, where: str) -> int:
    """Number of values of a composed YAML document with every alias expanded (memoised on
    the shared nodes, so that a bomb is measured without being expanded)."""
    sizes: dict[int, int] = {}

    def size(n) -> int:
        key = id(n)
        if key not in sizes:
            if isinstance(n, yaml.MappingNode):
                total = 1 + sum(size(k) + size(v) for k, v in n.value)
            elif isinstance(n, yaml.SequenceNode):
                total = 1 + sum(size(v) for v in n.value)
            else:
                total = 1
            sizes[key] = total
        return sizes[key]

    total = size(node)
    if total > MAX_NODES:
        raise ConfigError(
            f"{where}: its aliases (*name) expand to {total:.3g} values; at most {MAX_NODES} "
            "are accepted (write the values out, or use fewer aliases)"
        )
    return total


def _decode(raw: bytes, where: str) -> str:
    utf16 = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(raw) > 1
        and b"\x00" in raw
        and not (raw[0::2].strip(b"\x00") and raw[1::2].strip(b"\x00"))
    )
    if utf16:
        raise ConfigError(f"{where}: UTF-16 text; expected UTF-8 (save the file as UTF-8)")
    if b"\x00" in raw:
        raise ConfigError(f"{where}: a binary file (NUL bytes); expected YAML or JSON text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}; "
            "Latin-1 or another encoding?); save the file as UTF-8"
        ) from None
    bad = next((c for c in text if ord(c) < 32 and c not in "\t\n\r"), None)
    if bad is not None:
        raise ConfigError(
            f"{where}: control character {bad!r} in the text; expected YAML or JSON text"
        )
    return text


def parse_mapping_text(text: str, where: str, *, json_syntax: bool = False) -> dict:
    """Parse YAML (or JSON with ``json_syntax``) text whose top level is a mapping, with the
    checks of this module.  ``where`` names the source in errors."""
    if json_syntax:
        data = _parse_json(text, where)
    else:
        loader = _StrictLoader(text, where)
        try:
            node = loader.get_single_node()
            if node is None:
                raise ConfigError(f"{where}: empty; expected a mapping of keys to values")
            _expanded_size(node, where)
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: malformed YAML: {_one_line(exc)}") from None
        finally:
            loader.dispose()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {data!r:.80}")
    return data


def _parse_json(text: str, where: str) -> Any:
    def unique(pairs):
        out = {}
        for key, value in pairs:
            if key in out:
                raise ConfigError(f"{where}: key {key!r} given twice; expected each key once")
            out[key] = value
        return out

    depth = max_depth = 0
    in_string = escaped = False
    for c in text:  # bound the nesting before json recurses
        if in_string:
            escaped = not escaped and c == "\\"
            in_string = escaped or c != '"'
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            max_depth = max(max_depth, depth)
        elif c in "]}":
            depth -= 1
    if max_depth > MAX_DEPTH:
        raise ConfigError(
            f"{where}: nested deeper than {MAX_DEPTH} levels; expected a configuration of a "
            "few levels"
        )
    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: malformed JSON: {exc}") from None


def _one_line(exc: yaml.YAMLError) -> str:
    """A YAML error in one line, positions as line and column (the parser's own text names
    an anonymous stream)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        where = f" ({context})" if context else ""
        return f"{problem}{where} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def load_mapping_file(path: str | Path, what: str = "file") -> dict:
    """Read a YAML (or, for ``.json``, JSON) file whose top level is a mapping.

    Raises:
        ConfigError: naming the file and what was wrong (unreadable, too large, not UTF-8
            text, malformed, a duplicate key, too deep, an alias bomb, not a mapping).
    """
    path = Path(path)
    where = str(path)
    try:
        if path.is_dir():
            raise ConfigError(f"{where}: a folder; expected a {what}")
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the {what} ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{where}: larger than {MAX_FILE_BYTES // 1024} KiB; expected a small {what}"
        )
    text = _decode(raw, where)
    return parse_mapping_text(text, where, json_syntax=path.suffix.lower() == ".json")


def check_tree(value: Any, where: str = "config") -> None:
    """Refuse data nested deeper than :data:`MAX_DEPTH` or holding more than
    :data:`MAX_NODES` values (counting every reference to a shared value, as a validator
    walking it would), without expanding shared values more than that bound."""
    count = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(
                f"{where}: holds more than {MAX_NODES} values (a YAML alias bomb?); "
                "expected a configuration of a few hundred"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{where}: nested deeper than {MAX_DEPTH} levels; expected a configuration "
                "of a few levels"
            )
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
