r"""PyTorch side of tools/bench_torch.py: airbench94's net trained on synthetic batches, images/s.

  /tmp/torch-venv/bin/python tools/torch_airbench.py --batch_size=1024 --steps=12 --warmup=3

PyTorch only (no TensorFlow, no app import), so it runs in a virtualenv of its own: PyTorch is a
benchmark-only dependency, never the app's. The net, loss and optimizer are Keller Jordan's
airbench94 (KellerJordan/cifar10-airbench, airbench94.py @ 01a2367) as it ran on this CPU for
docs/BENCHMARKS.md: 2x2 patch whitening (24 channels, frozen weights, trained bias), GELU, conv
groups of 64, 256, 256 (conv, 2x2 max-pool, BN, GELU, conv, BN, GELU), BN without a learned scale
(momentum 0.6, eps 1e-12), 3x3 max-pool head, linear without bias, logits / 9; label smoothing
0.2, SGD Nesterov momentum 0.85; channels_last, bfloat16 autocast on the CPU (or float32), the
threads given. Prints one JSON line: {"images_per_second": ..., "step_seconds": [...]}.
"""

import argparse
import json
import time

import torch
from torch import nn


class ConvGroup(nn.Module):
  def __init__(self, channels_in, channels_out):
    super().__init__()
    self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding="same", bias=False)
    self.pool = nn.MaxPool2d(2)
    self.norm1 = _norm(channels_out)
    self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding="same", bias=False)
    self.norm2 = _norm(channels_out)
    self.activation = nn.GELU()

  def forward(self, x):
    x = self.activation(self.norm1(self.pool(self.conv1(x))))
    return self.activation(self.norm2(self.conv2(x)))


def _norm(channels):
  norm = nn.BatchNorm2d(channels, momentum=0.6, eps=1e-12)
  norm.weight.requires_grad = False  # airbench94: no learned scale
  return norm


def airbench94(width=64):
  widths = (width, 4 * width, 4 * width)
  whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
  whiten.weight.requires_grad = False
  return nn.Sequential(
      whiten, nn.GELU(), ConvGroup(24, widths[0]), ConvGroup(widths[0], widths[1]),
      ConvGroup(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten(),
      nn.Linear(widths[2], 10, bias=False), _Scale(1 / 9))


class _Scale(nn.Module):
  def __init__(self, factor):
    super().__init__()
    self.factor = factor

  def forward(self, x):
    return x * self.factor


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=1024)
  parser.add_argument("--steps", type=int, default=12, help="timed training steps")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument("--precision", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--width", type=int, default=64)
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  model = airbench94(args.width).to(memory_format=torch.channels_last)
  optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                              momentum=0.85, nesterov=True, weight_decay=5e-4)
  loss_function = nn.CrossEntropyLoss(label_smoothing=0.2)
  images = torch.randn(args.batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
  labels = torch.randint(0, 10, (args.batch_size,))
  model.train()
  seconds = []
  for step in range(args.warmup + args.steps):
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bfloat16"):
      loss = loss_function(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if step >= args.warmup:
      seconds.append(time.perf_counter() - start)
  print(json.dumps({"images_per_second": args.batch_size * len(seconds) / sum(seconds),
                    "step_seconds": [round(s, 4) for s in seconds],
                    "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
  main()
