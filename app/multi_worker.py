"""MultiWorkerMirroredStrategy for model.fit under Keras 3, and the workaround it needs."""

import tensorflow as tf


def strategy():
  """MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (ring all-reduce over gRPC, which
  works between CPU hosts as between GPU hosts), with Keras 3's metric reduction fixed."""
  options = tf.distribute.experimental.CommunicationOptions(
      implementation=tf.distribute.experimental.CommunicationImplementation.RING)
  _patch_metric_reduction()
  return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _patch_metric_reduction():
  """Workaround for keras-team/keras#20585: Keras 3.15 reduces fit's per-replica logs (loss and
  metric results, all scalars) under MultiWorkerMirroredStrategy with
  `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar ("Invalid reduction dimension 0
  for input with 0 dimensions"). Scalars are reduced with axis=None (the mean over replicas, as the
  single-worker strategies compute it); every other call goes to Keras unchanged."""
  from keras.src.backend.tensorflow import trainer  # pylint: disable=g-import-not-at-top
  original = trainer.reduce_per_replica
  if getattr(original, "patched_for_multi_worker", False):
    return

  def reduce_per_replica(values, strategy, reduction):
    if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and reduction in ("auto", "mean")):
      def reduce(value):
        if not isinstance(value, tf.distribute.DistributedValues):
          return value
        return strategy.reduce("MEAN", value, axis=0 if value.shape.rank else None)
      return tf.nest.map_structure(reduce, values)
    return original(values, strategy, reduction)

  reduce_per_replica.patched_for_multi_worker = True
  trainer.reduce_per_replica = reduce_per_replica


def build_before_fit(model, dataset):
  """Workaround for keras-team/keras#20585 (tensorflow/tensorflow#72388): under
  MultiWorkerMirroredStrategy, Keras 3's fit/evaluate take the first batch off the distributed
  iterator and all-reduce it with axis=None just to learn the input shapes for building the model
  (`_maybe_symbolic_build`), which fails on the PerReplica batch (and would drop that batch). Here
  the model, its loss, metrics and optimizer are built from the dataset's element spec instead, and
  this model's `_maybe_symbolic_build` becomes a no-op; nothing else of Keras changes."""
  spec = dataset.element_spec
  with model.distribute_strategy.scope():
    model._symbolic_build(data_batch=spec)  # pylint: disable=protected-access
  model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None  # pylint: disable=protected-access
