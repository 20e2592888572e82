"""A LightningModule as a user's package defines it (top level, `save_hyperparameters()`), so that DlxLogger's
kept model is rebuilt by the Explain page as `TableNet(**hparams)`."""
from __future__ import annotations

import lightning
import torch
from torch import nn


class TableNet(lightning.LightningModule):
    """A small MLP over a table's features (breast_cancer: 30), trained with Adam."""

    def __init__(self, features: int = 30, hidden: int = 16, classes: int = 2, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, index):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
