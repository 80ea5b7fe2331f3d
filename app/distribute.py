"""Distribution strategy from the config: which devices and workers model.fit runs on, and why.

  default      the one device TensorFlow picks (the CPU, or the first GPU)
  one_device   one named device (the first GPU, else the CPU)
  mirrored     MirroredStrategy over the GPUs, else over the CPU split into logical devices
  multi_worker MultiWorkerMirroredStrategy from TF_CONFIG, or from --worker_hosts/--task_index
  tpu          TPUStrategy through a TPU cluster resolver (--tpu=NAME or address)
  auto         multi_worker when TF_CONFIG names several workers, else mirrored for several GPUs,
               one_device for one, default on the CPU; the reason is logged

A TF_CONFIG that asks for a cluster is checked whole (read_tf_config), under auto too: a
malformed one is refused, not ignored. Before MultiWorkerMirroredStrategy starts, every worker
waits for the others in Python, bounded and logged (wait_for_cluster).
"""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import tensorflow as tf
from absl import logging

from app import keras_compat
from app.core import memory
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


# === GPU memory ===
# TensorFlow maps almost all of each visible GPU's memory when it starts, so a second process on
# that GPU (concurrent tuning trials, local workers, a notebook) runs out of memory
# (keras-tuner#220, #329, #413). Growth takes memory as the run needs it; a limit gives each GPU
# a fixed share instead. TensorFlow takes one or the other per GPU (a limit is a logical device
# configuration, and set_memory_growth raises ValueError on one), so a limit replaces growth.

def gpu_memory(runtime):
  """(growth, limit in MiB or 0) from runtime.gpu_memory_growth and runtime.gpu_memory_limit;
  UsageError when the limit is not a size of at least 1 MiB."""
  if not runtime.gpu_memory_limit:
    return bool(runtime.gpu_memory_growth), 0
  size = memory.parse_size(runtime.gpu_memory_limit)
  if size is None or size < 2**20:
    raise UsageError(f"runtime.gpu_memory_limit (--gpu_memory_limit) {runtime.gpu_memory_limit!r} "
                     "is not a size of 1 MiB or more; pass e.g. 8GiB (or 8192, in MiB), or '' "
                     "for none")
  return bool(runtime.gpu_memory_growth), size // 2**20


def configure_gpu_memory(growth=True, limit_mib=0):
  """Every visible GPU takes memory as it needs it (`growth`), or at most `limit_mib` MiB (a
  logical device of that size, reserved whole at the first allocation; it replaces growth);
  returns the line it logs ("" without GPUs). Must run before TensorFlow initialises its devices
  (the first op): after that a limit raises UsageError, and growth not applied is a warning."""
  gpus = tf.config.list_physical_devices("GPU")
  if not gpus:
    if limit_mib:
      logging.info("GPU memory: no GPU here, so --gpu_memory_limit has nothing to limit")
    return ""
  if limit_mib:
    line = (f"at most {limit_mib} MiB on each of {len(gpus)} GPU(s) (--gpu_memory_limit: "
            "TensorFlow reserves it whole at its first allocation, without growth)")
  elif growth:
    line = (f"growth on {len(gpus)} GPU(s): each process takes memory as it needs it "
            "(--gpu_memory_limit=SIZE caps it instead)")
  else:
    line = (f"TensorFlow's default on {len(gpus)} GPU(s): almost all of their memory at start "
            "(runtime.gpu_memory_growth=False)")
  try:
    for gpu in gpus:
      if limit_mib:
        tf.config.set_logical_device_configuration(
            gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit_mib)])
      elif growth:
        tf.config.experimental.set_memory_growth(gpu, True)
  except RuntimeError:  # "Physical devices cannot be modified after being initialized"
    if limit_mib:
      raise UsageError("--gpu_memory_limit must be set before TensorFlow starts; pass it on the "
                       "command line of a fresh process") from None
    line = "growth not set: TensorFlow had initialised its GPUs already (they keep its default)"
    logging.warning("GPU memory: %s", line)
    return line
  logging.info("GPU memory: %s", line)
  return line


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


