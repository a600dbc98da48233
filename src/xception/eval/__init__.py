"""Evaluation: metrics as pure functions of tensors (`metrics`), and evaluating a model on data."""
