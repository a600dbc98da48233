"""A stop asked for by a signal: SLURM's warning before a job's time limit or its preemption
(`#SBATCH --signal=USR1@120`, `scancel --signal=USR1`), or anyone's `kill -USR1`; SIGTERM, what
Kubernetes sends before it evicts or preempts a pod (then SIGKILL after the pod's
`terminationGracePeriodSeconds`), what `scancel` and `docker stop` send, and what torchrun's agent
sends its workers when it is told to terminate (it waits 30 s before SIGKILL).

The signal only sets a flag; after every optimizer step the processes agree (one all-reduce of a
flag) whether any of them received it, so all of them stop after the same step, where the run
saves its checkpoint and returns as a stopped run does. Under torchrun the signal reaches an agent
too: launchers keep the agent from dying of SIGUSR1 (configs/cluster/slurm/train.sbatch,
docs/clusters.md). A run stopped by SIGTERM exits with status 143 (128 + 15, as if the signal had
killed it, so that a restart policy such as Kubernetes' `OnFailure` starts it again), by SIGUSR1
with 0 (the SLURM script requeues the job where the run directory holds no `final.json`).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import torch

from xception.distributed import all_gather_objects, all_reduce_sum

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


def exit_status(stopped_by: str | None) -> int:
    """The command's exit status after a run that `stopped_by` this signal (None: not stopped by one)."""
    return 128 + signal.SIGTERM if stopped_by == "SIGTERM" else 0


class StopSignal:
    """Catches `STOP_SIGNALS` while a run trains (only in the main thread, where Python allows a
    handler; elsewhere the signal keeps its default action) and says when every process must stop."""

    def __init__(self) -> None:
        self.received: str | None = None  # the signal's name, once one arrived at this process
        self.stopped_by: str | None = None  # set once the processes agreed to stop
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._receive)

    def _receive(self, number: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(number).name

    def agreed(self) -> bool:
        """Whether any process has received a stop signal: True on every process, at the same step."""
        if self.stopped_by is None:
            anyone = all_reduce_sum(torch.tensor([int(self.received is not None)]))
            if int(anyone.item()):  # once: the signal's name, from whichever process received it
                self.stopped_by = next(name for name in all_gather_objects(self.received) if name is not None)
        return self.stopped_by is not None

    def close(self) -> None:
        """Give the signals back their earlier handlers."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
