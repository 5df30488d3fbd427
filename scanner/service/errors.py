"""Request-level failures of the HTTP service: every one becomes a small JSON body.

``{"error": {"status": 413, "code": "upload_too_large", "message": "..."}}``
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure answered with ``status`` and a JSON error body (never a traceback)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message)


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message}}
