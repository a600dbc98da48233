"""Evaluation of a weight file: on its data's validation split, in the fastest runtime, by its task's
evaluation (`xception.tasks`; the metrics themselves are `xception.metrics`), and the grouped
detection report of a two-class classifier (`binary_report`)."""
