r"""CIFAR-10 from its JPEG image folders (or their TFRecord conversion): a quick baseline.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  python -m app.train --config=configs/cifar10.py --data_dir=/tmp/cifar10-jpg
  python tools/folder_to_tfrecord.py --input=/tmp/cifar10-jpg --output=/tmp/cifar10-tfr
  python -m app.train --config=configs/cifar10.py --dataset=tfrecord --data_dir=/tmp/cifar10-tfr

The 50,000 training images are decoded once into memory (150 MB of uint8) and every epoch
gathers augmented batches from there, so the model never waits for JPEG decoding. Measured
figures (command, machine, date) are in docs/BENCHMARKS.md.
"""

from configs import fashion_mnist


def get_config():
  # The Fashion-MNIST recipe (VGG 16-32-64, 74k parameters, ~20 MFLOPs per 32x32 image; SGD
  # one-cycle, label smoothing, weight decay, mixed_bfloat16): small enough to train 10 epochs
  # of CIFAR-10 in minutes on 2 CPU cores. Only the data and the epochs differ.
  config = fashion_mnist.get_config()
  config.name = "cifar10"
  config.data.name = "folder"
  config.data.data_dir = "/tmp/cifar10-jpg"
  config.data.augment = "flip|crop(pad=4)"
  config.train.epochs = 10
  return config
