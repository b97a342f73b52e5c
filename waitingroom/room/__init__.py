"""One room as this process serves it (``room.Room``): its live config, line,
sessions (``sessions``), the stock the origin reports (``sales``), admission rate and
wait times (``eta``), the shared circuit breaker (``breaker``), its background work
(``ticker``) and what a waiter was told (``told``). No HTTP: a visitor's request,
cookies and standing are the door's (``waitingroom/door/``).

Keeps: a session is checked in Redis at most once a second; the room's jobs run in
order every half second, and one job's fault never stops the others.

May import: ``engine``, ``web`` and the shared modules.
"""
