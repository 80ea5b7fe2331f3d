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
