"""HaloNet's speed claim on CPU: halo attention vs stand-alone (SASA) attention at the same receptive field, and
vs timm's PyTorch `HaloAttn` at the same shapes.

Both attention layers see at least 3 pixels on every side of each query: SASA with its centred k = 7 window, halo
attention with halo h = 3 around b x b query blocks (b = 8, the paper's setting, and b = 4). Each layer runs a
forward pass and a forward + backward pass (gradients wrt the input and the parameters, loss = sum of squared
outputs) through XLA (float32, `impl="xla"`), at the ResNet-50 stage shapes, batch 8, 8 heads; everything is
measured one after another in the same invocation, timm right after this repo's layers at each shape. Maps that b
does not divide are padded to whole blocks, as the HaloNet layer does in the models (timm asserts divisibility,
so its input is padded the same way).

timm runs in its own environment (torch + timm, never this project's dependencies): `make timm-env` builds
.venv-timm from requirements/bench-timm.txt and benchmarks/timm_halo_attn.py is run there as a subprocess.
Without that environment the timm columns say so.

python -m benchmarks.run_all --only halo_attention
"""

import json
import os
import subprocess

from flax import nnx

from benchmarks.local_attention import (
    BATCH,
    KERNEL_SIZE,
    NUM_HEADS,
    STAGE_SHAPES,
    sasa_layer,
    stage_input,
    time_forward,
    time_forward_backward,
)
from common import report
from common.nn.halo_attention import HaloAttention

HALO_SIZE = KERNEL_SIZE // 2
BLOCK_SIZES = (8, 4)
TIMM_PYTHON = os.environ.get("REPRISE_TIMM_PYTHON", ".venv-timm/bin/python")
TIMM_SCRIPT = os.path.join(os.path.dirname(__file__), "timm_halo_attn.py")
PASSES = {"forward": time_forward, "forward + backward": time_forward_backward}


def halo_layer(channels: int, block_size: int) -> HaloAttention:
    return HaloAttention(
        channels,
        channels,
        block_size=block_size,
        halo_size=HALO_SIZE,
        num_heads=NUM_HEADS,
        impl="xla",
        rngs=nnx.Rngs(0),
    )


def timm_measurements(shapes, python: str = TIMM_PYTHON) -> dict | None:
    """(size, block size) -> {"forward": img/s, "forward + backward": img/s} from timm, or None without its env."""
    if not os.path.exists(python):
        return None
    command = [python, TIMM_SCRIPT, "--shapes", ",".join(f"{size}x{channels}" for size, channels in shapes)]
    command += ["--block-sizes", ",".join(map(str, BLOCK_SIZES)), "--halo", str(HALO_SIZE)]
    command += ["--heads", str(NUM_HEADS), "--batch", str(BATCH)]
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    results = {}
    for row in map(json.loads, lines):
        results[row["size"], row["block_size"]] = {
            "forward": row["forward_images_per_second"],
            "forward + backward": row["forward_backward_images_per_second"],
            "versions": f"torch {row['torch']}, timm {row['timm']}, {row['threads']} threads",
        }
    return results


def _ratio(numerator: float, denominator: float | None) -> str:
    return "n/a" if not denominator else f"{numerator / denominator:.2f}x"


def markdown(shapes=STAGE_SHAPES, timm_python: str = TIMM_PYTHON) -> str:
    table_rows, timm_versions = [], None
    for size, channels in shapes:
        x = stage_input(size, channels)
        ours = {}
        for pass_name, timer in PASSES.items():
            unfold = timer(sasa_layer(channels, "naive"), x)["images_per_second"]
            sasa = timer(sasa_layer(channels), x)["images_per_second"]
            halo = {b: timer(halo_layer(channels, b), x)["images_per_second"] for b in BLOCK_SIZES}
            ours[pass_name] = unfold, sasa, halo
        # timm right after this shape's own timings (never at the same time), so both see the same machine load.
        timm = timm_measurements(((size, channels),), timm_python)
        for pass_name, (unfold, sasa, halo) in ours.items():
            theirs = {b: timm[size, b][pass_name] if timm else None for b in BLOCK_SIZES}
            row = [f"{size}x{size}x{channels}", pass_name, f"{unfold:.1f}", f"{sasa:.1f}"]
            for b in BLOCK_SIZES:
                row += [f"{halo[b]:.1f}", "not run" if theirs[b] is None else f"{theirs[b]:.1f}"]
            row += [_ratio(halo[b], sasa) for b in BLOCK_SIZES] + [_ratio(halo[8], unfold)]
            row += [_ratio(halo[b], theirs[b]) for b in BLOCK_SIZES]
            table_rows.append(row)
        timm_versions = timm_versions or (next(iter(timm.values()))["versions"] if timm else None)
    header = ["input (H x W x C)", "pass", "SASA unfold img/s", "SASA blockwise img/s"]
    for b in BLOCK_SIZES:
        header += [f"halo b={b} img/s", f"timm b={b} img/s"]
    header += [f"halo b={b} / SASA blockwise" for b in BLOCK_SIZES] + ["halo b=8 / SASA unfold"]
    header += [f"halo b={b} / timm b={b}" for b in BLOCK_SIZES]
    timm_note = (
        f"timm: `HaloAttn` ({timm_versions}) in .venv-timm, timed right after this repo's layers at each shape."
        if timm_versions
        else "timm: not run (its environment is missing: `make timm-env` builds it)."
    )
    return (
        "## Halo attention vs SASA and vs timm's HaloAttn (CPU, XLA path)\n\n"
        f"{report.markdown_table(header, table_rows)}\n\nOne layer, batch {BATCH}, {NUM_HEADS} heads, float32: SASA "
        f"(`LocalSelfAttention`, k = {KERNEL_SIZE}, its per-pixel unfold and its blockwise kernel) vs "
        f"`HaloAttention` (h = {HALO_SIZE}, impl xla), measured in one run on {report.machine_description()}. "
        f"{timm_note}\n"
    )


if __name__ == "__main__":
    print(markdown())
