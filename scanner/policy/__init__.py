"""Pure rules from matches + catalog metadata + stage to a verdict."""

from scanner.policy.calibration import Calibration, Thresholds, load_calibration
from scanner.policy.consent import ConsentStatus, consent_status
from scanner.policy.rules import Match, decide

__all__ = ["Calibration", "Thresholds", "load_calibration", "Match", "decide", "ConsentStatus", "consent_status"]
