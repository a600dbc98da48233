"""The settings of `xception serve`, with their defaults in this one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """How the server batches, bounds and answers requests.

    `max_queue` bounds the images waiting for inference (not the requests): past it a request is
    refused with 503 and Retry-After. At most `max_queue + max_batch_size` requests are admitted at
    once (reading, decoding, queued or running), each body at most `max_body_bytes`; the others get
    the same 503 before their body is read. So memory stays bounded under any load.
    """

    host: str = "127.0.0.1"  # loopback only unless asked: a model server is not a public service by default
    port: int = 8000
    max_batch_size: int = 16
    max_delay_ms: float = 10.0  # how long the first request of a batch waits for others
    max_queue: int = 64
    max_body_bytes: int = 20 * 1024 * 1024
    top_k: int = 5
    graceful_timeout_s: float = 60.0  # after SIGTERM, how long in-flight requests may take

    def __post_init__(self) -> None:
        for field in ("max_batch_size", "max_queue", "max_body_bytes", "top_k"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field.replace('_', '-')} must be >= 1, got {getattr(self, field)}")
        if self.max_delay_ms < 0:
            raise ValueError(f"max-delay-ms must be >= 0, got {self.max_delay_ms}")
        if self.max_queue < self.max_batch_size:
            raise ValueError(f"max-queue ({self.max_queue}) must be >= max-batch-size ({self.max_batch_size}), "
                             "or no batch could ever fill")
