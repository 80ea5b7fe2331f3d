r"""Fashion-MNIST speed recipe: >= 93.9% test accuracy in <= 10 minutes on 2 CPU cores (issue 8).

  python -m app.train --config=configs/fashion_mnist_94.py
  python tools/benchmark.py --recipes=configs/fashion_mnist_94.py --targets=0.939

The fashion_mnist_92 recipe (airbench net, patch whitening, label smoothing 0.2, warmup then
linear decay, flip TTA, mixed_bfloat16), 1.5x wider (24-96-96, 24.8 MFLOPs per image) and
trained 18 epochs with flips and 2-pixel random crops; ends near 94.4% after ~470 s here
(one seed while tuning; the recorded figures are in docs/BENCHMARKS.md). 93.9% is above the
Google AutoML entry (24 compute hours) in the Fashion-MNIST benchmark table.
"""

from configs import fashion_mnist


def get_config():
  config = fashion_mnist.get_config()  # SGD onecycle, 1 warmup epoch, precision auto, batch 256
  config.name = "fashion_mnist_94"
  config.model.name = "airbench"
  config.model.width = 24
  config.model.tta = "flip"
  config.data.augment = "flip|crop(pad=2)"
  config.train.epochs = 18
  config.train.label_smoothing = 0.2
  config.optim.learning_rate = 0.3
  # The speedrun convention: train on the whole training split and test every epoch, labelled
  # "test" in metrics.json; nothing selects on it (best.keras = the last epoch).
  config.data.validation_split = 0.0
  return config
