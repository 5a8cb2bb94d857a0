"""Reading YAML input files strictly: what a user wrote is what the schema sees.

PyYAML's ``safe_load`` follows YAML 1.1, which surprises users of a config format: ``1e9`` is a
string (floats need a dot and a signed exponent), ``010`` is 8 (octal), ``1:30`` is 90
(base 60), ``yes``/``on`` are booleans, and a key written twice silently keeps the last value.
``load_yaml_text`` resolves plain scalars by the YAML 1.2 core schema instead (``null``,
``true``/``false``, decimal/``0o``/``0x`` integers, ``1e9``-style floats, ``.inf``, ``.nan``;
everything else is a string), refuses duplicate keys and documents whose aliases expand into a
huge tree, and reports every problem as a ``YamlError`` with a line and column.

``read_text_file`` refuses what cannot be a hand-written YAML file (binary, not UTF-8, larger
than ``MAX_FILE_BYTES``) before the parser sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

#: Scenario and config files are hand-written: anything larger is refused unread.
MAX_FILE_BYTES = 1 << 20
#: Nodes a document may expand to once aliases are followed (the "billion laughs" guard).
MAX_NODES = 200_000
#: Nesting levels a document may have (a scenario has fewer than ten).
MAX_DEPTH = 64


class YamlError(ValueError):
    """``where`` is ``"line L, column C"`` (or ``"(file)"``), ``message`` says what is wrong."""

    def __init__(self, where: str, message: str):
        self.where, self.message = where, message
        super().__init__(f"{where}: {message}")


def _at(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(yaml)"


class _CoreResolver(BaseResolver):
    """Plain scalars resolved by the YAML 1.2 core schema."""


_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"]),
):
    _CoreResolver.add_implicit_resolver(_tag, _regexp, _first)


class _StrictConstructor(SafeConstructor):
    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)  # "010" is ten, as in YAML 1.2 (1.1 read it as octal 8)
        except ValueError:
            raise ConstructorError(None, None, f"'{text}' is not an integer", node.start_mark) from None

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node)
        low = text.lower()
        try:
            if low.endswith(".inf"):
                return float(low.replace(".inf", "inf"))
            return float("nan") if low == ".nan" else float(low)
        except ValueError:
            raise ConstructorError(None, None, f"'{text}' is not a number", node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` then an explicit key is an override, not a duplicate
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    raise ConstructorError(None, None, "a mapping key must be a plain value",
                                           key_node.start_mark) from None
                if first is not key_node.start_mark:
                    raise ConstructorError(None, None, f"duplicate key '{key}' (first at line {first.line + 1})",
                                           key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_StrictConstructor.add_constructor("tag:yaml.org,2002:int", _StrictConstructor.construct_yaml_int)
_StrictConstructor.add_constructor("tag:yaml.org,2002:float", _StrictConstructor.construct_yaml_float)


class _ShallowComposer(Composer):
    """Refuses nesting deeper than ``MAX_DEPTH`` as soon as it is reached (PyYAML's cost grows
    faster than linearly with depth, and Python's recursion limit ends it with a RecursionError)."""

    def compose_node(self, parent, index):
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class StrictLoader(Reader, Scanner, Parser, _ShallowComposer, _StrictConstructor, _CoreResolver):
    def __init__(self, stream):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _ShallowComposer.__init__(self)
        _StrictConstructor.__init__(self)
        _CoreResolver.__init__(self)


def _expanded_size(obj, memo: dict, limit: int) -> int:
    """Nodes of ``obj`` as a tree (aliases counted at every use), stopping early past ``limit``."""
    key = id(obj)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a cycle (a recursive alias) counts as too large
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    size = 1
    for child in children:
        size += _expanded_size(child, memo, limit)
        if size > limit:
            break
    memo[key] = size
    return size


def load_yaml_text(text: str):
    """Parse one YAML document with ``StrictLoader``; raise ``YamlError`` naming the line."""
    loader = None
    try:
        loader = StrictLoader(text)
        data = loader.get_single_data()
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlError(f"line {line}", f"not YAML text: character U+{exc.character:04X} is not allowed") from None
    except (ConstructorError, ComposerError) as exc:
        raise YamlError(_at(exc.problem_mark), exc.problem or "cannot build this value") from None
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or (str(exc).splitlines() or ["invalid YAML"])[0]
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlError(_at(exc.problem_mark), f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlError("(yaml)", f"YAML error: {(str(exc).splitlines() or ['invalid YAML'])[0]}") from None
    except RecursionError:
        raise YamlError("(yaml)", "nested too deeply to be a scenario") from None
    finally:
        if loader is not None:
            loader.dispose()
    if _expanded_size(data, {}, MAX_NODES) > MAX_NODES:
        raise YamlError("(yaml)", f"expands to more than {MAX_NODES:,} values once aliases are followed")
    return data


def read_text_file(path: str | Path) -> str:
    """The text of a hand-written input file; ``YamlError(("(file)", why))`` if it cannot be one."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise YamlError("(file)", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError("(file)", f"larger than {MAX_FILE_BYTES >> 20} MiB: not a scenario file")
    if b"\0" in raw:
        raise YamlError("(file)", "a binary file (it contains NUL bytes), not YAML text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlError(f"line {line}", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                                        f"(save the file as UTF-8)") from None
