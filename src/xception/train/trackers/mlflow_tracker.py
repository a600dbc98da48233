"""MLflow: one MLflow run per training run, through `mlflow.MlflowClient` (no global active run, so
that an experiment's runs in one process stay apart). Where: `MLFLOW_TRACKING_URI` (MLflow's
default, a local SQLite file, without it) and `MLFLOW_EXPERIMENT_NAME` (MLflow's Default
experiment without it); a continued run keeps the URI and run id config.json recorded."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from xception.errors import UserError
from xception.train.trackers import Tracker

PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value (longer lists of class names are cut)
BATCH = 100  # MLflow's limit on parameters in one log_batch call
PROBE_TIMEOUT_S = 5.0
# MLflow's run status for each outcome: a stopped run (to be continued) is KILLED until it goes on.
STATUS = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, client: Any, *, tracking_uri: str, experiment_id: str, run_id: str, continued: bool) -> None:
        self.client, self.tracking_uri, self.experiment_id, self.run_id = client, tracking_uri, experiment_id, run_id
        self.continued = continued

    @classmethod
    def check(cls, *, fresh: bool) -> None:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if fresh and urlparse(uri).scheme in ("http", "https"):
            problem = unreachable(uri)
            if problem:
                raise UserError(f"--tracker mlflow: no MLflow server answers at {uri} (MLFLOW_TRACKING_URI): {problem}; "
                                "start it, point MLFLOW_TRACKING_URI at one, or leave --tracker mlflow out")

    @classmethod
    def open(cls, run_dir: Path, *, run_name: str, earlier: dict[str, Any] | None,
             first_step: int | None) -> MlflowTracker:
        import mlflow
        from mlflow import MlflowClient

        if earlier is not None:  # the run an earlier attempt created, on its server
            client = MlflowClient(tracking_uri=earlier["tracking_uri"])
            client.update_run(earlier["run_id"], status="RUNNING")
            return cls(client, tracking_uri=earlier["tracking_uri"], experiment_id=earlier["experiment_id"],
                       run_id=earlier["run_id"], continued=True)
        uri = mlflow.get_tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if experiment_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
            found = client.get_experiment_by_name(name) if name else None
            experiment_id = (found.experiment_id if found else client.create_experiment(name)) if name else "0"
        run = client.create_run(experiment_id, run_name=run_name, tags={"mlflow.source.name": "xception train"})
        return cls(client, tracking_uri=uri, experiment_id=experiment_id, run_id=run.info.run_id, continued=False)

    def state(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id, "run_id": self.run_id}

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in metrics.items()])

    def log_image(self, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def log_file(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, outcome: str) -> None:
        self.client.set_terminated(self.run_id, status=STATUS[outcome])


def unreachable(uri: str) -> str | None:
    """Why nothing accepts a connection at the http(s) `uri`'s host and port, or None."""
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return str(error) or type(error).__name__
    return None
