"""The training order is independent of the number of processes; evaluation shards are exact."""

import pytest
import torch
from torch.utils.data import TensorDataset

from xception.data.loader import GlobalBatchSampler, ShardSampler, build_loader


def test_global_batch_sampler_ranks_split_each_global_batch():
    single = list(GlobalBatchSampler(50, global_batch=8, rank=0, world_size=1, seed=3, epoch=2))
    ranks = [list(GlobalBatchSampler(50, global_batch=8, rank=r, world_size=2, seed=3, epoch=2)) for r in (0, 1)]
    assert len(single) == 48  # 6 full global batches; the last 2 examples are dropped
    for batch in range(6):
        assert single[batch * 8 : batch * 8 + 4] == ranks[0][batch * 4 : batch * 4 + 4]
        assert single[batch * 8 + 4 : batch * 8 + 8] == ranks[1][batch * 4 : batch * 4 + 4]
    assert len(set(single)) == 48


def test_global_batch_sampler_start_batch_skips_and_epochs_differ():
    full = list(GlobalBatchSampler(40, global_batch=8, rank=0, world_size=1, seed=0, epoch=0))
    resumed = list(GlobalBatchSampler(40, global_batch=8, rank=0, world_size=1, seed=0, epoch=0, start_batch=3))
    assert resumed == full[24:]
    assert full != list(GlobalBatchSampler(40, global_batch=8, rank=0, world_size=1, seed=0, epoch=1))


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_sampler_counts_every_example_once(world_size):
    shards = [list(ShardSampler(10, rank=r, world_size=world_size)) for r in range(world_size)]
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_build_loader_yields_micro_batches_of_this_rank():
    data = TensorDataset(torch.arange(32).float())
    loader = build_loader(data, batch_size=2, training=True, rank=1, world_size=2, seed=0, num_workers=0,
                          pin_memory=False, global_batch=8)
    batches = [b[0].long().tolist() for b in loader]
    assert len(batches) == 8 and all(len(b) == 2 for b in batches)  # 4 steps x 2 micro-batches of 2
    with pytest.raises(ValueError, match="fewer than one batch"):
        GlobalBatchSampler(4, global_batch=8, rank=0, world_size=1, seed=0, epoch=0)