_TF_CONFIG_FIX = "unset TF_CONFIG to train on this machine alone, or fix its"
_JOBS = ("chief", "worker")  # MultiWorkerMirroredStrategy's jobs; ps and evaluator are not run


def _tf_config_error(what, field, example=False):
  """UsageError: what is wrong, and the fix (with the expected shape when `example`)."""
  return UsageError(f"TF_CONFIG {what}; {_TF_CONFIG_FIX} {field}"
                    + (f" ({_TF_CONFIG_HELP})" if example else ""))


def _host_port(address):
  """'host:port' -> (host, port), or None when it is not one."""
  host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    return None
  return host.strip("[]"), int(port)


def tf_config_given(raw=None):
  """Whether TF_CONFIG (or `raw`) asks for a cluster: unset, blank and '{}' (what some launchers
  set on a single machine, and what TF's TFConfigClusterResolver reads as no cluster) do not."""
  raw = os.environ.get("TF_CONFIG", "") if raw is None else raw
  return bool(raw.strip()) and raw.strip().replace(" ", "") != "{}"


def read_tf_config(raw=None):
  """TF_CONFIG (or `raw`) -> (cluster dict, task type, task index), checked as
  MultiWorkerMirroredStrategy needs it: JSON; a cluster of 'chief' (at most one) and 'worker'
  lists of distinct host:port; a task of one of those types whose index is in its list. Anything
  else raises UsageError naming the field and the fix, before TensorFlow reads TF_CONFIG."""
  raw = os.environ.get("TF_CONFIG", "") if raw is None else raw
  if not tf_config_given(raw):
    raise UsageError(f"--strategy=multi_worker needs a cluster: {_TF_CONFIG_HELP}")
  try:
    parsed = json.loads(raw)
  except ValueError as e:
    raise _tf_config_error(f"is not valid JSON ({e})", "JSON", example=True) from None
  cluster, task = (parsed.get("cluster"), parsed.get("task")) if isinstance(parsed, dict) else (None, None)
  if not isinstance(cluster, dict) or not isinstance(task, dict):
    raise _tf_config_error("needs a 'cluster' and a 'task' object", "'cluster' and 'task'",
                           example=True)
  others = sorted(set(cluster) - set(_JOBS))
  if others:
    raise _tf_config_error(
        f"cluster names the job(s) {', '.join(map(repr, others))}: only 'chief' and 'worker' "
        "train here (MultiWorkerMirroredStrategy; no parameter servers or evaluator)", "'cluster'")
  addresses = []
  for job, members in cluster.items():
    if not isinstance(members, list) or not members or not all(_host_port(m) for m in members):
      raise _tf_config_error(f"cluster '{job}' must be a non-empty list of \"host:port\" strings; "
                             f"received {members!r}", f"'cluster.{job}'")
    addresses += members
  if len(cluster.get("chief", [])) > 1:
    raise _tf_config_error(f"cluster has {len(cluster['chief'])} 'chief' hosts; at most one",
                           "'cluster.chief'")
  repeated = sorted({a for a in addresses if addresses.count(a) > 1})
  if repeated:
    raise _tf_config_error(f"cluster lists {', '.join(repeated)} more than once", "'cluster'")
  task_type, index = task.get("type"), task.get("index")
  if task_type not in _JOBS or isinstance(index, bool) or not isinstance(index, int):
    raise _tf_config_error(f"task must be {{'type': 'chief' or 'worker', 'index': N}}; received "
                           f"{json.dumps(task)}", "'task'", example=True)
  members = cluster.get(task_type)
  if members is None:
    raise _tf_config_error(f"task type '{task_type}' has no list in the cluster (it has "
                           f"{', '.join(map(repr, cluster)) or 'none'})", "'task.type'")
  if not 0 <= index < len(members):
    raise _tf_config_error(f"task index {index} is out of range for the {len(members)} "
                           f"'{task_type}' host(s); use 0 to {len(members) - 1}", "'task.index'")
  return cluster, task_type, index


