"""The pages of the visitor features: notify-me, moving a place to another device,
invites and the proof-of-work challenge."""

from __future__ import annotations

from waitingroom.web.renderer import Pages


def notify_page(pages: Pages, lang: str, *, room: str = "", here: str = "/",
                error: str = "", claim_minutes: int = 15) -> bytes:
    """After "tell me when it's my turn": the visitor may go (``claim_minutes``: how
    long the link will hold their slot), with a way back to ``here``; or, with
    ``error``, the form again saying what is wrong."""
    return pages.render("notify.html", lang, room=room, here=here, error=error,
                        claim_minutes=claim_minutes)


def resume_link_page(pages: Pages, url: str, qr_src: str, lang: str, *, room: str,
                     back: str, here: str) -> bytes:
    """The "continue on another device" page: the link, and the same as a QR code. Its
    script keeps the place alive until the other device takes it; ``back`` is the page
    the visitor came from."""
    return pages.render("resume_link.html", lang, here=here, url=url, qr_src=qr_src,
                        room=room, back=back)


def moved_page(pages: Pages, lang: str, here: str = "") -> bytes:
    """For the old device once its place moved to another one (``here``: the page
    asked for, for the language switcher)."""
    return pages.render("moved.html", lang, here=here)


def resume_refused_page(pages: Pages, lang: str) -> bytes:
    """For a resume link that is used, expired, forged, or whose place is gone."""
    return pages.render("resume_refused.html", lang)


def challenge_page(pages: Pages, lang: str, room: str, challenge: str,
                   difficulty: int) -> bytes:
    """Before a place in line, when ops ask for proof of work: the browser's script
    earns the place in a second or so, then the page becomes the queue."""
    return pages.render("challenge.html", lang, room=room, challenge=challenge,
                        difficulty=difficulty)


def invite_refused_page(pages: Pages, lang: str) -> bytes:
    """For an invite link that is used up, expired or not genuine."""
    return pages.render("invite_refused.html", lang)
