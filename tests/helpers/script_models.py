"""A model as a user's own script defines it, rebuilt by the Explain page from its import path
(`run.log_model(net, builder="tests.helpers.script_models:make_net", ...)`)."""
from __future__ import annotations

from torch import nn


def make_net(hidden: int = 16, classes: int = 10) -> nn.Module:
    """A small MLP over the 64 pixels of sklearn's digits."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, classes))
