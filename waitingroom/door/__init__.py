"""The room's door: how a visitor's request and answer carry their place, pass or first
visit (``cookies``), and where a visitor stands, read from them (``standing``).

Keeps: a visitor's standing costs at most one Redis round trip (none for a waiter the
process's copy of the line shows, nor for a session checked within a second); a
ticket or pass is read only if genuinely signed for this room.

May import: ``room``, ``engine``, ``web`` and the shared modules.
"""
