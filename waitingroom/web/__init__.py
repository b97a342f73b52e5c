"""HTTP building blocks every feature shares, with no feature logic in them: the
request as the room reads it (``request``), ASGI helpers and small bodies (``asgi``),
the refusals any endpoint may give (``answers``), canonical paths and the path
router (``paths``), per-process limits (``limits``), request ids (``request_id``),
every visitor page, rendered from Jinja2 templates the shop may override
(``pages``, ``templates``, ``templates/``), their texts in gettext catalogs, one per
language (``i18n``, ``locales/``), the static files (``static/``) and the uvicorn
protocol that bounds request heads (``server``).

Keeps: a path is routed on its canonical form and passed on in just that form;
every value on a page is escaped, whoever wrote the template; every page carries
the security headers; cookies are HttpOnly and SameSite, Secure
over TLS.

May import: the shared modules only.
"""
