"""Issue 29's video path, measured stage by stage: decode, detect, crop + prepare, score.

    python benchmarks/video_pipeline.py --out reports/video [--frames 32] [--size 1280x720]

Encodes a clip here (H.264, yuv420p, the default quality of libx264) of scikit-image's astronaut,
moving over a grey frame of --size, --length frames at 25 fps, then runs the steps of `xception
predict VIDEO --crop faces --frames N` with the full Xception at 299 px (random weights: the time
does not depend on them) and times each stage:

- decode: PyAV, every frame up to the last sampled one decoded, the sampled ones converted to RGB;
- detect: dlib's frontal face detector on each sampled frame (FaceForensics++: grayscale, upsampled
  once), on one thread, then on --workers threads (`xception.data.faces.detect_faces_parallel`);
- crop + prepare: FaceForensics++'s box, the crop, the weights' preparation to 299 x 299;
- score: the session's probabilities in batches of 32, PyTorch eager fp32 (`torch_path="eager"`:
  no compile in the timing; the runtime `xception predict` chooses is at least as fast).

Writes results.json and results.md into --out: frames per second of each stage, and of the whole.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def encode_clip(path: Path, *, width: int, height: int, length: int) -> Path:
    import av
    from PIL import Image
    from skimage.data import astronaut

    still = np.asarray(Image.fromarray(astronaut()).resize((height // 2, height // 2), Image.BICUBIC))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(length):
            frame = np.full((height, width, 3), 110, np.uint8)
            x = (i * 7) % (width - still.shape[1])
            frame[height // 4: height // 4 + still.shape[0], x: x + still.shape[1]] = still
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class Stage:
    """Wall-clock and CPU seconds of a block (CPU: this process's threads):
    on a machine shared with other work the CPU time is what the stage costs, the wall time what it
    took there."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--length", type=int, default=250, help="frames in the clip (10 s at 25 fps)")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--workers", type=int, default=2, help="threads of the parallel face detection")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))

    from PIL import Image

    from xception.data.faces import detect_faces, detect_faces_parallel, face_box
    from xception.data.video import Sampling, read_frames, video_info
    from xception.description import Preprocessing, WeightsDescription
    from xception.inference.session import InferenceSession
    from xception.models import create_model
    from xception.models.trained import save_trained

    with tempfile.TemporaryDirectory() as scratch:
        clip = encode_clip(Path(scratch) / "clip.mp4", width=width, height=height, length=args.length)
        torch.manual_seed(0)
        model = create_model("xception", num_classes=2).eval()
        description = WeightsDescription(model_name="xception", num_classes=2, in_channels=3, task="classification",
                                         image_size=299, class_names=("real", "fake"),
                                         preprocessing=Preprocessing(image_size=299, resize="squash"))
        weights = save_trained(Path(scratch) / "w.safetensors", model, description)
        session = InferenceSession.open(weights, runtime="torch", device="cpu", torch_path="eager",
                                        workload="throughput", batch_size=32)
        indices = Sampling(frames=args.frames).indices(video_info(clip).frame_count)

        with Stage() as decode:
            frames = [frame.image for frame in read_frames(clip, indices)]

        detect_faces(frames[0])  # the detector built outside the timing
        with Stage() as detect:
            detections = [detect_faces(frame) for frame in frames]
        with Stage() as detect_parallel:
            parallel = detect_faces_parallel(frames, workers=args.workers)
        assert parallel == detections, "the parallel detection must find what the sequential one finds"

        with Stage() as crop:
            inputs = []
            for frame, found in zip(frames, detections, strict=True):
                if found:
                    box = face_box(found[0], width=width, height=height)
                    inputs.append(session.prepare(Image.fromarray(box.crop(frame))))
            batch = torch.stack(inputs)

        session.probabilities(batch[:2])  # the first call's allocations outside the timing
        with Stage() as score:
            for chunk in batch.split(32):
                session.probabilities(chunk)

    count = len(frames)
    stages = {"decode": decode, "detect (1 thread)": detect, f"detect ({args.workers} threads)": detect_parallel,
              "crop + prepare": crop, "score": score}
    fps = {name: count / stage.wall for name, stage in stages.items()}
    total = decode.wall + detect_parallel.wall + crop.wall + score.wall
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")),
                      platform.processor())
    results = {"clip": f"{width}x{height}, {args.length} frames, H.264", "frames_sampled": count,
               "faces_found": len(inputs), "wall_seconds": {name: stage.wall for name, stage in stages.items()},
               "cpu_seconds": {name: stage.cpu for name, stage in stages.items()}, "frames_per_second": fps,
               "load_average": os.getloadavg(),
               "whole_frames_per_second": count / total, "cpu": model_name, "cores": torch.get_num_threads(),
               "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    load = ", ".join(f"{value:.1f}" for value in results["load_average"])
    lines = [f"Video path, {results['clip']}, {count} frames sampled, Xception at 299 px on {model_name} "
             f"({results['cores']} threads; load average {load} at the end)", "",
             "| stage | wall s | CPU s | frames/s (wall) | share of wall |", "|---|---:|---:|---:|---:|"]
    for name, stage in stages.items():
        share = "" if name == "detect (1 thread)" else f"{100 * stage.wall / total:.0f} %"
        lines.append(f"| {name} | {stage.wall:.2f} | {stage.cpu:.2f} | {fps[name]:.1f} | {share} |")
    lines.append(f"| whole (parallel detection) | {total:.2f} | | {count / total:.1f} | 100 % |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
