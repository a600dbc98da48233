"""The transfer study's report: transfer.json, transfer.png and report.md with the Welch intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xception.atomic_write import save_figure_atomic, write_text_atomic
from xception.experiments.report import machine, now
from xception.experiments.transfer import FINETUNE, SCRATCH, WHOLE_NETWORK, summarize_transfer


def _plot(results: dict[str, Any], summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    shots = results["study"]["shots"]
    for arm, marker in ((FINETUNE.label, "o"), (WHOLE_NETWORK.label, "^"), (SCRATCH.label, "s")):
        cells = [summary["summaries"][s, arm] for s in shots]
        left.errorbar(shots, [100 * c.mean for c in cells], yerr=[100 * c.std for c in cells], marker=marker,
                      capsize=4, label=arm)
        for s in shots:
            seeds = [100 * r["top1"] for r in results["rows"] if r["shots"] == s and r["arm"] == arm]
            left.scatter([s] * len(seeds), seeds, s=10, alpha=0.4, color=left.lines[-1].get_color())
    left.set(xscale="log", xticks=shots, xlabel="labelled images per class (classes 5-9)",
             ylabel="test top-1 (%), 5,000 images", title="xception_small pretrained on classes 0-4")
    left.set_xticklabels([str(s) for s in shots])
    left.minorticks_off()
    left.legend()
    left.grid(alpha=0.3)
    seg = summary["segmentation"]
    names = list(seg)
    right.bar(names, [seg[n].mean for n in names], yerr=[seg[n].std for n in names], capsize=6,
              color=["tab:blue", "tab:orange"])
    right.set(ylabel="mean IoU, test mosaics", title="DeepLabV3+, mosaics")
    figure.tight_layout()
    save_figure_atomic(figure, path, dpi=110)
    plt.close(figure)
    return path


def write_transfer_report(results: dict[str, Any], out_dir: Path, *, command: str) -> Path:
    """transfer.json, transfer.png and report.md in `out_dir`; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {**results, "command": command, "machine": results.get("machine") or machine(),
               "date": results.get("date") or now()}
    write_text_atomic(out_dir / "transfer.json", json.dumps(results, indent=2, default=str))
    summary = summarize_transfer(results)
    _plot(results, summary, out_dir / "transfer.png")
    study, env = results["study"], results["machine"]
    lines = [
        "# Fine-tuning against training from scratch on a few labelled images",
        "",
        f"- command: `{command}`",
        f"- commit: `{env['git_commit']}`; date: {results['date']}",
        f"- machine: {env['cpu_model']}, {env['cpus']} CPUs, torch {env['torch']}",
        f"- wall time: {results['wall_s']:.0f} s",
        "",
        f"Pretraining: xception_small on {study['pretrain_examples']:,} training images of Fashion-MNIST's classes "
        f"0-4, {study['pretrain_epochs']:g} epochs (`fashion_mnist_demo` recipe): test top-1 "
        f"{100 * results['pretrain']['metrics']['top1']:.2f}% on those classes. Then classes 5-9 from N labelled "
        f"images per class, {study['finetune_steps']} steps of {study['batch_size']} for every arm (`finetune` "
        f"recipe: AdamW, head only for the first {study['head_steps']} steps, then the trunk at 1/100 of the "
        "learning rate ramped over as many steps, BatchNorm frozen; from scratch: the same optimizer and budget, "
        "everything trained from step 0, BatchNorm training; fine-tuned whole network: that same training from the "
        "pretrained weights), scored on the 5,000 test images of classes 5-9. "
        f"{study['seeds']} seeds (the labelled images drawn and the head initialised per seed); mean ± std.",
        "",
        "| images per class | " + " | ".join(sorted({arm for _, arm in summary['summaries']})) + " |",
        "|---:|" + "---:|" * len({arm for _, arm in summary['summaries']}),
    ]
    arms = sorted({arm for _, arm in summary["summaries"]})
    for shots in sorted({s for s, _ in summary["summaries"]}):
        cells = [summary["summaries"].get((shots, arm)) for arm in arms]
        lines.append(f"| {shots} | " + " | ".join(c.format(100) if c else "" for c in cells) + " |")
    lines += ["", "Differences (percentage points, Welch's t, 95% interval; where it includes 0, the smallest "
              "difference this design detects at 80% power):", ""]
    for shots, a, b, d in summary["differences"]:
        verdict = "real" if d.excludes_zero else f"not shown (detectable {100 * d.detectable:.2f} pp)"
        lines.append(f"- {shots} per class, {a} − {b}: {d.format(100)}, p = {d.p_value:.3g}: {verdict}")
    seg, sd = summary["segmentation"], summary["segmentation_difference"]
    lines += ["", f"Segmentation: the mosaic preset (`deeplabv3plus_small`, `mosaic_segmentation`) on "
              f"{study['segmentation_mosaics']:,} training mosaics x 2 epochs (the preset uses 6,000), "
              f"{study['segmentation_val_mosaics']:,} test mosaics, {study['segmentation_seeds']} seeds, backbone "
              "from the pretraining above or from scratch, the same recipe and budget: "
              + ", ".join(f"{name} mean IoU {value.format(1, 3)}" for name, value in seg.items())
              + f"; difference {sd.format(1, 3)}, p = {sd.p_value:.3g}"
              + ("" if sd.excludes_zero else f" (not shown; detectable {sd.detectable:.3f})") + ".",
              "", "![transfer](transfer.png)", ""]
    path = out_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
