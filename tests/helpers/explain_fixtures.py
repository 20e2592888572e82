"""Small trained models for the explanation tests, trained in-process without the run store.

Module-scoped fixtures call these once per test file: explaining a plain model needs no database.
"""
from __future__ import annotations

import torch
from torch import nn

from dlx.data import DataBundle, load_dataset
from dlx.models import build_model


def fit(model: nn.Module, bundle: DataBundle, epochs: int, lr: float = 3e-3, batch: int = 32,
        seed: int = 0) -> nn.Module:
    """Adam with a one-cycle schedule, the project's defaults; returns the model in eval mode."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(bundle.train) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(bundle.train))
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            loss = nn.functional.cross_entropy(model(bundle.train.x[index]), bundle.train.y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def accuracy(model: nn.Module, bundle: DataBundle) -> float:
    with torch.no_grad():
        return (model(bundle.test.x).argmax(1) == bundle.test.y).float().mean().item()


def trained(dataset: str, model: str, epochs: int, **options) -> tuple[nn.Module, DataBundle]:
    bundle = load_dataset(dataset)
    torch.manual_seed(0)
    return fit(build_model(model, bundle.meta), bundle, epochs, **options), bundle
