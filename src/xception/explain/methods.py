"""Class activation maps of a batch: CAM, Grad-CAM, Grad-CAM++ and Score-CAM, as tensors.

- CAM (Zhou et al., 2016): ReLU(sum_k w_ck A_k) over the last feature map A (K, h, w) and the
  logistic layer's row w_c. Defined only for a network that ends in global average pooling and one
  linear layer, at that last map. Written here (three lines): no library offers it for an arbitrary
  head, and it is the reference the others are checked against.
- Grad-CAM (Selvaraju et al., 2017), Grad-CAM++ (Chattopadhay et al., 2018), Score-CAM (Wang et al.,
  2020): pytorch-grad-cam's implementations. For a network ending in global average pooling and a
  linear layer, Grad-CAM's weights (the mean gradient of the logit over the map) are w_ck / (h w),
  so Grad-CAM at the last map equals CAM: tests/test_explain.py checks that identity, and the library's
  maps against a direct autograd computation.

The maps target the logit of a class (not its softmax probability): for a multi-label model, one
label's logit; for a segmentation model, the sum of the class's logits over the pixels predicted as
that class (pytorch-grad-cam's SemanticSegmentationTarget; every pixel when none is).

In-place ReLUs: the library records gradients with a tensor hook registered on the layer's output in
a forward hook, not with a module backward hook, which in-place operations break (pytorch#61519).
The hooks only read; the logits with them attached are the logits without them (tested).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xception.explain.layers import default_layer, is_segmentation, resolve_layer
from xception.explain.method_names import METHODS, Method

SCORECAM_BATCH = 64  # masked copies of one image per forward pass (the library's default is 16)


@dataclass(frozen=True)
class Explanation:
    """The maps of one batch.

    maps: float32 (N, H, W) in [0, 1] at the input's resolution, the maximum of each map at 1 (within
        the library's 1e-7 guard on the divisor; an all-zero map when no position has positive evidence).
    logits: float32 (N, classes) or, for segmentation, (N, classes, H, W): the model's output during
        the explanation, identical to its output without the explainer attached.
    classes: int64 (N,): the class explained in each image.
    layer, method: the feature map read (a `feature_info` name) and the method.
    """

    maps: torch.Tensor
    logits: torch.Tensor
    classes: torch.Tensor
    layer: str
    method: str


def explain(
    model: nn.Module,
    images: torch.Tensor,
    classes: torch.Tensor | list[int] | None = None,
    *,
    method: Method = "gradcam",
    layer: str | None = None,
) -> Explanation:
    """The class activation maps of `images` (N, C, H, W), prepared as the model expects, for
    `classes` (N,) (None: each image's top class; segmentation: the class predicted on the most
    pixels, background aside) with `method` at `layer` (a name of the model's feature_info; None:
    the last map before global pooling). The model runs in evaluation mode; its mode, parameters and
    their gradients are as before when this returns."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    name, module = resolve_layer(model, layer)
    with _explaining(model):
        device = next(model.parameters()).device
        # The input carries the gradient in place of the frozen weights, so that the layer's output needs it.
        images = images.detach().to(device).float().requires_grad_(True)
        if classes is None or is_segmentation(model):
            with torch.no_grad():
                predicted = model(images).float()
            if classes is None:
                classes = _top_classes(predicted)
        classes = torch.as_tensor(classes, dtype=torch.int64).cpu()
        if classes.shape != (len(images),):
            raise ValueError(f"classes must give one class per image, shape ({len(images)},); got {tuple(classes.shape)}")
        if bool((classes < 0).any() or (classes >= model.num_classes).any()):
            raise ValueError(f"classes {classes.tolist()} outside this model's 0..{model.num_classes - 1}")
        if method == "cam":
            low, logits = _cam(model, module, images, classes, layer=name)
            maps = _scaled(low, size=images.shape[-2:])
        else:
            targets = _targets(classes, predicted if is_segmentation(model) else None)
            explainer = _library_method(method)(model=model, target_layers=[module])
            explainer.batch_size = SCORECAM_BATCH
            try:
                with _quiet_progress():
                    maps = torch.from_numpy(explainer(images, targets))
                logits = explainer.outputs.detach().float()
            finally:
                explainer.activations_and_grads.release()
    return Explanation(maps=maps, logits=logits.cpu(), classes=classes, layer=name, method=method)


