"""app/tune/trials.py: a trial's app.train process inherits the GPU its tuner worker was pinned
to (tools/launch_tuning.py --gpus sets CUDA_VISIBLE_DEVICES on the worker)."""

from app.tune import trials


def test_a_trial_sees_its_workers_gpus_only(monkeypatch):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
  monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
  environment = trials.environment()
  assert (environment["CUDA_VISIBLE_DEVICES"], environment["CUDA_DEVICE_ORDER"]) == (
      "1", "PCI_BUS_ID")
