"""Every use of a private Keras, KerasTuner, TensorFlow or tf2onnx symbol, in one module.

Each function below wraps one private symbol (or a private method we override), says why the
public API does not do, names the upstream issue, and was checked on the versions in CHECKED_ON
(tools/constraints.txt). `SYMBOLS` lists them all; `missing()` says which an installed version
lacks, and tests/test_keras_compat.py fails on an upgrade that removed one, naming the symbol, the
issue and this module. On an upgrade: run that test, fix what it names here, update CHECKED_ON.
"""

import dataclasses
import importlib
import inspect
import os
import sys

CHECKED_ON = {"keras": "3.15.1", "keras-tuner": "1.4.8", "tensorflow": "2.21.0",
              "tf2onnx": "1.17.0"}


@dataclasses.dataclass(frozen=True)
class Symbol:
  module: str  # importable module
  attribute: str  # dotted path inside it ("" = the module itself)
  why: str  # the upstream issue, or why the public API does not do
  source_mentions: str = ""  # an instance attribute: the text its class's source must contain


SYMBOLS = (
    Symbol("keras.src.backend.tensorflow.trainer", "reduce_per_replica",
           "keras-team/keras#20585: scalar logs under MultiWorkerMirroredStrategy"),
    Symbol("keras", "Model._symbolic_build",
           "keras-team/keras#20585, tensorflow/tensorflow#72388: build from the element spec"),
    Symbol("keras", "Model._maybe_symbolic_build",
           "keras-team/keras#20585: fit's build from the first PerReplica batch fails"),
    Symbol("keras", "Model._flatten_layers",
           "no public recursive layer walk in Keras 3 (Model.layers is the top level only)"),
    Symbol("keras", "callbacks.SwapEMAWeights._finalize_ema_values",
           "SwapEMAWeights re-syncs EMA slots only after the last planned epoch"),
    Symbol("keras.src.optimizers.base_optimizer", "BaseOptimizer",
           "its `_iterations` (the step count schedules read): under gradient accumulation "
           "`iterations` is a computed tensor with no setter",
           source_mentions="self._iterations"),
    Symbol("keras.src.export.tf2onnx_lib", "patch_tf2onnx",
           "tf2onnx 1.17 under numpy 2: the fixes Model.export(format='onnx') applies"),
    Symbol("tf2onnx.convert", "_convert_common",
           "tf2onnx's in-process conversion from a SavedModel signature (its CLI's steps)"),
    Symbol("keras_tuner.src.distribute.utils", "is_chief_oracle",
           "KerasTuner exposes no public chief/worker test"),
    Symbol("keras_tuner.src.distribute.utils", "has_chief_oracle",
           "KerasTuner exposes no public chief/worker test"),
    Symbol("keras_tuner.src.distribute.oracle_chief", "OracleServicer",
           "the chief's server, polled every second (start_server waits 20 s after the end)"),
    Symbol("keras_tuner.src.distribute.oracle_chief", "exit_chief",
           "the chief's end-of-search test, used by our faster server loop"),
    Symbol("keras_tuner.src.protos", "get_service_grpc", "the chief's gRPC service"),
    Symbol("keras_tuner", "Oracle._get_oracle_fname",
           "oracle.json's path, written atomically (a kill left half a file)"),
    Symbol("keras_tuner", "Oracle._get_trial_dir", "trial.json's folder, written atomically"),
    Symbol("keras_tuner", "Oracle._save_trial", "overridden: trial.json written atomically"),
    Symbol("keras_tuner", "Tuner._get_tuner_fname",
           "the tuner's state file, written atomically"),
    Symbol("keras_tuner", "Tuner._is_worker", "a worker saves no oracle state"),
    Symbol("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer.fit",
           "fit's training iterator, its local `epoch_iterator`: no public access to it (whose "
           "deletion stalls, see fit_training_iterator_handles)",
           source_mentions="epoch_iterator = TFEpochIterator("),
    Symbol("keras.src.trainers.epoch_iterator", "EpochIterator",
           "its `_current_iterator` (the tf.data iterator of fit's epochs)",
           source_mentions="self._current_iterator"),
    Symbol("tensorflow.python.data.ops.iterator_ops", "OwnedIterator",
           "its `_iterator_resource` (the handle whose deletion deletes the iterator)",
           source_mentions="self._iterator_resource"),
    Symbol("tensorflow.python.distribute.collective_all_reduce_strategy",
           "CollectiveAllReduceExtended",
           "its `_num_workers` (input pipelines of a multi-worker run): no public count",
           source_mentions="self._num_workers"),
)


