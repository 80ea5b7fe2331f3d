"""The tf.data pipeline: a Source -> batched train / validation / test datasets for model.fit.

Images stay uint8 until the last stage (4x less memory traffic than float32); the model's own
first layer normalises them, so the exported model takes raw 0..255 pixels.
"""

import dataclasses
import os

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from app import keras_compat
from app.core.errors import UsageError
from app.data import augment
from app.data import images as images_lib
from app.data.sources import Examples

AUTOTUNE = tf.data.AUTOTUNE
_STATS_SAMPLE = 2000  # images read to estimate per-channel mean/variance of file-based data


@dataclasses.dataclass
class Datasets:
  """What build() gives: the datasets model.fit and evaluation read, what was learnt of the
  training images, and what training_batches() needs to build other epochs of training batches."""
  train: tf.data.Dataset  # epoch 0: (float32 images 0..255, one-hot float32 labels), augmented
  validation: tf.data.Dataset
  test: tf.data.Dataset
  steps_per_epoch: int
  num_train: int
  num_validation: int
  num_test: int
  class_names: list
  image_shape: tuple
  mean: np.ndarray  # per-channel, pixel units (0..255), of the training images
  variance: np.ndarray
  test_split: str  # "test", or "held_out_test": a source without one, its part held out of train
  class_counts: np.ndarray  # training images per class
  split_class_counts: dict  # {"validation", "test"}: their images per class (majority rates)
  train_examples: Examples  # the training split, as training_batches() batches it
  data: ml_collections.ConfigDict  # the data config: cache, shuffle buffer, resize policy, ...
  augmenter: augment.Augmenter  # data.augment, parsed once: all epochs share its Keras layers
  seed: int  # the run's: every epoch's shuffle and augmentation keys derive from it
  batch_size: int  # global
  drop_remainder: bool
  # How validation, test and the export resize (images_lib.evaluation_policy: data.resize, and
  # data.eval_crop's share of a centre crop): what every evaluation and the export read.
  evaluation_resize: str
  # The source's own validation split when validation is it (Source.validation_description:
  # "val folder DIR/val"); "" when validation is held out of train, a fold or the test split.
  validation_from: str = ""


PARTS = ("validation", "test")  # the parts split_validation holds out of a training split


def split_validation(examples, fraction, seed, part="validation"):
  """Seeded random split of `examples` into (train, the held-out `part`); the test part of a
  source without one draws an order of its own."""
  order = np.random.default_rng(seed if part == "validation" else [seed, PARTS.index(part)]
                                ).permutation(len(examples))
  count = int(round(len(examples) * fraction))
  if count < 1 or count >= len(examples):
    raise UsageError(
        f"validation_split={fraction} of {len(examples)} training images leaves an empty {part} "
        "split; "
        "choose a fraction between 0 and 1 that keeps images on both sides")
  return examples.subset(np.sort(order[count:])), examples.subset(np.sort(order[:count]))


def split_fold(examples, folds, fold, seed):
  """Seeded k-fold split: (train, validation) where validation is fold `fold` of `folds`."""
  if len(examples) < folds:
    raise UsageError(f"{folds} folds need at least {folds} training images; got {len(examples)}")
  parts = np.array_split(np.random.default_rng(seed).permutation(len(examples)), folds)
  validation = np.sort(parts[fold])
  train = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != fold]))
  return examples.subset(train), examples.subset(validation)


def _decoded(examples, image_shape, resize):
  """Unbatched (uint8 image, int32 label) of file- or record-based examples, decoded in parallel."""
  decode = lambda encoded: images_lib.decode_and_fit(encoded, image_shape, resize)
  if examples.records is not None:
    from app.data.sources import tfrecord  # pylint: disable=g-import-not-at-top
    keep = np.zeros(int(examples.records.max()) + 1 if len(examples) else 0, bool)
    keep[examples.records] = True
    keep_tensor, count = tf.constant(keep), len(keep)
    ds = tfrecord.record_stream(examples.shards)
    ds = ds.filter(lambda i, encoded, label: tf.logical_and(i < count, keep_tensor[tf.minimum(i, count - 1)]))
    # filter() leaves the length unknown, and Keras then reads a validation or test set to its
    # end and warns "Your input ran out of data" at every evaluation; the length is known here.
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(examples)))
    return ds.map(lambda i, encoded, label: (decode(encoded), label), num_parallel_calls=AUTOTUNE)
  ds = tf.data.Dataset.from_tensor_slices((examples.paths, examples.labels))
  return ds.map(lambda p, y: (decode(tf.io.read_file(p)), y), num_parallel_calls=AUTOTUNE)