def cluster_size():
  """Workers (and chief) named in TF_CONFIG; 0 when it asks for no cluster (tf_config_given). A
  TF_CONFIG that asks for one but is malformed raises UsageError: under --strategy=auto it would
  otherwise train alone on every host, all into the same output directory."""
  if not tf_config_given():
    return 0
  cluster, _, _ = read_tf_config()
  return sum(len(cluster.get(job, [])) for job in _JOBS)


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
  """What must happen before TensorFlow runs its first op (config validation included): the GPUs'
  memory growth or limit (configure_gpu_memory), the multi-worker strategy configures collective
  ops, and runtime.cpu_devices splits the CPU. Entry scripts call it first and pass what it
  returns, (strategy name, reason), to app.config.resolve; strategy_from_config then returns the
  strategy created here."""
  configure_gpu_memory(*gpu_memory(runtime))  # trials and workers too: they run app.train
  name, reason = strategy_name(runtime)
  if runtime.cluster_timeout_seconds < 0:
    raise UsageError(f"runtime.cluster_timeout_seconds must be >= 0 (0 = wait without a "
                     f"limit); received {runtime.cluster_timeout_seconds:g}; pass e.g. "
                     "--cluster_timeout=600")
  if runtime.strategy == "mirrored" and runtime.cpu_devices > 1:
    split_cpu(runtime.cpu_devices)
  elif name == "multi_worker" and "multi_worker" not in _created:
    _created["multi_worker"] = _multi_worker_strategy(runtime)
  return name, reason


def _multi_worker_strategy(runtime):
  raw = tf_config_from_flags(runtime)
  if raw:
    os.environ["TF_CONFIG"] = raw
  wait_for_cluster(*read_tf_config(), runtime.cluster_timeout_seconds)  # before TF reads TF_CONFIG
  # Ring all-reduce over gRPC works between CPU hosts as between GPU hosts.
  options = tf.distribute.experimental.CommunicationOptions(
      implementation=tf.distribute.experimental.CommunicationImplementation.RING)
  keras_compat.patch_multi_worker_metric_reduction()  # keras-team/keras#20585
  own_sigterm = signal.getsignal(signal.SIGTERM)
  with _killed_after(runtime.cluster_timeout_seconds):
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
  if callable(own_sigterm):
    # TF's coordination service takes SIGTERM for its preemption notifier, which only logs it
    # (tsl preemption_notifier.cc): the process would ignore SIGTERM. Hand it back to ours
    # (app/train/preemption.py: save a backup and exit).
    signal.signal(signal.SIGTERM, own_sigterm)
  return strategy


# === Multi-worker: waiting for the cluster ===
# MultiWorkerMirroredStrategy() blocks until every task has joined, with no timeout, no output,
# and the GIL held (CoordinationServiceAgent::WaitForAllTasks in TF 2.21), so neither a Python
# thread nor a signal handler runs meanwhile. The wait happens here first, in Python: each task
# holds its own port open (so its peers see it up before TensorFlow's server starts) and connects
# to every peer's until all answer, logging, bounded, interruptible; TensorFlow's own wait then
# takes a moment.

CLUSTER_LOG_EVERY_SECONDS = 15

# Stops this process (pid, argv[1]) with one line when its stdin is not closed within argv[2]
# seconds; closed, or this process gone (end of file), it exits quietly.
_WATCHDOG = """import os, select, signal, sys
if not select.select([sys.stdin], [], [], float(sys.argv[2]))[0]:
  sys.stderr.write("error: every task of the cluster answered, but TensorFlow's own wait for them "
                   "(MultiWorkerMirroredStrategy) did not end within %s s: a task stopped in "
                   "between, or something else answers on its port; start the cluster again\\n"
                   % sys.argv[2])
  os.kill(int(sys.argv[1]), signal.SIGKILL)
"""


