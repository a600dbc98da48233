"""What a user waits for at the command line (issue 27): whole processes, timed from start to exit,
interleaved in rounds so that each round's figures share the machine's load, medians over rounds.

- `xception --help` against `python -c "import argparse"` (the floor of any Python command line);
- `xception predict photo.jpg --weights W` with `xception` at 299 px (random weights with ImageNet's
  class names in this project's format: the time does not depend on the values), the first process
  (an empty $XCEPTION_HOME: nothing compiled or cached yet) and a repeat process (the cache warm);
- a plain timm script that loads a local `legacy_xception` state dict (the same architecture, in
  timm's layout) and prints the top 5 classes of the same photo: what a user would write instead.

The photo is scikit-image's `chelsea` as a JPEG. Writes OUT.md and OUT.json; usage, from the
repository root (nothing else running):

    .venv/bin/python benchmarks/startup.py --rounds 5       # ~10 min on 2 cores
    .venv/bin/python benchmarks/startup.py --smoke --out /tmp/startup   # the code path, one round
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMM_SCRIPT = """
import sys
import timm
import torch
from PIL import Image

model = timm.create_model("legacy_xception", pretrained=False)
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
model.eval()
config = timm.data.resolve_data_config({}, model=model)
transform = timm.data.create_transform(**config)
with torch.inference_mode():
    probabilities = model(transform(Image.open(sys.argv[2]).convert("RGB"))[None]).softmax(1)[0]
values, indices = probabilities.topk(5)
for p, i in zip(values.tolist(), indices.tolist()):
    print(f"{p:.4f} class {i}")
"""


def load_average() -> list[float]:
    return list(os.getloadavg())


def prepare(directory: Path, *, smoke: bool) -> dict[str, Path]:
    """The photo, our weight file and timm's state dict, in `directory`."""
    import timm
    import torch
    from PIL import Image
    from skimage import data

    from xception.imagenet_classes import IMAGENET_CATEGORIES
    from xception.models import create_model
    from xception.models.weights import save_weights

    photo = directory / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=95)
    torch.manual_seed(0)
    name, size = ("xception_small", 32) if smoke else ("xception", 299)
    model = create_model(name, num_classes=1000, **({"width": 0.125, "middle_repeats": 1} if smoke else {}))
    weights = save_weights(model.eval(), directory / "xception.safetensors", metadata={
        "class_names": list(IMAGENET_CATEGORIES),
        "data": {"source": "imagenet", "path": None, "image_size": size, "in_channels": 3,
                 "crop_fraction": 0.875, "interpolation": "bicubic"}})
    timm_weights = directory / "legacy_xception.pth"
    torch.save(timm.create_model("legacy_xception", pretrained=False).state_dict(), timm_weights)
    return dict(photo=photo, weights=weights, timm_weights=timm_weights)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return seconds


def run(args: argparse.Namespace) -> dict:
    xception = str(Path(sys.executable).with_name("xception"))
    with tempfile.TemporaryDirectory(prefix="xception-startup-") as scratch:
        files = prepare(Path(scratch), smoke=args.smoke)
        base_env = {**os.environ}
        base_env.pop("XCEPTION_HOME", None)
        predict = [xception, "predict", str(files["photo"]), "--weights", str(files["weights"]), "--device", "cpu"]
        cases = {
            "python -c 'import argparse'": [sys.executable, "-c", "import argparse"],
            "xception --help": [xception, "--help"],
            "timm script (legacy_xception, local state dict)": [sys.executable, "-c", TIMM_SCRIPT,
                                                                 str(files["timm_weights"]), str(files["photo"])],
            "xception predict": predict,  # two processes: the first (empty cache), then a repeat
        }
        first, repeat = "xception predict, first process (empty cache)", "xception predict, repeat process (cache warm)"
        seconds: dict[str, list[float]] = {name: [] for name in [*list(cases)[:-1], first, repeat]}
        load_before = load_average()
        for round_index in range(args.rounds):
            env = {**base_env, "XCEPTION_HOME": str(Path(scratch) / f"home-{round_index}")}  # empty each round
            shift = round_index % len(cases)
            for name in [*list(cases)[shift:], *list(cases)[:shift]]:  # the first case rotates
                if name == "xception predict":
                    seconds[first].append(timed(predict, env))
                    seconds[repeat].append(timed(predict, env))
                    print(f"round {round_index + 1}: predict {seconds[first][-1]:.2f} s, then "
                          f"{seconds[repeat][-1]:.2f} s", flush=True)
                else:
                    seconds[name].append(timed(cases[name], env))
                    print(f"round {round_index + 1}: {name}: {seconds[name][-1]:.2f} s", flush=True)
        load_after = load_average()
    from xception.cpu import cpu_features_text, cpu_model

    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return dict(
        command=" ".join(["python", "benchmarks/startup.py", *args.argv]),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=dict(cpu=cpu_model(), features=cpu_features_text(), logical_cpus=os.cpu_count(),
                     load_before=load_before, load_after=load_after),
        model="xception_small 32 px (smoke)" if args.smoke else "xception 299 px",
        seconds=seconds, medians=medians)


def markdown(result: dict) -> str:
    m, medians = result["machine"], result["medians"]
    rows = "\n".join(f"| {name} | {median:.2f} | {', '.join(f'{s:.2f}' for s in result['seconds'][name])} |"
                     for name, median in medians.items())
    floor, helped = medians["python -c 'import argparse'"], medians["xception --help"]
    timm_s = medians["timm script (legacy_xception, local state dict)"]
    first, repeat = (medians["xception predict, first process (empty cache)"],
                     medians["xception predict, repeat process (cache warm)"])
    return f"""# What a user waits for at the command line ({result['date']})

Produced by `{result['command']}`. Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['features']});
load average before {', '.join(f'{x:.2f}' for x in m['load_before'])}, after
{', '.join(f'{x:.2f}' for x in m['load_after'])}. Model: {result['model']}. Whole processes, interleaved
rounds (the first case rotating), seconds:

| process | median s | each round |
|---|---:|---|
{rows}

| issue 27's bar | target | measured | met |
|---|---|---|---|
| `xception --help` - `python -c 'import argparse'` | at most 0.5 s | {helped - floor:.2f} s | {'yes' if helped - floor <= 0.5 else 'no'} |
| `xception predict`, repeat process / the timm script | at most 0.8x | {repeat / timm_s:.2f}x | {'yes' if repeat / timm_s <= 0.8 else 'no'} |
| `xception predict`, first process / the timm script | - | {first / timm_s:.2f}x | - |
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None,
                        help="writes OUT.md and OUT.json (default: benchmarks/results/startup_<date>)")
    parser.add_argument("--smoke", action="store_true", help="xception_small at 32 px, one round")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if args.smoke:
        args.rounds = 1
    result = run(args)
    out = args.out or Path("benchmarks/results") / f"startup_{datetime.date.today().isoformat()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
