"""What a visitor can do besides wait: watch their status (``feed``: polling and
Server-Sent Events), say a page went away (``beacons``), read the status page
(``status_page``), be notified (``notify``, ``notifier``), move their place to
another device (``resume``), redeem an invite (``invites``) and earn a place with
proof of work (``pow``); their pages (``pages``).

Keeps: asking is not using (a status answer never starts a session); every
once-only link is spent in Redis; no redirect leaves the site.

May import: ``door``, ``room``, ``engine``, ``web`` and the shared modules.
"""
