"""LeNet-5 on Fashion-MNIST: convolution, ReLU and max pooling, then fully connected layers.

    python examples/lenet_fashion_mnist.py                  # GPU if present, else CPU

What it shows: the classic PyTorch training loop, written exactly as for PyTorch (only the
import differs): a model class with ``forward``, ``DataLoader`` over a ``TensorDataset``,
``zero_grad`` / ``backward`` / ``step``, and evaluation under ``no_grad``. On the embedded
Fashion-MNIST subset it reaches 86.7% test accuracy after 8 epochs (85-87% from epoch 5
on), in about 15 seconds of CPU time on a 2-core CPU.
"""
from __future__ import annotations

import argparse

from _common import evaluate, load_data, pick_device

import gradforge as torch
import gradforge.nn.functional as F
from gradforge import nn
from gradforge.utils.data import DataLoader, TensorDataset


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, for 28x28 images.

    Args:
        num_classes: outputs of the last layer.

    Shape:
        input (N, 1, 28, 28); output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)   # 28x28 -> 28x28, pooled to 14x14
        self.conv2 = nn.Conv2d(6, 16, 5)             # 14x14 -> 10x10, pooled to 5x5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def main(argv=None) -> float:
    """Train and evaluate; returns the final test accuracy."""
    parser = argparse.ArgumentParser(description="LeNet-5 on Fashion-MNIST")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--limit", type=int, help="use only the first N images (smoke tests)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    device = pick_device(args.device)
    data = load_data(limit=args.limit, device=device)
    loader = DataLoader(TensorDataset(data.train_x, data.train_y), batch_size=args.batch_size,
                        shuffle=True)
    model = LeNet5().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        test_loss, accuracy, _ = evaluate(model, data.test_x, data.test_y)
        print(f"epoch {epoch + 1}: train loss {total / len(data.train_y):.4f}  "
              f"test loss {test_loss:.4f}  test accuracy {100 * accuracy:.2f}%", flush=True)
    return accuracy


if __name__ == "__main__":
    main()
