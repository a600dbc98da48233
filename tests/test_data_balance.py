"""Class imbalance: the balanced sampler (exact under sharding and resume) and the loss's class weights."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from xception.data import DataConfig
from xception.data.balance import (
    balanced_sample_weights,
    class_targets,
    inverse_frequency_weights,
    loss_class_weights,
    sampling_weights,
)
from xception.data.datasets import Datasets
from xception.data.loader import build_loader
from xception.tasks.loss import ClassificationLoss, PixelCrossEntropy


class Labelled(Dataset):
    """Item i: (a random draw, standing for augmentation; i); targets: 90 of class 0, then 10 of class 1."""

    def __init__(self) -> None:
        self.targets = [0] * 90 + [1] * 10

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return torch.rand(()), index


def drawn(*, rank=0, world_size=1, epoch=0, start_batch=0, seed=0, batch_size=10, global_batch=10):
    """(indices, random draws) that this process's balanced loader gives over one epoch."""
    dataset = Labelled()
    loader = build_loader(dataset, batch_size=batch_size, training=True, rank=rank, world_size=world_size, seed=seed,
                          epoch=epoch, num_workers=0, pin_memory=False, global_batch=global_batch,
                          start_batch=start_batch, sample_weights=balanced_sample_weights(torch.tensor(dataset.targets)))
    batches = list(loader)
    return torch.cat([b[1] for b in batches]).tolist(), torch.cat([b[0] for b in batches]).tolist()


def test_balanced_loader_draws_every_class_equally_often():
    targets = torch.tensor(Labelled().targets)
    picked = torch.cat([torch.tensor(drawn(epoch=epoch)[0]) for epoch in range(6)])
    assert len(picked) == 600
    share = (targets[picked] == 1).float().mean().item()
    assert 0.42 < share < 0.58  # 10% of the items; binomial sd of the share over 600 draws: 0.02


def test_balanced_loader_is_a_function_of_seed_and_epoch_only():
    first, draws = drawn(epoch=2)
    assert (first, draws) == drawn(epoch=2)
    assert first != drawn(epoch=3)[0] and first != drawn(epoch=2, seed=1)[0]
    # Two processes take the halves of every global batch of the one-process order.
    halves = [drawn(epoch=2, rank=rank, world_size=2, batch_size=5)[0] for rank in (0, 1)]
    for step in range(10):
        assert first[step * 10: step * 10 + 5] == halves[0][step * 5: step * 5 + 5]
        assert first[step * 10 + 5: step * 10 + 10] == halves[1][step * 5: step * 5 + 5]
    # Resumed at global batch 4: the rest of the same epoch, the same augmentation draws included.
    resumed, resumed_draws = drawn(epoch=2, start_batch=4)
    assert resumed == first[40:] and resumed_draws == draws[40:]


def test_balanced_loader_augments_an_image_drawn_twice_differently():
    indices, draws = drawn(epoch=0)
    seen: dict[int, float] = {}
    repeats = 0
    for index, value in zip(indices, draws, strict=True):
        if index in seen:
            repeats += 1
            assert value != seen[index]
        seen[index] = value
    assert repeats > 10  # 10 minority images drawn about 50 times


def test_class_targets_follow_subsets_and_refuse_multilabel():
    dataset = Labelled()
    assert class_targets(Subset(Subset(dataset, list(range(85, 95))), [0, 9])).tolist() == [0, 1]
    multilabel = Labelled()
    multilabel.targets = torch.zeros(100, 3)
    with pytest.raises(ValueError, match="single-label"):
        class_targets(multilabel)
    with pytest.raises(ValueError, match="lists its targets"):
        class_targets(torch.utils.data.TensorDataset(torch.zeros(3)))


