"""The command line: `mockllm serve`, `mockllm record`, `mockllm validate`, `mockllm --version`."""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .engine import DEFAULT_MAX_BODY_SIZE, Engine
from .errors import ScenarioError
from .loader import bundled_scenarios, load
from .server import DEFAULT_SHUTDOWN_GRACE, listen, run

__all__ = ["DEFAULT_JOURNAL_SIZE", "base_url", "exposure_warning", "main"]

# Requests `serve` keeps for the control API and the inspector: enough to look back on, bounded for a long run,
# and few enough to stay in the caches: 100 cost ~2% of the non-streamed rate, 1000 cost ~14% (python -m bench).
DEFAULT_JOURNAL_SIZE = 100


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
    parser.add_argument("--version", action="version", version=f"mockllm {__version__}")
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
        default=DEFAULT_JOURNAL_SIZE,
        metavar="N",
        help="how many of the latest requests the journal keeps, for the control API and the inspector at "
        f"/_mockllm (default: {DEFAULT_JOURNAL_SIZE}; 0 keeps none, a little faster; more cost speed)",
    )
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="the control API (/_mockllm) answers only requests with Authorization: Bearer TOKEN; without it, "
        "it answers on loopback only (a --host beyond loopback gets 403)",
    )
    serve.add_argument(
        "--require-api-key",
        metavar="KEY",
        help="refuse provider requests without this API key, with each API's own auth error (OpenAI's 401 "
        "invalid_api_key, Anthropic's authentication_error, Gemini's API_KEY_INVALID)",
    )
    serve.add_argument(
        "--max-body-size",
        type=_non_negative(int),
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help=f"refuse longer request bodies with 413, unread (default: {DEFAULT_MAX_BODY_SIZE}, 32 MiB)",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=_non_negative(float),
        default=DEFAULT_SHUTDOWN_GRACE,
        metavar="S",
        help="at SIGTERM or Ctrl-C, seconds the answers in flight may take to end before they are cut; "
        f"a second signal exits at once (default: {DEFAULT_SHUTDOWN_GRACE:g})",
    )
    serve.add_argument(
        "--strict",
        action="store_true",
        help="refuse what the real APIs refuse (unknown request fields, values out of range) with their 400",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs speed)")
    _record_parser(sub)
    validate = sub.add_parser(
        "validate", help="check scenario files and folders: report every problem of each, exit 1 if any"
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    sub.add_parser("schema", help="print the JSON Schema of scenario files (for YAML editors: completion and checks)")
    return parser


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression ({exc}): {text!r}") from None


def _record_parser(sub: Any) -> None:
    from .recording import DEFAULT_IGNORED

    record = sub.add_parser(
        "record",
        help="a proxy to a real provider: clients point at it, and it writes what passes as a scenario",
        description="Forward every request to the upstream, stream its answer back as it comes, and write "
        "each exchange as a rule of OUT/NAME.yaml (rewritten after each one), on the schedule it came.",
    )
    record.add_argument(
        "--upstream", required=True, metavar="URL", help="the provider, e.g. https://api.openai.com (or …/v1)"
    )
    record.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder of the scenario file")
    record.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    record.add_argument("--port", type=int, default=8001, help="port to listen on (default: 8001; 0 picks one)")
    record.add_argument("--name", default="recording", help="the file's name, without .yaml (default: recording)")
    record.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="FIELD",
        help="a top-level request field the rules do not match on (repeatable), besides the default ones: "
        + ", ".join(DEFAULT_IGNORED),
    )
    record.add_argument(
        "--redact",
        action="append",
        default=[],
        type=_regex,
        metavar="REGEX",
        help="replace what matches in every written text with [redacted] (repeatable); API keys seen in "
        "headers and in a key= query parameter always are",
    )
    record.add_argument(
        "--keep-ids",
        action="store_true",
        help="write the model, chat's system_fingerprint and every answer's id (the ids clients send back, "
        "Responses' and Anthropic's, are always written)",
    )
    record.add_argument(
        "--round-ms",
        type=_non_negative(float),
        default=0.1,
        metavar="MS",
        help="round recorded times to MS milliseconds (default: 0.1); coarser makes re-recordings differ less",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args.paths)
    if args.command == "record":
        return _record(args)
    if args.command == "schema":
        from .schema import main as schema

        return schema([])
    return _serve(args)


def _validate(paths: list[Path]) -> int:
    """Each path on its own, so one bad file does not hide the problems of the next."""
    bad = 0
    for path in paths:
        try:
            scenarios = load(path)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            bad += 1
            continue
        for scenario in scenarios:
            print(f"ok {scenario.source}: {len(scenario.rules)} rule(s)")
    if bad and len(paths) > 1:
        print(f"mockllm: {bad} of {len(paths)} paths have problems (listed above)", file=sys.stderr)
    return 1 if bad else 0


