"""PNG figures for the run directory (matplotlib, headless)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position


def training_curves(history, path, validation_every=1):
  """Loss and accuracy per epoch, train next to validation, from a keras History.history dict."""
  epochs = list(range(1, len(history["loss"]) + 1))
  figure, axes = plt.subplots(1, 2, figsize=(10, 4))
  for axis, metric in zip(axes, ("loss", "accuracy")):
    axis.plot(epochs, history[metric], label=f"train {metric}")
    validation = history.get(f"val_{metric}")
    if validation:
      axis.plot(epochs[validation_every - 1::validation_every][:len(validation)], validation,
                marker="o", label=f"validation {metric}")
    axis.set_xlabel("epoch")
    axis.set_title(metric)
    axis.grid(alpha=0.3)
    axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def learning_rate_schedule(schedule, total_steps, steps_per_epoch, path):
  """The learning rate the optimizer will use at each step, against epochs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  steps = np.unique(np.linspace(0, max(total_steps - 1, 0), 400).astype(int))
  rates = [float(np.asarray(schedule(int(step)))) for step in steps]
  figure, axis = plt.subplots(figsize=(6, 3.5))
  axis.plot(steps / steps_per_epoch, rates)
  axis.set_xlabel("epoch")
  axis.set_ylabel("learning rate")
  axis.set_title("learning-rate schedule")
  axis.grid(alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def lr_find_curve(rates, smoothed_losses, suggested, path):
  """Smoothed loss against the learning rate (log scale), with the suggestion marked."""
  figure, axis = plt.subplots(figsize=(6, 3.5))
  axis.plot(rates, smoothed_losses)
  axis.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested {suggested:.3g}")
  axis.set_xscale("log")
  axis.set_xlabel("learning rate")
  axis.set_ylabel("smoothed loss")
  axis.set_title("learning-rate range test")
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
