"""Distribution strategy from the config: which devices and workers model.fit runs on, and why.

  default      the one device TensorFlow picks (the CPU, or the first GPU)
  one_device   one named device (the first GPU, else the CPU)
  mirrored     MirroredStrategy over the GPUs, else over the CPU split into logical devices
  multi_worker MultiWorkerMirroredStrategy from TF_CONFIG, or from --worker_hosts/--task_index
  tpu          TPUStrategy through a TPU cluster resolver (--tpu=NAME or address)
  auto         multi_worker when TF_CONFIG names several workers, else mirrored for several GPUs,
               one_device for one, default on the CPU; the reason is logged
"""

import dataclasses
import json
import os

import tensorflow as tf
from absl import logging

from app import keras_compat
from app.core.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Role:
  """This process's place in a cluster: worker `index` of `count`; the chief writes the run's
  files (logs, best checkpoint, export), the others write to scratch folders."""
  index: int = 0
  count: int = 1
  is_chief: bool = True


def worker_config(config, worker):
  """A non-chief worker's copy of the config: a scratch run directory (removed when training
  ends) and no export; the chief writes the real ones."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  copy = ml_collections.ConfigDict(config.to_dict())
  copy.output_dir = tempfile.mkdtemp(prefix=f"{config.name}-worker{worker.index}-")
  copy.export.enabled = False
  return copy


def split_cpu(count):
  """Presents the CPU as `count` logical devices, so MirroredStrategy can be tried and tested
  without GPUs. Must run before TensorFlow initialises its devices (the first op or device query)."""
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError:
    if len(tf.config.list_logical_devices("CPU")) != count:
      raise UsageError("runtime.cpu_devices must be set before TensorFlow starts; pass it on the "
                       "command line of a fresh process") from None


# === Multi-worker: TF_CONFIG ===

_TF_CONFIG_HELP = ('set TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": '
                   '{"type": "worker", "index": 0}}\' on each host, or pass --worker_hosts=host1:port,'
                   'host2:port --task_index=N (tools/launch_workers.py does it on one machine)')


def tf_config_from_flags(runtime):
  """--worker_hosts/--task_index -> the TF_CONFIG JSON they stand for (None when not given)."""
  if not runtime.worker_hosts:
    return None
  hosts = [h.strip() for h in runtime.worker_hosts.split(",") if h.strip()]
  for host in hosts:
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
      raise UsageError(f"--worker_hosts entry {host!r} is not host:port; pass e.g. "
                       "--worker_hosts=10.0.0.1:2222,10.0.0.2:2222")
  if not 0 <= runtime.task_index < len(hosts):
    raise UsageError(f"--task_index={runtime.task_index} is out of range for {len(hosts)} "
                     f"worker hosts; pass 0 to {len(hosts) - 1}")
  return json.dumps({"cluster": {"worker": hosts},
                     "task": {"type": "worker", "index": runtime.task_index}})


def read_tf_config(raw=None):
  """TF_CONFIG (or `raw`) -> (cluster dict, task type, task index), checked; UsageError names
  what is wrong and how to set it."""
  raw = os.environ.get("TF_CONFIG", "") if raw is None else raw
  if not raw.strip():
    raise UsageError(f"--strategy=multi_worker needs a cluster: {_TF_CONFIG_HELP}")
  try:
    parsed = json.loads(raw)
  except ValueError as e:
    raise UsageError(f"TF_CONFIG is not valid JSON ({e}); {_TF_CONFIG_HELP}") from None
  cluster, task = (parsed.get("cluster"), parsed.get("task")) if isinstance(parsed, dict) else (None, None)
  if not isinstance(cluster, dict) or not isinstance(task, dict):
    raise UsageError(f"TF_CONFIG needs a 'cluster' and a 'task' object; {_TF_CONFIG_HELP}")
  task_type, index = task.get("type"), task.get("index")
  if task_type not in ("chief", "worker") or not isinstance(index, int):
    raise UsageError(f"TF_CONFIG task must be {{'type': 'chief' or 'worker', 'index': N}}; "
                     f"received {task}")
  members = cluster.get(task_type)
  if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
    raise UsageError(f"TF_CONFIG cluster has no '{task_type}' list of host:port; {_TF_CONFIG_HELP}")
  if not 0 <= index < len(members):
    raise UsageError(f"TF_CONFIG task index {index} is out of range for the {len(members)} "
                     f"'{task_type}' host(s); use 0 to {len(members) - 1}")
  return cluster, task_type, index


def cluster_size():
  """Workers (and chief) named in TF_CONFIG; 0 when it is unset or unreadable."""
  try:
    cluster, _, _ = read_tf_config()
  except UsageError:
    return 0
  return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def role(runtime, strategy):
  """This process's Role under `strategy` (the resolved name: config.derived.strategy), from the
  cluster flags and TF_CONFIG (no TensorFlow devices touched)."""
  if strategy != "multi_worker":
    return Role()
  raw = tf_config_from_flags(runtime)
  cluster, task_type, index = read_tf_config(raw)
  chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
  position = index if task_type == "chief" else chiefs + index
  is_chief = task_type == "chief" or (not chiefs and index == 0)
  return Role(index=position, count=chiefs + workers, is_chief=is_chief)


def has_gpu():
  return bool(tf.config.list_physical_devices("GPU"))


def strategy_name(runtime):
  """(strategy name, reason) with `auto` resolved from TF_CONFIG and the GPUs present. Computed
  once per run: by initialize() in a command, else by app.config.resolve(), which keeps it in
  config.derived."""
  name = runtime.strategy
  if name != "auto":
    return name, f"--strategy={name}"
  if runtime.worker_hosts or cluster_size() > 1:
    return "multi_worker", "auto: TF_CONFIG (or --worker_hosts) names several workers"
  gpus = tf.config.list_physical_devices("GPU")
  if len(gpus) > 1:
    return "mirrored", f"auto: {len(gpus)} GPUs found, mirroring across them"
  if gpus:
    return "one_device", "auto: one GPU found"
  return "default", "auto: no GPU found, training on the CPU"


def _tpu_strategy(runtime):
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as e:
    where = f"--tpu={runtime.tpu}" if runtime.tpu else "this machine (no --tpu given)"
    raise UsageError(f"no TPU found for {where} ({str(e).splitlines()[0] if str(e) else e!r}); "
                     "pass --tpu=NAME or grpc://ADDRESS of a reachable TPU, or choose "
                     "--strategy=auto") from None
  return tf.distribute.TPUStrategy(resolver)


_created = {}  # the strategy initialize() had to create before any other TensorFlow work


def initialize(runtime):
  """What must happen before TensorFlow runs its first op (config validation included): the
  multi-worker strategy configures collective ops, and runtime.cpu_devices splits the CPU. Entry
  scripts call it first and pass what it returns, (strategy name, reason), to
  app.config.resolve; strategy_from_config then returns the strategy created here."""
  name, reason = strategy_name(runtime)
  if runtime.strategy == "mirrored" and runtime.cpu_devices > 1:
    split_cpu(runtime.cpu_devices)
  elif name == "multi_worker" and "multi_worker" not in _created:
    _created["multi_worker"] = _multi_worker_strategy(runtime)
  return name, reason


def _multi_worker_strategy(runtime):
  raw = tf_config_from_flags(runtime)
  if raw:
    os.environ["TF_CONFIG"] = raw
  read_tf_config()  # checked before TensorFlow reads it
  # Ring all-reduce over gRPC works between CPU hosts as between GPU hosts.
  options = tf.distribute.experimental.CommunicationOptions(
      implementation=tf.distribute.experimental.CommunicationImplementation.RING)
  keras_compat.patch_multi_worker_metric_reduction()  # keras-team/keras#20585
  return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def prepare_fit(model, dataset, strategy):
  """What model.fit needs before it runs under `strategy`: under MultiWorkerMirroredStrategy the
  model is built from the dataset's element spec (keras-team/keras#20585, app/keras_compat.py)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    keras_compat.build_from_element_spec(model, dataset)


def strategy_from_config(runtime, name, reason):
  """The resolved strategy `name` (config.derived.strategy, with its `reason`) ->
  (tf.distribute.Strategy, a one-line reason for the log and the report)."""
  if name == "multi_worker":
    strategy = _created.get("multi_worker") or _multi_worker_strategy(runtime)
  elif name == "tpu":
    strategy = _tpu_strategy(runtime)
  else:
    if runtime.cpu_devices > 1:
      split_cpu(runtime.cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default":
      strategy = tf.distribute.get_strategy()
    elif name == "one_device":
      strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    else:  # mirrored; app.config.validate admits nothing else
      # Over the GPUs when there are any, else over the (possibly split) CPU devices.
      devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
      strategy = tf.distribute.MirroredStrategy(devices)
  kind = ("MultiWorkerMirroredStrategy" if name == "multi_worker"  # TF's class: CollectiveAllReduce...
          else type(strategy).__name__)
  reason += f" ({kind}, {strategy.num_replicas_in_sync} replica(s))"
  logging.info("strategy: %s", reason)
  return strategy, reason
