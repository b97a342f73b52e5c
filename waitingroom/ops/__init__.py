"""For the people running a launch: the admin API (``admin``, ``admin_bodies``),
the dashboard page and its history (``dashboard``, ``history``), Prometheus metrics
(``metrics``), the ``waitingroom admin`` client (``admin_cli``) and JSON logs
(``logging``).

Keeps: every admin call needs a bearer token compared in constant time; every
change is audited; tokens are never logged.

May import: ``gate``, ``room``, ``engine``, ``web`` and the shared modules.
"""
