"""YAML text in: the data, and the line of every key, in one pass over libyaml's events.

The loader (mockllm/loader.py) validates what this builds. Reading is where a hostile file
would hurt, so it is bounded here: aliases may not expand past a budget ("billion laughs"),
nesting past a depth, and a syntax error says line, column and shows the line.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode

from .errors import Problem, ScenarioError

__all__ = ["ALIAS_BUDGET", "MAX_DEPTH", "LineTree", "PathKey", "TakeRule", "collector_paused", "dotted", "parse_yaml"]

PathKey = tuple[str | int, ...]

# libyaml's parser is ~20x faster than PyYAML's pure one; the pure one is only a fallback
# for a PyYAML built without libyaml (both give the same events and marks).
_YamlParser: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Aliases share data, but validation walks every use: anchors that hold aliases of
# anchors multiply ("billion laughs": 342 bytes expand to 387 million values). Aliases
# may add at most as many values as the file writes out itself, or this many for a
# small file: a generous bound for shared replies, reached by a bomb in milliseconds.
ALIAS_BUDGET = 1_000_000
# Nothing in a scenario nests this deep; deeper nesting only serves to exhaust the
# recursion of whatever walks the data next (validation, JSON encoding of arguments).
MAX_DEPTH = 200


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file loads.

    Loading makes hundreds of thousands of containers, none in a cycle, and each burst
    of them starts a collection that walks every object alive: loading slows down with the
    square of the file's size (a 5 MB file: 3.9 s of validation instead of 2.3 s).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def dotted(at: Iterable[str | int]) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- YAML: one pass over libyaml's events, keeping lines -------------------------------

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_MAP_TAGS = (None, "!", "tag:yaml.org,2002:map")
_SEQ_TAGS = (None, "!", "tag:yaml.org,2002:seq")
# The scalar tags safe_load knows, by tag: the same constructors, so the data is the same.
_SCALAR_TAGS = ("null", "bool", "int", "float", "binary", "timestamp")
_CONSTRUCT: dict[str, Any] = {
    f"tag:yaml.org,2002:{name}": SafeConstructor.yaml_constructors[f"tag:yaml.org,2002:{name}"] for name in _SCALAR_TAGS
}
_WILDCARD: list[tuple[str, Any]] = yaml.SafeLoader.yaml_implicit_resolvers.get(None, [])
# The implicit resolvers of a plain scalar by its first character, as safe_load resolves.
_RESOLVERS: dict[str, tuple[tuple[str, Any], ...]] = {
    first: tuple(list(found) + _WILDCARD)
    for first, found in yaml.SafeLoader.yaml_implicit_resolvers.items()
    if first is not None
}
_NO_RESOLVER: tuple[tuple[str, Any], ...] = tuple(_WILDCARD)

# A line entry: an int for a scalar; (line, children) for a mapping or a list, where
# children is a dict by key (as the YAML wrote it) or a list by position.
_Entry = int | tuple[int, "dict[str, _Entry] | list[_Entry]"]


class LineTree(Mapping[PathKey, int]):
    """The line of every key and list item of a YAML document, shaped like its data.

    As a Mapping, ("rules", 0, "reply") -> the line of that key. A tree, not a dict of
    paths: each key costs one entry (the path tuples of a dict would cost ~10x), and
    data shared through an alias shares its lines too.
    """

    __slots__ = ("_root",)

    def __init__(self, root: _Entry) -> None:
        self._root = root

    def _reach(self, at: PathKey) -> tuple[int, int]:
        """How many steps of `at` exist, and the line of the last one that does."""
        entry = self._root
        line = entry if isinstance(entry, int) else entry[0]
        for depth, part in enumerate(at):
            if isinstance(entry, int):
                return depth, line
            children = entry[1]
            if isinstance(children, dict):
                if not isinstance(part, str) or part not in children:
                    return depth, line
                entry = children[part]
            else:
                if not isinstance(part, int) or not 0 <= part < len(children):
                    return depth, line
                entry = children[part]
            line = entry if isinstance(entry, int) else entry[0]
        return len(at), line

    def nearest(self, at: PathKey) -> int:
        """The line of `at`, or of its nearest parent that exists."""
        return self._reach(at)[1]

    def __getitem__(self, at: PathKey) -> int:
        depth, line = self._reach(at)
        if depth != len(at):
            raise KeyError(at)
        return line

    def __iter__(self) -> Iterator[PathKey]:
        pending: list[tuple[PathKey, _Entry]] = [((), self._root)]
        while pending:
            at, entry = pending.pop()
            yield at
            if not isinstance(entry, int):
                children = entry[1]
                items = children.items() if isinstance(children, dict) else enumerate(children)
                pending.extend(((*at, key), child) for key, child in reversed(list(items)))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Refused(Exception):
    """A problem that stops the parse at once (a bomb, too deep, a second document)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Open:
    """A mapping or a list being built: its data, its lines, the key awaiting its value."""

    __slots__ = ("anchor", "children", "data", "is_map", "key", "key_line", "key_raw", "line", "merges", "size")

    def __init__(self, is_map: bool, line: int, anchor: str | None) -> None:
        self.is_map = is_map
        self.data: Any = {} if is_map else []
        self.children: Any = {} if is_map else []
        self.line = line
        self.anchor = anchor
        self.size = 1
        self.key: Any = _AWAITING
        self.key_raw = ""
        self.key_line = 0
        self.merges: list[tuple[Any, Any]] = []


