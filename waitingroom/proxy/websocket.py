"""WebSockets through the proxy: the visitor's connection is accepted only once the
origin has accepted its own, then frames pass both ways until either side closes.
The origin side speaks the protocol with aiohttp's client (a well-kept
implementation, not a hand-written one); the visitor's side is the ASGI server's."""

from __future__ import annotations

import asyncio
import logging
import ssl
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from starlette.types import Receive, Scope, Send

from waitingroom.proxy.headers import HOP_BY_HOP, forwarded
from waitingroom.tls import tls_context

logger = logging.getLogger("waitingroom.proxy")

MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message passed either way (a larger one closes the connection, 1009)."""
_HANDSHAKE = HOP_BY_HOP | {
    b"host", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
    b"sec-websocket-protocol", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
    b"content-length"}
"""The visitor's headers not passed on: the origin handshake makes its own."""


class OriginSockets:
    """Forward WebSocket connections to ``origin`` (``http[s]://host:port[/prefix]``)."""

    def __init__(self, origin: str, *, connect_timeout: float, ca_file: str = "",
                 trust_forwarded_for: bool = False) -> None:
        """``trust_forwarded_for``: pass on a client's X-Forwarded-For (a load
        balancer's), else only the address it connected from."""
        self._trust_forwarded_for = trust_forwarded_for
        parts = urlsplit(origin)
        self._base = urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc,
                                 parts.path.rstrip("/"), "", ""))
        self._ssl: ssl.SSLContext | bool = tls_context(ca_file) if parts.scheme == "https" \
            else True  # aiohttp's default: a plain ws:// origin uses none
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Connect the visitor's socket (``scope``) to the origin's, frames both ways."""
        if (await receive())["type"] != "websocket.connect":
            return
        if self._session is None:
            # No pool limit (aiohttp's default is 100 sockets at once, for every
            # visitor together): the proxy bounds sockets per client network instead.
            self._session = aiohttp.ClientSession(
                auto_decompress=False, connector=aiohttp.TCPConnector(limit=0))
        headers, host, forwarded_for, offered = [], b"", b"", []
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"x-forwarded-for" and self._trust_forwarded_for:
                forwarded_for = value
            elif name == b"sec-websocket-protocol":
                offered += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
            elif name not in _HANDSHAKE:
                headers.append((name.decode("latin-1"), value.decode("latin-1")))
        headers += [(name.decode(), value.decode("latin-1"))
                    for name, value in forwarded(scope, forwarded_for, host)]
        query = scope["query_string"].decode("latin-1")
        url = self._base + quote(scope["path"]) + ("?" + query if query else "")
        try:
            async with asyncio.timeout(self._connect_timeout):
                origin = await self._session.ws_connect(
                    url, headers=headers, protocols=offered, ssl=self._ssl,
                    max_msg_size=MAX_MESSAGE_BYTES, autoping=True, compress=0,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("origin refused a websocket for %s: %r", scope["path"], exc)
            await send({"type": "websocket.close", "code": 1011})  # before accept: a 403
            return
        async with origin:
            await send({"type": "websocket.accept", "subprotocol": origin.protocol})
            await _relay(origin, receive, send)

    async def aclose(self) -> None:
        """Close the client session (at shutdown)."""
        if self._session is not None:
            await self._session.close()


async def _relay(origin: aiohttp.ClientWebSocketResponse, receive: Receive,
                 send: Send) -> None:
    """Frames both ways until one side closes; the other is then closed too."""
    async def visitor_to_origin() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await origin.close(code=message.get("code", 1000))
                return
            if message.get("text") is not None:
                await origin.send_str(message["text"])
            elif message.get("bytes") is not None:
                await origin.send_bytes(message["bytes"])

    async def origin_to_visitor() -> None:
        async for frame in origin:
            if frame.type is aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": frame.data})
            elif frame.type is aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": frame.data})
            else:  # an error (a message too large, a broken frame): close
                break
        await send({"type": "websocket.close", "code": origin.close_code or 1011})

    tasks = [asyncio.ensure_future(visitor_to_origin()),
             asyncio.ensure_future(origin_to_visitor())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception) and not isinstance(
                    outcome, OSError | aiohttp.ClientError):  # a hang-up is no news
                logger.warning("websocket relay ended by %r", outcome)