def _examples(examples, image_shape, cache, resize):
  """(unbatched dataset, gather): in-memory arrays -> indices and the function that gathers a
  batch of them from one tensor (no per-image tf.data work); files and records -> decoded
  (uint8 image, int32 label) examples, decoded in parallel once and then cached, and None."""
  if examples.images is not None:
    labels, images = tf.constant(examples.labels), tf.constant(examples.images)
    return (tf.data.Dataset.range(len(examples)),
            lambda i: (tf.gather(images, i), tf.gather(labels, i)))
  ds = _decoded(examples, image_shape, resize)
  if cache:
    # Decode once: later epochs read decoded uint8 images from memory, or from cache files in
    # `cache` when it is a folder (data larger than RAM).
    ds = ds.cache(cache if isinstance(cache, str) else "")
  return ds, None


def ordered_batches(examples, image_shape, batch_size, *, cache=True, resize="resize"):
  """(uint8 images, int32 labels) batches in order (evaluation, statistics, previews)."""
  ds, gather = _examples(examples, image_shape, cache, resize)
  if gather:
    return ds.batch(batch_size).map(gather, num_parallel_calls=AUTOTUNE)
  return ds.batch(batch_size, num_parallel_calls=AUTOTUNE)


def epoch_seed(seed, epoch):
  """The shuffle seed of one epoch: a function of the run's seed and the epoch alone, so a run
  resumed at epoch e (app/train/fitting.py) sees the order an uninterrupted run saw."""
  return (seed * 1_000_003 + epoch) % (2**31 - 1)


def _concatenate(datasets):
  """datasets[0], then datasets[1], ...: a balanced tree of concatenations (depth log2 n)."""
  if len(datasets) == 1:
    return datasets[0]
  middle = len(datasets) // 2
  return _concatenate(datasets[:middle]).concatenate(_concatenate(datasets[middle:]))


def replica_steps(count, batch_size, replicas, drop_remainder):
  """(steps, images in each replica's last batch) of an epoch of `count` images batched
  `batch_size` per replica for `replicas` replicas in sync (_batched_for_replicas)."""
  full_steps, rest = divmod(count, batch_size * replicas)
  tail = 0 if drop_remainder else rest // replicas
  return full_steps + (1 if tail else 0), tail


def _batched_for_replicas(ds, count, batch_size, replicas, drop_remainder):
  """`ds` (`count` examples) in batches of `batch_size`, so that `replicas` replicas in sync each
  get a batch at every step: with several, the images left after the whole steps are shared out
  evenly in one last step (the < replicas left after that are dropped), as a replica given no
  batch fails the step ("input depth must be evenly divisible"); with drop_remainder, only whole
  steps."""
  if replicas == 1:
    return ds.batch(batch_size, drop_remainder=drop_remainder)
  steps, tail = replica_steps(count, batch_size, replicas, drop_remainder)
  whole = (steps - (1 if tail else 0)) * batch_size * replicas
  head = ds.take(whole).batch(batch_size)
  return head.concatenate(ds.skip(whole).take(tail * replicas).batch(tail)) if tail else head


