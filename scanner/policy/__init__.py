"""Pure rules from matches + catalog metadata + stage to a verdict."""

from scanner.policy.calibration import Calibration, Thresholds, load_calibration
from scanner.policy.rules import Match, decide

__all__ = ["Calibration", "Thresholds", "load_calibration", "Match", "decide"]
