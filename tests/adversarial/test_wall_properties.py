"""Property: whatever a crowd of honest shoppers and attackers do at once, against an
origin that misbehaves on command, nobody gets another's answer, nothing reaches the
order flow without a session, no cut-off request arrives whole, and no origin
connection outlives its visitor (tests/adversarial/visitors.py: ``check``); and no
spelling of a gated path or of the room's headers gets round the middleware, mounted,
under a root path or in front of a WSGI shop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from tests.adversarial.rig import ACTS, Rig, running_rig
from tests.adversarial.visitors import HOWS, SPELLINGS, Visit, check, run_batch
from tests.servers import serve_in_process
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings

EXAMPLES = int(os.environ.get("WR_ADVERSARIAL_EXAMPLES", "250"))


@pytest.fixture
def rig(make_settings: Callable[..., Settings]) -> Iterator[Rig]:
    with running_rig(make_settings(capacity=4, gated_paths=("/checkout*",),
                                   open_paths=("/static/*",), origin_timeout_seconds=3),
                     admitted=4) as rig:
        yield rig


def visits() -> st.SearchStrategy[Visit]:
    return st.builds(
        Visit, token=st.uuids().map(lambda u: "tok-" + u.hex[:16]),
        act=st.sampled_from(ACTS), how=st.sampled_from(HOWS), gated=st.booleans(),
        admitted=st.booleans(), spelling=st.sampled_from(SPELLINGS),
        pad=st.integers(min_value=1, max_value=400))


@pytest.mark.slow
@pytest.mark.timeout(900)  # hundreds of crowds: more than the suite's 120 s per test
def test_no_crowd_gets_round_the_wall(rig: Rig) -> None:
    # No shrinking: a crowd of at most eight is read as it is, and shrinking a
    # concurrent failure can take minutes.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(visits(), min_size=1, max_size=8))
    def crowd(plans: list[Visit]) -> None:
        seen_from = len(rig.origin.seen)
        received = asyncio.run(run_batch(rig, plans))
        check(rig, plans, received, seen_from)

    crowd()


# The middleware's crowd: a shop mounted in a parent app, one under a root path and a
# WSGI shop, each behind WaitingRoomMiddleware, sent cookieless requests for the gated
# path in every spelling, carrying the room's headers in every spelling.

def _echoing_shop() -> Starlette:
    """A shop whose every route says which route it is and which of the room's
    headers it heard."""
    def handler(name: str) -> Any:
        async def answer(request: Request) -> PlainTextResponse:
            heard = sorted(f"{k}={v}" for k, v in request.headers.items()
                           if "waitingroom" in k.lower())
            return PlainTextResponse(f"{name} {' '.join(heard) or 'nothing'}")
        return answer

    return Starlette(routes=[Route("/checkout/{rest:path}", handler("checkout")),
                             Route("/{rest:path}", handler("other"))])


def _echoing_wsgi_shop(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    heard = sorted(f"{k}={v}" for k, v in environ.items() if "WAITINGROOM" in k.upper())
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"wsgi {environ['PATH_INFO']} {' '.join(heard) or 'nothing'}".encode()]


@contextmanager
def _shops_on_a_thread(settings: Settings) -> Iterator[list[str]]:
    """The three shops behind the room, served on a loop of their own: their URLs
    (each with the prefix a visitor types)."""
    from starlette.middleware.wsgi import WSGIMiddleware  # as shops still use it

    rooms = [WaitingRoomMiddleware(_echoing_shop(), settings=settings) for _ in range(2)]
    rooms.append(WaitingRoomMiddleware(
        Starlette(routes=[Mount("/", app=WSGIMiddleware(_echoing_wsgi_shop))]),
        settings=settings))
    served = [(Starlette(routes=[Mount("/shop", app=rooms[0])]), "", "/shop"),
              (rooms[1], "/shop", ""), (rooms[2], "", "")]
    urls: list[str] = []
    ready = threading.Event()
    stopping: list[asyncio.Event] = []

    async def main() -> None:
        async with AsyncExitStack() as stack:
            for app, root_path, prefix in served:
                url = await stack.enter_async_context(serve_in_process(app, root_path=root_path))
                urls.append(url + prefix)
            stopping.append(asyncio.Event())
            ready.set()
            await stopping[0].wait()
        for room in rooms:
            await room.aclose()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the shops did not start")
    try:
        yield urls
    finally:
        loop.call_soon_threadsafe(stopping[0].set)
        thread.join(15)
        loop.close()


def _spelled(path: str, cases: list[bool], encoded: list[bool]) -> str:
    """``path`` with each letter in the case drawn and percent-encoded where drawn."""
    out = []
    for char, upper, encode in zip(path, cases, encoded, strict=False):
        char = char.upper() if upper and char.isalpha() else char
        out.append(f"%{ord(char):02X}" if encode and char.isalpha() else char)
    return "".join(out) + path[len(out):]


ROOM_HEADERS = ("session", "sold", "stock", "release", "state")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
def test_no_spelling_gets_round_the_middleware(make_settings: Callable[..., Settings]) -> None:
    settings_ = make_settings(capacity=2, gated_paths=("/checkout*",))

    with _shops_on_a_thread(settings_) as urls:
        @settings(max_examples=max(EXAMPLES // 5, 10), deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(cases=st.lists(st.booleans(), max_size=12),
               encoded=st.lists(st.booleans(), max_size=12),
               lead=st.sampled_from(["", "/", "/./", "/x/.."]),
               header=st.sampled_from(ROOM_HEADERS), upper=st.booleans(),
               underscore=st.booleans())
        def visit(cases: list[bool], encoded: list[bool], lead: str, header: str,
                  upper: bool, underscore: bool) -> None:
            path = lead + _spelled("/checkout/a", cases, encoded)
            name = f"x-waitingroom-{header}"
            name = name.upper() if upper else name
            name = name.replace("-", "_") if underscore else name
            for url in urls:
                with httpx.Client() as junk:  # no cookie, ever: never admitted
                    answer = junk.get(url + path, headers={name: "forged"})
                    assert not answer.text.startswith("checkout "), (url, path)
                    if answer.text.startswith(("other ", "wsgi ")):
                        assert answer.text.endswith(" nothing"), (url, path, answer.text)
                        assert not answer.text.lower().startswith("wsgi /checkout"), path

        visit()