def _shuffled_batches(examples, image_shape, batch_size, *, seed, epochs, skip=0,
                      shuffle_buffer=0, cache=True, drop_remainder=False, resize="resize",
                      replicas=1):
  """Epochs `epochs` = (first, last) of shuffled (uint8 images, int32 labels, batch key,
  identity) batches in a row. Each epoch's order depends on (seed, epoch) only, and the key
  [epoch seed, batch index] seeds the batch's augmentation, so an epoch replays identically in a
  resumed run; identity = (the images' indices in `examples`, the epoch, `seed`), for the
  augmentations that follow an image across epochs (alternating flip). The first `skip` batches
  are left out (a run resumed mid-epoch). `replicas`: the replicas in sync that take this
  pipeline's batches in turn (_batched_for_replicas)."""
  base, gather = _examples(examples, image_shape, cache, resize)
  if gather:  # base holds the indices: a batch of them gathers its images and labels
    indexed = base
    take = lambda ids: (*gather(ids), ids)
  else:  # (image, label) examples: numbered after the cache, so the cache keeps its contents
    indexed = base.enumerate()
    take = lambda ids, example: (*example, ids)

  def one_epoch(epoch):  # a Python int: tf.data takes only constant shuffle seeds here
    key = epoch_seed(seed, epoch)
    ds = indexed.shuffle(shuffle_buffer or len(examples), seed=key, reshuffle_each_iteration=False)
    ds = _batched_for_replicas(ds, len(examples), batch_size, replicas, drop_remainder)
    ds = ds.map(take, num_parallel_calls=AUTOTUNE)
    identity = lambda ids: (ids, tf.constant(epoch, tf.int64), tf.constant(seed, tf.int64))
    return ds.enumerate().map(lambda i, batch: (
        *batch[:2], tf.stack([tf.constant(key, tf.int64), i]), identity(batch[2])))

  return _concatenate([one_epoch(epoch) for epoch in range(*epochs)]).skip(skip)


def in_memory(examples, image_shape, resize, max_gb):
  """Decodes file- or record-based examples once into one uint8 array when they fit in `max_gb`,
  so every epoch gathers batches from memory (the speedruns' device-resident data) instead of
  running tf.data per image; returns `examples` unchanged otherwise."""
  size_gb = len(examples) * int(np.prod(image_shape)) / 2**30
  if examples.images is not None or not len(examples) or size_gb > max_gb:
    return examples
  images, position = np.empty((len(examples), *image_shape), np.uint8), 0
  for batch, _ in _decoded(examples, image_shape, resize).batch(1024).as_numpy_iterator():
    images[position:position + len(batch)] = batch
    position += len(batch)
  return type(examples)(labels=examples.labels, images=images)


def channel_stats(examples, image_shape, resize="resize"):
  """Per-channel mean and variance of the training images, in pixel units."""
  if examples.images is not None:  # exact, from per-channel histograms of the uint8 values
    pixels = examples.images.reshape(-1, image_shape[-1])
    values = np.arange(256, dtype=np.float64)
    counts = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(pixels.shape[1])])
    mean = counts @ values / len(pixels)
    return mean, np.maximum(counts @ values**2 / len(pixels) - mean**2, 1e-6)
  sample = examples.subset(np.linspace(0, len(examples) - 1, min(len(examples), _STATS_SAMPLE)).astype(int))
  pixels = np.concatenate([b.numpy().reshape(-1, image_shape[-1]) for b, _ in
                           ordered_batches(sample, image_shape, 256, cache=False, resize=resize)]
                          ).astype(np.float64)
  return pixels.mean(axis=0), np.maximum(pixels.var(axis=0), 1e-6)


