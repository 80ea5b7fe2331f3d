r"""The data-aware recipe: what `python -m app.train` runs on data other than Fashion-MNIST when
no --config is given. It sees the data before it chooses (app/train/data_aware.py: the image
size from the images' sizes and the budget, the resize policy, augmentations, family, batch and
rate; data_aware.json in the run dir says why) and plans its length to the time budget
(app/train/budget.py: --time_budget, 5 minutes unless given).

  python -m app.train --dataset=folder --data_dir=~/photos                  # 5 minutes
  python -m app.train --dataset=folder --data_dir=~/photos --time_budget=2m
  python -m app.train --config=configs/data_aware.py --dataset=tfds:cifar10 --time_budget=10m

Any key given on the command line is kept (--config.data.image_size=96 stays 96). Measured
figures (command, machine, date) are in docs/BENCHMARKS.md.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "data"  # the data's name replaces it (a folder's, a TFDS set's)
  config.data_aware = True
  config.data.name = "folder"
  # Budgeted training: the schedule ends when the budget does (Li et al. 2020), so a run of 2
  # minutes and one of 10 both decay to zero instead of one being cut short.
  config.train.time_budget = "5m"
  config.train.epochs = 40  # the plan replaces it (the length at which the warmup below is set)
  # The speedrun shape: SGD Nesterov (momentum 0.9: the schema's), a linear warmup over the
  # first 5% of the run, then linear decay to 0 at its end.
  config.optim.name = "sgd"
  config.optim.schedule = "onecycle"
  config.optim.warmup_fraction = 0.05
  # mixed_bfloat16 where the CPU has bfloat16 instructions, float32 where it would be emulated
  # (configs/fashion_mnist.py says why and how much).
  config.runtime.mixed_precision = "auto"
  return config
