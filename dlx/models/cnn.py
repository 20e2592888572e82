"""A small convolutional network that learns digits in seconds on a CPU."""
from __future__ import annotations

from torch import nn

from dlx.data.registry import DatasetMeta


class SmallCNN(nn.Module):
    """Conv 32 -> Conv 64 -> pool -> FC 128; works for any input size (adaptive pooling)."""

    def __init__(self, channels: int, classes: int, width: int = 32, hidden: int = 128,
                 dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width * 16, hidden), nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def cnn(meta: DatasetMeta, width: int = 32, hidden: int = 128, dropout: float = 0.25) -> nn.Module:
    return SmallCNN(meta.input_shape[0], meta.num_classes, width, hidden, dropout)
