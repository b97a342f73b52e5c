"""Data capture while the order system is down: the form and its submissions
(``desk``, ``endpoint``, ``pages``), the local spool used when Redis is out of reach
(``spool``), the replay into the backend in arrival order (``replay``) and the
export (``export``).

Keeps: a reference is shown only once the details are durably stored (Redis with
the AOF fsync'd, or the spool fsync'd); every capture is replayed once, in order.

May import: ``door``, ``room``, ``engine``, ``web`` and the shared modules.
"""
