"""Cassettes: the record modes of pytest-recording, for the `mockllm` fixture (issue 15).

A test's cassette is a scenario file, `<test file's folder>/cassettes/<module>/<test>.yaml` (or the
marker's `cassette=`). Replaying it is loading it into the test's Engine, after the other scenarios.
Recording is pointing the test's clients at a recorder of its own: a `BackgroundRecorder` on a
loopback port, in server mode and in-process mode alike (in-process, a test that records reaches
its Engine through that socket too). The recorder's app asks the test's Engine first; a request no
rule matches goes to the upstream through `mockllm.recorder.Recorder`, which streams the answer back
and writes the exchange into the cassette (`mockllm.recording.Recording`, which never writes a secret).

| mode | cassette there | no cassette |
| --- | --- | --- |
| none | replayed | nothing loaded: a request no rule matches fails the test, which says how to record it |
| once | replayed, nothing recorded | recorded |
| new_episodes | replayed; what it lacks is recorded, appended | recorded |
| all | not loaded; everything recorded again, the file rewritten | recorded |
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from mockllm import Answer, Engine, Entry
from mockllm.engine import NO_MATCH_STATUS
from mockllm.routes import resolve

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

    from mockllm.recorder import BackgroundRecorder, Recorder
    from mockllm.recording import Recording

__all__ = [
    "Cassette",
    "CassetteRecorder",
    "cassette_of",
    "file_safe",
    "recording_keys",
    "upstream_part",
    "upstream_urls",
]

# Where the hint sends a request of each API when no upstream is set (the providers' own URLs).
_PROVIDERS = {
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
_OPENAI = "https://api.openai.com/v1"
_PROVIDER_OF = {"anthropic": "anthropic", "gemini": "gemini"}  # every other API is OpenAI's
# The keys a recording test's clients send: the environment's (the real provider needs them).
_KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\s]+')  # not in a file name on Windows or in a shell word
_LONGEST = 120  # a file name's characters before the end is cut (and told apart by a checksum)


@dataclass(frozen=True)
class Cassette:
    """One test's cassette, and what the record mode does with it (decided once, when the test starts)."""

    path: Path
    mode: str  # the record mode
    upstream: str | None
    existed: bool  # the file was there when the test started
    nodeid: str  # the test, as a pytest command line names it from where pytest was run

    @property
    def replays(self) -> bool:
        """Its rules are loaded into the test's Engine."""
        return self.existed and self.mode in ("none", "once", "new_episodes")

    @property
    def records(self) -> bool:
        """What no rule answers goes to the upstream, and into the file."""
        return self.mode in ("new_episodes", "all") or (self.mode == "once" and not self.existed)

    def upstream_of(self, endpoint: str | None) -> str | None:
        """The upstream of an API's requests (a dialect's name; None: a path of no API): its
        provider's `PROVIDER=URL`, else the URL given for every API."""
        upstreams = upstream_urls(self.upstream)
        provider = _PROVIDER_OF.get(endpoint or "", "openai")
        return upstreams.get(provider, upstreams.get(""))

    def hint(self, unmatched: list[Entry]) -> str:
        """How to record the requests no rule matched (said under their report)."""
        endpoint = unmatched[0].endpoint if unmatched else None
        upstream = self.upstream if self.upstream_of(endpoint) else _guess_upstream(unmatched)
        shown = _shown(self.path)
        if self.existed:
            said = f"The test's cassette ({shown}) has no rule for it. To record what it lacks, from the provider:"
            mode = "new_episodes"
            also = ["(or --mockllm-record=all to record the whole test again)"]
        else:
            said = f"The test has no cassette ({shown}). To record one, from the provider:"
            mode, also = "once", []
        command = f"pytest {shlex.quote(self.nodeid)} --mockllm-record={mode} --mockllm-upstream={upstream}"
        return "\n".join([said, f"  {command}", *also])


def cassette_of(item: pytest.Item, given: str | None, mode: str, upstream: str | None) -> Cassette:
    """The test's cassette: the marker's `cassette=` (relative to the test file's folder), else
    `cassettes/<module>/<test>.yaml` next to the test file."""
    folder = Path(item.path).parent
    if given is not None:
        path = Path(given) if Path(given).is_absolute() else folder / given
    else:
        path = folder / "cassettes" / Path(item.path).stem / f"{file_safe(_test_name(item))}.yaml"
    return Cassette(path, mode, upstream, path.is_file(), _command_nodeid(item))


