"""Scenario: shoppers in five equal steps from the base to the peak."""

from shapes import StepRamp
from shopper import Shopper

__all__ = ["Shopper", "StepRamp"]
