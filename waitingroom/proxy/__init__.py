"""The reverse proxy in front of any HTTP origin (``proxy``), over a pool of
keep-alive connections (``origin``) each strict about reuse (``connection``).

Keeps: one visitor's bytes never reach another's request or answer; hop-by-hop
headers are not passed on.

May import: ``web`` and the shared modules.
"""
