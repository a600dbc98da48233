"""convert_torchvision_inception_v3: torchvision's Inception V3 state dicts load into ours exactly."""

import pytest
import torch
import torchvision
from torch import nn

from xception.models import create_model
from xception.models.weights.torchvision_inception_v3 import convert_torchvision_inception_v3


@pytest.fixture(scope="module")
def torchvision_with_aux() -> nn.Module:
    """torchvision's Inception V3 with its auxiliary tower, random weights and BatchNorm tensors."""
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, num_classes=20)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    return model.eval()


def test_convert_torchvision_inception_v3_drops_aux_tower_and_renames_fc(torchvision_with_aux):
    converted = convert_torchvision_inception_v3(torchvision_with_aux.state_dict())
    assert not any(key.startswith(("AuxLogits.", "fc.")) for key in converted)
    assert torch.equal(converted["classifier.weight"], torchvision_with_aux.fc.weight)
    ours = create_model("inception_v3", num_classes=20)
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 80, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), torchvision_with_aux(x), rtol=1e-5, atol=1e-5)
    assert int(ours.Mixed_7c.branch_pool.bn.num_batches_tracked) == 7


def test_convert_torchvision_inception_v3_accepts_missing_num_batches_tracked_and_head(torchvision_with_aux):
    state = {
        key: value
        for key, value in torchvision_with_aux.state_dict().items()
        if not key.endswith("num_batches_tracked") and not key.startswith("fc.")
    }
    ours = create_model("inception_v3", num_classes=0)
    ours.load_state_dict(convert_torchvision_inception_v3(state), strict=True)
    assert torch.equal(ours.Conv2d_1a_3x3.bn.running_var, torchvision_with_aux.Conv2d_1a_3x3.bn.running_var)


def test_convert_torchvision_inception_v3_names_the_first_unexpected_key(torchvision_with_aux):
    state = dict(torchvision_with_aux.state_dict())
    state["Mixed_8a.conv.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="'Mixed_8a.conv.weight'"):
        convert_torchvision_inception_v3(state)
    wrapped = {f"module.{key}": value for key, value in torchvision_with_aux.state_dict().items()}
    with pytest.raises(ValueError, match="strip the 'module.' prefix"):
        convert_torchvision_inception_v3(wrapped)


def test_convert_torchvision_inception_v3_names_a_missing_tensor(torchvision_with_aux):
    state = dict(torchvision_with_aux.state_dict())
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    with pytest.raises(ValueError, match="'Mixed_6b.branch7x7_2.conv.weight'"):
        convert_torchvision_inception_v3(state)
