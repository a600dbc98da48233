"""The load test of `xception serve` (issue 21): a real server process on 127.0.0.1, driven by asyncio
clients (httpx) posting scikit-image's photographs as JPEG to /predict.

Phases, each a fixed number of requests within a time limit:
1. offline against saturation, in interleaved rounds (the machine may be shared: each round's two
   measurements share its load): offline is the same runtime and precision (the default CPU choice)
   at the server's --max-batch-size on prepared images in this process, while the server idles;
   saturation is 2 x batch-size closed-loop clients (below the queue bound). The ratio of the two
   throughputs, median over rounds, is issue 21's bar: at least 0.8x;
3. latency: p50 and p99 at 1, 4 and 16 concurrent clients; 0 failed requests expected;
4. overload: an open loop at 4x the saturation throughput: every accepted request must be answered
   (200), the rest refused with 503, and the server's resident memory must stay bounded (its peak is
   reported beside the saturation phase's).

The weights default to `xception` at 299 px with random weights in this project's format (there are
no ImageNet weights here); throughput does not depend on the values. Writes a markdown report with the
machine and its load average (`uptime`) at the start and the end. Usage, from the repository root:

    .venv/bin/python benchmarks/serve.py --out benchmarks/results/serve.md   # ~5 min on 2 cores
    .venv/bin/python benchmarks/serve.py --smoke --out /tmp/serve.md          # the code path, tiny model
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import httpx

OVERLOAD = 4.0  # times the saturation throughput
SATURATION_BAR = 0.8


@dataclass
class Phase:
    name: str
    clients: str
    statuses: list[int] = field(default_factory=list)  # 0: no HTTP answer (a failure)
    latencies: list[float] = field(default_factory=list)  # seconds, answered with 200
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def count(self, status: int) -> int:
        return sum(s == status for s in self.statuses)

    @property
    def failed(self) -> int:
        return sum(s not in (200, 503) for s in self.statuses)

    @property
    def throughput(self) -> float:
        return self.count(200) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_weights(path: Path, *, smoke: bool, image_size: int) -> Path:
    """Random weights in this project's format: `xception` with ImageNet's 1000 class names, or for
    --smoke a tiny xception_small."""
    import torch

    from xception.imagenet_classes import IMAGENET_CATEGORIES
    from xception.models import create_model
    from xception.models.weights import save_weights

    torch.manual_seed(0)
    if smoke:
        model = create_model("xception_small", num_classes=1000, width=0.125, middle_repeats=1)
    else:
        model = create_model("xception", num_classes=1000)
    metadata = {"class_names": list(IMAGENET_CATEGORIES),
                "data": {"source": "imagenet", "path": None, "image_size": image_size, "in_channels": 3,
                         "crop_fraction": 0.875, "interpolation": "bicubic"}}
    return save_weights(model.eval(), path, metadata=metadata)


def photo_bodies() -> list[bytes]:
    from PIL import Image
    from skimage import data

    bodies = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        out = BytesIO()
        Image.fromarray(getattr(data, name)()).save(out, format="JPEG", quality=90)
        bodies.append(out.getvalue())
    return bodies


class Offline:
    """The default CPU runtime and precision in this process, on one prepared batch of `batch_size`."""

    def __init__(self, weights: Path, bodies: list[bytes], *, batch_size: int) -> None:
        import torch

        from xception.serve.model import load_served_model

        self.served = load_served_model(str(weights), device="cpu")
        self.images = torch.stack([self.served.prepare(bodies[i % len(bodies)]) for i in range(batch_size)])
        self.served.probabilities(self.images)  # warm-up

    def throughput(self, batches: int) -> float:
        """Images/s over `batches` timed batches."""
        start = time.perf_counter()
        for _ in range(batches):
            self.served.probabilities(self.images)
        return batches * len(self.images) / (time.perf_counter() - start)


class Server:
    """`xception serve` in a child process on a free loopback port; RSS sampled on demand."""

    def __init__(self, weights: Path, *args: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-m", "xception.cli", "serve", "--weights", str(weights),
                                         "--port", str(port), "--device", "cpu", *args],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise RuntimeError(f"the server did not start:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def sample_rss(server: Server, phase: Phase, stop: threading.Event) -> None:
    while True:
        phase.peak_rss_mb = max(phase.peak_rss_mb, server.rss_mb())
        if stop.wait(0.1):
            return


async def _post(http: httpx.AsyncClient, url: str, body: bytes, phase: Phase) -> None:
    start = time.perf_counter()
    try:
        status = (await http.post(url, content=body)).status_code
    except httpx.HTTPError:
        status = 0
    phase.statuses.append(status)
    if status == 200:
        phase.latencies.append(time.perf_counter() - start)


async def closed_loop(server: Server, bodies: list[bytes], phase: Phase, *, clients: int, requests: int,
                      time_limit_s: float) -> None:
    """`clients` clients, each posting its next request when its last is answered."""
    loop = asyncio.get_running_loop()
    numbers = itertools.count()
    deadline = loop.time() + time_limit_s

    async def client(http: httpx.AsyncClient) -> None:
        while (i := next(numbers)) < requests and loop.time() < deadline:
            await _post(http, f"{server.url}/predict", bodies[i % len(bodies)], phase)

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients)) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        phase.seconds = time.perf_counter() - start


async def open_loop(server: Server, bodies: list[bytes], phase: Phase, *, rate: float, duration_s: float) -> None:
    """Requests sent at `rate` per second for `duration_s`, whether or not earlier ones were answered."""
    loop = asyncio.get_running_loop()
    tasks = []
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=2000)) as http:
        start = loop.time()
        for i in itertools.count():
            if loop.time() - start >= duration_s:
                break
            tasks.append(asyncio.create_task(_post(http, f"{server.url}/predict", bodies[i % len(bodies)], phase)))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))
        await asyncio.gather(*tasks)
        phase.seconds = loop.time() - start


def run_phase(server: Server, phase: Phase, coroutine) -> Phase:
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(server, phase, stop), daemon=True)
    sampler.start()
    try:
        asyncio.run(coroutine)
    finally:
        stop.set()
        sampler.join()
    phase.peak_rss_mb = max(phase.peak_rss_mb, server.rss_mb())
    return phase


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {sys.version.split()[0]}"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="default: random xception weights at --image-size")
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=16, help="the server's --max-batch-size")
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--max-delay-ms", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=64, help="requests of each saturation round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of offline against saturation")
    parser.add_argument("--overload-s", type=float, default=20.0, help="duration of the overload phase")
    parser.add_argument("--time-limit-s", type=float, default=240.0, help="time limit of each closed-loop phase")
    parser.add_argument("--smoke", action="store_true", help="a tiny model at 32 px and few requests")
    parser.add_argument("--out", required=True, help="the markdown report to write")
    args = parser.parse_args(argv)
    if args.smoke:
        args.image_size, args.requests, args.overload_s = 32, 24, 3.0
    bodies = photo_bodies()
    load_start = uptime()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as workdir:
        weights = Path(args.weights) if args.weights else write_weights(Path(workdir) / "weights.safetensors",
                                                                        smoke=args.smoke, image_size=args.image_size)
        offline = Offline(weights, bodies, batch_size=args.batch_size)
        server = Server(weights, "--max-batch-size", str(args.batch_size), "--max-queue", str(args.max_queue),
                        "--max-delay-ms", str(args.max_delay_ms))
        try:
            idle_rss = server.rss_mb()
            clients = 2 * args.batch_size
            warm_up = Phase("warm-up", str(clients))
            run_phase(server, warm_up, closed_loop(server, bodies, warm_up, clients=clients, requests=clients,
                                                   time_limit_s=args.time_limit_s))
            rounds: list[tuple[float, Phase]] = []
            for k in range(args.rounds):
                images_per_second = offline.throughput(batches=max(1, args.requests // args.batch_size))
                saturation = Phase(f"saturation, round {k + 1}", str(clients))
                run_phase(server, saturation, closed_loop(server, bodies, saturation, clients=clients,
                                                          requests=args.requests, time_limit_s=args.time_limit_s))
                rounds.append((images_per_second, saturation))
            phases = [saturation for _, saturation in rounds]
            for clients in (1, 4, 16):
                phase = Phase("latency", str(clients))
                requests = max(8, clients * (2 if args.smoke else 4))
                phases.append(run_phase(server, phase, closed_loop(server, bodies, phase, clients=clients,
                                                                    requests=requests, time_limit_s=args.time_limit_s)))
            rate = OVERLOAD * statistics.median(saturation.throughput for _, saturation in rounds)
            overload = Phase("overload", f"open loop, {rate:.1f} req/s")
            phases.append(run_phase(server, overload, open_loop(server, bodies, overload, rate=rate,
                                                                 duration_s=args.overload_s)))
            after_rss = server.rss_mb()
        finally:
            exit_status = server.stop()
    report = render(args, argv, engine=offline.served.engine.description, rounds=rounds, phases=phases,
                    idle_rss=idle_rss, after_rss=after_rss, exit_status=exit_status, load=(load_start, uptime()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(report)
    return 0


def render(args, argv, *, engine: str, rounds: list[tuple[float, Phase]], phases: list[Phase], idle_rss: float,
           after_rss: float, exit_status: int, load: tuple[str, str]) -> str:
    overload = phases[-1]
    ratios = [saturation.throughput / offline for offline, saturation in rounds]
    ratio = statistics.median(ratios)
    saturation_peak_rss = max(saturation.peak_rss_mb for _, saturation in rounds)
    below_limit = phases[:-1]
    lines = [
        "# `xception serve` under load",
        "",
        f"Command: `python benchmarks/serve.py {shlex.join(argv if argv is not None else sys.argv[1:])}`  ",
        f"Machine: {machine()}  ",
        f"Load at the start: `{load[0]}`  ",
        f"Load at the end: `{load[1]}`  ",
        f"Model: {'xception_small (smoke)' if args.smoke else 'xception'}, random weights, {args.image_size} px, "
        f"JPEG photos to /predict  ",
        f"Runtime (the default CPU choice): {engine}  ",
        f"Server: --max-batch-size {args.batch_size} --max-queue {args.max_queue} --max-delay-ms "
        f"{args.max_delay_ms:g}; exit status after SIGTERM: {exit_status}",
        "",
        "| phase | clients | requests | 200 | 503 | failed | answered/s | p50 ms | p99 ms | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        lines.append(f"| {p.name} | {p.clients} | {len(p.statuses)} | {p.count(200)} | {p.count(503)} | {p.failed} | "
                     f"{p.throughput:.2f} | {1000 * p.percentile(0.5):.0f} | {1000 * p.percentile(0.99):.0f} | "
                     f"{p.peak_rss_mb:.0f} |")
    zero_below = all(p.failed == 0 and p.count(503) == 0 for p in below_limit)
    accepted_answered = overload.failed == 0
    lines += [
        "",
        "- Saturation against offline (same runtime, batch " + str(args.batch_size) + "), per round: " + "; ".join(
            f"{saturation.throughput:.2f} / {offline:.2f} img/s = {saturation.throughput / offline:.2f}x"
            for offline, saturation in rounds) + ".",
        f"- Median ratio **{ratio:.2f}x** (bar >= {SATURATION_BAR}x: {'met' if ratio >= SATURATION_BAR else 'NOT met'}).",
        f"- Below the queue limit (saturation and latency phases): {'0 failed and 0 refused requests' if zero_below else 'FAILURES or 503s, see the table'}.",
        f"- Overload at {OVERLOAD:g}x: {overload.count(200)} accepted and answered, {overload.count(503)} refused with "
        f"503, {overload.failed} failed otherwise ({'met' if accepted_answered else 'NOT met'}); "
        f"resident memory {idle_rss:.0f} MB idle, peak {saturation_peak_rss:.0f} MB at saturation, "
        f"peak {overload.peak_rss_mb:.0f} MB under overload, {after_rss:.0f} MB after.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
