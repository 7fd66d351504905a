"""Scenario files in, router rules out; every problem reported as file:line: key: what.

YAML is read once, by mockllm/yamltext.py (libyaml's events built into data with the line of
every key, duplicate keys refused, aliases bounded). Validation is pydantic's; its errors are
rewritten to name the YAML path and line, with a "did you mean" for unknown keys.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .dialects import DIALECTS
from .errors import Problem, ScenarioError
from .quota import Limit
from .router import Conditions, Rule
from .scenario import (
    BODY_KEYS,
    Defaults,
    ErrorSpec,
    Fault,
    Framing,
    Generate,
    Keepalive,
    LimitSpec,
    Match,
    Reply,
    RuleSpec,
    ScenarioFile,
    ScenarioHead,
    TextMatch,
    Timing,
    ToolCall,
    Usage,
)
from .script import compile_reply
from .yamltext import LineTree, PathKey, collector_paused, dotted, parse_yaml

__all__ = ["LineTree", "Scenario", "bundled_scenarios", "load", "load_mapping", "load_text"]

_SUFFIXES = (".yaml", ".yml")

# Which model a mapping is, by the key it sits under (for "did you mean" on unknown keys).
_MODEL_UNDER: dict[str, type[BaseModel]] = {
    "": ScenarioFile,
    "defaults": Defaults,
    "rules": RuleSpec,
    "match": Match,
    "user": TextMatch,
    "system": TextMatch,
    "reply": Reply,
    "replies": Reply,
    "tool_calls": ToolCall,
    "usage": Usage,
    "generate": Generate,
    "timing": Timing,
    "error": ErrorSpec,
    "fault": Fault,
    "framing": Framing,
    "keepalive": Keepalive,
    "limits": LimitSpec,
}


class Scenario:
    """A loaded scenario file: its rules, ready for a Router (each carries the file's time scale)."""

    def __init__(self, source: str, rules: list[Rule], strict: bool = False, limits: list[Limit] | None = None) -> None:
        self.source = source
        self.rules = rules
        self.strict = strict  # the file's `strict: true`: refuse what the real API refuses (mockllm/strict.py)
        self.limits = limits or []  # the file's `limits`: quotas over every request the engine answers (quota.py)

    def __repr__(self) -> str:
        return f"Scenario({self.source!r}, {len(self.rules)} rules)"


def bundled_scenarios() -> Path:
    """The scenarios shipped with mockllm (in the wheel, or beside the source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "scenarios", here.parent / "scenarios"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the bundled scenarios are missing from this installation")


def load(path: str | Path) -> list[Scenario]:
    """Load a scenario file, or every *.yaml/*.yml under a folder (sorted by path).

    Symlinked folders are followed; a symlink loop is reported, not followed. Every file
    is read, and all their problems are raised together as one ScenarioError.
    """
    root = Path(path)
    if root.is_dir():
        problems: list[Problem] = []
        files = _scenario_files(root, problems)
        if not files and not problems:
            raise ScenarioError([Problem(str(root), None, "", "no *.yaml or *.yml scenario files in this folder")])
        scenarios: list[Scenario] = []
        for file in files:
            try:
                scenarios.append(_load_file(file))
            except ScenarioError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ScenarioError(problems)
        return scenarios
    if not root.exists():
        why = "a broken symlink (its target does not exist)" if root.is_symlink() else "no such file or folder"
        raise ScenarioError([Problem(str(root), None, "", why)])
    return [_load_file(root)]


def _scenario_files(root: Path, problems: list[Problem]) -> list[Path]:
    """The scenario files under `root`, through symlinked folders, each real file once.

    A folder reached again below itself (a symlink loop) is reported in `problems` and
    not entered: walking it would never end. The same real file reached by two paths is
    loaded once, by its first path in sort order, so its rules are not doubled.
    """
    found: list[Path] = []

    def walk(folder: Path, ancestors: dict[tuple[int, int], Path]) -> None:
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(str(folder), None, "", f"cannot read this folder: {exc.strerror or exc}"))
            return
        for entry in listed:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    info = path.stat()
                except OSError as exc:
                    problems.append(Problem(str(path), None, "", f"cannot read this folder: {exc.strerror or exc}"))
                    continue
                identity = (info.st_dev, info.st_ino)
                if identity in ancestors:
                    problems.append(
                        Problem(
                            str(path),
                            None,
                            "",
                            f"symlink loop: this leads back to {ancestors[identity]} (it points to "
                            f"{os.readlink(path) if path.is_symlink() else path.resolve()}); "
                            "remove the link or point it outside the scenario folder",
                        )
                    )
                    continue
                walk(path, {**ancestors, identity: path})
            elif path.suffix in _SUFFIXES:
                if entry.is_file():
                    found.append(path)
                elif entry.is_symlink() and not path.exists():
                    problems.append(
                        Problem(str(path), None, "", f"a broken symlink: its target {os.readlink(path)} does not exist")
                    )

    try:
        top = root.stat()
    except OSError as exc:
        problems.append(Problem(str(root), None, "", f"cannot read this folder: {exc.strerror or exc}"))
        return []
    walk(root, {(top.st_dev, top.st_ino): root})
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in sorted(found):
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def _load_file(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(str(path), None, "", f"cannot read: {exc}")]) from None
    return load_text(text, str(path))


def load_text(text: str, source: str = "<text>") -> Scenario:
    """Load a scenario from YAML text; `source` names it in errors."""
    with collector_paused():
        streamed = _RuleStream(source)
        parsed = [parse_yaml(text, source, streamed.take)]
        if streamed.taken:
            data = parsed[0][0]
            if set(data) == streamed.head_keys | {"rules"}:
                if streamed.problems:
                    raise ScenarioError(streamed.problems)
                head = streamed.head
                strict = head is not None and head.strict
                return Scenario(source, streamed.rules, strict, _limits(head, source, parsed[0][1]))
            # A key after `rules` (defaults, time_scale) changes the rules already compiled: load the
            # file again, the plain way (only such files pay for it).
            parsed.clear()
            del data, streamed  # the rules compiled so far: let go before the file is parsed again
            parsed.append(parse_yaml(text, source))
        return _load_parsed(parsed, source)


class _RuleStream:
    """Rules validated and compiled one by one as the parser finishes each, when the keys before
    `rules` are valid: each rule's YAML data is let go as soon as it is compiled, so the data of a
    big file (~12x its size) never lives beside all its rules at once. The problems are the same
    as the plain path's (load_mapping), rule by rule."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.head: ScenarioHead | None = None
        self.head_keys: set[str] = set()
        self.base: dict[str, Any] | None = None
        self.off = False  # the keys before `rules` do not validate: the plain path will say why
        self.taken = 0
        self.rules: list[Rule] = []
        self.problems: list[Problem] = []

    def take(self, index: int, data: dict[str, Any], lines: LineTree, head: dict[str, Any]) -> bool:
        if self.off:
            return False
        if self.head is None:
            if not isinstance(data["rules"], list) or index != 0:
                self.off = True
                return False
            try:
                self.head = ScenarioHead.model_validate(head)
            except ValidationError:
                self.off = True
                return False
            self.head_keys = set(head)
            self.base = _defaults_base(self.head.defaults)
        try:
            spec = RuleSpec.model_validate(data["rules"][index])
        except ValidationError as exc:
            self.problems.extend(_problems(exc, data, self.source, lines, ("rules", index)))
        else:
            rule = _rule(index, spec, self.head, self.base, self.source, lines, self.problems)
            if rule is not None:
                self.rules.append(rule)
        self.taken += 1
        return True


def _load_parsed(parsed: list[tuple[Any, LineTree]], source: str) -> Scenario:
    """load_mapping for data this module parsed: the data is let go once validated.

    It comes in a list that is emptied here, so that no caller's frame keeps it alive
    while the rules compile (the data of a 5 MB file is ~50 MB of dicts and strings).
    """
    data, lines = parsed.pop()
    spec = _validate(data, source, lines)
    del data
    return Scenario(source, _rules(spec, source, lines), spec.strict, _limits(spec, source, lines))


def load_mapping(data: Any, source: str = "<inline>", lines: Mapping[PathKey, int] | None = None) -> Scenario:
    """Load a scenario from parsed data (a dict as YAML would give); `lines` maps YAML paths to lines."""
    lines = lines if lines is not None else {}
    spec = _validate(data, source, lines)
    return Scenario(source, _rules(spec, source, lines), spec.strict, _limits(spec, source, lines))


def _validate(data: Any, source: str, lines: Mapping[PathKey, int]) -> ScenarioFile:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ScenarioError([Problem(source, 1, "", f"expected a mapping with 'version: 1' and 'rules', got {got}")])
    try:
        return ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc, data, source, lines)) from None


def _rules(spec: ScenarioFile, source: str, lines: Mapping[PathKey, int]) -> list[Rule]:
    rules: list[Rule] = []
    problems: list[Problem] = []
    base = _defaults_base(spec.defaults)
    for index, rule_spec in enumerate(spec.rules):
        rule = _rule(index, rule_spec, spec, base, source, lines, problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise ScenarioError(problems)
    return rules


def _limits(head: ScenarioHead | None, source: str, lines: Mapping[PathKey, int]) -> list[Limit]:
    """The file's `limits`, compiled (each names its file:line in messages)."""
    if head is None or not head.limits:
        return []
    made = []
    for index, spec in enumerate(head.limits):
        line = _line(lines, ("limits", index))
        made.append(
            Limit(
                model=spec.model,
                per=spec.per,
                requests=spec.requests_per_minute,
                tokens=spec.tokens_per_minute,
                window=spec.window_s,
                origin=f"{source}:{line}" if line else source,
            )
        )
    return made


def _defaults_base(defaults: Defaults | None) -> dict[str, Any] | None:
    """The defaults as given, dumped once for the file (each reply merges into a copy)."""
    return defaults.model_dump(exclude_unset=True, exclude={"seed"}) if defaults is not None else None


def _rule(
    index: int,
    rule: RuleSpec,
    head: ScenarioHead,
    base: dict[str, Any] | None,
    source: str,
    lines: Mapping[PathKey, int],
    problems: list[Problem],
) -> Rule | None:
    """Rule `index` with the defaults merged into its replies, compiled; None (and `problems` say
    why) when one of its replies is wrong."""
    defaults = head.defaults
    replies = [rule.reply] if rule.reply is not None else list(rule.replies or ())
    key = "reply" if rule.reply is not None else "replies"
    merged: list[Reply] = []
    failed = len(problems)
    for n, reply in enumerate(replies):
        at: PathKey = ("rules", index, key) if key == "reply" else ("rules", index, key, n)
        try:
            full = _merge(base, reply)
        except ValidationError as exc:
            problems.append(Problem(source, _line(lines, at), dotted(at), _first_message(exc)))
            continue
        if not full.has_body:
            problems.append(
                Problem(
                    source,
                    _line(lines, at),
                    dotted(at),
                    "a reply needs one of content, chunks, generate, refusal, tool_calls, choices, sse, error, vectors",
                )
            )
        else:
            unsent = _unsent_fault(rule, full)
            if unsent:
                problems.append(Problem(source, _line(lines, (*at, "fault")), dotted((*at, "fault")), unsent))
            if full.vectors is not None and rule.match.endpoints != ("embeddings",):
                problems.append(
                    Problem(
                        source,
                        _line(lines, (*at, "vectors")),
                        dotted((*at, "vectors")),
                        "only embeddings answers with vectors: give the rule `match: {endpoint: embeddings}`",
                    )
                )
            for name in rule.match.endpoints or ():
                why = DIALECTS[name].unsendable(full)  # a reply the API named cannot express
                if why:
                    problems.append(Problem(source, _line(lines, at), dotted(at), why))
        merged.append(full)
    if len(problems) > failed:
        return None
    stem = _file_name(source)
    line = _line(lines, ("rules", index))
    return Rule(
        name=rule.name or f"{stem}:rules[{index}]",
        key=f"{stem}\x1f{index}\x1f{rule.name or ''}",
        origin=f"{source}:{line}" if line else source,
        match=Conditions.of(rule.match),
        replies=tuple(compile_reply(r) for r in merged),
        cycle=rule.reply is not None,
        times=rule.times,
        priority=rule.priority,
        seed=rule.seed if rule.seed is not None else (defaults.seed if defaults else None),
        time_scale=head.time_scale,
        per_conversation=(rule.sequence or head.sequence) == "conversation",
        optional=rule.optional,
    )


@functools.lru_cache(maxsize=64)
def _file_name(source: str) -> str:
    """The file name of a source (asked once per rule: a recording has thousands)."""
    return Path(source).name


def _unsent_fault(rule: RuleSpec, reply: Reply) -> str | None:
    """Why the reply's fault cannot be sent by an API the rule names, or None."""
    if reply.fault is None or rule.match.endpoints is None:
        return None
    kind = reply.fault.kind
    cannot = [name for name in rule.match.endpoints if kind not in DIALECTS[name].fault_kinds]
    if not cannot:
        return None
    return f"the {' and '.join(cannot)} API cannot send the fault {kind!r}"


def _merge(defaults: dict[str, Any] | None, reply: Reply) -> Reply:
    """The reply with the defaults' keys it does not set (`defaults`: Defaults dumped as set)."""
    if defaults is None:
        return reply
    base = dict(defaults)  # popped below; nested values are copied before they are changed
    own = reply.model_dump(exclude_unset=True)
    if any(k in own for k in BODY_KEYS):
        for k in BODY_KEYS:
            base.pop(k, None)
    timing_own = own.get("timing") or {}
    if "timing" in base and "timing" in own:
        if "preset" in timing_own:
            base.pop("timing")  # a preset is a whole profile: the defaults' gaps would undo it
        else:
            inherited = dict(base.pop("timing"))
            if "chunk_ms" in timing_own or "total_ms" in timing_own:
                inherited.pop("chunk_ms", None)
                inherited.pop("total_ms", None)
            own["timing"] = {**inherited, **timing_own}
    if "framing" in base and "framing" in own:
        own["framing"] = {**base.pop("framing"), **own["framing"]}
    return Reply.model_validate({**base, **own})


# -- error reporting -------------------------------------------------------------------


def _line(lines: Mapping[PathKey, int], at: PathKey) -> int | None:
    """The line of `at`, or of its nearest parent that has one."""
    if isinstance(lines, LineTree):
        return lines.nearest(at)
    while True:
        if at in lines:
            return lines[at]
        if not at:
            return None
        at = at[:-1]


def _data_path(data: Any, loc: Sequence[str | int]) -> PathKey:
    """Pydantic's loc without its union tags: only the steps that exist in the data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        step: Any = node  # a dict or a list, indexed by a key or a position
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = step[part]
            out.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_union_tag(part):
            out.append(part)  # a missing key: name it
            node = None
        # anything else is a union tag ("float", "list[float]"): skip it
    return tuple(out)


def _is_union_tag(part: str) -> bool:
    return "[" in part or part in {"float", "int", "str", "bool", "dict", "list", "function-after"} or "-" in part


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parent_model(at: PathKey) -> type[BaseModel] | None:
    for part in reversed(at[:-1]):
        if isinstance(part, str):
            return _MODEL_UNDER.get(part)
    return ScenarioFile


def _explain(err: Mapping[str, Any], at: PathKey) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        model = _parent_model(at)
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(at[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; expected one of: {', '.join(known)}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {_show(value)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {_show(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {_show(value)}"
    if kind == "string_type":
        return f"expected text, got {_show(value)}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the listed values')}, got {_show(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_show(value)}"
    if kind == "list_type":
        return f"expected a list, got {_show(value)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s)"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"expected a number {op} {bound}, got {_show(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _problems(
    exc: ValidationError, data: Any, source: str, lines: Mapping[PathKey, int], prefix: PathKey = ()
) -> list[Problem]:
    """Each error of `exc` with its file line (`prefix`: where in `data` the validated value lies)."""
    # A union reports once per member: say the one of the member the value's type fits (`turn: {min: 3,
    # max: 1}` is a range with its bounds crossed, not "not a whole number"), else the first.
    chosen: dict[PathKey, Any] = {}
    for err in exc.errors():
        at = _data_path(data, (*prefix, *err["loc"]))
        known = chosen.get(at)
        if known is None or (_wrong_type(known) and not _wrong_type(err)):
            chosen[at] = err
    return [Problem(source, _line(lines, at), dotted(at), _explain(err, at)) for at, err in chosen.items()]


def _wrong_type(err: Any) -> bool:
    """An error that says only that the value is not of a union member's type."""
    kind = str(err["type"])
    return kind.endswith("_type") or kind in ("literal_error", "model_attributes_type")


def _first_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return _explain(err, tuple(err["loc"]))