@contextlib.contextmanager
def _killed_after(timeout_seconds):
  """Bounds a block that TensorFlow's C++ runs with the GIL held, which no Python thread or signal
  handler can interrupt: a watchdog process kills this one (exit status 137, after one line) if
  the block has not ended within `timeout_seconds` (0: no bound)."""
  if not timeout_seconds:
    yield
    return
  watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()),
                               f"{timeout_seconds:g}"], stdin=subprocess.PIPE)
  try:
    yield
  finally:
    watchdog.stdin.close()
    watchdog.wait()


def _listen(address, name):
  """A socket listening on `address`'s port (all interfaces, as TensorFlow's gRPC server binds)."""
  port = _host_port(address)[1]
  try:
    if socket.has_dualstack_ipv6():
      listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
      listener = socket.create_server(("", port))
    listener.setblocking(False)
    return listener
  except OSError as e:
    raise UsageError(f"TF_CONFIG gives this process ({name}) the address {address}, but its port "
                     f"cannot be opened here ({e.strerror or e}); free port {port} or change "
                     f"this task's entry in TF_CONFIG's cluster") from None


def _drain(listener):
  """Accepts and closes the peers' probes, so the listen queue never fills."""
  try:
    while True:
      listener.accept()[0].close()
  except (BlockingIOError, InterruptedError):
    pass


def _answers(address, timeout):
  """None when `address` accepts a TCP connection, else why not (one phrase)."""
  try:
    socket.create_connection(_host_port(address), timeout=timeout).close()
    return None
  except socket.gaierror as e:
    return f"cannot resolve {_host_port(address)[0]}: {e.strerror or e}"
  except OSError as e:
    return e.strerror or type(e).__name__


def wait_for_cluster(cluster, task_type, index, timeout_seconds, poll_seconds=0.5):
  """Returns once every other task of `cluster` (read_tf_config's) answers on its port; raises
  UsageError after `timeout_seconds` (runtime.cluster_timeout_seconds; 0 = no limit) naming the
  ones that did not. Logs what it waits for every CLUSTER_LOG_EVERY_SECONDS."""
  names = {address: f"{job} {i} ({address})" for job in _JOBS
           for i, address in enumerate(cluster.get(job, []))}
  own = cluster[task_type][index]
  missing = {address: "not tried yet" for address in names if address != own}
  if not missing:
    return
  listener = _listen(own, names[own])
  try:
    start = time.monotonic()
    limit = f"up to {timeout_seconds:g} s (--cluster_timeout)" if timeout_seconds else "no limit"
    logging.info("%s: waiting for the %d other task(s) of the cluster, %s", names[own],
                 len(missing), limit)
    next_log = start + CLUSTER_LOG_EVERY_SECONDS
    while True:
      _drain(listener)
      for address in list(missing):
        missing[address] = _answers(address, timeout=poll_seconds)
        if missing[address] is None:
          del missing[address]
      waited = time.monotonic() - start
      if not missing:
        logging.info("%s: every task of the cluster is up (%.0f s)", names[own], waited)
        return
      absent = ", ".join(f"{names[a]}: {why}" for a, why in missing.items())
      if timeout_seconds and waited >= timeout_seconds:
        raise UsageError(f"{len(missing)} of the cluster's {len(names)} tasks did not come up "
                         f"within {timeout_seconds:g} s ({absent}); start every task of "
                         "TF_CONFIG's cluster, or wait longer with --cluster_timeout=SECONDS")
      if time.monotonic() >= next_log:
        logging.info("%s: still waiting after %.0f s of %s for %s", names[own], waited,
                     f"{timeout_seconds:g}" if timeout_seconds else "no limit", absent)
        next_log += CLUSTER_LOG_EVERY_SECONDS
      time.sleep(poll_seconds)
  finally:
    listener.close()


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
