"""configs/cluster/kubeflow/pytorchjob.yaml against the PyTorchJob CRD's v1 schema (the training
operator's own, tests/data/kubeflow_pytorchjob_v1_schema.json) with jsonschema, strictly (an unknown
field fails, as `kubectl apply --validate=strict` does), against the operator's admission rules
(release-1.9, pkg/webhooks/pytorch/pytorchjob_webhook.go), and against docs/clusters.md's command."""

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from cluster_docs import documented_launch

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "configs" / "cluster" / "kubeflow" / "pytorchjob.yaml"
SCHEMA = Path(__file__).parent / "data" / "kubeflow_pytorchjob_v1_schema.json"


def strict(schema: dict) -> dict:
    """The CRD's schema where every object with listed properties refuses others: the API server
    prunes unknown fields silently, `kubectl --validate=strict` refuses them."""
    schema = copy.deepcopy(schema)
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return schema


def errors(job: dict) -> list[str]:
    validator = jsonschema.Draft4Validator(strict(json.loads(SCHEMA.read_text())["openAPIV3Schema"]))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(job)]


def admission_errors(job: dict) -> list[str]:
    """The training operator's admission rules for a PyTorchJob (its validating webhook)."""
    found = []
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", job["metadata"]["name"]):
        found.append("metadata.name is not a DNS-1035 label")
    spec = job["spec"]
    replicas = spec["pytorchReplicaSpecs"]
    if "elasticPolicy" in spec:
        if "Worker" not in replicas:
            found.append("an elastic job needs Worker replicas")
        if "nProcPerNode" in spec["elasticPolicy"] and "nprocPerNode" in spec:
            found.append("elasticPolicy.nProcPerNode must not be used with nprocPerNode")
    for role, replica in replicas.items():
        if role not in ("Master", "Worker"):
            found.append(f"replica type {role} is neither Master nor Worker")
        containers = replica["template"]["spec"]["containers"]
        if not containers or not all(c.get("image") for c in containers):
            found.append(f"{role}: every container needs an image")
        if not any(c["name"] == "pytorch" for c in containers):
            found.append(f"{role}: no container named pytorch")
        count = replica.get("replicas")
        if (role == "Master" and count != 1) or (count is not None and count < 1):
            found.append(f"{role}: replicas {count}")
    return found


@pytest.fixture
def job() -> dict:
    return yaml.safe_load(JOB.read_text())


def _container(job: dict) -> dict:
    (container,) = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    return container


def test_pytorchjob_matches_the_crd_schema_and_the_admission_rules(job):
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    assert errors(job) == []
    assert admission_errors(job) == []


@pytest.mark.parametrize("mistake", ["misspelled field", "string count", "no pytorch container", "no worker"])
def test_pytorchjob_checks_find_a_broken_job(job, mistake):
    """The same checks fail on a job broken as people break them."""
    if mistake == "misspelled field":
        job["spec"]["elasticPolicy"]["minReplica"] = job["spec"]["elasticPolicy"].pop("minReplicas")
    elif mistake == "string count":
        job["spec"]["elasticPolicy"]["maxRestarts"] = "3"
    elif mistake == "no pytorch container":
        _container(job)["name"] = "trainer"
    else:
        job["spec"]["pytorchReplicaSpecs"]["Master"] = job["spec"]["pytorchReplicaSpecs"].pop("Worker")
    assert errors(job) + admission_errors(job)


def test_pytorchjob_runs_the_documented_command_on_shared_storage(job):
    """The container runs docs/clusters.md's command less what the operator gives torchrun
    (PET_NNODES, PET_RDZV_ENDPOINT, ...), with its environment; the elastic policy is the command's
    rendezvous and restarts; --data and --out are on the shared volume; the global batch divides by
    every process count the policy allows."""
    launch, container = documented_launch(), _container(job)
    assert container["command"] == ["torchrun", *launch.without_place(), "xception", "train", *launch.train]
    assert {e["name"]: e["value"] for e in container["env"]} == launch.environment
    policy = job["spec"]["elasticPolicy"]
    assert policy["rdzvBackend"] == launch.option("--rdzv-backend")
    assert policy["maxRestarts"] == int(launch.option("--max-restarts"))
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert policy["minReplicas"] <= worker["replicas"] <= policy["maxReplicas"]
    (shared,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "shared"]
    volumes = {v["name"]: v for v in worker["template"]["spec"]["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes.keys()
    assert "persistentVolumeClaim" in volumes["shared"]
    train = launch.train
    for flag in ("--data", "--out"):
        assert Path(train[train.index(flag) + 1]).is_relative_to(shared), shlex.join(train)
    batch, per_pod = int(train[train.index("--batch-size") + 1]), int(job["spec"]["nprocPerNode"])
    assert all(batch % (pods * per_pod) == 0 for pods in range(policy["minReplicas"], policy["maxReplicas"] + 1))
