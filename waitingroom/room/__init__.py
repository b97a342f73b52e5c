"""One room as this process serves it (``room.Room``): its live config, line,
sessions (``sessions``), the stock the origin reports (``sales``), admission rate and
wait times (``eta``), the shared circuit breaker (``breaker``), and where a visitor
stands and what they are told (``standing``).

Keeps: a visitor's standing costs at most one Redis round trip (none for a waiter
the process's copy of the line shows, nor for a session checked within a second);
a ticket or pass is read only if genuinely signed for this room.

May import: ``engine``, ``web`` and the shared modules.
"""
