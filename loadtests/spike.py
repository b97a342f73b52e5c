"""Scenario: launch spike (idle, 10x within seconds, decay) of shoppers."""

from shapes import LaunchSpike
from shopper import Shopper

__all__ = ["LaunchSpike", "Shopper"]