_AWAITING = object()  # a mapping waits for a key
_SKIP = object()  # the key was refused: drop its value
_MERGE_KEY = object()  # `<<`: the value is merged into the mapping


def _path(stack: list[_Open]) -> PathKey:
    """Where the next value goes, as a data path."""
    out: list[str | int] = []
    for frame in stack:
        if not frame.is_map:
            out.append(len(frame.data))
        elif frame.key is not _AWAITING:
            out.append(frame.key_raw)
    return tuple(out)


# Handed each item of the top-level `rules` list as soon as it is parsed: (its index, the document so
# far as {"rules": [...]} and its lines, the top-level keys before `rules`). True: the item was used
# up, and the document keeps None in its place (and only its line).
TakeRule = Callable[[int, dict[str, Any], "LineTree", dict[str, Any]], bool]


def parse_yaml(text: str, source: str, take_rule: TakeRule | None = None) -> tuple[Any, LineTree]:
    """The data of a one-document YAML text (as yaml.safe_load gives it) and its lines.

    Raises ScenarioError with every duplicate key, unknown tag or bad alias found, or with
    the first syntax error (line, column and the line shown with a caret). With `take_rule`,
    the rules can be used as they come (see TakeRule), so that a big file's data never all
    lives at once.
    """
    with collector_paused():
        return _build(_YamlParser(text), text, source, take_rule)


