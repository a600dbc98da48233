"""Test-time augmentation (`xception.tasks.tta`): the flip of a model equals the flip of its mirror
image (its twin, every kernel flipped left to right), and averaging is of probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from xception import create_model
from xception.description import Decision
from xception.tasks.classification import evaluate
from xception.tasks.tta import averaged_logits

# At 16k + 5 px every stride-2 stage of xception_small pads both sides alike ("same" padding of an
# even map pads one more on the right), so the twin sees exactly the mirror of what the model sees.
SIZE = 37


def model_and_twin() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=3, in_channels=1, width=0.125, middle_repeats=1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # one batch sets the statistics: activations of a useful size
    with torch.no_grad():
        model.train()(torch.rand(16, 1, SIZE, SIZE) * 2 - 1)
        model.classifier.weight *= 20  # logits of a trained model's spread, not all near 0
    model.eval()
    twin = create_model("xception_small", num_classes=3, in_channels=1, width=0.125, middle_repeats=1).eval()
    twin.load_state_dict({k: v.flip(-1) if v.ndim == 4 else v for k, v in model.state_dict().items()})
    return model, twin


def evaluated_probabilities(model: torch.nn.Module, images: torch.Tensor, tta: str) -> torch.Tensor:
    loader = DataLoader(TensorDataset(images, torch.tensor([0, 1, 2, 0, 1, 2])), batch_size=4)
    metrics = evaluate(model, loader, device=torch.device("cpu"), multilabel=False, keep_logits=True, tta=tta,
                       decision=Decision(temperature=1.3))
    return metrics["logits"].softmax(1)


def test_flip_of_a_model_and_of_its_mirrored_twin_give_identical_probabilities():
    model, twin = model_and_twin()
    images = torch.randn(6, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = (model(images).softmax(1), twin(images).softmax(1))
    assert (plain[0] - plain[1]).abs().max() > 1e-3  # without the flip they differ
    torch.testing.assert_close(evaluated_probabilities(model, images, "flip"),
                               evaluated_probabilities(twin, images, "flip"), atol=1e-6, rtol=0)


def test_averaged_logits_are_the_logits_of_the_mean_probabilities():
    views = [torch.randn(5, 4, generator=torch.Generator().manual_seed(seed)) * 30 for seed in range(3)]
    mean_softmax = torch.stack([(v / 2).double().softmax(1) for v in views]).mean(0)
    torch.testing.assert_close(averaged_logits(views, multilabel=False, temperature=2).double().softmax(1),
                               mean_softmax, atol=1e-6, rtol=0)
    mean_sigmoid = torch.stack([v.double().sigmoid() for v in views]).mean(0)
    torch.testing.assert_close(averaged_logits(views, multilabel=True).double().sigmoid(), mean_sigmoid,
                               atol=1e-6, rtol=0)
    assert torch.equal(averaged_logits(views[:1], multilabel=False, temperature=2), views[0] / 2)
    assert torch.isfinite(averaged_logits(views, multilabel=True)).all()
    assert F.cross_entropy(averaged_logits(views, multilabel=False), torch.zeros(5, dtype=torch.long)).isfinite()


def test_five_crops_are_torchvisions_five_crops_resized_back():
    from torchvision.transforms.v2 import functional as TF

    from xception.tasks.tta import crop_side, five_crops

    for height, width in ((37, 37), (299, 299), (32, 48)):
        images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(height)) * 2 - 1
        size = [crop_side(height), crop_side(width)]
        expected = [TF.resize(crop, [height, width], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
                    for crop in TF.five_crop(images, size)]
        for ours, theirs in zip(five_crops(images), expected, strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert crop_side(299) == 261 and crop_side(37) == 33  # about 7/8, less an even margin


def test_flip_and_five_crops_of_a_model_and_of_its_mirrored_twin_give_identical_probabilities():
    model, twin = model_and_twin()
    images = torch.randn(6, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    ten = evaluated_probabilities(model, images, "flip+5crop")
    torch.testing.assert_close(ten, evaluated_probabilities(twin, images, "flip+5crop"), atol=1e-6, rtol=0)
    # The five crops alone are not closed under mirroring: there the twin answers otherwise.
    assert (evaluated_probabilities(model, images, "5crop") - evaluated_probabilities(twin, images, "5crop")
            ).abs().max() > 1e-3
    assert (ten - evaluated_probabilities(model, images, "flip")).abs().max() > 1e-3  # the crops are seen
