"""A one-node SLURM cluster for the tests: Debian's slurmctld and slurmd (22.05), configured in a
temporary directory and run in the foreground as this test's own processes, stopped at the end with
every job they ran.

It needs root (slurmd starts jobs as their users) and the packages, which `make system-packages`
installs and `installed_or_skip` installs where it can (root and apt-get); elsewhere the tests skip
and say why. Known to work without systemd: `AuthType=auth/none` and `CredType=cred/none` (no
munge), `ProctrackType=proctrack/linuxproc` and `TaskPlugin=task/none` (no cgroups), one node named
`-N n1` at 127.0.0.1. `AuthInfo=cred_expire=5` lets a requeued job start again within seconds
(otherwise after 120 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from spawn_ranks import free_port

PACKAGES = ("slurmctld", "slurmd", "slurm-client")
COMMANDS = ("slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo", "squeue")


def installed_or_skip() -> None:
    """SLURM's daemons and commands, installed with apt-get where they are missing and this is root."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root: slurmd starts every job as its user")
    # Debian puts the daemons in /usr/sbin, which root's usual PATH has and a bare environment
    # (env -i, some CI runners) may not: without it they look missing and apt-get itself fails.
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([*path, *(d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path)])
    if all(shutil.which(c) for c in COMMANDS):
        return
    if not shutil.which("apt-get"):
        pytest.skip(f"SLURM is not installed and there is no apt-get to install {' '.join(PACKAGES)}")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=environment, capture_output=True)
    install = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
                             env=environment, capture_output=True, text=True)
    if install.returncode != 0 or not all(shutil.which(c) for c in COMMANDS):
        pytest.skip(f"could not install {' '.join(PACKAGES)} with apt-get: {install.stderr.strip()[-300:]}")


CONFIG = """\
ClusterName=xception-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
JobRequeue=1
KillWait=5
MinJobAge=600
ReturnToService=2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=n1 NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=n1 Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """slurmctld and slurmd of one node, configured in `root`; `environment` for their commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("state", "spool"):
            (root / folder).mkdir(parents=True)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        (root / "slurm.conf").write_text(CONFIG.format(root=root, ctld_port=free_port(), d_port=free_port(),
                                                       cpus=cpus))
        self.environment = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
        self.daemons: list[subprocess.Popen] = []

    def start(self) -> LocalSlurm:
        for command in (["slurmctld", "-D", "-i"], ["slurmd", "-D", "-N", "n1"]):
            log = open(self.root / f"{command[0]}.out", "w")
            self.daemons.append(subprocess.Popen(command, env=self.environment, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        deadline = time.monotonic() + 60
        while self.run("sinfo", "--noheader", "--format=%t", check=False).strip() != "idle":
            if time.monotonic() > deadline or any(d.poll() is not None for d in self.daemons):
                self.stop()
                pytest.skip(f"the local SLURM did not start: {self.logs()}")
            time.sleep(0.5)
        return self

    def run(self, *command: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(command, env={**self.environment, **(env or {})}, capture_output=True, text=True,
                              timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)}: {done.stderr}")
        return done.stdout

    def submit(self, *arguments: str, env: dict[str, str] | None = None) -> str:
        """`sbatch --parsable ARGUMENTS`; the job id."""
        return self.run("sbatch", "--parsable", *arguments, env=env).strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job`'s fields (JobState, Restarts, ExitCode, ...)."""
        fields = {}
        for word in self.run("scontrol", "show", "job", "--oneliner", job_id).split():
            name, _, value = word.partition("=")
            fields[name] = value
        return fields

    def wait_until_done(self, job_id: str, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["JobState"] not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                                             "NODE_FAIL", "OUT_OF_MEMORY"):
            assert time.monotonic() < deadline, f"job {job_id} still {job['JobState']}: {self.logs()}"
            time.sleep(0.5)
        return job

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.root.glob("slurm*.log")))

    def stop(self) -> None:
        """Cancel every job, wait for their processes to end, stop the daemons."""
        if all(d.poll() is None for d in self.daemons):
            self.run("scancel", "--full", "--user", "root", check=False)
            deadline = time.monotonic() + 30
            while self.run("squeue", "--noheader", check=False).strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for daemon in self.daemons:
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """Whatever still runs with this cluster's SLURM_CONF in its environment (a job's slurmstepd,
        its script, torchrun and the training processes, if a daemon died before it could end them)."""
        mark = f"SLURM_CONF={self.root / 'slurm.conf'}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
                continue
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue  # gone, or not ours to read
