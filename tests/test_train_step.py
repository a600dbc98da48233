"""One training step, checked against a hand-written SGD update, for every mode it supports."""

import copy

import pytest
import torch
from torch import nn

from xception.train.recipes import get_recipe
from xception.train.schedule import build_schedule
from xception.train.step import Trainer


def _trainer(model, *, lr=0.1, momentum=0.9, weight_decay=0.0, dtype=None, device="cpu", clip=None,
             channels_last=False, fp16=False):
    recipe = get_recipe("paper_imagenet", lr=lr, decay_every_epochs=1000)
    schedule = build_schedule(recipe, batch_size=8, epoch_size=8, total_samples=1e6)
    optimizer = torch.optim.SGD([dict(params=list(model.parameters()), weight_decay=weight_decay)], lr=lr,
                                momentum=momentum)
    return Trainer(model=model, module=model, optimizer=optimizer, schedule=schedule,
                   loss_fn=nn.CrossEntropyLoss(), device=torch.device(device), autocast_dtype=dtype,
                   channels_last=channels_last, batch_size=8, average=None, grad_clip_norm=clip,
                   scaler=torch.amp.GradScaler(device, enabled=fp16))


def _data(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def test_step_matches_hand_written_sgd_with_momentum_and_decay():
    model, reference = _net(), _net()
    trainer = _trainer(model, weight_decay=1e-2)
    buffers = [torch.zeros_like(p) for p in reference.parameters()]
    for seed in range(3):
        images, labels = _data(seed)
        trainer.train_step([(images, labels)])
        reference.zero_grad()
        nn.functional.cross_entropy(reference(images), labels).backward()
        with torch.no_grad():  # PyTorch/TF-slim SGD: v = m v + (g + wd w); w -= lr v
            for p, v in zip(reference.parameters(), buffers, strict=True):
                v.mul_(0.9).add_(p.grad + 1e-2 * p)
                p.sub_(0.1 * v)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert trainer.step == 3 and trainer.samples == 24


def test_step_accumulation_equals_one_large_batch():
    images, labels = _data(n=8)
    whole, split = _net(), _net()
    _trainer(whole).train_step([(images, labels)])
    _trainer(split).train_step([(images[:4], labels[:4]), (images[4:], labels[4:])])
    for p, q in zip(whole.parameters(), split.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_step_clipping_bounds_the_update():
    model = _net()
    before = [p.clone() for p in model.parameters()]
    _trainer(model, momentum=0.0, lr=1.0, clip=1e-3).train_step([_data()])
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert float(update.norm()) == pytest.approx(1e-3, rel=1e-3)  # lr 1 x gradient clipped to norm 1e-3


def test_step_bf16_autocast_and_channels_last_stay_close_to_fp32():
    fp32, bf16 = _net(), _net()
    images, labels = _data()
    loss32 = _trainer(fp32).train_step([(images, labels)])
    loss16 = _trainer(bf16, dtype=torch.bfloat16, channels_last=True).train_step([(images, labels)])
    assert loss16 == pytest.approx(loss32, rel=2e-2)  # bf16 has 8 bits of mantissa
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # fp32 master weights
    for p, q in zip(fp32.parameters(), bf16.parameters(), strict=True):
        assert torch.allclose(p, q, atol=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with loss scaling needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_step_cuda_autocast_with_loss_scaling_matches_fp32(dtype):
    reference, model = _net(), copy.deepcopy(_net()).cuda()
    images, labels = _data()
    _trainer(reference).train_step([(images, labels)])
    trainer = _trainer(model, dtype=dtype, device="cuda", fp16=dtype == torch.float16, channels_last=True)
    trainer.train_step([(images, labels)])
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)
    for p, q in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.allclose(p, q.cpu(), atol=1e-2)
