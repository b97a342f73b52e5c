"""A waiter's chance of being served before the stock runs out, told honestly and
steadily: from the stock left, what a session buys and the place in line, with
hysteresis so that small moves of the estimate do not flip the answer back and forth.

The stock is expected to last to place ``reach = stock / sales_per_session - active``
(those in the shop buy first). A waiter well inside it is ``likely``, well outside it
``unlikely``, near it ``uncertain``: the band is 10% of the reach either side (at least
5 places). To change its answer a waiter's place must cross the band's edge by a
further 5% of the reach: the previous answer (the page sends it back) holds until then.
"""

from __future__ import annotations

from waitingroom.status import Chance

LEVELS = ("likely", "uncertain", "unlikely")
_BAND = 0.10
_HOLD = 0.05
_MIN_BAND = 5.0


def chance_of(position: int, *, stock: int, sales_per_session: float, active: int,
              previous: str | None = None) -> Chance:
    """The chance of the waiter at ``position`` (1 = next), given ``previous``, the
    answer last shown to them (anything else: none)."""
    per_session = max(sales_per_session, 0.01)
    reach = stock / per_session - active
    band = max(_BAND * reach, _MIN_BAND)
    hold = max(_HOLD * reach, 0.0)
    likely_edge, unlikely_edge = reach - band, reach + band
    if previous == "likely":
        likely_edge += hold
    elif previous == "unlikely":
        unlikely_edge -= hold
    elif previous == "uncertain":
        likely_edge -= hold
        unlikely_edge += hold
    level = ("likely" if position <= likely_edge else
             "unlikely" if position > unlikely_edge else "uncertain")
    return Chance(level, max(0, round(reach)), stock, round(per_session, 3))
