"""Faces in video frames (`xception.data.faces`, `xception.data.video_crops`): FaceForensics++'s box
by hand, and on videos of scikit-image's faces pasted at known places, moving between frames,
with frames that hold no face, the boxes found overlap the faces that were pasted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from video_files import encode_video, iou, lfw_faces, pasted
from xception.data.faces import Detection, FaceBox, detect_faces, face_box
from xception.data.video import Sampling
from xception.data.video_crops import video_crops

SCALE = 1.3


def undone(box: FaceBox) -> tuple[float, float, float, float]:
    """The square of side box.size / 1.3 at the box's centre: the 1.3x rule undone."""
    side, cx, cy = box.size / SCALE, box.x + box.size / 2, box.y + box.size / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def test_face_box_is_faceforensics_get_boundingbox():
    # int(max(w, h) * 1.3) around the centre (integer division as theirs), clipped to the frame.
    assert face_box(Detection(100, 50, 200, 170), width=640, height=480) == FaceBox(72, 32, 156)
    # Past the left and bottom edges: the corner moves in, the side shrinks to fit, the box stays square.
    assert face_box(Detection(-10, 400, 60, 470), width=640, height=480) == FaceBox(0, 390, 90)
    assert face_box(Detection(600, 10, 660, 70), width=640, height=480) == FaceBox(591, 1, 49)


@pytest.fixture(scope="module")
def faces():
    """Six LFW faces at 100 px that dlib finds on a plain background (it misses a few of lfw_subset's)."""
    found = []
    for face in lfw_faces(20):
        if detect_faces(pasted(np.full((200, 200, 3), 128, np.uint8), face, x=50, y=50)):
            found.append(face)
    assert len(found) >= 6
    return found[:6]


def test_detected_boxes_overlap_the_pasted_faces_and_faceless_frames_are_recorded(tmp_path, faces):
    background = np.full((240, 320, 3), 128, np.uint8)
    places = [(10 + 35 * i, 20 + 15 * i) for i in range(6)]  # the face moves right and down
    frames = [pasted(background, face, x=x, y=y) for face, (x, y) in zip(faces, places, strict=True)]
    frames[2:2] = [background]  # frames 2 and 6: no face
    frames[6:6] = [background]
    path = encode_video(tmp_path / "faces.mp4", frames, rate=5)
    _, crops = video_crops(path, Sampling(frames=len(frames)), crop="faces", face="largest")
    crops = list(crops)
    assert [c.index for c in crops] == list(range(8))
    assert [c.index for c in crops if c.image is None] == [2, 6]
    with_face = [c for c in crops if c.image is not None]
    for crop, (x, y) in zip(with_face, places, strict=True):
        assert iou(undone(crop.box), (x, y, x + 100, y + 100)) >= 0.5
        assert crop.image.shape == (crop.box.size, crop.box.size, 3)


def test_astronaut_box_matches_dlib_on_the_still_image(tmp_path):
    from skimage.data import astronaut

    still = np.asarray(Image.fromarray(astronaut()).resize((256, 256), Image.BICUBIC))
    (expected,) = detect_faces(still)  # dlib on the image itself, before any video
    background = np.full((300, 400, 3), 90, np.uint8)
    offsets = [(0, 0), (60, 20), (140, 40)]
    path = encode_video(tmp_path / "astronaut.mp4", [pasted(background, still, x=x, y=y) for x, y in offsets])
    _, crops = video_crops(path, Sampling(frames=3), crop="faces", face="largest")
    for crop, (x, y) in zip(crops, offsets, strict=True):
        known = (expected.left + x, expected.top + y, expected.right + x, expected.bottom + y)
        assert iou(undone(crop.box), known) >= 0.5


def test_face_all_gives_every_face_largest_first(tmp_path, faces):
    # dlib's boxes come in the steps of its image pyramid: faces of clearly different sizes.
    small = np.asarray(Image.fromarray(faces[1]).resize((60, 60), Image.BICUBIC))
    large = np.asarray(Image.fromarray(faces[0]).resize((130, 130), Image.BICUBIC))
    frame = pasted(pasted(np.full((240, 320, 3), 128, np.uint8), small, x=20, y=20), large, x=180, y=100)
    path = encode_video(tmp_path / "two.mp4", [frame] * 2)
    _, crops = video_crops(path, Sampling(frames=1), crop="faces", face="all")
    crops = list(crops)
    assert [(c.index, c.face) for c in crops] == [(0, 0), (0, 1)]
    assert iou(undone(crops[0].box), (180, 100, 310, 230)) >= 0.5
    assert iou(undone(crops[1].box), (20, 20, 80, 80)) >= 0.5
    _, largest = video_crops(path, Sampling(frames=1), crop="faces", face="largest")
    assert [c.box for c in largest] == [crops[0].box]


def test_detection_on_two_threads_finds_what_one_finds(tmp_path, faces):
    frames = [pasted(np.full((200, 240, 3), 128, np.uint8), face, x=10 * i, y=5 * i) for i, face in enumerate(faces)]
    path = encode_video(tmp_path / "faces.mp4", frames + [frames[0][:, ::-1]] * 3)
    _, one = video_crops(path, Sampling(frames=9), crop="faces", face="all")
    _, two = video_crops(path, Sampling(frames=9), crop="faces", face="all", workers=2)
    one, two = list(one), list(two)
    assert [(c.index, c.face, c.box) for c in two] == [(c.index, c.face, c.box) for c in one]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(one, two, strict=True))