def file_safe(name: str) -> str:
    """A test's name as a file name: what a file name or a shell word cannot hold becomes `_`, and a
    long name is cut, with a checksum of the whole so that two long names stay apart."""
    safe = _UNSAFE.sub("_", name).strip("._") or "test"
    if len(safe) > _LONGEST:
        safe = f"{safe[:_LONGEST]}-{zlib.crc32(name.encode()):08x}"
    return safe


def _test_name(item: pytest.Item) -> str:
    """`test_y[a-b]`, or `TestX.test_y[a-b]` for a method (two classes may have tests of one name)."""
    _, _, rest = item.nodeid.partition("::")
    return rest.replace("::", ".") or item.name


def _command_nodeid(item: pytest.Item) -> str:
    """The node id as a command run where pytest was run names it (node ids are rootdir-relative)."""
    _, sep, rest = item.nodeid.partition("::")
    try:
        where = os.path.relpath(item.path, item.config.invocation_params.dir)
    except ValueError:  # another drive (Windows)
        where = str(item.path)
    return f"{Path(where).as_posix()}{sep}{rest}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def upstream_urls(upstream: str | None) -> dict[str, str]:
    """The settings' upstream (see settings._upstream) by provider; "" for the URL of every API."""
    return dict(upstream_part(part) for part in (upstream or "").split(",") if part)


def upstream_part(part: str) -> tuple[str, str]:
    """`PROVIDER=URL` as (provider, URL), a bare URL as ("", URL) (a query's `=` comes after the scheme)."""
    head, equals, url = part.partition("=")
    if not equals or "://" in head:
        return "", part
    return head.strip().lower(), url.strip()


def _guess_upstream(entries: list[Entry]) -> str:
    endpoint = entries[0].endpoint if entries else "chat"
    return _PROVIDERS.get(endpoint, _OPENAI)


def recording_keys() -> dict[str, str]:
    """The real API keys of the environment, by API, for the clients of a test that records."""
    keys = {}
    for api, names in _KEYS.items():
        for name in names:
            value = os.environ.get(name)
            if value:
                keys[api] = value
                break
    return keys


class CassetteRecorder:
    """The recorder of one test: its Engine first, then the upstream, into the cassette.

    On a loopback port (`url`), started at once; `stop()` at the test's end. `problems()`: what went
    wrong on the way to the upstream, for the test's report.
    """

    def __init__(self, engine: Engine, cassette: Cassette, keys: dict[str, str]) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        from mockllm.recorder import BackgroundRecorder, Recorder

        assert cassette.upstream is not None  # the settings refuse a record mode without one
        upstreams = upstream_urls(cassette.upstream)
        recording = _recording(cassette)
        for key in keys.values():
            recording.add_secret(key)  # the recorder learns them from the headers too: this is for the bodies
        self.cassette = cassette
        self.lines: list[str] = []  # what the recorder said (each exchange, recorded or not)
        self._reported = 0  # of those lines
        # A recorder per upstream, into the one cassette (they run on one loop: one writes at a time).
        recorders = {url: Recorder(url, recording, log=self.lines.append) for url in dict.fromkeys(upstreams.values())}
        self.recorder: Recorder = next(iter(recorders.values()))
        # The recorder's app, answering from the Engine first.
        self.recorder.app = Starlette(
            routes=[Route("/{path:path}", _RulesFirst(engine, cassette, recorders), methods=_METHODS)]
        )
        self.server: BackgroundRecorder = BackgroundRecorder(self.recorder)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def problems(self) -> list[str]:
        """The requests the upstream did not answer, each reported once (in the failure of a test that
        failed, else at its teardown)."""
        failed = [line for line in self.lines[self._reported :] if "the upstream did not answer" in line]
        self._reported = len(self.lines)
        if not failed:
            return []
        lines = [f"mockllm: recording from {self.cassette.upstream}: {len(failed)} request(s) got no answer from it:"]
        lines += [f"  {line}" for line in failed]
        lines.append(
            "Check --mockllm-upstream (or the mockllm_upstream ini option), and that the provider is reachable."
        )
        return ["\n".join(lines)]


