"""A tracker that cannot stop, slow down or change the training: its calls run in order on a
thread of its own, the training only queues them. The first call that fails (a server gone, a
disk full) is said in one warning naming the tracker and the call; the tracker is then left out
for the rest of the run. At the end the training waits for the queue at most `FLUSH_TIMEOUT_S`.

The thread touches no tensor and no random generator: the weights of a run are bit-identical
with and without trackers, failing or not (tests/test_trackers.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("xception.train.trackers")

FLUSH_TIMEOUT_S = 60.0  # the longest the end of a run waits for a tracker's queued calls
QUEUE_SIZE = 10_000  # calls waiting; beyond, the tracker is behind for good and is left out


class GuardedTracker:
    """Wraps a `Tracker`: the same calls, queued; `open` returns None (warned) when it cannot open."""

    def __init__(self, tracker: Any) -> None:
        self.tracker, self.name, self.continued = tracker, tracker.name, tracker.continued
        self.failed = False
        self.lock = threading.Lock()
        self.calls: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self.thread = threading.Thread(target=self._work, name=f"tracker-{self.name}", daemon=True)
        self.thread.start()

    @classmethod
    def open(cls, tracker_class: type, run_dir: Path, **kwargs: Any) -> GuardedTracker | None:
        try:
            return cls(tracker_class.open(run_dir, **kwargs))
        except Exception as error:  # noqa: BLE001 - any failure of a tracker library: said, never raised
            log.warning("tracker %s failed to start (%s: %s); training without it", tracker_class.name,
                        type(error).__name__, _one_line(error))
            return None

    def state(self) -> dict[str, Any]:
        return self.tracker.state()

    def log_params(self, params: dict[str, Any]) -> None:
        self._queue("log_params", params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._queue("log_metrics", metrics, step)

    def log_image(self, path: Path, step: int) -> None:
        self._queue("log_image", path, step)

    def log_file(self, path: Path) -> None:
        self._queue("log_file", path)

    def close(self, outcome: str) -> None:
        """Queue the tracker's own close, then wait for the queue, at most FLUSH_TIMEOUT_S. A failed
        tracker is not waited for (its thread may still be inside the call that failed it)."""
        if self.failed:
            return
        self._queue("close", outcome)
        self.thread.join(FLUSH_TIMEOUT_S)
        if self.thread.is_alive():
            self._fail(f"still busy after {FLUSH_TIMEOUT_S:.0f} s at the end of training; not waiting for it")

    def _queue(self, method: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            self.calls.put_nowait((method, args))
        except queue.Full:
            self._fail(f"{QUEUE_SIZE} calls behind")

    def _work(self) -> None:
        while True:
            method, args = self.calls.get()
            if not self.failed:
                try:
                    getattr(self.tracker, method)(*args)
                except Exception as error:  # noqa: BLE001 - a tracker's failure is said once, never raised
                    self._fail(f"{method}: {type(error).__name__}: {_one_line(error)}")
            if method == "close":
                return

    def _fail(self, what: str) -> None:
        with self.lock:  # the training's thread and the tracker's may both find it failed
            if self.failed:
                return
            self.failed = True
        log.warning("tracker %s failed (%s); the training goes on without it", self.name, what)


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."
