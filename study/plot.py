#!/usr/bin/python3
# study/plot.py — draws the study's figure from results.csv: test error vs per-step batch
# size, one line per normalization, log2 x-axis with the largest batch on the left, like
# Figure 1 of Wu & He (2018). Usage: plot.py results.csv batch_size.png
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"BatchNorm": ("tab:blue", "o"), "GroupNorm": ("tab:red", "s"),
         "LayerNorm": ("tab:green", "^"), "InstanceNorm": ("tab:purple", "v"),
         "none": ("tab:gray", "x")}


def main(csv_path, png_path):
    runs = {}
    meta = None
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            runs.setdefault(row["norm"], []).append(
                (int(row["batch"]), 100.0 * float(row["test_error"])))
            meta = row
    if not runs:
        sys.exit(f"[plot] file={csv_path} has no runs")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for norm, pts in runs.items():
        pts.sort()
        color, marker = STYLE.get(norm, (None, "."))
        ax.plot([b for b, _ in pts], [e for _, e in pts], marker=marker, color=color, label=norm)
    batches = sorted({b for pts in runs.values() for b, _ in pts})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.invert_xaxis()
    ax.set_xlabel("images per step (batch size)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"Fashion-MNIST, {meta['epochs']} epochs on {meta['train_images']} images, "
                 f"lr scaled with batch", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py results.csv batch_size.png")
    main(sys.argv[1], sys.argv[2])