def _resolve(symbol):
  value = importlib.import_module(symbol.module)
  for part in filter(None, symbol.attribute.split(".")):
    value = getattr(value, part)
  return value


def missing():
  """One message per SYMBOLS entry the installed packages lack (empty when all are there)."""
  messages = []
  for symbol in SYMBOLS:
    try:
      value = _resolve(symbol)
      if symbol.source_mentions and symbol.source_mentions not in inspect.getsource(value):
        raise AttributeError(f"its source no longer sets {symbol.source_mentions}")
    except (ImportError, AttributeError) as e:
      messages.append(f"{symbol.module}:{symbol.attribute} is missing ({e}); it was used for "
                      f"{symbol.why}; checked on {CHECKED_ON}: update app/keras_compat.py")
  return messages


# === Keras: MultiWorkerMirroredStrategy (app/distribute.py) ===

def patch_multi_worker_metric_reduction():
  """Workaround for keras-team/keras#20585: Keras 3.15 reduces fit's per-replica logs (loss and
  metric results, all scalars) under MultiWorkerMirroredStrategy with
  `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar ("Invalid reduction dimension 0
  for input with 0 dimensions"). Scalars are reduced with axis=None (the mean over replicas, as the
  single-worker strategies compute it); every other call goes to Keras unchanged."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
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


def build_from_element_spec(model, dataset):
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


# === Keras + tf.data: the training iterator's deletion at fit's end (app/train/callbacks.py) ===

def fit_training_iterator_handles():
  """Called from a callback of a running `model.fit` (its on_train_end): the resource handles of
  that fit's training iterator, [] where there is none to find.

  Why: deleting a tf.data iterator waits for the threads it started, its autotuning thread among
  them, and on TF 2.21 that wait at times lasts the rest of the thread's sleep (its optimisation
  period, which doubles up to 60 s over a long iterator's life) with every thread idle: 14-57 s
  at fit's return in 5 of 12 five-minute photo runs on 2026-12-05, none with autotuning off
  (docs/BENCHMARKS.md, "The stall at fit's end"). Keras deletes the iterator on the main thread
  as fit returns and gives no access to it: it sits in fit's local `epoch_iterator` (a
  TFEpochIterator), in the base class's `_current_iterator`; an OwnedIterator's
  `_iterator_resource` is the handle whose last reference deletes it. Upstream: no issue found in
  tensorflow/tensorflow for the deletion's wait (searched 2026-12-05); a distributed iterator
  (several devices) is not handled and gives []."""
  frame = sys._getframe(1)  # pylint: disable=protected-access
  while frame is not None and not (frame.f_code.co_name == "fit"
                                   and "epoch_iterator" in frame.f_locals):
    frame = frame.f_back
  if frame is None:
    return []
  iterator = getattr(frame.f_locals["epoch_iterator"], "_current_iterator", None)
  handle = getattr(iterator, "_iterator_resource", None)
  return [handle] if handle is not None else []


def input_pipelines(strategy):
  """Input pipelines (workers) of `strategy`: MultiWorkerMirroredStrategy's extended object
  keeps the count in a private attribute; every other strategy has one."""
  return getattr(strategy.extended, "_num_workers", 1)


# === Keras: models and callbacks ===

def all_layers(model):
  """Every layer of `model`, nested ones included (Keras 3 has no public recursive walk)."""
  return list(model._flatten_layers())  # pylint: disable=protected-access


def finalize_ema_values(swap_callback):
  """keras.callbacks.SwapEMAWeights(swap_on_epoch=True) re-syncs the optimizer's EMA slots only
  after the last planned epoch; this does it now (app/optim/averaging.py, on an early stop)."""
  swap_callback._finalize_ema_values()  # pylint: disable=protected-access


def set_optimizer_step(optimizer, step):
  """Sets the step count `optimizer`'s learning-rate schedule reads (one per batch), so a retried
  run's schedule goes on where it was (app/train/fitting.py). Keras 3.15's `iterations` is that
  variable only without gradient accumulation; with `gradient_accumulation_steps` it is computed,
  `_iterations // steps` (keras/src/optimizers/base_optimizer.py), a tensor with no `assign`,
  while the schedule and the accumulation's update test still read `_iterations`. A
  LossScaleOptimizer (mixed_float16) counts in its inner optimizer."""
  optimizer = getattr(optimizer, "inner_optimizer", optimizer)
  optimizer._iterations.assign(step)  # pylint: disable=protected-access


# === tf2onnx (app/serving/formats.py) ===

def convert_saved_model_to_onnx(saved_model, signature, path):
  """The steps of `python -m tf2onnx.convert --saved-model DIR --signature_def NAME`, in process
  (tf2onnx has no public function for them), after Keras's numpy-2 fixes for tf2onnx 1.17, as
  Model.export(format="onnx") applies them."""
  import warnings  # pylint: disable=g-import-not-at-top
  from keras.src.export.tf2onnx_lib import patch_tf2onnx  # pylint: disable=g-import-not-at-top
  from tf2onnx import convert, tf_loader  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():  # the patch probes np.object, which numpy 2 warns about
    warnings.simplefilter("ignore", FutureWarning)
    patch_tf2onnx()
  graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
      saved_model, None, None, tag=["serve"], signatures=[signature],
      return_tensors_to_rename=True)
  convert._convert_common(  # pylint: disable=protected-access
      graph_def, name=signature, input_names=inputs, output_names=outputs,
      tensors_to_rename=renames, output_path=path)


# === KerasTuner: distributed search and atomic state files (app/tune/search.py) ===

def is_chief_oracle():
  from keras_tuner.src.distribute import utils  # pylint: disable=g-import-not-at-top
  return utils.is_chief_oracle()


def has_chief_oracle():
  from keras_tuner.src.distribute import utils  # pylint: disable=g-import-not-at-top
  return utils.has_chief_oracle()


def with_atomic_state_files(oracle_class, write_json):
  """`oracle_class` whose oracle.json and trials' trial.json go through `write_json(path, state)`
  (an atomic write: KerasTuner writes them in place, so a kill could leave half a file that no
  rerun can read). Overrides Oracle.save and the private Oracle._save_trial."""

  class AtomicStateFiles(oracle_class):

    def save(self):
      write_json(self._get_oracle_fname(), self.get_state())  # pylint: disable=protected-access

    def _save_trial(self, trial):
      write_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),  # pylint: disable=protected-access
                 trial.get_state())

  return AtomicStateFiles


def tuner_state_file(tuner):
  return tuner._get_tuner_fname()  # pylint: disable=protected-access


def tuner_is_worker(tuner):
  return tuner._is_worker()  # pylint: disable=protected-access


def serve_oracle(oracle, address, poll_seconds=1.0):
  """KerasTuner's chief server (oracle_chief.start_server), polling every `poll_seconds` for the
  end rather than every 20 s once the first worker is told to stop. Returns False when `address`
  cannot be bound (nothing started), True once the search has ended."""
  import time  # pylint: disable=g-import-not-at-top
  from concurrent import futures  # pylint: disable=g-import-not-at-top
  import grpc  # pylint: disable=g-import-not-at-top
  from keras_tuner.src import protos  # pylint: disable=g-import-not-at-top
  from keras_tuner.src.distribute import oracle_chief  # pylint: disable=g-import-not-at-top
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
  servicer = oracle_chief.OracleServicer(oracle)
  protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
  if not server.add_insecure_port(address):
    return False
  server.start()
  print(f"[chief] serving the oracle on {address}", flush=True)
  while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
    time.sleep(poll_seconds)
  server.stop(grace=5)
  return True


# === TensorFlow's profiler (app/train/callbacks.py StepMarkedTensorBoard) ===

def step_marker(step):
  """A trace event (a context manager) marking one training step as the profiler's analyses
  (xprof: the overview page, the input pipeline analyzer) find steps: named "train", with its
  step number, and `_r=1`, TraceMe's undocumented mark of a root event (the root of the events
  of one step). Keras 3's TensorBoard callback marks a traced batch "Profiled batch" without
  `_r`, which xprof does not take for a step ("No step marker observed": openxla/xprof#578,
  tensorflow/tensorboard#6954); tf_keras's fit marked each step this way. Checked: a Keras fit
  traced with it gives xprof 2.24.2 its steps (tests/train/test_step_profile.py)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.profiler.experimental.Trace("train", step_num=step, _r=1)
