"""Connecting to Redis: a standalone server, a Cluster or a primary named by
Sentinels, with the timeouts, retries and health checks every call relies on."""

from __future__ import annotations

import inspect
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

OLDEST_REDIS = (7, 0)
"""The line's bitmaps count bit ranges (``BITCOUNT … BIT``), new in Redis 7.0."""
# Connections per process. Past this, requests wait for one (up to the timeout)
# rather than fail: a spike queues in memory instead of erroring.
_POOL_SIZE = 64
_POOL_WAIT_SECONDS = 5
# A Redis that stops answering costs a visitor at most this long before the 503 retry
# page (it must exceed WAITAOF's 2 s wait for a capture's fsync).
_REDIS_TIMEOUT_SECONDS = 5
_REDIS_CONNECT_TIMEOUT_SECONDS = 2
RETRY_SECONDS = 0.5
"""The longest wait between two tries of a command that met a broken connection: once
Redis is back, every call succeeds within this (a pooled connection that died with the
old server fails once, is replaced and the command sent again)."""
_RETRIES = 3
# A pooled connection idle this long is checked (PING) before use.
_HEALTH_CHECK_SECONDS = 5
CLUSTER_REFRESH_SECONDS = 0.1
"""After a connection error, how soon a process may ask a Cluster again which node
holds which slots (redis-py >= 8.2 waits a second by default: after a failover that
left visitors 503s up to a second after the replica had won; loadtests/failover.py).
During an outage it costs each process a CLUSTER SLOTS to a live node per tenth of a
second."""


def _client_options() -> dict[str, Any]:
    """How every connection to Redis behaves: timeouts, retries, health checks.

    Only connection errors are retried (the scripts are idempotent per visitor or
    session, so a command whose reply was lost may run twice); a timeout is not, or a
    stalled Redis would hold a visitor for several timeouts.
    """
    return {"socket_timeout": _REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": _REDIS_CONNECT_TIMEOUT_SECONDS,
            "health_check_interval": _HEALTH_CHECK_SECONDS,
            "retry": Retry(ExponentialWithJitterBackoff(cap=RETRY_SECONDS, base=0.05),
                           _RETRIES, supported_errors=(RedisConnectionError,))}


def connect(redis_url: str) -> Redis | RedisCluster:
    """A client for ``redis_url`` (``redis://``, ``rediss://``, ``unix://``, with
    ``+cluster`` a Redis Cluster, ``redis+sentinel://`` a primary named by Sentinels),
    with the timeouts, retries and health checks of ``_client_options``."""
    scheme, _, rest = redis_url.partition("://")
    options = _client_options()
    if scheme == "redis+sentinel":
        return _sentinel_primary(rest, options)
    if scheme.endswith("+cluster"):
        if "topology_refresh_min_interval" in inspect.signature(RedisCluster).parameters:
            options["topology_refresh_min_interval"] = CLUSTER_REFRESH_SECONDS
        return RedisCluster.from_url(f"{scheme.removesuffix('+cluster')}://{rest}",
                                     max_connections=_POOL_SIZE, **options)
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=_POOL_SIZE,
                                           timeout=_POOL_WAIT_SECONDS, **options)
    return Redis.from_pool(pool)


def too_old_version(info: dict[str, Any]) -> str | None:
    """The version of a server in an ``INFO server`` answer (one server's, or a cluster
    client's: {node: that node's answer}) too old for the room's scripts; None if
    every one will do."""
    nodes = [info] if "redis_version" in info else list(info.values())
    for node in nodes:
        version = str(node.get("redis_version", ""))
        if not server_supported(version):
            return version
    return None


def server_supported(version: str) -> bool:
    """True if a server reporting ``redis_version`` ``version`` (e.g. "7.0.15") runs the
    room's scripts; an unreadable version is given the benefit of the doubt."""
    parts = version.split(".")[:2]
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return True
    return (int(parts[0]), int(parts[1])) >= OLDEST_REDIS


def _sentinel_primary(address: str, options: dict[str, Any]) -> Redis:
    """A client of the primary the Sentinels at ``host:port[,host:port]/service[/db]``
    name; it follows a failover to the new primary."""
    hosts, _, path = address.partition("/")
    service, _, db = path.partition("/")
    sentinels = []
    for entry in hosts.split(","):
        host, _, port = entry.rpartition(":")
        sentinels.append((host, int(port)) if host else (entry, 26379))
    timeouts = {name: options[name] for name in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts, **options)
    return cast(Redis, sentinel.master_for(service, db=int(db or 0)))
