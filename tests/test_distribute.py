"""app/distribute.py: MirroredStrategy over 2 logical CPU devices (subprocesses: the devices must
be split before TensorFlow starts)."""

import json
import os
import subprocess
import sys

import pytest

from tests import commands

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code):
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=600)


def test_two_replicas_see_every_example_once_per_epoch():
  result = python("""
import numpy as np
from app import distribute
from app.data import pipeline
from app.data.sources import DATASETS
from configs import default
config = default.get_config()
config.runtime.strategy, config.runtime.cpu_devices = "mirrored", 2
strategy, reason = distribute.strategy_from_config(
    config.runtime, *distribute.strategy_name(config.runtime))
assert strategy.num_replicas_in_sync == 2, reason
config.data.limit = 500
data = pipeline.build(DATASETS.get("fashion_mnist")(config.data), config.data, 64, seed=0)
seen, per_replica = [], [0, 0]
train, steps = pipeline.distributed_train(data, strategy)
# 450 training images (50 held out): 7 steps of 2 x 32, then the 2 left, one per replica (a
# replica given no batch in a step fails it)
assert data.num_train == 450 and steps == 8, (data.num_train, steps)
for images, labels in train:
  parts = strategy.experimental_local_results(images)
  assert len(parts) == 2 and all(len(part) for part in parts), [len(p) for p in parts]
  for replica, part in enumerate(parts):
    per_replica[replica] += len(part)
    seen += [part.numpy()[k].tobytes() for k in range(len(part))]
assert len(seen) == 450 and len(set(seen)) == len(set(
    x.tobytes() for x in data.train_examples.images)), len(seen)
assert per_replica == [225, 225], per_replica
print("ok", per_replica)
""")
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_input_pipelines_shard_by_input_context(data_config, fashion_mnist_dir):
  """Two workers (two tf.distribute input pipelines) read disjoint, equal halves in per-replica
  batches, with tf.data's auto-sharding off (they are sharded already)."""
  del fashion_mnist_dir
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from app.data import pipeline, sources  # pylint: disable=g-import-not-at-top
  data_config.limit, data_config.validation_split = 501, 0.0  # all 501 train
  data = pipeline.build(sources.load(data_config), data_config, 64, seed=0)
  seen = []
  for worker in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                         num_replicas_in_sync=4)  # 2 replicas per worker
    train = pipeline.training_batches(data, 0, 1, context=context)
    assert (train.options().experimental_distribute.auto_shard_policy ==
            tf.data.experimental.AutoShardPolicy.OFF)
    batches = [images.numpy().astype(np.uint8) for images, _ in train]
    assert max(len(b) for b in batches) == 16  # global 64 / 4 replicas
    seen.append({b[k].tobytes() for b in batches for k in range(len(b))})
    # 501 // 2: equal shards, one image left over; each shard 7 steps of 2 x 16, then 26 left
    # shared out as 13 + 13, so both replicas of the worker get a batch at every step
    assert sum(len(b) for b in batches) == 250 and [len(b) for b in batches[-2:]] == [13, 13]
  assert not seen[0] & seen[1]
  whole = {x.tobytes() for x in sources.load(data_config).train.limited(501, 0).images}
  assert len(whole - seen[0] - seen[1]) <= 1 and np.all([s <= whole for s in seen])


