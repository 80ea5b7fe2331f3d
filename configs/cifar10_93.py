r"""CIFAR-10 (JPEG folders): airbench94's net and training, for issue 8's 93% in 30 minutes.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  python -m app.train --config=configs/cifar10_93.py --data_dir=/tmp/cifar10-jpg

airbench94 (Keller Jordan 2024) as our options express it: the width-64 net (conv groups
64-256-256, frozen 2x2 patch whitening, dirac-initialised convs, GELU, batch norms without a
learned scale whose biases train at 64x the rate, logits / 9), batch 1,024, SGD Nesterov with
momentum 0.85 at a peak rate of 1.5 (airbench's 11.5 per 1,024 examples in its decoupled form),
weight decay 0.0153 per 1,024 examples (0.0102 x the rate here), 23% warmup then linear decay to
7%, label smoothing 0.2, lookahead every 5 steps, batch-norm momentum 0.6, alternating flips
(each image mirrored in every other epoch: flip(alternate=True)) and 2-pixel reflection-padded
translations, and its level-2 test-time augmentation (mirror + one-pixel translations, 6 views).
Validated once, after the last epoch, as airbench94 runs its test-time augmentation only at the
end: the whole-run profile (run_profile.json, docs/BENCHMARKS.md, 2026-12-02) of this recipe
validating every 4 epochs spent 103 s of its 1,079 in three six-view evaluations of the 10,000
test images and 34 s more in a final one; the last epoch's validation now gives the test figures
(app/train/train_and_evaluate.py). For accuracy by epoch, pass
--config.train.validation_every_epochs=1 (tools/benchmark.py's time-to-target runs say so).

Measured (docs/BENCHMARKS.md, 2026-12-04, the AMX machine): 90.75% and 90.46% (seeds 0, 1) in
951-956 s start to export, against 90.37% and 90.26% before alternating flips and batch-norm
momentum 0.6. Earlier (3 seeds, 2026-11-29, a slower machine): 90.36 ± 0.19% after a median 1,679 s at 408
images/s; 90% in 28 minutes, not issue 8's 93% in 30 on these quality-75 JPEGs.
"""

from configs import cifar10


def get_config():
  config = cifar10.get_config()  # /tmp/cifar10-jpg, bf16 where native, SGD onecycle
  config.name = "cifar10_93"
  config.model.name = "airbench"
  config.model.width = 64
  config.model.dirac = True
  config.model.activation = "gelu"
  config.model.bn_scale = False
  config.model.bn_bias_lr_scale = 64.0
  config.model.tta = "flip_translate"
  config.model.bn_momentum = 0.6  # airbench94's (PyTorch's 0.4): averages over ~2.5 steps
  config.data.augment = "flip(alternate=True)|crop(pad=2, fill='reflect')"
  config.train.epochs = 12
  config.train.batch_size = 1024
  config.train.label_smoothing = 0.2
  config.train.validation_every_epochs = 12  # once, at the end (the docstring)
  config.optim.learning_rate = 1.5
  config.optim.momentum = 0.85
  config.optim.weight_decay = 0.0102
  config.optim.warmup_epochs = 0.0  # resolve() sets it: warmup_fraction * train.epochs
  config.optim.warmup_fraction = 0.23  # 23% of whatever train.epochs a run has
  config.optim.final_fraction = 0.07
  config.optim.lookahead_every = 5
  # The speedrun convention: train on the whole training split and test every epoch, labelled
  # "test" in metrics.json; nothing selects on it (best.keras = the last epoch).
  config.data.validation_split = 0.0
  return config