def test_sampling_weights_none_for_shuffle_and_inverse_counts_for_balanced():
    shuffle = DataConfig(source="imagefolder", path="x", image_size=16)
    assert sampling_weights(shuffle, Labelled()) is None
    weights = sampling_weights(DataConfig(source="imagefolder", path="x", image_size=16, sampler="balanced"), Labelled())
    assert weights[0].item() == pytest.approx(1 / 90) and weights[-1].item() == pytest.approx(1 / 10)


def test_inverse_frequency_weights_match_scikit_learn_balanced():
    utils = pytest.importorskip("sklearn.utils")
    import numpy as np

    labels = np.array([0] * 50 + [1] * 30 + [3] * 7)  # class 2 absent
    expected = utils.class_weight.compute_class_weight("balanced", classes=np.array([0, 1, 3]), y=labels)
    weights = inverse_frequency_weights(torch.bincount(torch.from_numpy(labels), minlength=4))
    torch.testing.assert_close(weights[[0, 1, 3]], torch.tensor(expected, dtype=torch.float32))
    assert weights[2] == 0
    data = Datasets(train=Labelled(), val=Labelled(), num_classes=2, class_names=["a", "b"], multilabel=False,
                    class_weights=None)
    config = DataConfig(source="imagefolder", path="x", image_size=16, class_weighting="inverse_frequency")
    torch.testing.assert_close(loss_class_weights(config, data), torch.tensor([100 / 180, 100 / 20]))
    assert loss_class_weights(DataConfig(source="imagefolder", path="x", image_size=16), data) is None


def test_classification_loss_class_weights_are_a_weighted_mean():
    torch.manual_seed(0)
    logits, targets, weight = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0]), torch.tensor([0.5, 2.0, 1.0])
    per_item = -logits.log_softmax(1)[torch.arange(6), targets]
    expected = (weight[targets] * per_item).sum() / weight[targets].sum()
    torch.testing.assert_close(ClassificationLoss("softmax", weight=weight)(logits, targets), expected)
    unweighted = ClassificationLoss("softmax")(logits, targets)
    torch.testing.assert_close(unweighted, per_item.mean())
    per_entry = F.binary_cross_entropy_with_logits(logits, F.one_hot(targets, 3).float(), reduction="none")
    torch.testing.assert_close(ClassificationLoss("sigmoid", weight=weight)(logits, targets),
                               (per_entry * weight).mean())


def test_pixel_cross_entropy_leaves_the_ignore_label_out():
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 4, 5, 5, requires_grad=True), torch.randint(0, 4, (2, 5, 5))
    masks[0, :2] = 255
    kept = masks != 255
    per_pixel = -logits.log_softmax(1).gather(1, masks.clamp(max=3)[:, None])[:, 0]
    torch.testing.assert_close(PixelCrossEntropy()(logits, masks), per_pixel[kept].mean())
    nothing = PixelCrossEntropy()(logits, torch.full_like(masks, 255))
    nothing.backward()
    assert nothing.item() == 0 and logits.grad.abs().max() == 0


def test_balanced_loader_over_a_batch_prepared_source():
    from xception.data.batch_transforms import TensorPipeline
    from xception.data.in_memory import InMemoryImages

    # Image i is filled with the value i, so each item says which image it is.
    images = torch.arange(40, dtype=torch.uint8)[:, None, None].expand(40, 4, 4).contiguous()
    targets = torch.tensor([0] * 36 + [1] * 4)
    pipeline = TensorPipeline(image_size=4, in_channels=1, augment=False, padding=0, erase_probability=0.0)
    dataset = InMemoryImages(images, targets, pipeline=pipeline)
    loader = build_loader(dataset, batch_size=8, training=True, rank=0, world_size=1, seed=0, num_workers=0,
                          pin_memory=False, sample_weights=balanced_sample_weights(targets))
    batches = list(loader)
    items = torch.cat([((b[0][:, 0, 0, 0] + 1) * 127.5).round().long() for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert len(items) == 40 and torch.equal(targets[items], labels)  # each image with its own target
    assert (labels == 1).sum() > 8  # 4 of 40 images, about half of the draws