def class_activation_map(classifier: nn.Linear, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """CAM before normalisation: ReLU(sum_k w_ck A_k), (N, h, w), from the last feature map `features`
    (N, K, h, w) and the rows `classes` (N,) of the logistic layer (the bias, one number per map, is
    left out as in Zhou et al.)."""
    weights = classifier.weight[classes.to(classifier.weight.device)]  # (N, K)
    return torch.einsum("nk,nkhw->nhw", weights.float(), features.float()).relu()


def check_cam_applies(model: nn.Module, layer: str) -> None:
    """ValueError unless CAM is defined for `model` at `layer`: global average pooling then one
    linear layer, read at the last feature map."""
    fc_layers = getattr(model, "fc_layers", None)
    if is_segmentation(model) or fc_layers is None or not isinstance(getattr(model, "classifier", None), nn.Linear):
        raise ValueError("CAM needs a classifier that ends in global average pooling and one linear layer; "
                         "this model has no such head: use --method gradcam")
    if len(fc_layers):
        raise ValueError(f"CAM needs global average pooling followed by one linear layer; this model has "
                         f"{len(fc_layers) // 2} fully-connected layers before its logistic layer: use --method gradcam")
    if layer != default_layer(model):
        raise ValueError(f"CAM is defined at the last feature map only ({default_layer(model)}), not at {layer}; "
                         "use --method gradcam for other layers")


def _cam(model: nn.Module, module: nn.Module, images: torch.Tensor, classes: torch.Tensor, *,
         layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    check_cam_applies(model, layer)
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _module, _inputs, output: captured.append(output.detach()))
    try:
        with torch.no_grad():
            logits = model(images).float()
    finally:
        handle.remove()
    return class_activation_map(model.classifier, captured[0], classes), logits


def _library_method(method: Method) -> type:
    """pytorch-grad-cam's class for `method`, imported when used (the import takes seconds: OpenCV)."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}[method]


def _scaled(low: torch.Tensor, *, size: torch.Size) -> torch.Tensor:
    """(N, h, w) >= 0 -> (N, H, W) in [0, 1]: pytorch-grad-cam's min-max scaling and resize, then its
    final scaling, so that CAM is normalised and resized exactly as the library's methods are."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    height, width = size
    resized = scale_cam_image(low.detach().cpu().numpy().astype(np.float32), (width, height))
    return torch.from_numpy(scale_cam_image(resized))


def _top_classes(logits: torch.Tensor) -> torch.Tensor:
    """(N,) the top class of each image; segmentation (N, classes, H, W): the class predicted on the
    most pixels, other than class 0 (background, in this project's and DeepLab's label sets) when
    any other class is predicted."""
    if logits.ndim == 2:
        return logits.argmax(dim=1).cpu()
    counts = torch.stack([row.bincount(minlength=logits.shape[1]) for row in logits.argmax(dim=1).flatten(1)])
    foreground = counts[:, 1:].sum(dim=1) > 0
    counts[foreground, 0] = 0
    return counts.argmax(dim=1).cpu()


def _targets(classes: torch.Tensor, segmentation_logits: torch.Tensor | None) -> list:
    """pytorch-grad-cam targets: a class's logit, or its logits summed over its predicted pixels."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget

    if segmentation_logits is None:
        return [ClassifierOutputTarget(int(c)) for c in classes]
    predicted = segmentation_logits.argmax(dim=1).cpu()  # (N, H, W)
    targets = []
    for c, pixels in zip(classes.tolist(), predicted, strict=True):
        mask = pixels == c
        if not bool(mask.any()):
            mask = torch.ones_like(mask)  # no pixel predicted as c: its evidence over the whole image
        targets.append(SemanticSegmentationTarget(c, mask.float().numpy()))
    return targets


@contextlib.contextmanager
def _explaining(model: nn.Module) -> Iterator[None]:
    """Evaluation mode and frozen parameters while explaining (no weight gradients are computed or
    left behind); the mode and each parameter's requires_grad are restored afterwards."""
    training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.train(training)


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Score-CAM's loop draws a tqdm bar per image on sys.stderr (read when each bar is made), and
    tqdm reads TQDM_DISABLE only at import: send the bars nowhere for the library call alone."""
    with open(os.devnull, "w") as nowhere, contextlib.redirect_stderr(nowhere):
        yield
