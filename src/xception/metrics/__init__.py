"""Metrics as pure functions of tensors: no model, no data loader, no process group.

`classification`: top-k accuracy, average precision, MAP@100 (sections 4.3-4.4). `binary`: ROC-AUC,
EER and average precision of a two-class detector, per image and per group. `segmentation`: the
pixel confusion matrix and mean IoU. docs/metrics.md states the definitions.
"""
