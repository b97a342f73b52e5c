"""Tools around the product: the one-command demo (``demo``), the capacity planner
(``plan``: the launch to plan and what planning found; ``model``: the room's rules in
plain Python, the default; ``simulate``: its own scripts on a private Redis,
``--exact``) and a Redis server for them, from Debian or a wheel (``redis_server``).

May import: anything in the package.
"""
