"""Raw-socket visitors: honest shoppers and attackers, each with a token of their own."""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass
from urllib.parse import unquote

from tests.adversarial.rig import GATED, TOKEN, Rig, answers_in

HOWS = ("get", "post", "hangup-body", "hangup-answer", "pipeline", "chunked-cut",
        "huge-head", "smuggle", "pipelined-huge", "signals")
"""What a visitor may do on its connection (``signals``: send the room's own headers
in every spelling; ``pipelined-huge``: a small request, then an oversized head, in one
write)."""
FORGED = ("X-WaitingRoom-Session: forged", "X_WaitingRoom_Session: forged",
          "X-WaitingRoom-Release: 1", "x-waitingroom-sold: 9", "X-WAITINGROOM-STOCK: 0",
          "X-WaitingRoom-State: admitted")
CUT_SHORT = ("hangup-body", "chunked-cut", "smuggle")
"""Visitors who never finish sending their request."""
SPELLINGS = ("plain", "dots", "double-slash", "escaped", "open-dots", "param", "dot-param")
"""Ways to write a path (the gate must see through every one)."""
UNSAFE_SPELLINGS = ("dot-param",)
"""Spellings with no safe canonical form: refused (400) whoever asks."""
_PATIENCE_SECONDS = 15.0  # a bound on a hung test, not a speed expectation


@dataclass(frozen=True)
class Visit:
    """One visitor's plan."""

    token: str
    act: str
    """What the origin is asked to do with the request."""
    how: str
    gated: bool
    """Asks for the order flow (else an open path)."""
    admitted: bool
    """Holds a pass (else an attacker or a newcomer, who has none)."""
    spelling: str = "plain"
    pad: int = 10
    """Bytes of body promised but never sent, for those who cut their request short."""

    @property
    def tokens(self) -> set[bytes]:
        """Every token this visitor's requests carry."""
        return {self.token.encode(), self.token.encode() + b"x"}

    def path(self, token: str) -> str:
        """The path asked for, as spelled."""
        base = f"{GATED}/{token}" if self.gated else f"/static/{token}"
        rest = base.lstrip("/")
        return {"plain": base, "dots": f"/x/../{rest}", "double-slash": f"//{rest}",
                "escaped": f"/%{ord(rest[0]):02x}{rest[1:]}", "open-dots": f"/static/../{rest}",
                "param": f"/{rest.replace('/', ';p=1/', 1)}",
                "dot-param": f"/static/..;/{rest}"}[self.spelling]


def gated_for_a_normalising_origin(path: str) -> bool:
    """Would an origin that decodes, drops ``;params`` and resolves dot segments (Tomcat,
    Spring, nginx) serve ``path`` from the order flow?"""
    plain = "/".join(segment.split(";", 1)[0] for segment in unquote(path).split("/"))
    return posixpath.normpath("/" + plain.lstrip("/")).startswith(GATED)


def _request(visit: Visit, token: str, rig: Rig, *, method: str = "GET",
             extra: tuple[str, ...] = ()) -> bytes:
    lines = [f"{method} {visit.path(token)} HTTP/1.1", "Host: shop.test", f"x-token: {token}",
             f"x-act: {visit.act}", *extra]
    if visit.admitted:
        lines.append("Cookie: " + rig.passes[sorted(rig.passes)[hash(visit.token) % len(
            rig.passes)]])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def visit(rig: Rig, plan: Visit) -> bytes:
    """Carry out ``plan`` on a fresh connection; everything received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    body = b"body " + plan.token.encode() + b" " * 5
    expected = 1
    try:
        if plan.how in ("get", "hangup-answer"):
            writer.write(_request(plan, plan.token, rig))
        elif plan.how == "post":
            writer.write(_request(plan, plan.token, rig, method="POST",
                                  extra=(f"Content-Length: {len(body)}",)) + body)
        elif plan.how in ("hangup-body", "smuggle"):
            extra = (f"Content-Length: {len(body) + plan.pad}",)
            if plan.how == "smuggle":  # a request line hidden in a header value
                extra += (f"X-Pad: GET {GATED}/smuggled HTTP/1.1",)
            writer.write(_request(plan, plan.token, rig, method="POST", extra=extra) + body)
        elif plan.how == "pipeline":
            writer.write(_request(plan, plan.token, rig) + _request(plan, plan.token + "x", rig))
            expected = 2
        elif plan.how == "pipelined-huge":  # the second head counts as much as a first
            writer.write(_request(plan, plan.token, rig) + _request(
                plan, plan.token + "x", rig, extra=("X-Big: " + "b" * 40_000,)))
            expected = 2
        elif plan.how == "signals":
            writer.write(_request(plan, plan.token, rig, extra=FORGED))
        elif plan.how == "chunked-cut":
            writer.write(_request(plan, plan.token, rig, method="POST",
                                  extra=("Transfer-Encoding: chunked",)) + b"5\r\nhello\r\n")
        else:  # huge-head
            writer.write(_request(plan, plan.token, rig, extra=("X-Big: " + "b" * 40_000,)))
        await writer.drain()
        if plan.how in CUT_SHORT:
            await asyncio.sleep(0.01)  # let the proxy start forwarding, then vanish
            return b""
        if plan.how == "hangup-answer":
            try:
                return await asyncio.wait_for(reader.read(1), 0.05)
            except TimeoutError:
                return b""
        received = b""
        async with asyncio.timeout(_PATIENCE_SECONDS):
            while answers_in(received) < expected and (chunk := await reader.read(65536)):
                received += chunk
        return received
    except ConnectionError:
        return b""
    finally:
        writer.close()


def check(rig: Rig, plans: list[Visit], received: list[bytes], seen_from: int) -> None:
    """The wall's properties over one batch of visitors."""
    for plan, data in zip(plans, received, strict=True):
        # Nobody receives an answer (or a cookie) meant for another, nor the room's own
        # headers as an origin sent them.
        assert set(TOKEN.findall(data)) <= plan.tokens, (plan, data[:300])
        assert b": forged" not in data, (plan, data[:300])
        if (plan.admitted and plan.how in ("get", "post") and plan.act in ("ok", "chunked")
                and plan.spelling not in UNSAFE_SPELLINGS):
            assert plan.token.encode() in data, (plan, data[:300])  # the wall lets them in
    # Once nothing is in flight (no origin connection stays busy after its visitor
    # has gone, or this never comes):
    assert rig.settle(_PATIENCE_SECONDS), (rig.origin.busy, rig.proxy.busy_connections)
    passes = {p.token for p in plans if p.admitted} | {"tok-warmup"}
    cut = {p.token for p in plans if p.how in CUT_SHORT}
    huge = {p.token for p in plans if p.how == "pipelined-huge"}
    for seen in rig.origin.seen[seen_from:]:
        # Only the room speaks for the room: nothing a visitor sent posing as it arrives.
        assert not seen.forged and seen.session != "forged", seen
        assert seen.token.removesuffix("x") not in huge or not seen.token.endswith("x"), seen
        if gated_for_a_normalising_origin(seen.path):
            # Nothing reaches the order flow without an admitted visitor's session.
            assert seen.session in rig.passes, seen
            assert seen.token.removesuffix("x") in passes, seen
        # A request its visitor never finished never reaches the origin as whole.
        assert not (seen.token in cut and seen.complete), seen


async def run_batch(rig: Rig, plans: list[Visit]) -> list[bytes]:
    """All ``plans`` at once, interleaving as the scheduler pleases."""
    return list(await asyncio.gather(*(visit(rig, p) for p in plans)))
