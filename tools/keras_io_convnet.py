r"""The reference: keras-io's "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet),
as its users run it, on Fashion-MNIST, timed the way tools/benchmark.py times our recipes.

  .venv/bin/python tools/keras_io_convnet.py --epochs=12 --output=/tmp/reference.json

The example's model and training, unchanged: conv(32)-pool-conv(64)-pool-flatten-dropout(0.5)-
dense(10) on images scaled to [0, 1], Adam at Keras's defaults, batch 128, validation_split=0.1
(trains on 54,000 images). Added only: the test accuracy after every epoch, and the wall seconds
since fit started (evaluation included, as app.train's elapsed_seconds), written to --output.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer("epochs", 12, "Epochs (the example uses 15).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("limit", 0, "Train on the first N images only (quick trials); 0 = all.")
flags.DEFINE_string("data_dir", "", "Fashion-MNIST IDX files; default: as app.train finds them.")
flags.DEFINE_string("output", "reference.json", "Where the per-epoch record goes.")


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  from app.data import sources  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  data = default.get_config().data
  data.data_dir = FLAGS.data_dir
  source = sources.load(data)
  keras.utils.set_random_seed(FLAGS.seed)
  limit = FLAGS.limit or len(source.train)
  x_train = source.train.images[:limit].astype("float32") / 255
  x_test = source.test.images.astype("float32") / 255
  y_train = keras.utils.to_categorical(source.train.labels[:limit], 10)
  y_test = keras.utils.to_categorical(source.test.labels, 10)

  model = keras.Sequential([
      keras.Input(shape=(28, 28, 1)),
      keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
      keras.layers.MaxPooling2D(pool_size=(2, 2)),
      keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
      keras.layers.MaxPooling2D(pool_size=(2, 2)),
      keras.layers.Flatten(),
      keras.layers.Dropout(0.5),
      keras.layers.Dense(10, activation="softmax"),
  ])
  model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

  record, evaluating = {"epochs": []}, [0.0]

  class TestEachEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
      self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      begin = time.perf_counter()
      _, accuracy = self.model.evaluate(x_test, y_test, verbose=0)
      evaluating[0] += time.perf_counter() - begin
      record["epochs"].append({"epoch": epoch + 1, "test_accuracy": float(accuracy),
                               "elapsed_seconds": time.perf_counter() - self.start})

  start = time.perf_counter()
  model.fit(x_train, y_train, batch_size=128, epochs=FLAGS.epochs, validation_split=0.1,
            callbacks=[TestEachEpoch()], verbose=2)
  seconds = time.perf_counter() - start
  record.update(train_seconds=seconds, num_train=int(len(x_train) * 0.9),
                # training only: the test evaluations added here are left out
                images_per_second=int(len(x_train) * 0.9) * FLAGS.epochs / (seconds - evaluating[0]),
                parameters=model.count_params(), seed=FLAGS.seed)
  with open(FLAGS.output, "w") as f:
    json.dump(record, f, indent=2)
  print(f"test accuracy {record['epochs'][-1]['test_accuracy']:.4f} after {seconds:.0f} s")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
