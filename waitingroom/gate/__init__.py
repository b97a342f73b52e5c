"""The gate: for one room, a request for a gated path is let through (admitted),
answered with the queue page (waiting) or with the capture form (``gate``); the
table of every room's own ``/_wr/`` endpoints (``routes``); the rooms a process
gates, kept up with the registry in Redis (``directory``).

Keeps: never more sessions than the room's capacity; only the gate adds the session
header the origin trusts.

May import: ``capture``, ``visitor``, ``door``, ``room``, ``engine``, ``web`` and the shared
modules.
"""
