"""`load_image`, the one way images are opened: every unreadable file is an `UnreadableImageError`
naming it, and every pixel format converts as documented (checked pixel by pixel against values
computed here, with PNGs written by a small independent encoder where PIL's writer could hide a
bug of its reader)."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import Dataset

from xception.data.bad_images import checked_loader
from xception.data.images import UnreadableImageError, load_image


def png_bytes(array: np.ndarray, *, color_type: int, bit_depth: int, size: tuple[int, int] | None = None) -> bytes:
    """A PNG of `array` (H, W[, C]) encoded by hand (PNG spec, filter 0); `size` overrides the header's
    (width, height), for a file that claims more pixels than it holds."""
    height, width = array.shape[:2]
    width, height = size or (width, height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\0" + row.astype(dtype).tobytes() for row in array)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int64)


RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (6, 5, 3)).astype(np.uint8)


def test_load_image_zero_byte_file_names_it(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UnreadableImageError, match=r"cannot read image .*empty\.png: the file is empty \(0 bytes\); "
                                                   "replace or delete the file"):
        load_image(tmp_path / "empty.png", in_channels=3)


def test_load_image_not_an_image_names_it(tmp_path):
    (tmp_path / "notes.jpg").write_text("shopping list: milk, eggs")
    with pytest.raises(UnreadableImageError, match=r"notes\.jpg: PIL does not recognise it as an image"):
        load_image(tmp_path / "notes.jpg", in_channels=3)


@pytest.mark.parametrize("suffix", ["png", "jpeg"])
def test_load_image_truncated_file_names_it(tmp_path, suffix):
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(buffer, format=suffix)
    (tmp_path / f"cut.{suffix}").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(UnreadableImageError, match=rf"cut\.{suffix}: OSError: .*truncated"):
        load_image(tmp_path / f"cut.{suffix}", in_channels=3)


def test_load_image_missing_file_names_it(tmp_path):
    with pytest.raises(UnreadableImageError, match=r"gone\.png: the file does not exist"):
        load_image(tmp_path / "gone.png", in_channels=1)


def test_load_image_decompression_bomb_names_it_and_the_limit(tmp_path):
    # A PNG header claiming 20000 x 20000 pixels (400 M, over PIL's 2 x 89.5 M) with a 1 x 1 body:
    # PIL refuses it when opening, before decoding anything.
    (tmp_path / "bomb.png").write_bytes(png_bytes(np.zeros((1, 1), np.uint8), color_type=0, bit_depth=8,
                                                  size=(20000, 20000)))
    with pytest.raises(UnreadableImageError) as raised:
        load_image(tmp_path / "bomb.png", in_channels=3)
    message = str(raised.value)
    assert "bomb.png: Image size (400000000 pixels) exceeds limit" in message
    assert "resize it, or raise PIL.Image.MAX_IMAGE_PIXELS" in message and "\n" not in message


def test_load_image_16_bit_grayscale_keeps_the_high_byte(tmp_path):
    values = np.array([[0, 255, 256, 32767], [32768, 65280, 65534, 65535]], dtype=np.uint16)
    (tmp_path / "deep.png").write_bytes(png_bytes(values, color_type=0, bit_depth=16))
    assert pixels(load_image(tmp_path / "deep.png", in_channels=1)).tolist() == [[0, 0, 1, 127], [128, 255, 255, 255]]
    rgb = pixels(load_image(tmp_path / "deep.png", in_channels=3))
    assert (rgb == (values.astype(np.int64) >> 8)[..., None]).all()


def test_load_image_16_bit_colour_matches_16_bit_grayscale(tmp_path):
    values = RNG.integers(0, 65536, (4, 7, 3)).astype(np.uint16)
    (tmp_path / "deep_rgb.png").write_bytes(png_bytes(values, color_type=2, bit_depth=16))
    assert (pixels(load_image(tmp_path / "deep_rgb.png", in_channels=3)) == values.astype(np.int64) >> 8).all()


def test_load_image_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored image must be turned 90 degrees clockwise to be upright
    Image.fromarray(RGB8).save(tmp_path / "phone.png", exif=exif)
    upright = pixels(load_image(tmp_path / "phone.png", in_channels=3))
    assert upright.shape == (5, 6, 3) and (upright == np.rot90(RGB8, k=-1)).all()


def test_load_image_cmyk_by_pil_formula(tmp_path):
    cmyk = RNG.integers(0, 256, (3, 4, 4)).astype(np.int64)
    Image.fromarray(cmyk.astype(np.uint8), mode="CMYK").save(tmp_path / "print.tiff")
    c, m, y, k = np.moveaxis(cmyk, -1, 0)
    expected = np.stack([(255 - v) * (255 - k) / 255 for v in (c, m, y)], axis=-1)
    assert np.abs(pixels(load_image(tmp_path / "print.tiff", in_channels=3)) - expected).max() <= 1


def test_load_image_palette_looks_up_colours_and_whitens_the_transparent_one(tmp_path):
    palette = [10, 20, 30, 200, 100, 50, 0, 0, 0]
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette)
    image.save(tmp_path / "plain.png")
    image.save(tmp_path / "transparent.png", transparency=2)
    colours = np.array(palette).reshape(3, 3)
    assert (pixels(load_image(tmp_path / "plain.png", in_channels=3)) == colours[indices]).all()
    colours[2] = 255  # index 2 is transparent: composited onto white
    assert (pixels(load_image(tmp_path / "transparent.png", in_channels=3)) == colours[indices]).all()


def test_load_image_rgba_composited_onto_white(tmp_path):
    rgba = RNG.integers(0, 256, (5, 6, 4)).astype(np.int64)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    Image.fromarray(rgba.astype(np.uint8), mode="RGBA").save(tmp_path / "logo.png")
    alpha = rgba[..., 3:] / 255
    expected = rgba[..., :3] * alpha + 255 * (1 - alpha)
    loaded = pixels(load_image(tmp_path / "logo.png", in_channels=3))
    assert np.abs(loaded - expected).max() <= 1
    assert loaded[0, 0].tolist() == [255, 255, 255] and loaded[0, 1].tolist() == rgba[0, 1, :3].tolist()


def test_load_image_grayscale_and_colour_convert_both_ways(tmp_path):
    Image.fromarray(RGB8).save(tmp_path / "colour.png")
    luma = RGB8[..., 0] * 0.299 + RGB8[..., 1] * 0.587 + RGB8[..., 2] * 0.114
    assert np.abs(pixels(load_image(tmp_path / "colour.png", in_channels=1)) - luma).max() <= 1
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "gray.png")
    assert (pixels(load_image(tmp_path / "gray.png", in_channels=3)) == RGB8[..., :1]).all()
    assert (pixels(load_image(tmp_path / "gray.png", in_channels=1)) == RGB8[..., 0]).all()


def test_load_image_refuses_float_pixels(tmp_path):
    Image.fromarray(np.full((2, 2), 0.5, np.float32), mode="F").save(tmp_path / "float.tiff")
    with pytest.raises(UnreadableImageError, match=r"float\.tiff: .*32-bit float pixels"):
        load_image(tmp_path / "float.tiff", in_channels=1)


class Files(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return np.asarray(load_image(self.paths[index], in_channels=1)).mean(), index


def test_unreadable_image_in_a_worker_is_raised_in_the_main_process_with_its_name(tmp_path):
    Image.fromarray(RGB8).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    loader = checked_loader(Files([tmp_path / "good.png", tmp_path / "bad.png"]), bad_images=None,
                            batch_size=1, num_workers=1)
    with pytest.raises(UnreadableImageError) as raised:
        list(loader)
    assert str(raised.value).startswith(f"cannot read image {tmp_path / 'bad.png'}: PIL does not recognise it")
    assert "worker" not in str(raised.value)


def test_unreadable_sample_of_a_shard_names_the_sample_and_the_shard(tmp_path):
    import webdataset as wds

    from xception.data.shards import SampleReader, ShardedImages

    shard = str(tmp_path / "val-000000.tar")
    with wds.TarWriter(shard) as sink:
        sink.write({"__key__": "000000007", "png": b"\x89PNG cut short", "cls": 1})
    read = SampleReader(num_classes=2, multilabel=False, transform=lambda image: image, in_channels=1)
    stream = ShardedImages([shard], num_samples=1, read=read, seed=0)
    with pytest.raises(UnreadableImageError) as raised:
        list(checked_loader(stream, bad_images=None, batch_size=1))
    assert str(raised.value) == (f"cannot read image sample 000000007 of {shard}: PIL does not recognise it as an "
                                 "image (not an image, or a format PIL cannot read); rewrite that shard, or pass "
                                 "--bad-images skip to leave it out")


def test_skipped_images_shorten_evaluation_batches_and_are_refilled_in_training(tmp_path):
    from xception.data.bad_images import BadImageRecord
    from xception.data.loader import build_loader

    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((2, 2), 10 * i, np.uint8)).save(paths[-1])
    paths[5].write_bytes(b"")

    def record():
        return BadImageRecord("skip", split="test", split_size=8, max_fraction=0.5)

    common = {"batch_size": 4, "rank": 0, "world_size": 1, "seed": 0, "num_workers": 0, "pin_memory": False}
    evaluation = [indices.tolist() for _, indices in build_loader(Files(paths), training=False, bad_images=record(),
                                                                 **common)]
    assert evaluation == [[0, 1, 2, 3], [4, 6, 7]]
    training = build_loader(Files(paths), training=True, bad_images=record(), **common)
    batches = [(means.tolist(), indices.tolist()) for means, indices in training]
    assert [len(indices) for _, indices in batches] == [4, 4] and sorted(sum((i for _, i in batches), [])).count(5) == 0
    for means, indices in batches:  # a refilled row repeats a readable one, image and target together
        assert all(mean == 10 * index for mean, index in zip(means, indices, strict=True))


class Refusing(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        from xception.errors import UnknownNameError

        raise UnknownNameError(f"item {index} names an unknown label 'Sandle'; valid: Sandal")


def test_a_user_error_of_an_item_read_by_a_worker_is_raised_as_itself_in_the_main_process():
    from xception.errors import UnknownNameError

    with pytest.raises(UnknownNameError) as raised:
        list(checked_loader(Refusing(), bad_images=None, batch_size=2, num_workers=1))
    assert str(raised.value) == "item 0 names an unknown label 'Sandle'; valid: Sandal"
