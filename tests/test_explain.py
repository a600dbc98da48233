"""xception.explain: the CAM identity, the library's maps against direct autograd computations, the
logits left unchanged, every registered model, the errors a user meets."""

from __future__ import annotations

import pytest
import torch

from xception.errors import UnknownNameError
from xception.explain import METHODS, default_layer, explain, feature_layers
from xception.explain.methods import _scaled, class_activation_map
from xception.models import create_model, list_models
from xception.models.registry import get_entry

NUM_CLASSES = 50  # not 1000, so that a hard-coded ImageNet size fails


def _model(name: str, *, num_classes: int = NUM_CLASSES, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model(name, num_classes=num_classes, **overrides).eval()


def _images(size: int, *, count: int = 2, channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _direct_gradcam(model, images: torch.Tensor, classes: torch.Tensor, index: int) -> torch.Tensor:
    """Grad-CAM by hand, without hooks: the index-th map of forward_intermediates, the gradient of the
    classes' logits with respect to it (autograd.grad), ReLU(sum_k mean(grad_k) A_k), (N, h, w)."""
    features = model.forward_intermediates(images)
    logits = model.forward_head(features[-1])
    (gradient,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), features[index])
    weights = gradient.mean(dim=(2, 3))
    return torch.einsum("nk,nkhw->nhw", weights, features[index]).relu().detach()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), [("xception", 160), ("xception41", 160), ("inception_v3", 160)])
def test_gradcam_equals_cam_at_the_last_feature_map(name, size):
    # GAP + one linear layer: d logit_c / dA_k(i, j) = w_ck / (h w), so Grad-CAM's weights are CAM's / (h w).
    model = _model(name)
    images = _images(size)
    with torch.no_grad():
        features = model.forward_features(images)
        # Per image the class with the most positive evidence somewhere (with random weights the top
        # class's map can be 0 everywhere, and the identity would hold trivially as 0 == 0).
        evidence = torch.einsum("ck,nkhw->nchw", model.classifier.weight, features).amax(dim=(2, 3))
        classes = evidence.argmax(dim=1)
        cam = class_activation_map(model.classifier, features, classes)
    direct = _direct_gradcam(model, images, classes, index=-1)
    assert cam.amax(dim=(1, 2)).min() > 0  # a map with positive evidence: the identity is not 0 == 0
    torch.testing.assert_close(direct / direct.amax(dim=(1, 2), keepdim=True),
                               cam / cam.amax(dim=(1, 2), keepdim=True), rtol=1e-5, atol=1e-5)
    # The library's Grad-CAM (pytorch-grad-cam) and the CAM written here, at the input's resolution.
    library = explain(model, images, classes, method="gradcam").maps
    ours = explain(model, images, classes, method="cam").maps
    assert library.shape == (2, size, size)
    torch.testing.assert_close(library, ours, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xception_small", "xception41", "xception41p", "inception_v3_small"])
def test_library_gradcam_matches_direct_autograd_at_every_layer(name):
    # xception41's inner maps are outputs of in-place ReLUs (main.act3): hooks there must still be right.
    size = 64 if name.endswith("_small") else 96
    model = _model(name, in_channels=1 if name.endswith("_small") else 3)
    images = _images(size, channels=model.in_channels)
    classes = torch.tensor([3, 7])
    for index, layer in enumerate(feature_layers(model)):
        direct = _scaled(_direct_gradcam(model, images, classes, index=index), size=images.shape[-2:])
        library = explain(model, images, classes, method="gradcam", layer=layer).maps
        torch.testing.assert_close(library, direct, rtol=1e-5, atol=1e-5, msg=f"layer {layer}")


def test_segmentation_map_is_the_gradcam_of_the_class_pixels():
    model = _model("deeplabv3plus_small", num_classes=11, in_channels=1)
    images = _images(56, channels=1)
    explanation = explain(model, images, torch.tensor([2, 5]), method="gradcam")
    # By hand: the gradient of the class's logits summed over the pixels predicted as that class
    # (all pixels if none) with respect to the backbone's last map, kept by retain_grad.
    kept = []

    def keep(module, inputs, output) -> None:
        output.retain_grad()
        kept.append(output)

    handle = feature_layers(model)[default_layer(model)].register_forward_hook(keep)
    logits = model(images)
    handle.remove()
    predicted = logits.argmax(dim=1)
    total = 0
    for n, c in enumerate((2, 5)):
        mask = (predicted[n] == c).float()
        total = total + (logits[n, c] * (mask if mask.any() else torch.ones_like(mask))).sum()
    total.backward()
    activation, gradient = kept[0], kept[0].grad
    direct = torch.einsum("nk,nkhw->nhw", gradient.mean(dim=(2, 3)), activation).relu().detach()
    torch.testing.assert_close(explanation.maps, _scaled(direct, size=images.shape[-2:]), rtol=1e-5, atol=1e-5)
    assert explanation.layer == model.backbone.model.feature_info[-1]["module"] == "exit_flow.block9"  # the ASPP input


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["xception_small", "inception_v3_small", "xception41p"])
def test_explain_leaves_the_logits_mode_and_gradients_as_they_were(name, method):
    overrides = {}
    if method == "scorecam":  # one forward pass per channel of the map: a narrow xception_small covers it
        if name != "xception_small":
            pytest.skip("Score-CAM is covered on a narrow xception_small (one forward pass per channel)")
        overrides = {"width": 0.0625}
    model = _model(name, in_channels=1 if name.endswith("_small") else 3, **overrides)
    images = _images(64, channels=model.in_channels)
    with torch.no_grad():
        before = model(images)
    explanation = explain(model, images, method=method)
    assert torch.equal(explanation.logits, before)  # with the hooks attached: bit for bit
    with torch.no_grad():
        assert torch.equal(model(images), before)  # and the hooks are gone
    assert not model.training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert torch.equal(explanation.classes, before.argmax(dim=1))
    assert explanation.maps.shape == (2, 64, 64)
    assert float(explanation.maps.min()) >= 0 and float(explanation.maps.max()) == pytest.approx(1, abs=1e-4)


