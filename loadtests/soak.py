"""Scenario: the peak number of shoppers, held for the whole run."""

from shapes import Soak
from shopper import Shopper

__all__ = ["Shopper", "Soak"]
