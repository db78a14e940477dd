#!/usr/bin/python3
# accuracy_table.py — the README's accuracy table (README.md, "Reliability"): float32 normkit and
# float32 PyTorch, each against float64 PyTorch on the same (widened) input, for unit-normal
# data plus an offset. Error = max |y32 - y64| / max |y64|. Run with the module on the path:
#   PYTHONPATH=build/python /usr/bin/python3 scripts/accuracy_table.py
import datetime

import numpy as np
import torch
import torch.nn.functional as F

import normkit as nk

torch.set_num_threads(1)
OFFSETS = [1e3, 1e4, 1e6]


def rms_torch(t, d, eps):  # PyTorch 1.13 has no rms_norm: the usual composition
    return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps)


# (label, shape, normkit call, torch call)
CASES = [
    ("LayerNorm, rows of 2", (256, 2), lambda x: nk.layer_norm(x, 2), lambda t: F.layer_norm(t, (2,))),
    ("LayerNorm, rows of 4096", (64, 4096), lambda x: nk.layer_norm(x, 4096),
     lambda t: F.layer_norm(t, (4096,))),
    ("BatchNorm, 2 per channel", (2, 64), lambda x: nk.batch_norm(x, None, None, training=True),
     lambda t: F.batch_norm(t, None, None, training=True)),
    ("BatchNorm, 32x64x16x16", (32, 64, 16, 16), lambda x: nk.batch_norm(x, None, None, training=True),
     lambda t: F.batch_norm(t, None, None, training=True)),
    ("InstanceNorm, 2 per instance", (16, 8, 2), lambda x: nk.instance_norm(x),
     lambda t: F.instance_norm(t)),
    ("GroupNorm 32 groups, 8x64x28x28", (8, 64, 28, 28), lambda x: nk.group_norm(x, 32),
     lambda t: F.group_norm(t, 32)),
    ("RMSNorm, rows of 4096", (64, 4096), lambda x: nk.rms_norm(x, 4096, eps=1e-6),
     lambda t: rms_torch(t, 4096, 1e-6)),
]


def error(y32, y64):
    y32, y64 = np.asarray(y32, np.float64), np.asarray(y64, np.float64)
    return float(np.max(np.abs(y32 - y64)) / np.max(np.abs(y64)))


def main():
    rng = np.random.default_rng(0)
    print(f"accuracy vs float64 (max abs error / max |y|), {datetime.date.today()}, "
          f"torch {torch.__version__}, normkit {nk.__version__}\n")
    print("| case | offset | normkit float32 | PyTorch float32 |")
    print("|---|---:|---:|---:|")
    for label, shape, nk_call, torch_call in CASES:
        for off in OFFSETS:
            x = (rng.standard_normal(shape) + off).astype(np.float32)
            want = torch_call(torch.from_numpy(x.astype(np.float64))).numpy()
            ours = nk_call(x)
            theirs = torch_call(torch.from_numpy(x)).numpy()
            print(f"| {label} | {off:.0e} | {error(ours, want):.1e} | {error(theirs, want):.1e} |")


if __name__ == "__main__":
    main()