def _build(parser: Any, text: str, source: str, take_rule: TakeRule | None = None) -> tuple[Any, LineTree]:
    problems: list[Problem] = []
    stack: list[_Open] = []
    anchors: dict[str, tuple[Any, Any, str, int]] = {}  # data, children, raw text (scalars), size
    root: tuple[Any, _Entry] = (None, 1)
    written = 0  # values written out in the file
    aliased = 0  # values aliases add, once expanded
    documents = 0
    constructor = SafeConstructor()

    def place(value: Any, children: Any, line: int, size: int, raw: str) -> None:
        nonlocal root
        entry: _Entry = line if children is None else (line, children)
        if not stack:
            root = (value, entry)
            return
        top = stack[-1]
        top.size += size
        if not top.is_map:
            top.data.append(value)
            top.children.append(entry)
            if take_rule is not None and len(stack) == 2 and stack[0].key == "rules" and stack[0].is_map:
                head = stack[0]
                index = len(top.data) - 1
                lines = LineTree((head.line, {"rules": (top.line, top.children)}))
                if take_rule(index, {"rules": top.data}, lines, head.data):
                    top.data[index] = None
                    top.children[index] = line
            return
        key = top.key
        if key is _AWAITING:
            if children is not None:
                problems.append(
                    Problem(source, line, dotted(_path(stack)), "a key must be plain text, not a mapping or a list")
                )
                top.key = _SKIP
            else:
                if value is raw:
                    # The same few keys repeat in every rule: one string each, not one per use.
                    value = raw = sys.intern(raw)
                top.key, top.key_raw, top.key_line = value, raw, line
            return
        top.key = _AWAITING
        if key is _SKIP:
            return
        if key is _MERGE_KEY:
            # One mapping (its lines: a dict) or a list of them (their lines: (line, dict) entries).
            merged = (
                [(v, c[1] if isinstance(c, tuple) else {}) for v, c in zip(value, children, strict=True)]
                if isinstance(value, list)
                else [(value, children)]
            )
            if not all(isinstance(v, dict) for v, _ in merged):
                problems.append(
                    Problem(source, line, dotted((*_path(stack), "<<")), "'<<' merges a mapping or a list of mappings")
                )
                return
            top.merges.extend(merged)
            return
        raw_key = top.key_raw
        if raw_key in top.children:
            problems.append(Problem(source, top.key_line, dotted((*_path(stack), raw_key)), "duplicate key"))
        top.data[key] = value
        top.children[raw_key] = top.key_line if children is None else (top.key_line, children)

    try:
        while parser.check_event():
            event = parser.get_event()
            kind = event.__class__
            if kind is ScalarEvent:
                written += 1
                raw = event.value
                tag = event.tag
                if tag is None:
                    tag = _STR
                    if event.implicit[0]:
                        for candidate, pattern in _RESOLVERS.get(raw[:1], _NO_RESOLVER):
                            if pattern.match(raw):
                                tag = candidate
                                break
                elif tag == "!":
                    tag = _STR
                line = event.start_mark.line + 1
                if tag == _STR:
                    value: Any = raw
                elif tag == _MERGE and stack and stack[-1].is_map and stack[-1].key is _AWAITING:
                    stack[-1].key = _MERGE_KEY
                    stack[-1].key_line = line
                    continue
                elif tag in _CONSTRUCT:
                    node = ScalarNode(tag, raw, event.start_mark, event.end_mark, event.style)
                    try:
                        value = _CONSTRUCT[tag](constructor, node)
                    except (ConstructorError, ValueError, TypeError) as exc:
                        why = exc.problem if isinstance(exc, ConstructorError) else exc
                        problems.append(
                            Problem(source, line, dotted(_path(stack)), f"{raw!r} is not a valid {tag}: {why}")
                        )
                        value = None
                elif tag == _MERGE:
                    value = raw  # `<<` anywhere but a key is only text
                else:
                    problems.append(Problem(source, line, dotted(_path(stack)), _unknown_tag(tag)))
                    value = None
                if event.anchor is not None:
                    anchors[event.anchor] = (value, None, raw, 1)
                place(value, None, line, 1, raw)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                written += 1
                is_map = kind is MappingStartEvent
                line = event.start_mark.line + 1
                if len(stack) >= MAX_DEPTH:
                    raise _Refused(
                        Problem(
                            source,
                            line,
                            dotted(_path(stack)),
                            f"nested deeper than {MAX_DEPTH} levels; no scenario needs that much: flatten it",
                        )
                    )
                if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                    problems.append(Problem(source, line, dotted(_path(stack)), _unknown_tag(event.tag)))
                stack.append(_Open(is_map, line, event.anchor))
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                done = stack.pop()
                data, children = done.data, done.children
                if done.merges:
                    # Keys written in the mapping win, then the merged mappings in the order listed.
                    merged_data: dict[Any, Any] = {}
                    merged_children: dict[str, _Entry] = {}
                    for more, lines_of in reversed(done.merges):
                        merged_data.update(more)
                        merged_children.update(lines_of)
                    merged_data.update(data)
                    merged_children.update(children)
                    data, children = merged_data, merged_children
                if done.anchor is not None:
                    anchors[done.anchor] = (data, children, "", done.size)
                place(data, children, done.line, done.size, "")
            elif kind is AliasEvent:
                line = event.start_mark.line + 1
                if event.anchor not in anchors:
                    problems.append(
                        Problem(
                            source,
                            line,
                            dotted(_path(stack)),
                            f"alias *{event.anchor} refers to no anchor &{event.anchor} before it (an anchor's own "
                            "value cannot refer to it); define the anchor first",
                        )
                    )
                    place(None, None, line, 1, "")
                    continue
                value, children, raw, size = anchors[event.anchor]
                aliased += size
                budget = max(ALIAS_BUDGET, written)
                if aliased > budget:
                    raise _Refused(
                        Problem(
                            source,
                            line,
                            dotted(_path(stack)),
                            f"refused: with alias *{event.anchor} the file would expand to more than {budget:,} "
                            f"values ({written:,} written out): aliases of anchors that hold aliases multiply, as in "
                            "a 'billion laughs'; use fewer nested aliases",
                        )
                    )
                place(value, children, line, size, raw)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _Refused(
                        Problem(
                            source,
                            event.start_mark.line + 1,
                            "",
                            "invalid YAML: a second document (after '---'); a scenario file holds one: "
                            "put each in its own file",
                        )
                    )
    except _Refused as refused:
        raise ScenarioError([*problems, refused.problem]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([*problems, _syntax_problem(exc, text, source)]) from None
    finally:
        parser.dispose()
    if problems:
        raise ScenarioError(problems)
    return root[0], LineTree(root[1])


def _unknown_tag(tag: str | None) -> str:
    return f"unsupported YAML tag {tag!r}; scenario files use plain values (or !!str, !!int, !!float, !!bool, !!null)"


def _syntax_problem(exc: yaml.YAMLError, text: str, source: str) -> Problem:
    """A YAML error as file:line, with its column and the line shown with a caret."""
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml gives a byte offset, PyYAML a character one: find the character instead.
        char = exc.character if isinstance(exc.character, int) else -1
        at = text.find(chr(char)) if char >= 0 else -1
        if at < 0:
            return Problem(source, None, "", f"invalid YAML: {exc}")
        line = text.count("\n", 0, at)
        column = at - (text.rfind("\n", 0, at) + 1)
        what = f"character U+{char:04X} is not allowed in YAML ({exc.reason}); remove it or write it as an escape"
        return Problem(source, line + 1, "", f"invalid YAML: {what}{_snippet(text, line, column)}", column + 1)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(source, None, "", f"invalid YAML: {exc}")
    lines = text.splitlines()
    mark, context = exc.problem_mark, exc.context_mark
    what = exc.problem or exc.context or str(exc)
    if mark is not None and mark.line < len(lines) and "found character that" in what:
        # libyaml does not say which character; PyYAML does, and it is the useful part (a tab).
        found = lines[mark.line][mark.column : mark.column + 1]
        what = what.replace("found character that", f"found character {found!r} that")
    if mark is None or mark.line >= len(lines):
        # At the end of the file: the construct left open (the context) is the place to show.
        if context is None or context.line >= len(lines):
            last = mark.line + 1 if mark is not None else None
            return Problem(source, last, "", f"invalid YAML: {what}, at the end of the file")
        message = (
            f"invalid YAML: {what}, at the end of the file; {exc.context} that starts at column {context.column + 1}"
        )
        return Problem(
            source, context.line + 1, "", message + _snippet(text, context.line, context.column), context.column + 1
        )
    message = f"invalid YAML: {what} (column {mark.column + 1}"
    if exc.context and context is not None and (context.line, context.column) != (mark.line, mark.column):
        message += f"; {exc.context} that starts at line {context.line + 1}, column {context.column + 1}"
    message += ")" + _snippet(text, mark.line, mark.column)
    return Problem(source, mark.line + 1, "", message, mark.column + 1)


def _snippet(text: str, line: int, column: int, width: int = 100) -> str:
    """Line `line` (0-based) of `text`, with a caret under `column`; long lines cut around it."""
    shown = text.splitlines()[line]
    start = max(0, column - width // 2) if len(shown) > width else 0
    piece = shown[start : start + width]
    lead = "..." if start else ""
    tail = "..." if start + width < len(shown) else ""
    # Tabs stay tabs under the caret, so it lines up however the terminal shows them.
    pad = "".join("\t" if c == "\t" else " " for c in piece[: column - start])
    gutter = f"{line + 1} | "
    return f"\n  {gutter}{lead}{piece}{tail}\n  {' ' * (len(gutter) - 2)}| {' ' * len(lead)}{pad}^"
