"""The command line: `mockllm serve`, `mockllm validate`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import ScenarioError
from .loader import bundled_scenarios, load

__all__ = ["main"]


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], Any]:
    """An argparse type: a number of `kind`, 0 or more."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockllm",
        description="A deterministic fake of an OpenAI-compatible LLM provider.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve scenarios as a local OpenAI-compatible endpoint")
    serve.add_argument(
        "--scenarios",
        type=Path,
        action="append",
        metavar="PATH",
        help="a scenario file or folder (repeatable; default: the bundled scenarios)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0 picks one)")
    serve.add_argument("--seed", type=int, default=0, help="seed for rules that set none (default: 0)")
    serve.add_argument(
        "--time-scale",
        type=_non_negative(float),
        default=1.0,
        metavar="S",
        help="multiply every delay: 0 sends at once, 1 as written, 0.1 ten times faster (default: 1)",
    )
    serve.add_argument(
        "--journal-size",
        type=_non_negative(int),
        default=0,
        metavar="N",
        help="how many of the latest requests the engine keeps in its journal (default: 0; nothing outside "
        "the process reads it, and keeping requests costs memory and speed)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs speed)")
    validate = sub.add_parser("validate", help="check scenario files; exit 1 at the first bad one")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args.paths)
    return _serve(args)


def _validate(paths: list[Path]) -> int:
    for path in paths:
        try:
            scenarios = load(path)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            return 1
        for scenario in scenarios:
            print(f"ok {scenario.source}: {len(scenario.rules)} rule(s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .server import listen, run

    paths: list[Path] = args.scenarios or [bundled_scenarios()]
    engine = Engine(seed=args.seed, time_scale=args.time_scale, journal_limit=args.journal_size)
    try:
        for path in paths:
            engine.load(path)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        print(f"mockllm: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    where = ", ".join(str(p) for p in paths)
    print(f"mockllm: {len(engine.router.rules)} rule(s) from {where}", file=sys.stderr)
    print(f"mockllm: OPENAI_BASE_URL=http://{args.host}:{port}/v1", file=sys.stderr)
    try:
        run(engine, sock, access_log=args.access_log)
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises Ctrl-C: no traceback for that
        return 130
    return 0
