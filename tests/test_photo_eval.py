"""The evaluation preparation of one photo without torchvision (`xception.data.photo_eval`) gives the
same tensor, to the bit, as the evaluation pipeline the data sets use (torchvision's v2 transforms):
what `predict` feeds a model is what `eval` fed it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from xception.data.photo_eval import PhotoEvalInput
from xception.data.transforms import photo_pipeline


@pytest.mark.parametrize("seed", range(4))
def test_photo_eval_input_equals_the_torchvision_evaluation_pipeline_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    for trial in range(6):
        height, width = (int(v) for v in rng.integers(9, 640, 2))
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert("L" if trial % 3 == 0 else "RGB")
        for interpolation in ("bilinear", "bicubic"):
            for resize in ("crop", "squash"):
                for in_channels in (1, 3):
                    options = dict(image_size=int(rng.choice([8, 28, 32, 64, 224, 299])), in_channels=in_channels,
                                   crop_fraction=float(rng.choice([0.875, 1.0, 0.8])), interpolation=interpolation,
                                   resize=resize)
                    expected = photo_pipeline(**options, training=False)(image.convert("L" if in_channels == 1
                                                                                       else "RGB"))
                    actual = PhotoEvalInput(**options)(image)
                    assert actual.dtype == torch.float32 and actual.shape == expected.shape, options
                    assert torch.equal(actual, expected), (height, width, image.mode, options)


def test_photo_eval_input_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="interpolation must be 'bilinear' or 'bicubic', got 'nearest'"):
        PhotoEvalInput(image_size=8, in_channels=3, crop_fraction=1.0, interpolation="nearest")
    with pytest.raises(ValueError, match="resize must be 'crop' or 'squash', got 'pad'"):
        PhotoEvalInput(image_size=8, in_channels=3, crop_fraction=1.0, interpolation="bilinear", resize="pad")


def test_preparing_a_photo_for_prediction_imports_no_torchvision():
    # torchvision imports torch._dynamo: 2.1 s of a 5 s `xception predict` (BENCHMARKS.md).
    code = ("import sys; from PIL import Image\n"
            "from xception.data.prediction import prediction_transform\n"
            "from xception.description import Preprocessing\n"
            "t = prediction_transform(Preprocessing(image_size=32), in_channels=3)\n"
            "assert t(Image.new('RGB', (40, 50))).shape == (3, 32, 32)\n"
            "print('torchvision' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"
