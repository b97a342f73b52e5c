"""TLS to the origin and its health check: verifying, with an internal CA if given."""

from __future__ import annotations

import ssl


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Verifying TLS: the system's trusted authorities, and those in the PEM file
    ``ca_file`` (an origin's internal CA) if given. Raises ``OSError`` or
    ``ssl.SSLError`` if the file cannot be read as certificates."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context
