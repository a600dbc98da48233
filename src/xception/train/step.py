"""One optimizer step, the same code for every precision, layout, and distributed mode.

`Trainer.train_step` reads as the algorithm: set the learning rate for the samples seen, forward
and backward over the accumulation micro-batches, clip, step, update the Polyak average.
Precision is `torch.autocast(enabled=...)` plus a `GradScaler` that is a no-op unless fp16.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from xception.runtime import autocast
from xception.train.averaging import ModelAverage
from xception.train.finetune import Phases
from xception.train.schedule import LearningRateSchedule

Batch = tuple[torch.Tensor, torch.Tensor]


class Trainer:
    """Holds what one step touches. `model` may be DistributedDataParallel-wrapped; `module` is
    the plain model underneath (what the average follows and checkpoints store)."""

    def __init__(
        self,
        *,
        model: nn.Module,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: LearningRateSchedule,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: torch.device,
        autocast_dtype: torch.dtype | None,
        channels_last: bool,
        batch_size: int,
        average: ModelAverage | None,
        grad_clip_norm: float | None,
        scaler: torch.amp.GradScaler,
        phases: Phases | None = None,
        mix: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None,
    ) -> None:
        self.model, self.module, self.optimizer, self.schedule = model, module, optimizer, schedule
        self.loss_fn, self.device, self.autocast_dtype = loss_fn, device, autocast_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.batch_size, self.average, self.grad_clip_norm, self.scaler = batch_size, average, grad_clip_norm, scaler
        self.phases, self.mix = phases, mix  # fine-tuning phases; mixup / cutmix of each micro-batch
        self.step = 0  # optimizer steps done

    @property
    def samples(self) -> int:
        """Training images seen (global, all processes)."""
        return self.step * self.batch_size

    def state_dict(self) -> dict[str, Any]:
        """The model, its average, the optimizer and the loss scaler (the step is `Progress`'s)."""
        return {"model": self.module.state_dict(),
                "average": self.average.state_dict() if self.average is not None else {},
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])

    def train_step(self, micro_batches: Sequence[Batch]) -> float:
        """One optimizer step over the global batch (this process's micro-batches). Returns this
        process's mean loss."""
        self.anneal_lr()
        loss = self.forward_backward(micro_batches)
        self.clip_gradients()
        self.optimizer_step()
        self.update_average()
        self.step += 1
        return loss

    def anneal_lr(self) -> float:
        lr = self.schedule(self.samples)
        trunk_scale = self.phases.lr_scale(self.samples) if self.phases is not None else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = lr * trunk_scale if group.get("trunk") else lr
        return lr

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device.type, self.autocast_dtype)

    def forward_backward(self, micro_batches: Sequence[Batch]) -> float:
        """Gradients of the mean loss over all micro-batches (DDP averages over processes and
        synchronises only on the last micro-batch)."""
        self.model.train()
        if self.phases is not None:
            self.phases.apply(self.samples)
        total = torch.zeros((), device=self.device)
        for i, (images, targets) in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.model, "no_sync") else self.model.no_sync()
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            targets = targets.to(self.device, non_blocking=True)
            if self.mix is not None:
                images, targets = self.mix(images, targets)
            with sync:
                with self.autocast():
                    logits = self.model(images)
                # The loss in fp32 whatever the autocast dtype.
                loss = self.loss_fn(logits.float(), targets) / len(micro_batches)
                self.scaler.scale(loss).backward()
            total += loss.detach()
        return float(total)  # one device sync per step

    def clip_gradients(self) -> None:
        if self.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip_norm)

    def optimizer_step(self) -> None:
        self.scaler.step(self.optimizer)  # skipped by the scaler when fp16 gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def update_average(self) -> None:
        if self.average is not None:
            self.average.update(self.module)
