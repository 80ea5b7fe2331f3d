r"""Fashion-MNIST, the default recipe: PLACEHOLDER_RESULTS

  python -m app.train                       # this recipe is the default
  python -m app.train --config=configs/fashion_mnist.py --epochs=3
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "fashion_mnist"
  config.data.name = "fashion_mnist"
  config.data.augment = "flip|crop(pad=2)"
  config.model.name = "vgg"
  config.model.width = 16
  config.train.epochs = 10
  config.train.batch_size = 256
  config.train.label_smoothing = 0.1
  config.optim.name = "sgd"
  config.optim.learning_rate = 0.2
  config.optim.weight_decay = 5e-4
  config.optim.schedule = "onecycle"
  config.optim.warmup_epochs = 1.0
  return config
