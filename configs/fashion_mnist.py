r"""Fashion-MNIST, the default recipe: >= 92.5% test accuracy in <= 5 minutes on 2 CPU cores.

  python -m app.train                       # this recipe is the default
  python -m app.train --config=configs/fashion_mnist.py --epochs=3

Measured figures (command, machine, date) are in docs/BENCHMARKS.md.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "fashion_mnist"
  config.data.name = "fashion_mnist"
  # Flips only: in a 12-epoch budget the small net underfits, and adding crop(pad=2) cost
  # 0.4 points at 10 epochs (92.59% vs 92.95%, one seed each).
  config.data.augment = "flip"
  # VGG-style 16-32-64, 73k parameters, 14.5 MFLOPs per image: the width where accuracy per
  # second was best; wider (32) trains 3.5x slower for the same epochs.
  config.model.name = "vgg"
  config.model.width = 16
  config.train.epochs = 12
  config.train.batch_size = 256
  config.train.label_smoothing = 0.1
  config.optim.name = "sgd"  # Nesterov momentum 0.9 (the schema's defaults)
  config.optim.learning_rate = 0.2
  config.optim.weight_decay = 5e-4
  config.optim.schedule = "onecycle"  # linear warmup, then linear decay to 0: the speedrun shape
  config.optim.warmup_epochs = 1.0
  # auto: mixed_bfloat16 where the CPU computes bfloat16 natively (AVX512_BF16, AMX: with TF's
  # fused batch norm ~1.9x float32's speed there, tools/bench_batchnorm.py), float32 on other CPUs
  # (AVX2 only: bfloat16 is emulated there, 6.3x slower than float32 on this recipe, 2026-12-03,
  # docs/BENCHMARKS.md), mixed_float16 on GPUs with Tensor Cores. The head's softmax and the
  # export stay float32.
  config.runtime.mixed_precision = "auto"
  return config
