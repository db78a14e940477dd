#!/usr/bin/python3
# make_family_figure.py — draws docs/family.png: the four N x C x (H*W) blocks with the
# values that share one mean and variance shaded (GroupNorm paper, Wu & He 2018, Fig. 2).
# Plain matplotlib polygons in an oblique projection, no 3D toolkit; run with /usr/bin/python3.
import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

CELLS_N, CELLS_C, DEPTH = 6, 6, 0.55  # cells drawn along N and C; C recedes at 45 degrees
SHADE, EDGE = "#4a86c5", "#1f3f66"


def project(x, y, z):
    """Block coordinates (x along N, y along C, z along H*W) to the page."""
    return (x + DEPTH * y * math.cos(math.pi / 4), z + DEPTH * y * math.sin(math.pi / 4))


def faces(x0, x1, y0, y1, z0, z1):
    """The three faces seen from front-right-top: front (y0), top (z1), right (x1)."""
    corners = {
        "front": [(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)],
        "top": [(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)],
        "right": [(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)],
    }
    return {k: [project(*p) for p in v] for k, v in corners.items()}


def draw_box(ax, box, fill, edge, lw, zorder, shades=(1.0, 0.85, 0.7)):
    for (name, poly), s in zip(faces(*box).items(), shades):
        color = fill if fill == "none" else tuple(min(1, c * s) for c in matplotlib.colors.to_rgb(fill))
        ax.add_patch(Polygon(poly, closed=True, facecolor=color, edgecolor=edge, lw=lw,
                             zorder=zorder))


def draw_grid(ax, n, c, h):
    """Cell lines on the visible faces of the whole block, one per example / channel."""
    style = dict(color="#9aa5b1", lw=0.5, zorder=2)  # above the block, below the shading
    for i in range(1, n):  # along N: on the front and the top
        ax.plot(*zip(project(i, 0, 0), project(i, 0, h), project(i, c, h)), **style)
    for j in range(1, c):  # along C: on the top and the right side
        ax.plot(*zip(project(0, j, h), project(n, j, h), project(n, j, 0)), **style)


def panel(ax, title, region, subtitle):
    n, c, h = CELLS_N, CELLS_C, 5.0
    draw_box(ax, (0, n, 0, c, 0, h), "#f4f6f8", "#55606b", 0.8, zorder=1)
    draw_grid(ax, n, c, h)
    draw_box(ax, region, SHADE, EDGE, 1.2, zorder=3)
    # axis labels, as in the paper: N along the front, C receding, H,W upwards
    ax.annotate("", xy=project(n, 0, -0.6), xytext=project(0, 0, -0.6),
                arrowprops=dict(arrowstyle="->", lw=0.9))
    ax.text(*project(n / 2, 0, -1.25), "N", ha="center", va="center", fontsize=11)
    ax.annotate("", xy=project(n + 0.5, c, 0), xytext=project(n + 0.5, 0, 0),
                arrowprops=dict(arrowstyle="->", lw=0.9))
    ax.text(*project(n + 1.1, c / 2, -0.3), "C", ha="center", va="center", fontsize=11)
    ax.annotate("", xy=project(-0.5, 0, h), xytext=project(-0.5, 0, 0),
                arrowprops=dict(arrowstyle="->", lw=0.9))
    ax.text(*project(-1.1, 0, h / 2), "H, W", ha="center", va="center", fontsize=11, rotation=90)
    ax.set_title(title, fontsize=13, fontweight="bold", pad=4)
    ax.text(*project(n / 2, 0, -2.2), subtitle, ha="center", va="top", fontsize=8.5, color="#333")
    ax.set_xlim(-2.0, n + DEPTH * c + 1.8)
    ax.set_ylim(-3.8, h + DEPTH * c + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")


def stats(shape, groups):
    """(statistics, values per statistic) for each method on an N x C x H x W activation."""
    n, c, hw = shape[0], shape[1], math.prod(shape[2:])
    return {
        "BatchNorm": (c, n * hw),
        "LayerNorm": (n, c * hw),
        "InstanceNorm": (n * c, hw),
        "GroupNorm": (n * groups, c // groups * hw),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/family.png")
    ap.add_argument("--shape", default="32,256,14,14", help="N,C,H,W used for the counts")
    ap.add_argument("--groups", type=int, default=32)
    args = ap.parse_args()
    shape = [int(s) for s in args.shape.split(",")]
    if len(shape) < 3 or shape[1] % args.groups:
        raise SystemExit(f"--shape={args.shape} --groups={args.groups}: need N,C,spatial... "
                         "with C divisible by groups")
    counts = stats(shape, args.groups)
    n, c, h = CELLS_N, CELLS_C, 5.0
    panels = [  # (title, shaded box, key)
        ("Batch Norm", (0, n, 0, 1, 0, h), "BatchNorm"),      # one channel, every example
        ("Layer Norm", (0, 1, 0, c, 0, h), "LayerNorm"),      # one example, every channel
        ("Instance Norm", (0, 1, 0, 1, 0, h), "InstanceNorm"),  # one example, one channel
        ("Group Norm", (0, 1, 0, 2, 0, h), "GroupNorm"),      # one example, one group (C/G)
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.1))
    for ax, (title, box, key) in zip(axes, panels):
        k, m = counts[key]
        sub = f"{k:,} statistics of {m:,} values each"
        panel(ax, title, box, sub)
    fig.suptitle(f"Shaded: the values normalized by one mean and variance "
                 f"(counts for N x C x H x W = {' x '.join(map(str, shape))}, "
                 f"GroupNorm with {args.groups} groups)", fontsize=10.5, y=0.04)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.08, wspace=0.05)
    fig.savefig(args.out, dpi=110, metadata={"Software": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
