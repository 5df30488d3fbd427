"""One error hierarchy. ``ScannerError`` and its children are user-facing: the CLI
prints their message on one line and exits with ``exit_code``, never a traceback."""


class ScannerError(Exception):
    """A problem the user can act on (bad argument, missing model, stale index...)."""

    exit_code = 4  # "could not run", apart from 2 "an asset could not be checked" (scanner.reports.ExitCode)


class ConfigError(ScannerError):
    """Settings or command-line values that cannot be used."""


class CatalogError(ScannerError):
    """The reference catalog cannot satisfy a request."""


class ModelMissingError(ScannerError):
    """A model's weights are not installed; the message says how to install them."""


class IndexMismatchError(ScannerError):
    """An index on disk was built for another detector, model or dimension."""


class IndexCorruptError(ScannerError):
    """An index on disk does not match its manifest checksum."""


class CalibrationError(ScannerError):
    """No calibrated thresholds exist for a detector/model that is about to run."""


class MediaError(Exception):
    """An asset that cannot be decoded or checked. Becomes an ``error`` result, not a crash."""