def _serve(args: argparse.Namespace) -> int:
    try:
        return _serve_until_stopped(args)
    except KeyboardInterrupt:  # Ctrl-C before the server listens (say, while a large file loads)
        return 130


def _serve_until_stopped(args: argparse.Namespace) -> int:
    paths: list[Path] = args.scenarios or [bundled_scenarios()]
    engine = Engine(
        seed=args.seed,
        time_scale=args.time_scale,
        journal_limit=args.journal_size,
        max_body_size=args.max_body_size,
        strict=args.strict,
        api_key=args.require_api_key,
    )
    try:
        for path in paths:
            engine.load(path)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 1
    sock = _listen(args)
    if sock is None:
        return 1
    host, port = sock.getsockname()[:2]
    where = ", ".join(str(p) for p in paths)
    print(f"mockllm: {len(engine.router.rules)} rule(s) from {where}", file=sys.stderr)
    warning = exposure_warning(host, port, checks_key=args.require_api_key is not None)
    if warning:
        print(warning, file=sys.stderr)
        if args.admin_token is None:
            print(
                "mockllm: the control API (/_mockllm) answers 403 beyond loopback: --admin-token TOKEN opens it",
                file=sys.stderr,
            )
    print(f"mockllm: OPENAI_BASE_URL={base_url(host, port)}", file=sys.stderr)
    print(f"mockllm: the inspector: {base_url(host, port).removesuffix('/v1')}/_mockllm/", file=sys.stderr)
    run(engine, sock, access_log=args.access_log, shutdown_grace=args.shutdown_grace, admin_token=args.admin_token)
    return 0


def _listen(args: argparse.Namespace) -> socket.socket | None:
    """A socket listening on the command's --host and --port, or None (and why, on stderr)."""
    try:
        return listen(args.host, args.port)
    except OSError as exc:
        print(f"mockllm: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return None


def _record(args: argparse.Namespace) -> int:
    from .recorder import Recorder, run_recorder
    from .recording import DEFAULT_IGNORED, Recording

    path = args.out / f"{args.name}.yaml"
    recording = Recording(
        path,
        ignore=[*DEFAULT_IGNORED, *args.ignore],
        redact=args.redact,
        keep_ids=args.keep_ids,
        round_ms=args.round_ms,
    )
    try:
        recorder = Recorder(args.upstream, recording)
    except ValueError as exc:
        print(f"mockllm: {exc}", file=sys.stderr)
        return 2
    sock = _listen(args)
    if sock is None:
        return 1
    host, port = sock.getsockname()[:2]
    print(f"mockllm: recording {recorder.root}{recorder.base_path} to {path}", file=sys.stderr)
    warning = exposure_warning(host, port)
    if warning:
        print(warning, file=sys.stderr)
    root = base_url(host, port)[: -len("/v1")]
    print(
        f"mockllm: OPENAI_BASE_URL={root}/v1 (anthropic and google-genai: base_url={root})", file=sys.stderr, flush=True
    )
    try:
        run_recorder(recorder, sock)
    except KeyboardInterrupt:
        return 130
    return 0


def base_url(host: str, port: int) -> str:
    """The /v1 URL of a server bound to `host` (an address)."""
    return f"http://{_host_port(host, port)}/v1"


def _host_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 address in brackets as URLs want it (`[::1]:8000`, not `::1:8000`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def exposure_warning(host: str, port: int, *, checks_key: bool = False) -> str | None:
    """One line for a bound address beyond loopback, saying who can reach what, and how to restrict it
    (`checks_key`: serve asks for the --require-api-key key)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is no part of it
    except ValueError:
        return None  # the bound address, from the socket: always an address
    mapped = getattr(address, "ipv4_mapped", None)
    if address.is_loopback or (mapped is not None and mapped.is_loopback):
        return None
    if address.is_unspecified:
        where = "every network interface" + (" (IPv6 and IPv4)" if address.version == 6 and _dual_stack() else "")
    else:
        where = f"the network of {host}"
    who = (
        "anyone who can reach this port gets answers, and mockllm asks for the --require-api-key key"
        if checks_key
        else "anyone who can reach this port gets answers, and mockllm checks no API key"
    )
    return (
        f"mockllm: warning: listening on {_host_port(host, port)}, {where}: {who}; use --host 127.0.0.1 "
        "(the default) to keep it to this machine"
    )


def _dual_stack() -> bool:
    """Whether an IPv6 socket bound to :: takes IPv4 connections too (Linux's default)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            return probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    except OSError:
        return False
