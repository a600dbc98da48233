"""Evaluation: evaluating a model on data, with the metrics of `xception.metrics`."""
