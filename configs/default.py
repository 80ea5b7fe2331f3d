"""The schema: every config key, its default and what it means. Recipes import this and change keys.

Override any key from the command line: `python -m app.train --config=configs/cifar10.py
--config.train.epochs=3`. A mistyped key or a wrongly typed value is refused before any work starts.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.name = "model"  # names the run directory and the export (saved_models/<name>/<version>)
  config.seed = 0  # seeds data order, augmentation and weight initialisation
  config.output_dir = ""  # run directory; "" = runs/<name>-<UTC timestamp>
  # The data-aware recipe (configs/data_aware.py, what app.train runs on data other than
  # Fashion-MNIST when no --config is given): the keys app/train/data_aware.py lists (the name,
  # image size and resize policy, augmentations, family, batch, rate) that the command line does
  # not set are chosen from a survey of the data and the time budget; data_aware.json says why.
  config.data_aware = False  # choose those keys from the data (configs/data_aware.py sets True)

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"  # fashion_mnist, folder, idx, tfrecord, or tfds:NAME (TFDS by name)
  config.data.data_dir = ""  # where the source reads; "" = the source's default location
  config.data.download = False  # fashion_mnist: download via keras.datasets if no local copy
  config.data.image_size = 0  # side in pixels images are resized to; 0 = as stored (must agree)
  config.data.resize = "resize"  # images of another size: resize (stretch), crop (centre), pad; the export alike
  # (eval_crop below 1 matches the object size a training random-resized crop shows; timm's
  # crop_pct, ImageNet's 0.875.)
  config.data.eval_crop = 1.0  # with resize=crop: the share of the centre validation, test and the export keep; 1 = all
  config.data.channels = 0  # 1 (grayscale) or 3 (RGB); 0 = as stored (folder: 3)
  # Fraction of the training split held out for validation (seeded): best.keras, early stopping
  # and the plateau schedule select on it, never on the test split. 0 = validate on the test
  # split every epoch, as the speedruns do (metrics.json labels it so): then nothing selects
  # (best.keras is the last epoch's weights; early stopping and plateau are refused). A source
  # without a test split holds out the same fraction again as its test part.
  config.data.validation_split = 0.1  # held out of train for validation; 0 = validate on test
  # Augmentation ops joined by "|", e.g. "flip|crop(pad=4)|mixup(alpha=0.2)": flip(alternate),
  # crop(pad, fill='zero'|'reflect'; reflect needs pad < the image side), rotate(factor),
  # zoom(factor), translate(factor), color_jitter(brightness, contrast, saturation, hue: each
  # the largest change, 0 = off; brightness shifts by up to that fraction of 0..255, contrast and
  # saturation scale by [1 - v, 1 + v], hue turns by up to v of the hue circle, v <= 0.5),
  # erase(factor, scale), randaugment(num_ops, factor), mixup(alpha), cutmix(factor),
  # resized_crop(scale, ratio: a random box of [scale, 1] of the area, aspect in [ratio, 1/ratio],
  # resized back). augment runs in the tf.data pipeline on the CPU; augment_on_device inside the
  # model (Keras layers; not crop, resized_crop, mixup, cutmix, flip(alternate=True): each image
  # mirrored in every other epoch); both compute in float32.
  # python -m app.augment_preview shows them.
  config.data.augment = ""  # host pipeline ops, e.g. "flip|crop(pad=4)"; "" = none
  config.data.augment_on_device = ""  # in-model ops, e.g. "flip|rotate(factor=0.05)"; "" = none
  # For quick trials: N images of each split, drawn with the seed, every class keeping its share
  # (one image at least where N allows), in their order; the data report counts these.
  config.data.limit = 0  # N images of each split, each class in its share (seeded); 0 = all
  config.data.shuffle_buffer = 0  # 0 = the whole training split (exact shuffle)
  config.data.on_bad_file = "fail"  # undecodable image files: fail (name them) or skip (list them)
  config.data.in_memory_max_gb = 4.0  # decode file data once into RAM if it fits; 0 = stream
  config.data.cache = True  # keep decoded images after the first epoch (memory, or cache_dir)
  config.data.cache_dir = ""  # cache decoded images in files here (reused: clear on data change)
  config.data.deterministic = True  # fixed element order; False lets tf.data reorder for speed

  config.model = ml_collections.ConfigDict()
  config.model.name = "simple_cnn"  # a builder in app.models.MODELS (python -m app.models lists them)
  config.model.width = 0  # channels of the first stage; 0 = the family's default
  config.model.depth = 0  # family-specific depth (e.g. ResNet layers); 0 = the family's default
  config.model.dropout = 0.0  # dropout rate before the classifier
  config.model.kernel_size = 0  # vgg, simple_cnn: the convs' side; 0 = the family's (3)
  config.model.batch_norm = True  # vgg: batch norm after each conv (False: convs with biases)
  config.model.bn_momentum = 0.9  # batch-norm moving-average momentum
  config.model.activation = "relu"  # any keras.activations name
  config.model.whitening = True  # airbench: frozen 2x2 patch-whitening first conv set from the data
  config.model.dirac = False  # airbench: convs start as the identity on their first channels
  config.model.bn_scale = True  # airbench: batch norms learn a scale (airbench94: False)
  config.model.bn_bias_lr_scale = 1.0  # airbench: batch-norm biases' rate factor (airbench94: 64)
  # Test-time augmentation inside the model: "flip" averages every inference prediction
  # (validation, test, predict, the export) with the mirror image's; twice the inference cost.
  config.model.tta = ""  # "" = none, "flip" (2 views) or "flip_translate" (6 views)
  # "imagenet": keras.applications' file, fetched into the Keras cache ($KERAS_HOME/models) once
  config.model.weights = ""  # ImageNet families: "imagenet" or a local .weights.h5 / .h5 file

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 10  # passes over the training split; a recipe's epoch lengths scale with it
  config.train.batch_size = 128  # global batch (all replicas together)
  config.train.label_smoothing = 0.0  # cross-entropy target smoothing (Szegedy et al. 2016)
  config.train.validation_every_epochs = 1  # evaluate on the validation split every N epochs
  config.train.early_stopping_patience = 0  # stop after N epochs without val_accuracy gain; 0 = off
  config.train.backup_dir = ""  # resumable backups; "" = <output_dir>/backup (removed at the end)
  config.train.backup_every_steps = 0  # also back up every N steps; 0 = at epoch ends only
  config.train.on_divergence = "stop"  # NaN/exploding loss: stop, or retry (last good, half rate)
  config.train.divergence_factor = 10.0  # exploding: loss > this x epoch 1's (or x first batch's)
  config.train.class_weights = False  # weight the loss by inverse class frequency (imbalance)
  config.train.cv_folds = 0  # k-fold cross-validation on the training split; 0 = off
  config.train.frozen_epochs = 0  # transfer: first N epochs train the head, backbone frozen; 0 = off
  config.train.time_budget_seconds = 0.0  # stop training after this much wall time; 0 = no limit
  # Budgeted training (Li, Yumer, Ramanan, ICLR 2020): the whole command (start-up, training,
  # evaluations, export) is planned to fit, by measuring the step time first and setting
  # train.epochs so that the schedule (warmup, decay to its end) ends within it; the recipe's
  # lengths in epochs scale alike. "5m", "90s", "1h30m"; "" = off (train.epochs as given).
  config.train.time_budget = ""  # --time_budget: e.g. "5m"; the run plans its length to fit it
  config.train.profile_steps = ""  # "START,STOP": trace these steps (1-based); python -m app.step_profile
  config.train.progress = "auto"  # auto (a progress bar on a terminal, else a line per epoch) | bar | epoch

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adam"  # an optimizer in app.optim.optimizers.OPTIMIZERS
  config.optim.learning_rate = 1e-3  # peak rate, at reference_batch_size images per step
  # "auto": the run starts with the range test on its own data and model (100 steps; lr_find.*
  # in the run dir) and trains at its suggested rate, scaled to the batch as the recipe says.
  config.optim.learning_rate_from = ""  # an lr_find.json (python -m app.lr_find), or auto: its rate
  # Linear scaling rule (Goyal et al. 2017): rate = learning_rate * batch_size / reference.
  # 0 = use learning_rate as given, whatever the batch size.
  config.optim.reference_batch_size = 0  # 0 = learning_rate used as given
  config.optim.momentum = 0.9  # SGD and RMSprop momentum; Adam-family beta_1
  config.optim.nesterov = True  # SGD only
  config.optim.weight_decay = 0.0  # decoupled, per step, times the rate; skips biases and BN
  config.optim.clipnorm = 0.0  # clip each gradient to this L2 norm; 0 = off
  config.optim.schedule = "constant"  # a schedule in app.optim.schedules.SCHEDULES
  config.optim.warmup_epochs = 0.0  # linear warmup from 0 to the peak rate
  config.optim.warmup_fraction = 0.0  # warmup as a fraction of train.epochs (resolve() sets warmup_epochs from it); 0 = use warmup_epochs
  config.optim.final_fraction = 0.0  # cosine/onecycle end at this fraction of the peak
  config.optim.decay_epochs = 30.0  # step/exponential: decay by decay_rate every this many epochs
  config.optim.decay_rate = 0.1  # step/exponential/multistep/plateau: factor per decay
  config.optim.step_epochs = (30.0, 60.0, 80.0)  # multistep: epochs where the rate decays
  config.optim.power = 1.0  # polynomial: exponent of (1 - progress)
  config.optim.plateau_patience = 3  # plateau: epochs without val_loss improvement before a decay
  config.optim.clipvalue = 0.0  # clip each gradient element to [-v, v]; 0 = off
  config.optim.gradient_accumulation_steps = 1  # average gradients over N batches per update
  config.optim.ema = False  # keep an EMA of the weights; validation, test and export use it
  config.optim.ema_momentum = 0.99  # EMA decay per step
  # Lookahead (airbench94: every 5 steps, peak decay 0.95^5): the weights are pulled back toward
  # a slow average every N steps, the average's decay ramping up as (step / total)^3; 0 = off.
  config.optim.lookahead_every = 0  # Lookahead: sync toward the slow weights every N steps; 0 = off
  config.optim.lookahead_decay = 0.95 ** 5  # Lookahead: the slow average's peak decay
  config.optim.fine_tune_rate_factor = 0.1  # transfer: fine-tuning rate = peak rate times this

  config.runtime = ml_collections.ConfigDict()
  config.runtime.strategy = "auto"  # auto | default | one_device | mirrored | multi_worker | tpu
  config.runtime.worker_hosts = ""  # multi_worker without TF_CONFIG: "host1:port,host2:port,..."
  config.runtime.task_index = 0  # multi_worker with worker_hosts: this host's index in that list
  config.runtime.cluster_timeout_seconds = 600.0  # multi_worker: wait for the others; 0 = no limit
  config.runtime.tpu = ""  # tpu: TPU name or grpc:// address; "" = the TPU this VM is attached to
  config.runtime.cpu_devices = 0  # split the CPU into N logical devices (mirrored on a CPU); 0 = no
  config.runtime.gpu_memory_growth = True  # GPUs take memory as needed (False: TF grabs it all)
  config.runtime.gpu_memory_limit = ""  # per GPU, e.g. "8GiB" (bare number: MiB); replaces growth
  config.runtime.mixed_precision = "float32"  # float32 | mixed_bfloat16 | mixed_float16 | auto
  config.runtime.jit_compile = False  # XLA; measured 2x slower for small convnets on this CPU
  config.runtime.steps_per_execution = 1  # train steps per compiled call (less Python overhead)
  config.runtime.channels_last = False  # True: force NHWC (TF's layout optimizer off); False: TF decides
  config.runtime.accel = "off"  # auto: measure precision/XLA/steps_per_execution/batch, pick fastest
  config.runtime.accel_probe_steps = 16  # auto: timed steps per probed setting (after a warm-up)
  config.runtime.accel_tolerance = 0.05  # auto: reject settings whose loss departs more (relative)

  # Architecture and learning-rate search (python -m app.tune; app.train ignores this section).
  # space: "key=spec; key=spec" over any recipe key, spec one of int(lo, hi[, step]),
  # float(lo, hi[, step]), log(lo, hi), choice(a, b, ...), or lr_find("lr_find.json"[, factor])
  # (log scale from the range test's suggested rate / factor to rate * factor; factor 3).
  config.search = ml_collections.ConfigDict()
  config.search.space = ""  # e.g. "model.width=int(16, 40, 8); optim.learning_rate=log(0.05, 0.8)"
  config.search.tuner = "random"  # random | bayesian | hyperband (KerasTuner's oracles)
  config.search.objective = "val_accuracy"  # val_accuracy | accuracy_within_budget | time_to_target
  config.search.max_trials = 20  # trials in all (hyperband: a cap on its brackets' trials)
  config.search.trial_time_budget_seconds = 0.0  # each trial stops training after this; 0 = no cap
  # The whole search's wall seconds (this command's): no trial starts after them, and a running
  # trial stops training when they run out; 0 = no limit (max_trials alone ends the search).
  config.search.time_budget_seconds = 0.0  # the whole search's wall seconds; 0 = no limit
  config.search.target_accuracy = 0.0  # time_to_target: the validation accuracy to reach
  config.search.validation_split = 0.1  # trials validate on this held-out part, never on test
  config.search.initial_trials = 0  # bayesian: random trials before its Gaussian process; 0 = 3/key
  config.search.hyperband_factor = 3  # hyperband: keep 1/factor of the trials at each round
  config.search.max_consecutive_failures = 5  # stop the search after this many failed trials in a row
  config.search.seed = 1  # the tuner's sampling seed (KerasTuner treats 0 as "pick one")

  config.export = ml_collections.ConfigDict()
  config.export.enabled = True  # export a SavedModel at the end of training
  config.export.dir = "saved_models"  # TF Serving layout: <dir>/<name>/<version>/
  config.export.formats = ""  # also write, beside the SavedModel: "onnx", "litert" or "onnx,litert"
  config.export.parity_images = 64  # held-out test images every exported artifact is checked on
  return config
