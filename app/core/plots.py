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


def learning_rate_schedule(steps, rates, steps_per_epoch, path):
  """The learning rate the optimizer will use at each step (app.optim.schedules.sampled), against
  epochs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(6, 3.5))
  axis.plot(np.asarray(steps) / steps_per_epoch, rates)
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


def confusion_matrix(matrix, class_names, path):
  """Counts of (true class, predicted class), rows normalised for the colour, counts written."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  matrix = np.asarray(matrix)
  size = max(4.0, 0.55 * len(class_names) + 2)
  figure, axis = plt.subplots(figsize=(size + 1, size))
  rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
  image = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
  if len(class_names) <= 30:  # beyond that the numbers are unreadable; the colours still tell
    for (row, col), count in np.ndenumerate(matrix):
      axis.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if rates[row, col] > 0.5 else "black")
  ticks = range(len(class_names))
  axis.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
  axis.set_yticks(ticks, class_names, fontsize=8)
  axis.set_xlabel("predicted class")
  axis.set_ylabel("true class")
  axis.set_title("confusion matrix (colour: fraction of the true class)")
  figure.colorbar(image, ax=axis, fraction=0.046)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def image_grid(images, titles, path, columns=5, suptitle=""):
  """uint8 images [N, H, W, C] in a grid, each with its title (e.g. 'true -> predicted')."""
  rows = max(1, -(-len(images) // columns))
  figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
  for axis in axes.flat:
    axis.axis("off")
  for axis, image, title in zip(axes.flat, images, titles):
    axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
    axis.set_title(title, fontsize=7)
  if not len(images):
    axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
  if suptitle:
    figure.suptitle(suptitle, fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def reliability_diagram(bins, ece, path):
  """Accuracy against confidence per bin (app.evaluate.metrics.calibration), with the diagonal."""
  figure, axis = plt.subplots(figsize=(4.5, 4.5))
  filled = [b for b in bins if b["count"]]
  axis.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], align="edge",
           width=[b["upper"] - b["lower"] for b in filled], edgecolor="black", alpha=0.7,
           label="accuracy")
  axis.plot([0, 1], [0, 1], color="tab:red", linestyle="--", label="perfect calibration")
  axis.set_xlim(0, 1)
  axis.set_ylim(0, 1)
  axis.set_xlabel("confidence (top probability)")
  axis.set_ylabel("accuracy")
  axis.set_title(f"reliability (ECE {ece:.4f})")
  axis.legend(loc="lower right")
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
