"""Input: sources (where examples come from), image decoding and resizing (shared with the serving
graph), augmentation ops, and the tf.data pipeline."""
