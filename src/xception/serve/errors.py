"""A request the server refuses: its HTTP status and the message the client reads."""

from __future__ import annotations


class RequestError(Exception):
    """A 4xx (or 503) answer: `status` and a one-line message naming what is wrong with the request.
    The protocol's error body is {"error": message}; `headers` go with it (Retry-After)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
