"""Binary detection metrics against scikit-learn, ties included, and their per-group aggregation."""

import numpy as np
import pytest
import torch

from xception.data.groups import groups_from_manifest, groups_from_pattern
from xception.eval.binary_report import binary_report
from xception.metrics.binary import (
    binary_average_precision,
    equal_error_rate,
    group_means,
    positive_scores,
    roc_auc,
    roc_curve,
)

sk_metrics = pytest.importorskip("sklearn.metrics")
optimize = pytest.importorskip("scipy.optimize")
interpolate = pytest.importorskip("scipy.interpolate")


def tied_scores(seed: int, size: int = 300):
    """Scores on a 0.05 grid (about 20 distinct values, so most are tied) that lean towards the positives."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, size)
    scores = np.round((rng.random(size) * 0.7 + 0.3 * targets) / 0.05) * 0.05
    return torch.tensor(scores), torch.tensor(targets)


def reference_eer(scores, targets) -> float:
    fpr, tpr, _ = sk_metrics.roc_curve(targets, scores)
    return optimize.brentq(lambda x: 1.0 - x - interpolate.interp1d(fpr, tpr)(x), 0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_scikit_learn_with_ties(seed):
    scores, targets = tied_scores(seed)
    assert len(scores.unique()) < 30
    assert roc_auc(scores, targets) == pytest.approx(sk_metrics.roc_auc_score(targets, scores), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_matches_scikit_learn_without_dropping_points(seed):
    scores, targets = tied_scores(seed)
    fpr, tpr, thresholds = roc_curve(scores, targets)
    expected = sk_metrics.roc_curve(targets, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), expected[0])
    np.testing.assert_allclose(tpr.numpy(), expected[1])
    np.testing.assert_allclose(thresholds[1:].numpy(), expected[2][1:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_error_rate_matches_the_roc_curve_crossing(seed):
    scores, targets = tied_scores(seed)
    eer = equal_error_rate(scores, targets)
    assert eer == pytest.approx(reference_eer(scores.numpy(), targets.numpy()), abs=1e-9)
    assert 0.1 < eer < 0.45  # the scores separate the classes, not perfectly


def test_equal_error_rate_hand_computed_cases():
    perfect = torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])
    assert equal_error_rate(*perfect) == 0.0 and roc_auc(*perfect) == 1.0
    # All scores tied: the ROC curve is the diagonal, crossing fpr + tpr = 1 at 0.5.
    assert equal_error_rate(torch.full((4,), 0.3), torch.tensor([0, 1, 0, 1])) == 0.5
    assert np.isnan(equal_error_rate(torch.tensor([0.2, 0.4]), torch.tensor([1, 1])))
    assert np.isnan(roc_auc(torch.tensor([0.2, 0.4]), torch.tensor([0, 0])))


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_average_precision_matches_scikit_learn_with_ties(seed):
    scores, targets = tied_scores(seed)
    expected = sk_metrics.average_precision_score(targets, scores)
    assert binary_average_precision(scores, targets) == pytest.approx(expected, abs=1e-12)


def test_positive_scores_softmax_and_sigmoid():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    torch.testing.assert_close(positive_scores(logits), logits.softmax(1)[:, 1])
    torch.testing.assert_close(positive_scores(logits, positive_class=0), logits.softmax(1)[:, 0])
    torch.testing.assert_close(positive_scores(torch.tensor([[0.0], [2.0]])), torch.tensor([0.5, 1 / (1 + np.exp(-2.0))], dtype=torch.float32))
    with pytest.raises(ValueError, match="positive_class"):
        positive_scores(logits, positive_class=2)


def test_group_means_average_the_probabilities_of_each_group():
    scores = torch.tensor([0.2, 0.4, 0.9, 0.7, 0.8])
    targets = torch.tensor([0, 0, 1, 1, 1])
    means, labels, names = group_means(scores, targets, ["b", "b", "a", "a", "c"])
    assert names == ["a", "b", "c"] and labels.tolist() == [1, 0, 1]
    torch.testing.assert_close(means, torch.tensor([0.8, 0.3, 0.8], dtype=torch.float64))
    with pytest.raises(ValueError, match="group 'a' holds images of both classes"):
        group_means(scores, torch.tensor([0, 0, 1, 0, 1]), ["b", "b", "a", "a", "c"])


def test_binary_report_per_frame_and_per_video_match_scikit_learn(tmp_path):
    rng = np.random.default_rng(5)
    videos = 40
    video_labels = rng.integers(0, 2, videos)
    paths, scores, targets = [], [], []
    for video, label in enumerate(video_labels):
        for frame in range(int(rng.integers(3, 9))):
            paths.append(f"/data/{'fake' if label else 'real'}/{video:03d}_frame{frame:04d}.png")
            scores.append(float(np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0, 1).round(1)))  # ties
            targets.append(int(label))
    scores, targets = torch.tensor(scores), torch.tensor(targets)
    report = binary_report(scores, targets, paths, pattern=r"(\d{3})_frame\d+")
    frame, video = report["frame"], report["group"]
    assert frame["roc_auc"] == pytest.approx(sk_metrics.roc_auc_score(targets, scores), abs=1e-12)
    assert frame["average_precision"] == pytest.approx(sk_metrics.average_precision_score(targets, scores), abs=1e-12)
    # Per video: the mean frame probability, computed here with plain Python.
    per_video = {}
    for path, score in zip(paths, scores.tolist(), strict=True):
        per_video.setdefault(path.split("/")[-1][:3], []).append(score)
    video_scores = [float(np.mean(per_video[f"{v:03d}"])) for v in range(videos)]
    assert video["count"] == videos and video["positives"] == int(video_labels.sum())
    assert video["roc_auc"] == pytest.approx(sk_metrics.roc_auc_score(video_labels, video_scores), abs=1e-12)
    assert video["eer"] == pytest.approx(reference_eer(np.array(video_scores), video_labels), abs=1e-9)
    assert video["average_precision"] == pytest.approx(
        sk_metrics.average_precision_score(video_labels, video_scores), abs=1e-12)
    assert video["accuracy"] == pytest.approx(np.mean((np.array(video_scores) >= 0.5) == video_labels))
    # The same groups from a manifest column.
    (tmp_path / "videos.csv").write_text("path,video\n" + "".join(f"{p},{p.split('/')[-1][:3]}\n" for p in paths))
    by_manifest = binary_report(scores, targets, paths, manifest=tmp_path / "videos.csv", column="video")
    assert by_manifest["group"] == video
    assert binary_report(scores, targets, paths)["group"] is None


def test_groups_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no capture group"):
        groups_from_pattern(["a.png"], r"\w+")
    with pytest.raises(ValueError, match="does not match b/c.png"):
        groups_from_pattern(["a_1.png", "b/c.png"], r"(\w)_\d")
    (tmp_path / "groups.jsonl").write_text('{"path": "x/1.png", "subject": "s1"}\n')
    assert groups_from_manifest([str(tmp_path / "x" / "1.png")], tmp_path / "groups.jsonl", "subject") == ["s1"]
    with pytest.raises(ValueError, match="is not listed"):
        groups_from_manifest([str(tmp_path / "x" / "2.png")], tmp_path / "groups.jsonl", "subject")
