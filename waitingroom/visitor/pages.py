"""The pages of the visitor features: notify-me, moving a place to another device,
invites and the proof-of-work challenge."""

from __future__ import annotations

from html import escape

from waitingroom.web.i18n import text
from waitingroom.web.pages import HEAD, html_text, notify_form, switcher


def notify_page(lang: str = "en", *, room: str = "", here: str = "/", error: str = "",
                claim_minutes: int = 15) -> bytes:
    """After "tell me when it's my turn": the visitor may go (``claim_minutes``: how
    long the link will hold their slot), with a way back to ``here``; or, with
    ``error``, the form again saying what is wrong."""
    head = HEAD.format(lang=lang, title=html_text("notify_button", lang), extra="")
    body = (notify_form(room, here, lang, error) if error else
            f'<div class="card" role="status"><p>'
            f'{html_text("notify_done", lang, minutes=claim_minutes)}</p></div>\n'
            f'<p class="note"><a href="{escape(here)}">{html_text("back_to_line", lang)}</a></p>')
    return (head + f"""<h1>{html_text("notify_button", lang)}</h1>
{body}</main></body></html>
""").encode()


def resume_link_page(url: str, qr_src: str, lang: str = "en", *, room: str = "",
                     back: str = "/", here: str = "") -> bytes:
    """The "continue on another device" page: the link, and the same as a QR code. Its
    script keeps the place alive (it asks for the status as the queue page would) until
    the other device takes it; ``back`` is the page the visitor came from."""
    head = HEAD.format(lang=lang, title=html_text("other_device", lang),
                       extra='<script src="/_wr/static/keep.js" defer></script>\n')
    return (head + f"""<h1>{html_text("other_device", lang)}</h1>
<div class="card" id="wr-keep" data-room="{escape(room)}" data-to="{escape(back)}"
data-moved="{escape(text("moved", lang))}"><p>{html_text("other_device_how", lang)}</p>
<p><img src="{escape(qr_src)}" alt="{escape(text("qr_alt", lang))}" width="200" height="200">
</p><p class="note link"><a href="{escape(url)}">{escape(url, quote=False)}</a></p>
<p id="wr-keep-state" role="status">{html_text("keep_open", lang)}</p></div>
<p class="note"><a href="{escape(back)}">{html_text("back_to_line", lang)}</a></p>
{switcher(lang, here) if here else ""}</main></body></html>
""").encode()


def moved_page(lang: str = "en") -> bytes:
    """For the old device once its place moved to another one."""
    head = HEAD.format(lang=lang, title=html_text("moved_title", lang), extra="")
    return (head + f"""<h1>{html_text("moved_title", lang)}</h1>
<div class="card" role="status"><p>{html_text("moved", lang)}</p></div>
</main></body></html>
""").encode()


def resume_refused_page(lang: str = "en") -> bytes:
    """For a resume link that is used, expired, forged, or whose place is gone."""
    head = HEAD.format(lang=lang, title=html_text("moved_title", lang), extra="")
    return (head + f"""<h1>{html_text("resume_refused", lang)}</h1>
<div class="card"><p><a href="/">{html_text("to_shop", lang)}</a></p></div>
</main></body></html>
""").encode()


def challenge_page(room: str, challenge: str, difficulty: int) -> bytes:
    """Before a place in line, when ops ask for proof of work: the browser's script
    earns the place in a second or so, then the page becomes the queue."""
    head = HEAD.format(lang="en", title="One moment, please",
                        extra='<script src="/_wr/static/pow.js" defer></script>\n')
    return (head + f"""<h1>One moment, please</h1>
<div class="card" id="wr-pow" data-room="{escape(room)}" data-challenge="{escape(challenge)}"
data-difficulty="{difficulty}" role="status"><p id="wr-pow-state">Getting your place in
line: this takes a second or two, and keeps bots from taking places.</p>
<noscript><p>This launch needs JavaScript switched on to give out places in line.</p>
</noscript></div></main></body></html>
""").encode()


def invite_refused_page() -> bytes:
    """For an invite link that is used up, expired or not genuine."""
    head = HEAD.format(lang="en", title="Invite not valid", extra="")
    return (head + """<h1>This invite can't be used</h1>
<div class="card"><p>The link has been used up, has expired, or is not complete.
You can still join the line like everyone else.</p><p><a href="/">Go to the shop</a></p>
</div></main></body></html>
""").encode()
