"""The experiments: parameter matching, the verdict rule, and every experiment end to end on a tiny
budget (so that none of them can rot), through the Python API and the command line."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from xception.cli import main
from xception.experiments import NAMES, get_experiment, get_scale, run_experiment
from xception.experiments.arms import resolve_arms
from xception.experiments.comparison import run_config, run_identity, train_config
from xception.experiments.definition import Comparison
from xception.experiments.imagenet import imagenet_commands
from xception.experiments.matching import match_width
from xception.experiments.report import write_speed_table_report
from xception.experiments.rerender import rerender_comparison_report
from xception.experiments.scales import Scale
from xception.experiments.speed_table import run_speed_table
from xception.experiments.statistics import compare, summarize, verdict
from xception.models import create_model
from xception.models.complexity import count_parameters

COMPARISONS = [n for n in NAMES if isinstance(get_experiment(n), Comparison)]

# Tiny networks and data: each run is two optimizer steps of 8 images of 16 x 16 pixels.
TINY = dict(
    image_size=16, train_examples=16, val_examples=16, batch_size=8, epochs=1, evals_per_epoch=1,
    xception={"width": 0.08, "middle_repeats": 1}, inception_v3={"width": 0.045}, mosaic_image_size=16,
    mosaic_train_size=16, mosaic_val_size=16, speed_warmup_steps=0, speed_steps=1, table3_batch_size=1,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Many tiny runs: one thread is several times faster than two contending ones on 2 busy cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_match_width_hits_the_target_within_five_percent_on_every_quick_scale_arm():
    scale = get_scale("quick")
    for name in COMPARISONS:
        arms = {a.label: a for a in resolve_arms(get_experiment(name), scale, num_classes=10, in_channels=1)}
        for arm in arms.values():
            # Counted again, independently of the matcher's cache, on the model that will be trained.
            built = count_parameters(create_model(arm.model, num_classes=10, in_channels=1, **arm.overrides))
            assert built == arm.parameters
            if arm.matched_to is not None:
                target = arms[arm.matched_to].parameters
                assert abs(built - target) <= 0.05 * target, (name, arm.label, built, target)


def test_match_width_finds_the_closest_width_of_a_known_count():
    # count = 1000 x width^2 (rounded): 250 is width 0.5 exactly.
    found = match_width(target=250, count=lambda w, d: round(1000 * w * w))
    assert found.width == 0.5 and found.parameters == 250 and found.relative_error == 0


def test_match_width_falls_back_to_another_depth_and_fails_when_nothing_is_close():
    # At depth 1 the smallest count is already 10x the target; depth 2 can reach it.
    found = match_width(target=100, count=lambda w, d: int(1000 * w) * d if d == 2 else 10_000, depths=(1, 2))
    assert found.depth == 2 and found.relative_error <= 0.05
    with pytest.raises(ValueError, match="no width matches"):
        match_width(target=100, count=lambda w, d: 10_000)


def test_compare_matches_scipy_welch_test():
    a, b = [0.871, 0.882, 0.879], [0.861, 0.840, 0.852, 0.849]
    found = compare(summarize(a), summarize(b))
    welch = stats.ttest_ind(a, b, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert found.estimate == pytest.approx(sum(a) / 3 - sum(b) / 4)
    assert (found.low, found.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert found.p_value == pytest.approx(welch.pvalue, rel=1e-9) and found.df == pytest.approx(welch.df)


def test_verdict_is_real_only_when_the_confidence_interval_excludes_zero():
    a, b = summarize([0.90, 0.91, 0.92]), summarize([0.80, 0.81, 0.82])
    assert (a.mean, a.std) == pytest.approx((0.91, 0.01))
    assert verdict(a, b) == "real" and compare(a, b).low > 0
    assert verdict(a, summarize([0.905, 0.915, 0.925])) == "within noise"
    # mean +- std intervals that separate ([0.90, 0.94] and [0.855, 0.895]) are not enough: with 3 seeds
    # a side the 95% interval of the difference, 0.045 +- 2.776 x 0.0163, still holds 0.
    wide, lower = summarize([0.90, 0.92, 0.94]), summarize([0.855, 0.875, 0.895])
    assert wide.low > lower.high and verdict(wide, lower) == "within noise"
    assert compare(wide, lower).low == pytest.approx(0.045 - stats.t.ppf(0.975, 4) * (2 * 0.02**2 / 3) ** 0.5)
    assert verdict(summarize([0.9]), summarize([0.1])) == "one seed"


def test_detectable_difference_is_detected_with_the_stated_power():
    # 3 seeds a side, standard deviation 1: Student's t on such samples is exactly noncentral t(4).
    detectable = compare(summarize([-1.0, 0.0, 1.0]), summarize([-1.0, 0.0, 1.0])).detectable
    rng = np.random.default_rng(0)
    trials = 20_000
    a, b = rng.normal(detectable, 1.0, (trials, 3)), rng.normal(0.0, 1.0, (trials, 3))
    rejected = (stats.ttest_ind(a, b, axis=1).pvalue < 0.05).mean()
    assert rejected == pytest.approx(0.80, abs=0.015)  # 5 binomial standard deviations
    # and the textbook approximation (t quantiles 0.975 and 0.80 added) agrees within a few percent
    assert detectable == pytest.approx((stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * (2 / 3) ** 0.5, rel=0.05)


REPORTS = Path(__file__).parents[1] / "reports"
# Every committed comparison report, quick (reports/NAME) and full (reports/full/NAME); table3 is a
# speed table, not a comparison of trained arms, and other folders of reports/ hold benchmarks'
# results (decisions, video), not experiments.
COMPARISON_REPORTS = sorted(str(p.parent.relative_to(REPORTS)) for p in REPORTS.glob("**/results.json")
                            if p.parent.name in NAMES and p.parent.name != "table3")


def test_every_comparison_report_is_checked_below():
    assert len(COMPARISON_REPORTS) == 12, COMPARISON_REPORTS  # 6 experiments, quick and full


@pytest.mark.parametrize("name", COMPARISON_REPORTS)
def test_committed_reports_are_what_their_results_render(name, tmp_path):
    committed = REPORTS / name
    for file in ("results.json", "report.md"):
        (tmp_path / file).write_text((committed / file).read_text())
    rerender_comparison_report(tmp_path, command="check")
    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("- report written again")]
    assert body((tmp_path / "report.md").read_text()) == body((committed / "report.md").read_text())


def test_train_config_differs_between_arms_only_in_the_model():
    comparison, scale = get_experiment("residual"), get_scale("quick", **TINY)
    arms = resolve_arms(comparison, scale, num_classes=10, in_channels=1)
    configs = [train_config(comparison, scale, a, seed=1, run_dir="x", device="cpu").to_dict() for a in arms]
    for config in configs:
        config.pop("model_overrides")
    assert configs[0] == configs[1]


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.parametrize("name", COMPARISONS)
def test_experiment_runs_end_to_end_and_writes_its_report(name, tmp_path):
    scale = get_scale("quick", **TINY)
    report = run_experiment(name, scale=scale, seeds=(0,), out_dir=tmp_path / "report", runs_dir=tmp_path / "runs",
                            command=f"xception experiment {name}", device="cpu")
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    text = report.read_text()
    assert "QUICK scale" in text and f"xception experiment {name}" in text
    assert (tmp_path / "report" / "final.png").stat().st_size > 1000
    experiment = get_experiment(name)
    assert [a["label"] for a in results["arms"]] == [a.label for a in experiment.arms]
    for arm in results["arms"]:
        assert f"{arm['parameters']:,}" in text  # every compared model's count is in the report
    assert len(results["runs"]) == len(experiment.arms)
    assert len(results["claims"]) == len(experiment.claims)
    assert all(c["verdict"] == "one seed" for c in results["claims"])
    for run in results["runs"]:
        score = run["test"]["map_at_100" if experiment.task == "mosaic" else "top1"]
        assert 0.0 <= score <= 1.0 and run["history"]
    if experiment.measure_speed:
        assert (tmp_path / "report" / "tradeoff.png").exists()
        assert set(results["speeds"]) == {a.label for a in experiment.arms}


def test_table3_counts_the_paper_networks_and_times_both(tmp_path):
    # The registered table at 75 px (the smallest Inception V3 input) so that the test is quick.
    table = dataclasses.replace(get_experiment("table3"), image_size=75)
    run = run_speed_table(table, get_scale("quick", **{**TINY, "table3_batch_size": 2}), repeats=2, device="cpu")
    report = write_speed_table_report(run, tmp_path, command="xception experiment table3").read_text()
    rows = {row.model: row for row in run.rows}
    assert rows["xception"].parameters == 22_855_952  # Keras' count (FACTS.md)
    assert rows["inception_v3"].parameters == 23_834_568  # torchvision's convention (FACTS.md)
    assert all(row.steps_per_s.n == 2 and row.steps_per_s.mean > 0 for row in run.rows)
    assert "22,855,952" in report and "| 0.90 |" in report  # the paper's 28 / 31 ratio beside ours
    assert (tmp_path / "speed.png").stat().st_size > 1000


@pytest.mark.usefixtures("fashion_mnist")
def test_cli_experiment_reuses_finished_runs(tmp_path, capsys):
    args = ["experiment", "residual", "--seeds", "2", "--out", str(tmp_path / "out"),
            "--runs-dir", str(tmp_path / "runs"), "--device", "cpu",
            *[f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]]
    assert main(args) == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    assert main(args) == 0  # the second time every record is reused: the same numbers
    second = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["test"] for r in first["runs"]] == [r["test"] for r in second["runs"]]
    assert len(first["runs"]) == 4 and first["seeds"] == [0, 1]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "--seeds 2" in report and "Welch p" in report
    (claim,) = first["claims"]
    assert claim["verdict"] in ("real", "within noise") and claim["difference"]["detectable"] > 0
    # Written again from results.json: the same numbers and verdicts, and it says so.
    assert main(["experiment", "residual", "--out", str(tmp_path / "out"), "--rerender"]) == 0
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert again["claims"] == first["claims"] and again["runs"] == first["runs"]
    assert again["date"] == second["date"] and "--rerender" in again["rendered"]  # the date of the file it rereads
    assert "report written again from results.json" in (tmp_path / "out" / "report.md").read_text()


def test_imagenet_scale_prints_one_torchrun_per_arm_and_seed_then_the_report(capsys):
    assert main(["experiment", "residual", "--scale", "imagenet", "--data", "/data/imagenet", "--nproc", "4",
                 "--set", "epochs=90"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 * 3 + 1
    assert lines[0].startswith("torchrun --standalone --nproc_per_node=4 --no-python xception experiment residual")
    assert "--arm no_residual --seed 2" in lines[5] and lines[-1].endswith("--seeds 3 --report")
    assert all("--out reports/imagenet/residual --set=epochs=90" in line for line in lines)
    table3 = imagenet_commands(get_experiment("table3"), seeds=(0,), nproc=8, data_path="", runs_dir="r", out_dir="o")
    assert table3 == ["xception experiment table3 --scale imagenet --out o --device cuda --seeds 1"]


def test_imagenet_scale_keeps_the_paper_networks_when_already_within_five_percent():
    arms = resolve_arms(get_experiment("imagenet_profile"), get_scale("imagenet"), num_classes=1000, in_channels=3)
    assert [a.parameters for a in arms] == [22_855_952, 23_834_568]  # FACTS.md: Keras and torchvision counts
    assert arms[1].overrides == {}


def test_experiments_sharing_an_arm_share_its_run_directory(tmp_path):
    scale = get_scale("quick", **TINY)
    directories, identities = {}, {}
    for name in ("imagenet_profile", "residual", "mid_activation", "spectrum", "jft_profile", "vgg_separable"):
        comparison = get_experiment(name)
        for arm in resolve_arms(comparison, scale, num_classes=10, in_channels=scale.in_channels):
            directories[name, arm.label] = Path(run_config(comparison, scale, arm, seed=0, runs_dir=tmp_path,
                                                            device="cpu").out_dir)
            identities[name, arm.label] = (comparison.task, arm.model, json.dumps(arm.overrides, sort_keys=True,
                                                                                   default=str))
    # The unmatched Xception baseline is one run for every single-label experiment that has it.
    baseline = directories["residual", "xception"]
    assert baseline == directories["mid_activation", "none"] == directories["spectrum", "depthwise"]
    assert directories["jft_profile", "xception"] == directories["vgg_separable", "xception"] != baseline
    # In general: the same directory exactly when the task, the model and its overrides are the same.
    keys = list(directories)
    for a in keys:
        for b in keys:
            assert (directories[a] == directories[b]) == (identities[a] == identities[b]), (a, b)
    assert baseline.name == "seed0" and baseline.parent.name.startswith("xception_small-")


# A changed value for every field of a scale. The first group shapes what a run trains or scores, so
# it must give new run directories; the second never reaches a cached run (the speeds and Table 3
# are measured anew each time), so runs that differ only there are shared.
SHAPES_THE_RUN = dict(
    image_size=20, train_examples=8, val_examples=8, batch_size=4, epochs=2, evals_per_epoch=2,
    xception={"width": 0.08, "middle_repeats": 1, "bn_eps": 1e-5}, inception_v3={"width": 0.045, "pool_counts_padding": False},
    models={"xception": "xception", "inception_v3": "inception_v3_small"}, single_label_source="imagefolder",
    multi_label_source="multilabel", in_channels=3, score_training_images=False, recipe="fashion_mnist_long",
    recipe_overrides={"drop_rate": 0.1}, multilabel_recipe="fashion_mnist_long",
    multilabel_recipe_overrides={"loss": "sigmoid", "label_smoothing": 0.0, "drop_rate": 0.1}, mosaic_grid=3,
    mosaic_image_size=20, mosaic_train_size=8, mosaic_val_size=8, precision="bf16",
)
NOT_IN_THE_RUN = dict(name="full", seeds=5, speed_warmup_steps=3, speed_steps=3, table3_batch_size=4)
MULTI_LABEL_ONLY = {"multi_label_source", "multilabel_recipe", "multilabel_recipe_overrides", "mosaic_grid",
                    "mosaic_image_size", "mosaic_train_size", "mosaic_val_size"}


def _run_directories(scale, name: str, tmp_path) -> dict[str, tuple[str, dict]]:
    comparison = get_experiment(name)
    arms = resolve_arms(comparison, scale, num_classes=10, in_channels=scale.in_channels)
    configs = {a.label: run_config(comparison, scale, a, seed=0, runs_dir=tmp_path, device="cpu", data_path="/d")
               for a in arms}
    return {label: (c.out_dir, run_identity(c, scale)) for label, c in configs.items()}


def test_every_scale_field_is_classified_for_the_run_cache():
    assert set(SHAPES_THE_RUN) | set(NOT_IN_THE_RUN) == {f.name for f in dataclasses.fields(Scale)}


@pytest.mark.parametrize("field", [*SHAPES_THE_RUN, *NOT_IN_THE_RUN])
def test_run_directory_changes_exactly_when_a_scale_field_shapes_the_run(field, tmp_path):
    name = "jft_profile" if field in MULTI_LABEL_ONLY else "imagenet_profile"  # Xception and Inception V3 arms
    base = get_scale("quick", **TINY)
    changed = dataclasses.replace(base, **{field: {**SHAPES_THE_RUN, **NOT_IN_THE_RUN}[field]})
    before, after = _run_directories(base, name, tmp_path), _run_directories(changed, name, tmp_path)
    if field in NOT_IN_THE_RUN:
        assert after == before
        return
    moved = [label for label in before if after[label][0] != before[label][0]]
    assert moved, f"changing {field} reuses every run of {name}"
    for label in moved:  # what the run directory records (config.json, record.json) differs too
        assert after[label][1] != before[label][1]
    for label in set(before) - set(moved):
        assert after[label] == before[label]


@pytest.mark.usefixtures("fashion_mnist")
def test_cli_experiment_with_another_subset_trains_new_runs_and_records_the_subset(tmp_path):
    args = ["experiment", "residual", "--seeds", "1", "--out", str(tmp_path / "out"), "--runs-dir",
            str(tmp_path / "runs"), "--device", "cpu", *[f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]]
    assert main(args) == 0
    assert main([*args, "--set", "train_examples=8"]) == 0  # the CLI help's example, at a tiny size
    runs = sorted((tmp_path / "runs").glob("*/seed0"))
    assert len(runs) == 4  # two arms, two subsets
    configs = [json.loads((r / "config.json").read_text()) for r in runs]
    assert sorted(c["train"]["data"]["train_examples"] for c in configs) == [8, 8, 16, 16]
    # Batches of 8: the smaller subset really trained on fewer images.
    assert sorted(c["total_steps"] for c in configs) == [1, 1, 2, 2]


def test_a_scale_mapping_a_family_to_another_familys_model_fails_clearly():
    scale = get_scale("quick", **{**TINY, "models": {"xception": "inception_v3_small", "inception_v3": "inception_v3_small"}})
    with pytest.raises(ValueError, match="gives xception arms the model 'inception_v3_small', which is inception_v3"):
        resolve_arms(get_experiment("residual"), scale, num_classes=10, in_channels=1)
