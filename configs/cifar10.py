r"""CIFAR-10 from its JPEG image folders (or their TFRecord conversion): a quick baseline.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  python -m app.train --config=configs/cifar10.py --data_dir=/tmp/cifar10-jpg
  python tools/folder_to_tfrecord.py --input=/tmp/cifar10-jpg --output=/tmp/cifar10-tfr
  python -m app.train --config=configs/cifar10.py --dataset=tfrecord --data_dir=/tmp/cifar10-tfr

The 50,000 training images are decoded once into memory (150 MB of uint8) and every epoch
gathers augmented batches from there, so the model never waits for JPEG decoding. Measured
figures (command, machine, date) are in docs/BENCHMARKS.md.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "cifar10"
  config.data.name = "folder"
  config.data.data_dir = "/tmp/cifar10-jpg"
  config.data.augment = "flip|crop(pad=4)"
  # The net and training of the Fashion-MNIST recipe (configs/fashion_mnist.py: VGG 16-32-64,
  # 74k parameters, ~20 MFLOPs per 32x32 image; SGD one-cycle, label smoothing, weight decay,
  # mixed precision auto): small enough to train 10 epochs of CIFAR-10 in minutes on 2 CPU cores.
  # Only the data, the crops and the epochs differ.
  config.model.name = "vgg"
  config.model.width = 16
  config.train.epochs = 10
  config.train.batch_size = 256
  config.train.label_smoothing = 0.1
  config.optim.name = "sgd"  # Nesterov momentum 0.9 (the schema's defaults)
  config.optim.learning_rate = 0.2
  config.optim.weight_decay = 5e-4
  config.optim.schedule = "onecycle"  # linear warmup, then linear decay to 0: the speedrun shape
  config.optim.warmup_epochs = 1.0
  # mixed_bfloat16 where the CPU has bfloat16 instructions, float32 where it would be emulated
  # (configs/fashion_mnist.py says why and how much).
  config.runtime.mixed_precision = "auto"
  return config
