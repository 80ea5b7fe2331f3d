r"""Transfer learning on the CIFAR-10 mini folder: a MobileNetV2 backbone (alpha 0.5) from an
earlier run, a new head, two phases; the images upsampled from 32x32 to 48x48.

  unzip -q ../shared/datasets/cifar10-jpg-mini.zip -d /tmp
  # Run 1: a backbone from scratch at 32x32 (one phase, 6 epochs); it leaves backbone.weights.h5
  python -m app.train --config=configs/cifar_mini_transfer.py --config.data.image_size=32 \
      --config.train.frozen_epochs=0 --epochs=6 --learning_rate=0.004 --output_dir=runs/pretrain
  # Run 2 (this recipe): that backbone at 48x48; 2 epochs head-only, 3 fine-tuning at 0.1x
  python -m app.train --config=configs/cifar_mini_transfer.py \
      --weights=runs/pretrain/backbone.weights.h5 --output_dir=runs/transfer

Measured by tests/test_transfer.py (these settings, seed 0, 2 shared CPU cores, float32): run 1
24% test accuracy after ~30 s; run 2 19.0% after the head phase, 23.5% after fine-tuning, ~20 s.
On 1,000 training images a from-scratch backbone is weak; the recipe shows the mechanics, which
are the same with keras.applications' ImageNet files passed as --weights.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "cifar_mini_transfer"
  config.data.name = "folder"
  config.data.data_dir = "/tmp/cifar10-jpg-mini"
  config.data.image_size = 48  # upsampled: the backbone meets another size than in run 1
  config.model.name = "mobilenet_v2"
  config.model.width = 16  # alpha 0.5
  config.train.epochs = 5
  config.train.frozen_epochs = 2  # head only; then 3 epochs of fine-tuning
  config.train.batch_size = 64
  config.optim.name = "adam"
  config.optim.learning_rate = 2e-3  # head phase; fine-tuning at optim.fine_tune_rate_factor=0.1
  return config