def _splits(source, data, seed, fold, policy):
  """(train, validation, test, test split name) Examples of `source` as build() documents them,
  decoded into memory where data.in_memory_max_gb allows."""
  # data.limit's seeded stratified subset (checks.check_source's, when the source was checked:
  # taking it again keeps it whole).
  # Selection (best.keras, early stopping, plateau) never sees the test part: a source without
  # a test split holds one out of its training split first, then the validation part, unless
  # the source has a validation split of its own (a folder's val/), which then validates.
  limited = lambda examples: None if examples is None else examples.limited(data.limit, seed)
  train, test, test_split = limited(source.train), limited(source.test), "test"
  own_validation = limited(source.validation)
  if test is None:
    if not data.validation_split:
      raise UsageError(
          f"{source.description} has no test split; hold part of the training images out with "
          "--config.data.validation_split=0.1 (" + (
              "that fraction as the test split" if own_validation is not None else
              "that fraction for validation and again for test") + ")")
    train, test = split_validation(train, data.validation_split, seed, part="test")
    test_split = "held_out_test"
  if fold is not None:  # folds are of train: the source's validation split is not used
    if own_validation is not None:
      logging.warning("cross-validation: the folds are of the training split; %s is not used",
                      source.validation_description)
    train, validation = split_fold(train, fold[1], fold[0], seed)
  elif own_validation is not None:
    validation = own_validation
  elif data.validation_split > 0:
    train, validation = split_validation(train, data.validation_split, seed)
  else:
    validation = test
  # Validation and test are seen as evaluation sees them (data.eval_crop's share of the centre,
  # from the stored image), decoded once here where data.in_memory_max_gb allows; images a
  # source holds as arrays already at the training size (IDX, TFDS) are cropped from those.
  evaluated = lambda e: e if policy == data.resize or e.images is None else type(e)(
      labels=e.labels, images=images_lib.fit_arrays(e.images, source.image_shape, policy))
  same = test is validation
  validation = evaluated(validation)
  test = validation if same else evaluated(test)
  if data.in_memory_max_gb:
    decode = lambda e, resize: in_memory(e, source.image_shape, resize, data.in_memory_max_gb)
    train, validation = decode(train, data.resize), decode(validation, policy)
    test = validation if same else decode(test, policy)
  return train, validation, test, test_split


def _model_inputs(images, labels, num_classes, augmenter=None, key=None, identity=None):
  """uint8 batch -> float32 images (augmented by `augmenter`, seeded by `key`, given the images'
  `identity` (_shuffled_batches), when given) and one-hot labels."""
  labels = tf.one_hot(labels, num_classes)
  if augmenter is not None:
    return augmenter(images, labels, seed=key, identity=identity)
  return tf.cast(images, tf.float32), labels


def _cache(data, split):
  """What _examples caches `split` in: nothing, memory (True) or data.cache_dir/<split>."""
  cache = data.cache and (os.path.join(data.cache_dir, split) if data.cache_dir else True)
  if data.cache_dir:
    os.makedirs(data.cache_dir, exist_ok=True)
  return cache


def _prefetched(ds, data, sharded=False):
  """`ds` prefetched, with the data config's determinism and, when `sharded`, no auto-sharding."""
  options = tf.data.Options()
  options.deterministic = data.deterministic  # False lets parallel stages reorder for speed
  if sharded:  # sharded here, by example; tf.distribute must not shard it again
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.prefetch(AUTOTUNE).with_options(options)


def _evaluation_batches(datasets, examples, split):
  """(float32 images, one-hot labels) batches of `examples` in order, not augmented."""
  data, num_classes = datasets.data, len(datasets.class_names)
  cache = _cache(data, split)
  ds = ordered_batches(examples, datasets.image_shape, datasets.batch_size, cache=cache,
                       resize=datasets.evaluation_resize)
  ds = ds.map(lambda x, y: _model_inputs(x, y, num_classes), num_parallel_calls=AUTOTUNE)
  return _prefetched(ds, data)


def training_batches(datasets, first, last, skip=0, context=None):
  """Augmented training batches of epochs first..last-1 in a row, less the first `skip` global
  batches. Under a tf.distribute strategy, `context` (an InputContext) selects one input
  pipeline: its shard of the examples (equal shards, so every worker runs the same steps), per
  replica."""
  examples, batch_size = datasets.train_examples, datasets.batch_size
  split, sharded, replicas = "train", False, 1
  if context is not None:
    count, index = context.num_input_pipelines, context.input_pipeline_id
    examples = shard(examples, count, index)
    split = f"train-{index}-of-{count}" if count > 1 else "train"
    batch_size = context.get_per_replica_batch_size(batch_size)
    replicas = context.num_replicas_in_sync // count  # this pipeline's, taking batches in turn
    skip *= replicas  # global batches -> this pipeline's
    sharded = True
  data = datasets.data
  cache = _cache(data, split)
  ds = _shuffled_batches(examples, datasets.image_shape, batch_size, seed=datasets.seed,
                         epochs=(first, last), skip=skip, shuffle_buffer=data.shuffle_buffer,
                         cache=cache, drop_remainder=datasets.drop_remainder, resize=data.resize,
                         replicas=replicas)
  num_classes = len(datasets.class_names)
  ds = ds.map(lambda x, y, key, identity: _model_inputs(x, y, num_classes, datasets.augmenter,
                                                       key, identity),
              num_parallel_calls=AUTOTUNE)
  return _prefetched(ds, data, sharded)


