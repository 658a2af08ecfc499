"""Errors that cross the boundary into scripts, with flora's codes."""

from __future__ import annotations

DISCORD_RATE_LIMITED = "DISCORD_RATE_LIMITED"
DISCORD_HTTP_ERROR = "DISCORD_HTTP_ERROR"
SCOPE_FORBIDDEN = "SCOPE_FORBIDDEN"
INVALID_INPUT = "INVALID_INPUT"
OP_UNAVAILABLE = "OP_UNAVAILABLE"
INTERNAL = "INTERNAL"


class OpError(Exception):
    """An op failed; ``code`` and ``message`` reach the script as an ``Error``."""

    def __init__(self, code: str, message: str, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def to_json(self) -> dict:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.extra:
            out["extra"] = self.extra
        return out


def invalid(field: str, reason: str) -> OpError:
    return OpError(INVALID_INPUT, f"Invalid input for {field}: {reason}")


def forbidden(reason: str) -> OpError:
    return OpError(SCOPE_FORBIDDEN, f"Forbidden: {reason}")


class RuntimeStartError(Exception):
    """The runtime could not start (a worker died or never connected); the message says what did not happen."""
