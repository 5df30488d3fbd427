"""Moved to ``scanner.models.weights``; this name stays while other modules move over."""

from scanner.models.weights import *  # noqa: F401,F403
from scanner.models.weights import _known_sha256, _locations, _write_receipt  # noqa: F401