def build(source, data, batch_size, seed, drop_remainder=False, fold=None, augmenter=None):
  """Source + data config -> Datasets. Validation is fold `fold` = (index, count) of the training
  split when given (cross-validation), else the source's own validation split (a folder's val/),
  else data.validation_split of the training split, else the test split.
  `augmenter` augments the training batches (a run's: built from config.derived.augment); None
  parses data.augment."""
  augmenter = augmenter or augment.parse(data.augment)
  augmenter.check_image_shape(source.image_shape)  # before decoding, not in the first step
  images_lib.require_batch_fits(source.image_shape, batch_size, as_stored=not data.image_size)
  evaluation_resize = images_lib.evaluation_policy(data.resize, data.eval_crop)
  train, validation, test, test_split = _splits(source, data, seed, fold, evaluation_resize)
  if len(train) < batch_size and drop_remainder:
    raise UsageError(f"batch_size={batch_size} exceeds the {len(train)} training images; lower it")
  num_classes = len(source.class_names)
  steps = len(train) // batch_size if drop_remainder else -(-len(train) // batch_size)
  mean, variance = channel_stats(train, source.image_shape, data.resize)
  datasets = Datasets(
      train=None, validation=None, test=None, steps_per_epoch=steps, num_train=len(train),
      num_validation=len(validation), num_test=len(test), class_names=list(source.class_names),
      image_shape=tuple(source.image_shape), mean=mean, variance=variance, test_split=test_split,
      class_counts=np.bincount(train.labels, minlength=num_classes), train_examples=train,
      split_class_counts={name: np.bincount(split.labels, minlength=num_classes)
                          for name, split in (("validation", validation), ("test", test))},
      data=data, augmenter=augmenter, seed=seed, batch_size=batch_size,
      drop_remainder=drop_remainder, evaluation_resize=evaluation_resize,
      validation_from=source.validation_description if fold is None else "")
  datasets.train = training_batches(datasets, 0, 1)
  datasets.validation = _evaluation_batches(datasets, validation, "validation")
  datasets.test = _evaluation_batches(datasets, test, "test")
  return datasets


def for_run(source, config, fold=None):
  """build() as a run calls it, from its resolved `config`: the batch size, drop_remainder under
  XLA, and the host augmentation built from config.derived.augment."""
  return build(source, config.data, config.train.batch_size, config.seed,
               drop_remainder=config.runtime.jit_compile, fold=fold,
               augmenter=augment.build(config.derived.augment))


def shard(examples, count, index):
  """Shard `index` of `count` equal shards (every count-th example; the < count left over are
  dropped): what one worker of a multi-worker run trains on."""
  if count == 1:
    return examples
  if len(examples) < count:
    raise UsageError(f"{len(examples)} training images cannot be shared among {count} workers")
  return examples.subset(np.arange(index, len(examples) - len(examples) % count, count))


def distributed_train(datasets, strategy, epochs=(0, 1), skip=0):
  """(training batches, steps per epoch) of epochs `epochs` = (first, last), less the first
  `skip` steps, as model.fit should get them under `strategy`: with several replicas, built per
  input pipeline through tf.distribute.InputContext (each worker reads only its shard, batched per
  replica; auto-sharding off); with one replica, as one dataset."""
  if strategy.num_replicas_in_sync == 1:
    return training_batches(datasets, *epochs, skip=skip), datasets.steps_per_epoch
  pipelines = keras_compat.input_pipelines(strategy)
  replicas_here = strategy.num_replicas_in_sync // pipelines
  shard_size = datasets.num_train // pipelines
  per_replica = datasets.batch_size // strategy.num_replicas_in_sync
  steps, _ = replica_steps(shard_size, per_replica, replicas_here, datasets.drop_remainder)
  dataset = strategy.distribute_datasets_from_function(
      lambda context: training_batches(datasets, *epochs, skip=skip, context=context))
  return dataset, steps
