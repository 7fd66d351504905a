"""Seeded JSON valid against a JSON schema (or Gemini's OpenAPI subset): `instance`.

It walks the schema itself. The JSON-schema fakers on PyPI were tried on the schemas the SDK
helpers send (pydantic models through openai's `to_strict_json_schema` and `model_json_schema`,
Gemini's OpenAPI subset, recursive models, hostile schemas) and none fits:
- jsf 0.11.2 (last release 2024-03; pulls pydantic, rstr, smart_open, requests): valid and about
  1 ms on flat models, but RecursionError on any recursive `$ref` (a pydantic tree model), no
  Gemini types, no bounds (`minItems: 10**7` raises), and it is seeded only through the global
  `random` module: reseeding that would change the random numbers of the code under test.
- hypothesis-jsonschema 0.23.1 (2024-02): every object schema fails on today's hypothesis 6.170
  (`'many' object has no attribute 'more'`), recursive refs are refused, and `.example()` is
  neither seeded nor meant for use outside tests.
- faker-jsonschema 1.0.0: imports `js_regex` without declaring it, not reproducible under
  `seed_instance` (it shuffles with the global `random`), 9 s to 84 s on a recursive model,
  260 s on `minItems: 10**6`, no Gemini types.
- fences 1.4.0: systematic boundary samples (empty strings, zeros), no formats (`date-time` raises),
  patterns ignored, RecursionError on recursive refs, no seed.
rstr (regex sampling) would serve `pattern`, but its repeat cap is a module global with no total
bound; `pattern` is served here by a small sampler over the stdlib's own regex parser.

Bounds, so that no schema a client sends makes the answer slow or huge: at most MAX_NODES values,
MAX_STRING characters per generated string and MAX_CHARS in all, MAX_ITEMS items per array (a larger
`minItems` is cut: the answer is then invalid, by design); past SOFT_DEPTH levels an object keeps
only its required keys, an array its `minItems`, a union its cheapest branch, so recursive models
end; past HARD_DEPTH (a `$ref` that requires itself has no finite instance) nothing more is made.
Enum and const values are copied from the schema, so they can be no larger than the body was.

Best effort, not exact: `pattern` (lookarounds are ignored, anchors in the middle of a pattern and
a pattern whose shortest match is over MAX_STRING characters are not satisfied; a pattern over
1,000 characters is not read), `oneOf` (one branch is generated; overlapping branches can make the
value match two), `not`, `if`/`then`/`else`, `patternProperties`, `propertyNames`, `dependencies`
and remote `$ref`s are not read, and `uniqueItems` may give fewer items than `minItems` asks when the
item schema has few values.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import math
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .dialects.openai import dumps

if TYPE_CHECKING:
    from faker import Faker

__all__ = ["MAX_CHARS", "MAX_ITEMS", "MAX_NODES", "MAX_STRING", "instance"]

MAX_NODES = 2000
MAX_STRING = 4096
MAX_CHARS = 200_000
MAX_ITEMS = 64
SOFT_DEPTH = 6
HARD_DEPTH = 40
_MAX_PATTERN = 1000

_faker: Faker | None = None
_lock = threading.Lock()
_re_parser: Any = importlib.import_module("re._parser")  # the stdlib's parser; typeshed knows only sre_parse
_MINIMAL: dict[str, Any] = {"object": {}, "array": [], "string": "", "integer": 0, "number": 0, "boolean": False}
_SCALARS = frozenset(("string", "integer", "number", "boolean", "null"))
_OBJECT_KEYS = ("properties", "required", "additionalProperties", "minProperties")
_STRING_KEYS = ("minLength", "maxLength", "pattern", "format")
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_EPOCH = datetime.datetime(2020, 1, 1)

# Property names whose text reads better from a faker provider than as a sentence.
_NAMED: tuple[tuple[str, str], ...] = (
    ("email", "email"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("username", "user_name"),
    ("company", "company"),
    ("city", "city"),
    ("country", "country"),
    ("street", "street_address"),
    ("address", "street_address"),
    ("phone", "phone_number"),
    ("url", "url"),
    ("website", "url"),
    ("zip", "postcode"),
    ("postcode", "postcode"),
    ("postal", "postcode"),
    ("state", "state"),
    ("color", "color_name"),
    ("colour", "color_name"),
    ("job", "job"),
    ("name", "name"),
)


def instance(schema: Mapping[str, Any], seed: int) -> Any:
    """A JSON value valid against `schema` (JSON Schema, or Gemini's OpenAPI subset), the same for
    the same schema and seed in every process; see the module's docstring for bounds and limits."""
    global _faker
    with _lock:
        if _faker is None:
            from faker import Faker

            _faker = Faker("en_US")
        _faker.seed_instance(seed)
        return _Generator(schema, random.Random(seed), _faker).value(schema, 0, "")


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _count(schema: Mapping[str, Any], key: str) -> int | None:
    """A count keyword; Gemini sends int64 fields as JSON strings ("minItems": "1")."""
    value = schema.get(key)
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _size(value: Any, limit: int) -> int:
    """A rough size of a copied value, counted no further than `limit`."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += len(item) if isinstance(item, str) else 1
        if isinstance(item, dict):
            stack.extend(islice(item.values(), limit))
        elif isinstance(item, list):
            stack.extend(islice(item, limit))
    return total


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, faker: Faker) -> None:
        self.root, self.rng, self.faker = root, rng, faker
        self.nodes = self.chars = self.frames = 0
        self.refs: dict[str, Any] = {}

    # -- schema plumbing

    def pointer(self, ref: str) -> Any:
        if ref in self.refs:
            return self.refs[ref]
        target: Any = None
        if ref.startswith("#"):
            target = self.root
            for part in ref[1:].split("/")[1:] if ref != "#" else ():
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                if isinstance(target, Mapping):
                    target = target.get(part)
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    target = None
                    break
        self.refs[ref] = target
        return target

    def resolve(self, schema: Mapping[str, Any], level: int = 0) -> Mapping[str, Any]:
        """`schema` with its `$ref` followed (siblings kept) and its `allOf` merged in."""
        for _ in range(16):
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                break
            target = self.pointer(ref)
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **siblings} if isinstance(target, Mapping) else siblings
        every = schema.get("allOf")
        if not isinstance(every, list) or level > 8:
            return schema
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in islice(every, 16):
            if isinstance(part, Mapping):
                part = self.resolve(part, level + 1)
                for key, value in part.items():
                    if key == "properties" and isinstance(value, Mapping):
                        merged["properties"] = {**(merged.get("properties") or {}), **value}
                    elif key == "required" and isinstance(value, list):
                        merged["required"] = [*(merged.get("required") or []), *value]
                    else:
                        merged.setdefault(key, value)
        return merged

    def kind(self, schema: Mapping[str, Any], depth: int) -> str | None:
        """The JSON type to make: `type` (Gemini's upper case too, a list picked from) or inferred."""
        declared = schema.get("type")
        if isinstance(declared, list):
            names = [name.lower() for name in declared if isinstance(name, str)]
            others = [name for name in names if name != "null"]
            if not others or (len(others) < len(names) and self.null(depth)):
                return "null" if names else None
            declared = self.rng.choice(others)
        if isinstance(declared, str) and declared.lower() not in ("", "type_unspecified"):
            return declared.lower()
        for keys, name in ((_OBJECT_KEYS, "object"), (("items", "prefixItems"), "array")):
            if any(key in schema for key in keys):
                return name
        if any(key in schema for key in _STRING_KEYS):
            return "string"
        return "number" if any(key in schema for key in _NUMBER_KEYS) else None

    def null(self, depth: int) -> bool:
        """Whether an optional value is null: one time in four at the top, more often deeper (so that
        recursive models stay small), always past SOFT_DEPTH."""
        return depth >= SOFT_DEPTH or self.rng.random() < 0.25 + 0.75 * depth / SOFT_DEPTH

    def cheapest(self, branches: list[Any]) -> Any:
        def cost(branch: Any) -> int:
            if not isinstance(branch, Mapping):
                return 3
            kind = branch.get("type")
            if kind == "null" or "const" in branch or "enum" in branch:
                return 0
            return 1 if isinstance(kind, str) and kind.lower() in _SCALARS else 2 if kind else 3

        return min(branches, key=cost)

    # -- values

    def value(self, schema: Any, depth: int, name: str) -> Any:
        self.frames += 1
        try:
            return self.made(schema, depth, name)
        finally:
            self.frames -= 1

    def made(self, schema: Any, depth: int, name: str) -> Any:
        self.nodes += 1
        if not isinstance(schema, Mapping):  # a boolean schema: true takes anything
            return None if schema is False or self.nodes > MAX_NODES else self.text(name, 0, 40)
        # frames: unions nest without adding a level, and each costs Python stack
        if depth > HARD_DEPTH or self.frames > 4 * HARD_DEPTH or self.nodes > MAX_NODES or self.chars > MAX_CHARS:
            kind = schema.get("type")
            return _MINIMAL.get(kind.lower()) if isinstance(kind, str) else None
        schema = self.resolve(schema)
        if "const" in schema:
            return self.copied(schema["const"])
        choices = schema.get("enum")
        if isinstance(choices, list) and choices:
            if schema.get("nullable") is True and self.null(depth):
                return None
            return self.copied(choices[self.rng.randrange(len(choices))])
        if schema.get("nullable") is True and self.null(depth):
            return None
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.union(schema, key, branches, depth, name)
        kind = self.kind(schema, depth)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth, name)
        if kind == "string":
            return self.string(schema, name)
        if kind in ("integer", "number"):
            return self.number(schema, kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None if kind == "null" else self.text(name, 0, 40)

    # const and enum values are the schema's own objects, not copies: the answer is only serialised
    def copied(self, value: Any) -> Any:
        self.chars += _size(value, MAX_CHARS)
        return value

    def union(self, schema: Mapping[str, Any], key: str, branches: list[Any], depth: int, name: str) -> Any:
        nulls = [b for b in branches if isinstance(b, Mapping) and b.get("type") in ("null", "NULL")]
        others = [b for b in branches if not any(b is n for n in nulls)]
        if depth >= SOFT_DEPTH:
            branch = nulls[0] if nulls else self.cheapest(others)
        elif nulls and (not others or self.null(depth)):
            return None
        else:
            # pydantic's Decimal is a number or a string it must parse: a plain string branch goes last
            typed = [
                b
                for b in others
                if not (isinstance(b, Mapping) and b.keys() <= {"type", "title"} and b.get("type") == "string")
            ]
            pool = typed or others
            branch = pool[self.rng.randrange(len(pool))]
        base = {k: v for k, v in schema.items() if k != key}
        if isinstance(branch, Mapping):
            return self.value({**base, **self.resolve(branch)} if base else branch, depth, name)
        return self.value(branch, depth, name)

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        listed = schema.get("required")
        names = listed if isinstance(listed, list) else ()
        required = {n for n in islice(names, MAX_NODES) if isinstance(n, str)}
        cap = _count(schema, "maxProperties")
        wanted = min(_count(schema, "minProperties") or 0, MAX_ITEMS)
        out: dict[str, Any] = {}
        left = len(properties)
        for key, sub in properties.items():
            if self.nodes > MAX_NODES:
                break
            left -= 1
            room = cap is None or len(out) < cap
            chosen = depth < SOFT_DEPTH and room and self.rng.random() < 0.5
            if key in required or chosen or (room and len(out) + left < wanted):  # minProperties: the last ones
                out[key] = self.value(sub, depth + 1, key)
        extra = schema.get("additionalProperties", True)
        missing = required - out.keys() - properties.keys() if extra is not False else set()
        for key in sorted(missing)[:MAX_ITEMS]:  # required but not among the properties
            out[key] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1, key)
        if extra is False:
            return out
        if not properties and depth < SOFT_DEPTH and isinstance(extra, Mapping):
            wanted = max(wanted, self.rng.randint(1, 2))
        if cap is not None:
            wanted = min(wanted, cap)
        for _ in range(wanted * 2):
            if len(out) >= wanted or self.nodes > MAX_NODES:
                break
            key = self.faker.word()
            if key not in out and key not in properties:
                out[key] = self.value(extra if isinstance(extra, Mapping) else {"type": "string"}, depth + 1, key)
        return out

    def array(self, schema: Mapping[str, Any], depth: int, name: str) -> list[Any]:
        items, prefix = schema.get("items", True), schema.get("prefixItems")
        if isinstance(items, list):  # draft 4's tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        low = min(_count(schema, "minItems") or 0, MAX_ITEMS)
        high = _count(schema, "maxItems")
        high = min(high if high is not None else low + 3, low + 3, MAX_ITEMS)
        if items is False:
            high = min(high, len(prefix))
        count = low if depth >= SOFT_DEPTH else self.rng.randint(min(max(low, 1), high), max(high, low))
        count = max(count, min(len(prefix), high)) if depth < SOFT_DEPTH else count
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[str] = set()
        contains = schema.get("contains")
        for _ in range(count * 8 if unique else count):  # unique: more draws, for values not yet drawn
            index = len(out)
            if index >= count or self.nodes > MAX_NODES:
                break
            sub = prefix[index] if index < len(prefix) else contains if index == 0 and contains else items
            item = self.value(sub, depth + 1, name)
            if unique:
                if (token := dumps(item)) in seen:
                    continue
                seen.add(token)
            out.append(item)
        return out

    # -- scalars

    def number(self, schema: Mapping[str, Any], integer: bool) -> float:
        low, high = _number_or_none(schema.get("minimum")), _number_or_none(schema.get("maximum"))
        open_low, open_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if open_low is True or open_high is True:  # draft 4: booleans beside minimum / maximum
            open_low, open_high = low if open_low is True else None, high if open_high is True else None
            low, high = (None if open_low is not None else low), (None if open_high is not None else high)
        open_low, open_high = _number_or_none(open_low), _number_or_none(open_high)
        step = _number_or_none(schema.get("multipleOf"))
        if integer or (step is not None and step > 0 and float(step).is_integer()):
            first = max(
                math.ceil(low) if low is not None else -math.inf,
                math.floor(open_low) + 1 if open_low is not None else -math.inf,
            )
            last = min(
                math.floor(high) if high is not None else math.inf,
                math.ceil(open_high) - 1 if open_high is not None else math.inf,
            )
            first, last = _span(first, last, 0, 100)
            if step is not None and step > 0 and float(step).is_integer() and int(step) > 0:
                unit = int(step)
                lo_k, hi_k = -(-first // unit), last // unit
                return int(self.rng.randint(lo_k, hi_k) * unit if lo_k <= hi_k else first)
            return int(self.rng.randint(first, last) if first <= last else first)
        bottom = max(x for x in (low, open_low, -math.inf) if x is not None)
        top = min(x for x in (high, open_high, math.inf) if x is not None)
        bottom, top = (float(x) for x in _span(bottom, top, 0.0, 100.0))
        if step is not None and step > 0:
            return _multiple(self.rng, step, bottom, top, open_low, open_high)
        for _ in range(4):
            value = round(bottom + (top - bottom) * self.rng.random(), 2)
            if bottom <= value <= top and value != open_low and value != open_high:
                return value
        return (bottom + top) / 2 if top > bottom else bottom

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        low = min(_count(schema, "minLength") or 0, MAX_STRING)
        most = _count(schema, "maxLength")
        high = min(most if most is not None else MAX_STRING, MAX_STRING)
        made = _FORMATS.get(str(schema.get("format")))
        pattern = schema.get("pattern")
        if made is not None:
            text = made(self)
        elif isinstance(pattern, str) and len(pattern) <= _MAX_PATTERN:
            sampled = self.pattern(pattern, low, high)
            text = sampled if sampled is not None else self.text(name, low, high)
        else:
            text = self.text(name, low, high)
        self.chars += len(text)
        return text

    def text(self, name: str, low: int, high: int) -> str:
        lowered, method = name.lower(), "sentence"
        for key, provider in _NAMED:
            if key in lowered:
                method = provider
                break
        text = str(getattr(self.faker, method)())
        while len(text) < low:  # doubling: a few steps even for a minLength of thousands
            text += " " + text
        if len(text) > high:
            text = text[:high].rstrip() if len(text[:high].rstrip()) >= low else text[:high]
        return text

    def pattern(self, pattern: str, low: int, high: int) -> str | None:
        parsed = _parsed(pattern)
        if parsed is None or parsed.getwidth()[0] > MAX_STRING:
            return None
        text = ""
        for _ in range(4):
            try:
                text = _Sampler(self.rng).run(parsed)
            except RecursionError:
                return None
            if low <= len(text) <= high:
                break
        return text


@functools.lru_cache(maxsize=256)
def _parsed(pattern: str) -> Any:
    """The stdlib's parse of a pattern (schemas repeat theirs on every request), None if it has none."""
    try:
        return _re_parser.parse(pattern)
    except Exception:  # re.error mostly; the private parser documents no others, so none may escape
        return None


def _span(low: float, high: float, default_low: float, default_high: float) -> tuple[Any, Any]:
    """Finite bounds: an open side is set 100 away from the other, or both from the defaults."""
    if math.isinf(low) and math.isinf(high):
        return default_low, default_high
    if math.isinf(low):
        return high - (default_high - default_low), high
    if math.isinf(high):
        return low, low + (default_high - default_low)
    return low, high


def _multiple(
    rng: random.Random, step: float, low: float, high: float, open_low: float | None, open_high: float | None
) -> float:
    """A multiple of a fractional `step` in range, one whose quotient is exact in floats (as
    jsonschema's multipleOf check computes it)."""
    first, last = math.ceil(low / step), math.floor(high / step)
    for _ in range(8):
        k = rng.randint(first, last) if first <= last else first
        for value in (float(Decimal(str(step)) * k), k * step):
            if (value / step).is_integer() and value != open_low and value != open_high:
                return value
    return 0.0


def _datetime(gen: _Generator) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(seconds=gen.rng.randrange(7 * 365 * 86400))


_FORMATS: dict[str, Callable[[_Generator], str]] = {
    "date-time": lambda gen: _datetime(gen).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "date": lambda gen: _datetime(gen).strftime("%Y-%m-%d"),
    "time": lambda gen: _datetime(gen).strftime("%H:%M:%SZ"),
    "duration": lambda gen: f"P{gen.rng.randint(1, 30)}DT{gen.rng.randint(0, 23)}H",
    "email": lambda gen: gen.faker.email(),
    "idn-email": lambda gen: gen.faker.email(),
    "uuid": lambda gen: str(uuid.UUID(int=gen.rng.getrandbits(128), version=4)),
    "uri": lambda gen: gen.faker.url(),
    "url": lambda gen: gen.faker.url(),
    "iri": lambda gen: gen.faker.url(),
    "uri-reference": lambda gen: "/" + gen.faker.uri_path(),
    "hostname": lambda gen: gen.faker.domain_name(),
    "ipv4": lambda gen: ".".join(str(gen.rng.randint(1, 254)) for _ in range(4)),
    "ipv6": lambda gen: ":".join(f"{gen.rng.getrandbits(16):x}" for _ in range(8)),
    # pydantic's own: IPvAnyAddress, IPv4Interface / IPvAnyInterface, IPv4Network / IPvAnyNetwork
    "ipvanyaddress": lambda gen: _FORMATS["ipv4"](gen),
    "ipv4interface": lambda gen: _FORMATS["ipv4"](gen) + "/24",
    "ipvanyinterface": lambda gen: _FORMATS["ipv4"](gen) + "/24",
    "ipv4network": lambda gen: f"10.{gen.rng.randint(0, 255)}.{gen.rng.randint(0, 255)}.0/24",
    "ipvanynetwork": lambda gen: f"10.{gen.rng.randint(0, 255)}.{gen.rng.randint(0, 255)}.0/24",
}


class _Sampler:
    """A string the parsed regex matches: each repeat runs its minimum, plus up to 3 more while the
    text is under 64 characters, so nested repeats can't multiply into a huge text."""

    _DIGITS, _WORD = "0123456789", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    _POOL = _WORD + " -.,:;/@#"
    _CATEGORIES: Mapping[str, str] = {
        "CATEGORY_DIGIT": _DIGITS,
        "CATEGORY_NOT_DIGIT": "abcdefghijklmnopqrstuvwxyz",
        "CATEGORY_WORD": _WORD,
        "CATEGORY_NOT_WORD": " -.,",
        "CATEGORY_SPACE": " ",
        "CATEGORY_NOT_SPACE": _WORD,
    }

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.parts: list[str] = []
        self.groups: dict[int, str] = {}

    def run(self, parsed: Any) -> str:
        self.emit(parsed)
        return "".join(self.parts)

    def length(self) -> int:
        return sum(map(len, self.parts))

    def emit(self, items: Any) -> None:
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                self.parts.append(chr(arg))
            elif name == "NOT_LITERAL":
                self.parts.append(self.rng.choice([c for c in self._POOL if ord(c) != arg]))
            elif name == "ANY":
                self.parts.append(self.rng.choice(self._WORD[:26]))
            elif name == "IN":
                self.parts.append(self.char_in(arg))
            elif name == "CATEGORY":
                self.parts.append(self.rng.choice(self._CATEGORIES.get(str(arg), self._WORD)))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, high, sub = arg
                count = low
                while count < high and count < low + 3 and self.length() < 64 and self.rng.random() < 0.6:
                    count += 1
                for _ in range(count):
                    self.emit(sub)
            elif name == "SUBPATTERN":
                start = len(self.parts)
                self.emit(arg[3])
                if arg[0] is not None:
                    self.groups[arg[0]] = "".join(self.parts[start:])
            elif name == "ATOMIC_GROUP":
                self.emit(arg)
            elif name == "BRANCH":
                self.emit(self.rng.choice(arg[1]))
            elif name == "GROUPREF":
                self.parts.append(self.groups.get(arg, ""))
            elif name == "GROUPREF_EXISTS":
                self.emit(arg[1] if arg[0] in self.groups else arg[2] or [])
            # AT (anchors), ASSERT and ASSERT_NOT (lookarounds) make no text

    def char_in(self, items: Sequence[Any]) -> str:
        negate = bool(items) and str(items[0][0]) == "NEGATE"
        chars: list[str] = []
        for op, arg in items[1:] if negate else items:
            name = str(op)
            if name == "LITERAL":
                chars.append(chr(arg))
            elif name == "RANGE":
                chars.extend(chr(code) for code in range(arg[0], min(arg[1], arg[0] + 256) + 1))
            elif name == "CATEGORY":
                chars.extend(self._CATEGORIES.get(str(arg), ""))
        if negate:
            taken = set(chars)
            chars = [c for c in self._POOL if c not in taken]
        return self.rng.choice(chars) if chars else ""