def run_train(tmp_path, name, *args):
  result = commands.run(
      "app.train", "--epochs=1", "--config.data.limit=1024", "--learning_rate=0.02",
      "--model=simple_cnn", "--config.model.width=8", "--config.model.dropout=0.0",
      "--config.optim.warmup_epochs=0", "--mixed_precision=float32", "--batch_size=64",
      "--config.data.augment=", "--config.data.shuffle_buffer=1",  # the same order in both
      f"--output_dir={tmp_path / name}", f"--export_dir={tmp_path / 'exports'}", *args, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads((tmp_path / name / "metrics.json").read_text())


def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path):
  single = run_train(tmp_path, "single", "--strategy=default")
  mirrored = run_train(tmp_path, "mirrored", "--strategy=mirrored",
                       "--config.runtime.cpu_devices=2")
  assert "2 replica(s)" in mirrored["strategy"]
  assert mirrored["test_loss"] == pytest.approx(single["test_loss"], rel=2e-3)
  assert mirrored["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=0.01)


# === GPU memory: growth by default, or a limit (faked GPUs: tf.config's own functions record
# what they are asked; a real GPU's allocator is docs/GPU.md's checklist) ===

@pytest.fixture
def fake_gpus(monkeypatch):
  """fake_gpus(count, initialised=False) -> {"growth": [...], "limits": [...]}: tf.config lists
  `count` GPUs and records the memory settings made on them; `initialised`: TensorFlow has
  started its devices, so both raise RuntimeError as TensorFlow's own do then."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def fake(count, initialised=False):
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]
    made = {"growth": [], "limits": []}

    def record(kind, value):
      if initialised:
        raise RuntimeError("Physical devices cannot be modified after being initialized")
      made[kind].append(value)

    listed = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else listed(kind))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                        lambda gpu, on: record("growth", (gpu.name, on)))
    monkeypatch.setattr(tf.config, "set_logical_device_configuration", lambda gpu, logical: record(
        "limits", (gpu.name, [d.memory_limit for d in logical])))
    return made

  return fake


def runtime_with(**keys):
  from configs import default  # pylint: disable=g-import-not-at-top
  runtime = default.get_config().runtime
  for key, value in keys.items():
    runtime[key] = value
  return runtime


def test_initialize_grows_every_gpus_memory_by_default(fake_gpus):
  from app import distribute  # pylint: disable=g-import-not-at-top
  made = fake_gpus(2)
  name, _ = distribute.initialize(runtime_with())  # what app.train (trials, workers) runs first
  assert name == "mirrored"  # auto over the 2 faked GPUs
  assert made == {"growth": [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)],
                  "limits": []}


@pytest.mark.parametrize("limit, mib", [("8GiB", 8192), ("8g", 8192), ("1536", 1536),
                                        ("0.5 GB", 512)])
def test_a_memory_limit_replaces_growth_on_every_gpu(fake_gpus, limit, mib):
  from app import distribute  # pylint: disable=g-import-not-at-top
  made = fake_gpus(2)
  line = distribute.configure_gpu_memory(*distribute.gpu_memory(runtime_with(
      gpu_memory_limit=limit)))
  assert made == {"growth": [], "limits": [("/physical_device:GPU:0", [mib]),
                                           ("/physical_device:GPU:1", [mib])]}
  assert line.startswith(f"at most {mib} MiB on each of 2 GPU(s)"), line


def test_growth_off_leaves_tensorflows_default(fake_gpus):
  from app import distribute  # pylint: disable=g-import-not-at-top
  made = fake_gpus(1)
  line = distribute.configure_gpu_memory(*distribute.gpu_memory(runtime_with(
      gpu_memory_growth=False)))
  assert made == {"growth": [], "limits": []} and line.startswith("TensorFlow's default"), line


def test_after_tensorflow_started_a_limit_is_one_line_and_growth_a_warning(fake_gpus):
  from app import distribute  # pylint: disable=g-import-not-at-top
  from app.core.errors import UsageError  # pylint: disable=g-import-not-at-top
  fake_gpus(1, initialised=True)
  with pytest.raises(UsageError, match="must be set before TensorFlow starts"):
    distribute.configure_gpu_memory(limit_mib=4096)
  assert distribute.configure_gpu_memory().startswith("growth not set")


def test_without_gpus_nothing_is_configured():
  from app import distribute  # pylint: disable=g-import-not-at-top
  assert distribute.configure_gpu_memory(limit_mib=4096) == ""  # this machine: no GPU


@pytest.mark.parametrize("limit", ["lots", "8XB", "0", "-2GiB", "100b"])  # 100 bytes < 1 MiB
def test_a_memory_limit_that_is_no_size_is_refused_by_validation(limit):
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.core.errors import UsageError  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.runtime.gpu_memory_limit = limit
  with pytest.raises(UsageError, match=rf"^runtime.gpu_memory_limit \(--gpu_memory_limit\) "
                     rf"'{limit}' is not a size .*8GiB"):
    config_lib.validate(config)