def test_explain_restores_training_mode_and_uses_evaluation_mode():
    model = _model("xception_small", in_channels=1).train()
    images = _images(32, channels=1)
    with torch.no_grad():
        reference = model.eval()(images)
    model.train()
    explanation = explain(model, images, method="gradcam")
    assert model.training
    assert torch.equal(explanation.logits, reference)  # BatchNorm used its running statistics


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_default_layer_is_the_last_feature_map_of_every_registered_model(name):
    entry = get_entry(name)
    small = name.endswith("_small")
    channels = 1 if small else 3
    model = _model(name, num_classes=11 if entry.task == "segmentation" else NUM_CLASSES, in_channels=channels)
    size = 56 if small else 80
    images = _images(size, count=1, channels=channels)
    explanation = explain(model, images, method="gradcam")
    trunk = model.backbone.model if entry.task == "segmentation" else model
    assert explanation.layer == trunk.feature_info[-1]["module"] == list(feature_layers(model))[-1]
    if entry.task == "classification":
        with torch.no_grad():  # the last feature map is what global pooling averages
            captured = []
            handle = feature_layers(model)[explanation.layer].register_forward_hook(
                lambda m, i, output: captured.append(output))
            model(images)
            handle.remove()
            torch.testing.assert_close(captured[0], model.forward_features(images))
    assert explanation.maps.shape == (1, size, size)
    assert 0 <= float(explanation.maps.min()) and float(explanation.maps.max()) <= 1


def test_unknown_layer_lists_the_feature_info_names():
    model = _model("xception_small", in_channels=1)
    with pytest.raises(UnknownNameError, match=r"unknown layer 'block14_sepconv2_act'.*stem, entry_flow\.block2"):
        explain(model, _images(32, channels=1), layer="block14_sepconv2_act")


@pytest.mark.parametrize(("name", "overrides", "match"), [
    ("xception_fc", {}, "fully-connected"),
    ("deeplabv3plus_small", {}, "no such head"),
])
def test_cam_refuses_heads_it_is_not_defined_for(name, overrides, match):
    model = _model(name, num_classes=11, in_channels=1 if name.endswith("_small") else 3, **overrides)
    with pytest.raises(ValueError, match=match):
        explain(model, _images(56 if name.endswith("_small") else 80, count=1, channels=model.in_channels), method="cam")


def test_explain_refuses_classes_the_model_does_not_have():
    model = _model("xception_small", num_classes=10, in_channels=1)
    with pytest.raises(ValueError, match=r"classes \[3, 10\] outside this model's 0..9"):
        explain(model, _images(32, channels=1), [3, 10])


def test_cam_refuses_inner_layers():
    model = _model("xception_small", in_channels=1)
    with pytest.raises(ValueError, match="last feature map only"):
        explain(model, _images(32, channels=1), method="cam", layer="stem")


def test_explain_maps_differ_between_classes():
    # One map per label asked for: the class chosen is the one explained.
    model = _model("xception_small", in_channels=1)
    images = _images(56, count=1, channels=1)
    first = explain(model, images, [0], method="cam").maps
    second = explain(model, images, [1], method="cam").maps
    assert (first - second).abs().max() > 0.05
