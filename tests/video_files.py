"""Videos for the tests, encoded with PyAV from known images: scikit-image's astronaut and LFW
faces pasted at known places (moving from frame to frame), frames without a face, each frame's
number written in its pixels, variable frame rates and rotated streams."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def encode_video(path: Path, frames: list[np.ndarray], *, rate: int = 25, codec: str = "libx264",
                 times: list[float] | None = None, rotation: int | None = None) -> Path:
    """Write (H, W, 3) uint8 RGB `frames` to `path` (the container from its suffix). libx264 runs
    lossless in luma (qp 0); `times`: each frame's presentation time in seconds (a variable frame
    rate, on a 1/1000 s clock), else 1 / `rate` apart; `rotation`: a display matrix turning the
    picture counter-clockwise by that many degrees."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options={"qp": "0"} if codec == "libx264" else {})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
        if times is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for number, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[number] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def numbered_frames(count: int, *, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """`count` frames whose number n is written as the brightness 8n (mod 256) of their left half."""
    frames = []
    for number in range(count):
        pixels = np.full((height, width, 3), 20, np.uint8)
        pixels[:, : width // 2] = (8 * number) % 256
        frames.append(pixels)
    return frames


def frame_number(pixels: np.ndarray) -> int:
    """The number `numbered_frames` wrote in a decoded frame (compression noise rounded away)."""
    width = pixels.shape[1]
    return int(round(float(pixels[4:-4, 4 : width // 2 - 4].mean()) / 8))


def lfw_faces(count: int, *, side: int = 100) -> list[np.ndarray]:
    """`count` of scikit-image's `lfw_subset` faces (its first 100 images are faces), as (side, side, 3)."""
    from skimage.data import lfw_subset

    faces = lfw_subset()[:count]
    return [np.asarray(Image.fromarray((face * 255).round().astype(np.uint8)).resize((side, side), Image.BICUBIC)
                       .convert("RGB")) for face in faces]


def pasted(background: np.ndarray, patch: np.ndarray, *, x: int, y: int) -> np.ndarray:
    """A copy of `background` with `patch` at top-left (`x`, `y`)."""
    out = background.copy()
    out[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
    return out


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def detector_weights(path: Path, *, threshold: float | None = 0.45,
                     class_names: tuple[str, str] = ("real", "fake"), seed: int = 0, image_size: int = 32) -> Path:
    """An untrained two-class xception_small (`class_names`, the positive second; initialised from
    `seed`) on `image_size` px squashed crops, saved at `path` with a decision policy (temperature
    1.5, the threshold `threshold`) as training writes one."""
    import torch

    from xception.description import Decision, Preprocessing, WeightsDescription
    from xception.models import create_model
    from xception.models.trained import save_trained

    torch.manual_seed(seed)
    model = create_model("xception_small", num_classes=2, width=0.25, middle_repeats=1).eval()
    decision = Decision(temperature=1.5, threshold=threshold, rule="eer" if threshold is not None else None,
                        split_size=40)
    description = WeightsDescription(model_name="xception_small", num_classes=2, in_channels=3,
                                     task="classification", image_size=image_size, class_names=class_names,
                                     preprocessing=Preprocessing(image_size=image_size, resize="squash"),
                                     decision=decision, data={"source": "imagefolder", "path": None,
                                                              "image_size": image_size, "resize": "squash"})
    return save_trained(path, model, description)


def use_eager_torch(monkeypatch) -> None:
    """Sessions opened in the test run PyTorch eagerly (`torch_path="eager"`) unless told otherwise:
    the video path is what these tests check, and compiling the AOTInductor package (or exporting
    ONNX) of each new model costs 30 to 100 s on two busy cores."""
    from xception.inference.session import InferenceSession

    original = InferenceSession.open.__func__

    def open_eager(cls, weights, **options):
        options.setdefault("torch_path", "eager")
        return original(cls, weights, **options)

    monkeypatch.setattr(InferenceSession, "open", classmethod(open_eager))


FOLDER_CLASSES = ("0_real", "1_fake")  # sorted, real first: an image folder's class 1 is the fake one


def face_video_folder(root: Path, *, videos_per_class: int = 3, frames: int = 4) -> Path:
    """root/0_real/ and root/1_fake/ (`FOLDER_CLASSES`), `videos_per_class` videos of `frames` frames each: LFW faces moving
    on grey; the fakes' faces tinted and noisy (so that even an untrained model scores them apart
    a little). Returns root."""
    faces = lfw_faces(24)
    rng = np.random.default_rng(0)
    background = np.full((160, 200, 3), 128, np.uint8)
    for label in FOLDER_CLASSES:
        (root / label).mkdir(parents=True)
        for number in range(videos_per_class):
            pictures = []
            for i in range(frames):
                face = faces[(number * frames + i + (12 if label == "1_fake" else 0)) % len(faces)].astype(int)
                if label == "1_fake":
                    face = face + [40, -20, 10] + rng.integers(-25, 25, face.shape)
                pictures.append(pasted(background, face.clip(0, 255).astype(np.uint8), x=20 + 15 * i, y=10 + 8 * i))
            encode_video(root / label / f"{label[2:]}{number}.mp4", pictures, rate=5)
    return root
