#!/usr/bin/env python3
# make_adain_figure.py — the README's AdaIN before/after figure, and the CLI's CTest check.
# Draws a content image (a landscape) and a style image (a sunset palette) procedurally, runs
# `normkit adain` on them, then either checks the output against NumPy's AdaIN (--check) or
# writes content | style | output side by side as before_after.png. Needs NumPy (+ matplotlib
# for the figure, and for reading the CLI's PNG back).
import argparse
import os
import struct
import subprocess
import sys
import zlib

import numpy as np


def write_png(path, rgb):
    """8-bit RGB PNG from an (H, W, 3) uint8 array, no filtering (zlib does the work)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))
    chunk = lambda tag, data: (struct.pack(">I", len(data)) + tag + data +
                               struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def content_image(n):
    """A landscape: sky gradient, a sun, rolling hills, a lake."""
    y, x = np.mgrid[0:n, 0:n] / n
    img = np.zeros((n, n, 3))
    img[...] = np.stack([0.35 + 0.5 * y, 0.55 + 0.4 * y, 0.95 - 0.1 * y], -1)  # sky
    sun = (x - 0.72) ** 2 + (y - 0.25) ** 2 < 0.012
    img[sun] = [1.0, 0.95, 0.6]
    hills = y > 0.55 + 0.08 * np.sin(7 * x) + 0.04 * np.sin(19 * x + 1)
    img[hills] = np.stack([0.2 + 0.2 * x, 0.5 + 0.25 * np.sin(11 * x) ** 2, 0.2 + 0 * x], -1)[hills]
    lake = (y > 0.82) & (np.abs(x - 0.35) < 0.25 - 0.6 * (y - 0.82))
    img[lake] = [0.15, 0.35, 0.6]
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def style_image(n):
    """A sunset palette: warm bands of orange, magenta and deep purple."""
    y, x = np.mgrid[0:n, 0:n] / n
    t = y + 0.05 * np.sin(9 * x)
    img = np.stack([0.95 - 0.55 * t, 0.55 - 0.45 * t + 0.1 * np.sin(20 * t), 0.25 + 0.3 * t], -1)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def numpy_adain(c, s, eps):
    c, s = c.astype(np.float64), s.astype(np.float64)
    cm, cv = c.mean((0, 1)), c.var((0, 1))
    sm, sv = s.mean((0, 1)), s.var((0, 1))
    return (c - cm) / np.sqrt(cv + eps) * np.sqrt(sv + eps) + sm


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cli", required=True, help="path to the normkit program")
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="output folder")
    p.add_argument("--size", type=int, default=192, help="image side in pixels")
    p.add_argument("--check", action="store_true", help="check the output, make no figure")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    content, style = content_image(a.size), style_image(a.size * 3 // 4)  # sizes may differ
    cp, sp, op = (os.path.join(a.out, f) for f in ("content.png", "style.png", "output.png"))
    write_png(cp, content)
    write_png(sp, style)
    subprocess.run([a.cli, "adain", cp, sp, op], check=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = (plt.imread(op)[..., :3] * 255).round()
    want = np.clip(numpy_adain(content, style, 1e-5), 0, 255).round()
    worst = np.abs(out - want).max()
    print(f"adain check: output vs NumPy AdaIN, worst pixel difference {worst:.0f} (of 255)")
    if a.check:
        sys.exit(0 if worst <= 1 else 1)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, im, title in zip(axes, (content, style, out.astype(np.uint8)),
                             ("content", "style", "normkit adain content style")):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "before_after.png"), dpi=100)
    for f in (cp, sp, op):  # the figure is what the README shows
        os.remove(f)


if __name__ == "__main__":
    main()
