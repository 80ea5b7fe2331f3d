"""Efficient convolutional image-classifier training with Keras 3 and TensorFlow."""

__version__ = "0.1.0"
