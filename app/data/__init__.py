"""Input: sources (where examples come from), augmentation ops, and the tf.data pipeline."""
