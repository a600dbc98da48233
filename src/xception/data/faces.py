"""Faces in a frame, cropped as FaceForensics++ crops them (Rössler et al., ICCV 2019).

Detector: dlib's frontal face detector (HOG features and a linear SVM), FaceForensics++'s own
choice (`classification/detect_from_video.py`: `dlib.get_frontal_face_detector()` on the grayscale
frame, upsampled once). Its model is compiled into dlib, so it works offline with nothing to
download, and `dlib-bin` ships it as wheels; reproducing the benchmark's crops needs its detector,
not a better one (MTCNN, RetinaFace), whose boxes differ in size and place.

Box (`face_box`, FaceForensics++'s `get_boundingbox`): a square of side int(1.3 x the longer side
of the detection), centred on the detection, its top-left corner clipped to the frame, then its side
shortened to fit the frame (so it stays square). The crop is that square of the frame, at its own
size: the weights' preparation resizes it (FaceForensics++: 299 px, "squash", no aspect kept).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from xception.errors import UserError
from xception.video_names import FACE_SCALE, FaceChoice

UPSAMPLE = 1  # FaceForensics++: face_detector(gray, 1), one upsampling to find faces down to ~40 px


@dataclass(frozen=True)
class Detection:
    """dlib's rectangle: left, top, right, bottom in pixels (may reach outside the frame)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def area(self) -> int:
        return max(self.right - self.left, 0) * max(self.bottom - self.top, 0)


@dataclass(frozen=True)
class FaceBox:
    """The square crop of one face: top-left `x`, `y` and side `size` in pixels, inside the frame."""

    x: int
    y: int
    size: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The box's pixels of an (H, W, C) image."""
        return image[self.y:self.y + self.size, self.x:self.x + self.size]


def face_box(detection: Detection, *, width: int, height: int, scale: float = FACE_SCALE) -> FaceBox:
    """FaceForensics++'s box around `detection` in a `width` x `height` frame (see the module)."""
    size = int(max(detection.right - detection.left, detection.bottom - detection.top) * scale)
    centre_x, centre_y = (detection.left + detection.right) // 2, (detection.top + detection.bottom) // 2
    x, y = max(int(centre_x - size // 2), 0), max(int(centre_y - size // 2), 0)
    size = min(width - x, height - y, size)
    return FaceBox(x=x, y=y, size=size)


_local = threading.local()


def _detector():
    """This thread's dlib detector (one per thread: the detector keeps its scanner's state between
    calls, so threads must not share one)."""
    if not hasattr(_local, "detector"):
        try:
            import dlib
        except ImportError:
            raise UserError("--crop faces needs dlib: pip install 'xception[video]' (dlib-bin's wheels)") from None
        _local.detector = dlib.get_frontal_face_detector()
    return _local.detector


def detect_faces(image: np.ndarray) -> list[Detection]:
    """dlib's detections in an (H, W, 3) uint8 RGB frame, on its grayscale (ITU-R 601 luma, as
    OpenCV's BGR2GRAY that FaceForensics++ used), upsampled `UPSAMPLE` times; in dlib's order."""
    from PIL import Image

    gray = np.asarray(Image.fromarray(image).convert("L"))
    return [Detection(r.left(), r.top(), r.right(), r.bottom()) for r in _detector()(gray, UPSAMPLE)]


def detection_pool(workers: int):
    """A pool of `workers` threads for `detect_faces`: dlib's detector releases the interpreter lock
    while it scans (a Python thread runs beside it), so threads run detections at once without
    copying the frames to other processes."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faces")


def detect_faces_parallel(images: list[np.ndarray], *, workers: int, pool=None) -> list[list[Detection]]:
    """`detect_faces` of each image, on `workers` threads (of `pool`, else of a pool made for the
    call): face detection is the slowest stage of the video path."""
    if pool is None and (workers <= 1 or len(images) <= 1):
        return [detect_faces(image) for image in images]
    if pool is None:
        with detection_pool(workers) as own:
            return detect_faces_parallel(images, workers=workers, pool=own)
    return list(pool.map(detect_faces, images))


def face_boxes(image: np.ndarray, *, face: FaceChoice,
               detections: list[Detection] | None = None) -> list[tuple[Detection, FaceBox]]:
    """The faces of an (H, W, 3) frame with their boxes: the largest detection ("largest", none for a
    frame without a face) or every detection, largest first ("all"). `detections`: the frame's, when
    already found (else `detect_faces`)."""
    height, width = image.shape[:2]
    found = detect_faces(image) if detections is None else detections
    detections = sorted(found, key=lambda d: d.area, reverse=True)
    if face == "largest":
        detections = detections[:1]
    elif face != "all":
        raise ValueError(f"face must be 'largest' or 'all', got {face!r}")
    boxes = [(d, face_box(d, width=width, height=height)) for d in detections]
    return [(d, box) for d, box in boxes if box.size > 0]
