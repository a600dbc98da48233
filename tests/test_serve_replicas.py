"""Several `xception serve` replicas behind nginx on loopback (configs/serve/replicas.sh with
configs/serve/nginx.conf): requests through nginx reach every replica and get the replicas' answers,
and SIGTERM stops them all with exit status 0. `make test` installs nginx where it can."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serving import free_port, write_photos, write_tiny_weights

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def free_run_of_ports(count: int) -> int:
    """A port p such that p .. p + count - 1 are free on 127.0.0.1."""
    import socket

    for _ in range(50):
        base = free_port()
        try:
            probes = [socket.create_server(("127.0.0.1", base + k)) for k in range(1, count)]
        except OSError:
            continue
        for probe in probes:
            probe.close()
        return base
    raise RuntimeError("no run of free ports found")


def metric(url: str, sample: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_serve_replicas_behind_nginx_share_the_requests_and_stop_with_sigterm(tmp_path):
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"{tool} is not installed (apt-get install nginx-light curl; make system-packages does it)")
    weights = write_tiny_weights(tmp_path / "tiny.safetensors")
    photos = write_photos(tmp_path / "photos")
    base = free_run_of_ports(3)
    env = {**os.environ, "XCEPTION": f"{sys.executable} -m xception.cli",
           "PATH": os.environ.get("PATH", "") + ":/usr/sbin",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    script = subprocess.Popen(["bash", str(ROOT / "configs/serve/replicas.sh"), str(weights), "2", str(base), "--",
                               "--runtime", "torch", "--precision", "fp32"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        balancer, replicas = f"http://127.0.0.1:{base}", [f"http://127.0.0.1:{base + k}" for k in (1, 2)]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and script.poll() is None:
            try:
                if httpx.get(f"{balancer}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        assert script.poll() is None, script.stdout.read()
        direct = httpx.post(f"{replicas[0]}/predict", content=photos[0].read_bytes(), timeout=60).json()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{balancer}/predict", content=photos[0].read_bytes(),
                                                         timeout=120), range(32)))
        assert [a.status_code for a in answers] == [200] * 32
        for answer in answers:  # the same answer, up to the rounding of batches of other sizes
            got = answer.json()["predictions"]
            assert [p["class_name"] for p in got] == [p["class_name"] for p in direct["predictions"]]
            assert [p["probability"] for p in got] == pytest.approx([p["probability"] for p in direct["predictions"]],
                                                                    abs=1e-5)
        served = [metric(url, 'xception_requests_total{endpoint="/predict",status="200"}') for url in replicas]
        assert sum(served) == 33 and min(served) >= 1  # nginx used both replicas
        script.send_signal(signal.SIGTERM)
        output, _ = script.communicate(timeout=120)
        assert script.returncode == 0, output
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{replicas[1]}/v2/health/live", timeout=5)
    finally:
        if script.poll() is None:  # a failed test: the script, its replicas and nginx, all started here
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
