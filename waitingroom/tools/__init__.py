"""Tools around the product: the one-command demo (``demo``), the capacity planner
(``simulate``) and a Redis server for both, from Debian or a wheel
(``redis_server``).

May import: anything in the package.
"""