class _RulesFirst:
    """The recorder's endpoint (a raw ASGI app): the test's Engine answers what its rules match, as
    the session's server would; a request no rule matches (which the Engine journals) goes on to the
    upstream through the recorder, and its journal entry then says the upstream's status."""

    def __init__(self, engine: Engine, cassette: Cassette, recorders: dict[str, Recorder]) -> None:
        self.engine = engine
        self.cassette = cassette
        self.recorders = recorders  # by upstream URL

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mockllm.app import RequestHeaders, send_answer
        from mockllm.recorder import read_body

        start = asyncio.get_running_loop().time()
        body = await read_body(receive)
        entry: Entry | None = None
        found = resolve(scope["path"])
        endpoint = None
        if found is not None:  # a path of an API mockllm serves; any other goes on as is
            headers = RequestHeaders(scope["headers"])
            answer = self.engine.handle(scope["method"], scope["path"], headers, body)
            entry = answer.entry
            target = found[0].get(scope["method"])
            endpoint = target.dialect.name if target is not None and target.dialect is not None else None
            unmatched = answer.status == NO_MATCH_STATUS and entry is not None and entry.error is not None
            forwarded = (unmatched or _upstream_id(answer)) and self.cassette.upstream_of(endpoint) is not None
            if not forwarded or (entry is not None and entry.raised):
                await send_answer(answer, receive, send, start)
                return
        upstream = self.cassette.upstream_of(endpoint)
        if upstream is None:  # a path of no API, and no upstream for OpenAI's: nothing to send it to
            await send_answer(self.engine.not_found(scope["method"], scope["path"]), receive, send, start)
            return
        await self._forward(self.recorders[upstream], scope, body, receive, send, entry)

    async def _forward(
        self, recorder: Recorder, scope: Scope, body: bytes, receive: Receive, send: Send, entry: Entry | None
    ) -> None:
        given = False

        async def again() -> Message:  # the body, read already, then what the client sends next
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def told(message: Message) -> None:
            # Before the client hears of it: a test that has its answer finds its entry up to date.
            if entry is not None and message["type"] == "http.response.start":
                entry.status, entry.error = message["status"], None
            await send(message)

        try:
            await recorder.handle(scope, again, told)
        finally:
            if entry is not None and entry.status == NO_MATCH_STATUS and entry.error is not None:
                entry.status, entry.error = 502, "mockllm: the recorder failed before the upstream answered"


# What the Engine refuses for naming an id that only the upstream made (a `previous_response_id`, an
# Anthropic thread's `previous_message_id`): while recording, such a request goes on to the upstream too.
_UPSTREAM_IDS = (b'"previous_response_not_found"', b'"thread_not_found"')


def _upstream_id(answer: Answer) -> bool:
    return answer.status == 404 and any(code in answer.body for code in _UPSTREAM_IDS)


def _recording(cassette: Cassette) -> Recording:
    """The test's Recording: the cassette written anew, or (new_episodes, a cassette there) its rules
    kept as they are, the new ones after them."""
    from mockllm.recording import Recording

    if cassette.mode == "new_episodes" and cassette.existed:
        return _appending()(cassette.path, _kept_text(cassette.path))
    return Recording(cassette.path)


def _kept_text(path: Path) -> str:
    """The cassette's text, which new rules are appended to: as it is (comments, edits and all) when a
    recorded rule can follow its last line; else its data written again, the rules last."""
    from mockllm.yaml_writer import dump

    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("rules") or [], list):
        pytest.fail(f"mockllm: the cassette {path} is not a scenario (a mapping with a `rules:` list)", pytrace=False)
    rules = data.pop("rules", None) or []
    text = text if text.endswith("\n") else text + "\n"
    try:
        followed = yaml.safe_load(text + "  - {reply: {content: x}}\n")
    except yaml.YAMLError:
        followed = None
    if (
        isinstance(followed, dict)
        and isinstance(followed.get("rules"), list)
        and len(followed["rules"]) == len(rules) + 1
    ):
        return text
    return (dump(data) if data else "") + (dump({"rules": rules}) if rules else "rules:\n")


@functools.cache
def _appending() -> Callable[[Path, str], Recording]:
    """The class of an appending Recording, made on first use (mockllm.recording is imported then)."""
    from mockllm.recording import Recording

    class Appending(Recording):
        """A Recording written after the rules a cassette has: the kept text, then the new rules."""

        def __init__(self, path: Path, kept: str) -> None:
            super().__init__(path)
            self.kept = kept

        def render(self) -> str:
            written = super().render()
            _, found, rules = written.partition("\nrules:\n")
            return self.kept + rules if found else written

    return Appending
