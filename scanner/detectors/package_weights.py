"""Moved to ``scanner.models.package_weights``; this name stays while other modules move over."""

from scanner.models.package_weights import *  # noqa: F401,F403
from scanner.models.package_weights import _HASHES, _checked, _missing, _sha256  # noqa: F401
