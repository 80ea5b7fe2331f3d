r"""A 60-minute search on 2 CPU cores whose retrained best beats 93.9% on Fashion-MNIST (issue 6).

  python -m app.tune --config=configs/tune_fashion_mnist_94.py --search_dir=runs/search-94 \
      --retrain --retrain_epochs=18

Around the airbench speed recipe (configs/fashion_mnist_94.py): Bayesian optimisation of the
width (the architecture), peak learning rate, weight decay, label smoothing and batch size, each
trial 8 epochs on 90% of the training split and validated on the other 10%. The search stops
starting trials after 45 minutes (search.time_budget_seconds), leaving room in the hour for
--retrain: best_recipe.py trained 18 epochs on the whole training split, tested and exported.
93.9% is above the Google AutoML entry (24 compute hours) in the Fashion-MNIST benchmark table.
The recorded run is in docs/BENCHMARKS.md.
"""

from configs import fashion_mnist


def get_config():
  config = fashion_mnist.get_config()  # SGD onecycle, 1 warmup epoch, precision auto, batch 256
  config.name = "fashion_mnist_94_tuned"
  # The fashion_mnist_94 recipe's settings, each trial trained 8 epochs.
  config.model.name = "airbench"
  config.model.width = 24
  config.model.tta = "flip"
  config.data.augment = "flip|crop(pad=2)"
  config.train.epochs = 8  # per trial; --retrain_epochs trains the best longer
  config.train.label_smoothing = 0.2
  config.optim.learning_rate = 0.3
  config.search.space = (
      "model.width=choice(16, 24, 32);"
      "optim.learning_rate=log(0.1, 0.8);"
      "optim.weight_decay=log(1e-4, 2e-3);"
      "train.label_smoothing=float(0.0, 0.3);"
      "train.batch_size=choice(256, 512)")
  config.search.tuner = "bayesian"
  config.search.initial_trials = 5  # random trials, then the Gaussian process proposes
  config.search.objective = "val_accuracy"
  config.search.max_trials = 30  # the time budget ends the search first
  config.search.time_budget_seconds = 2700.0
  return config
