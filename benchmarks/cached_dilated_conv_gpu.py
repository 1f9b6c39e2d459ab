"""The cached conv-stack generation step on one accelerator: the Pallas kernel (one program for the whole stack,
cache updated in place) against the XLA path, at batch 1, 4, 16, 64 and 256.

  python3 -m benchmarks.cached_dilated_conv_gpu --output cached_conv_gpu.md         (GPU; needs only jax and numpy)
  python3 -m benchmarks.cached_dilated_conv_gpu --cell gated_resnet --output pixelcnn_step_gpu.md
  python3 -m benchmarks.cached_dilated_conv_gpu --quick --output /tmp/conv.md       (CPU smoke test, interpreted)

--cell gated (default): WaveNet's stack, width k = 2, dilations 1 .. 512 twice (20 layers), C = R = 64 channels,
256 skip channels (nv-wavenet's sizes). --cell gated_resnet: a PixelCNN++ pass at one scale, 5 gated resnet blocks
(nr_resnet 5) of two 2 x 2 convs each (3 past taps per conv), C = --channels (the paper's 160 filters are not a
power of two, which Triton tiles need: 128 or 256 bracket it). float32 by default. Each row times a jitted loop
of --steps steps carrying the cache (so it is updated in place, as in a generation loop) and reports the time per
step (median of --repeats loops after compilation and a warm-up); the slots stay fixed, which changes no cost.
The kernel's cache is allocated at `preferred_batch` rows (a multiple of its 16-row tile, so no per-step
padding); the bytes and FLOPs are those of the real batch (kernels/cached_dilated_conv/layout.step_cost), so
padded rows count as the kernel's cost.
roofline % and the GOAL line (the kernel >= 2x the XLA path at batch 16-256): benchmarks/timing_gpu.py.
"""

import argparse
import sys
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing_gpu
from kernels import backend
from kernels.cached_dilated_conv import (
    StackWeights,
    cached_dilated_conv_step_pallas,
    cached_dilated_conv_step_reference,
    preferred_batch,
    step_cost,
)
from kernels.cached_dilated_conv.layout import first_rows, output_shape

BATCHES = (1, 4, 16, 64, 256)
QUICK_BATCHES = (1, 4)
DILATIONS = tuple(2**i for i in range(10)) * 2
GOAL_BATCHES = (16, 64, 256)
DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="markdown file to write")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 4, a 4 (2)-layer stack, 2 repeats (CPU)")
    parser.add_argument("--cell", choices=("gated", "gated_resnet"), default="gated", help="WaveNet's or PixelCNN++'s")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 50; quick 2)")
    parser.add_argument("--channels", type=int, default=64, help="C = R (residual and gate width)")
    parser.add_argument("--skip_channels", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16, help="steps per timed loop")
    timing_gpu.add_roofline_args(parser)
    args = parser.parse_args(argv)
    args.batches = QUICK_BATCHES if args.quick else BATCHES
    args.layers = (4 if args.quick else len(DILATIONS)) if args.cell == "gated" else (2 if args.quick else 5)
    args.repeats = args.repeats or (2 if args.quick else 50)
    return args


def stack(key, cell: str, layers: int, channels: int, skip_channels: int, dtype) -> StackWeights:
    """Random stack weights [outputs, inputs] scaled like a trained net's: gated with k = 2 (one past tap), or
    gated_resnet with two 2 x 2 convs per block over concat_elu (3 past taps of 2C inputs each)."""
    keys = iter(jax.random.split(key, 8))

    def normal(shape, scale):
        return (jax.random.normal(next(keys), shape) * scale).astype(dtype)

    if cell == "gated_resnet":
        fan_in = 8 * channels
        return StackWeights(
            past=normal((layers, 1, channels, 6 * channels), fan_in**-0.5),
            current=normal((layers, 1, channels, 2 * channels), fan_in**-0.5),
            bias=normal((layers, 1, channels), 0.1),
            out_past=normal((layers, 2, channels, 6 * channels), fan_in**-0.5),
            out_current=normal((layers, 2, channels, 2 * channels), fan_in**-0.5),
            out_bias=normal((layers, 2, channels), 0.1),
        )
    fan_in = 2 * channels
    return StackWeights(
        past=normal((layers, 2, channels, channels), fan_in**-0.5),
        current=normal((layers, 2, channels, channels), fan_in**-0.5),
        bias=normal((layers, 2, channels), 0.1),
        residual=normal((layers, channels, channels), channels**-0.5),
        residual_bias=normal((layers, channels), 0.1),
        skip=normal((skip_channels, layers * channels), channels**-0.5),
        skip_bias=normal((skip_channels,), 0.1),
    )


def step_inputs(key, cell: str, batch: int, layers: int, channels: int, dtype):
    """x [B, C], a random cache, and slots that keep the ring contract: conv i (of the L * convs) writes row i and
    reads its past taps from rows after all the written ones (no conv reads a row another conv writes)."""
    convs, taps = (2, 3) if cell == "gated_resnet" else (1, 1)
    written = layers * convs
    x_key, cache_key = jax.random.split(key)
    x = jax.random.normal(x_key, (batch, channels)).astype(dtype)
    cache = jax.random.normal(cache_key, (written * (1 + taps), batch, channels)).astype(dtype)
    read_slots = jnp.arange(written, written * (1 + taps), dtype=jnp.int32).reshape(layers, convs * taps)
    write_slots = jnp.arange(written, dtype=jnp.int32).reshape((layers, convs) if convs > 1 else (layers,))
    return x, cache, read_slots, write_slots


def implementations():
    """name -> (step function, batch the cache is allocated at for a requested batch)."""
    name = "pallas" if backend.accelerator() else "pallas (interpret)"
    return {
        "xla": (cached_dilated_conv_step_reference, lambda batch: batch),
        name: (cached_dilated_conv_step_pallas, lambda batch: preferred_batch(batch, "pallas")),
    }


def generation_loop(fn, weights: StackWeights, cell: str, steps: int):
    """A jitted loop of `steps` calls of fn carrying the cache -> (last output, final cache)."""

    def loop(x, cache, read_slots, write_slots):
        def body(_, carry):
            return fn(x, carry[1], read_slots, write_slots, weights, cell=cell)

        out = jnp.zeros(output_shape(x, weights, cell), x.dtype)
        return jax.lax.fori_loop(0, steps, body, (out, cache))

    return jax.jit(loop)


def run(args) -> tuple[list[list[str]], dict]:
    dtype = DTYPES[args.dtype]
    layers, cell = args.layers, args.cell
    roofline = timing_gpu.Roofline(args.peak_tbps, args.peak_tflops)
    weights = stack(jax.random.PRNGKey(0), cell, layers, args.channels, args.skip_channels, dtype)
    rows, speedups = [], {}
    impls = implementations()
    loops = {
        name: generation_loop(fn, weights, cell, args.steps) for name, (fn, _) in impls.items()
    }  # one jit per impl
    for batch in args.batches:
        key = jax.random.PRNGKey(batch)
        x, cache, read_slots, write_slots = step_inputs(key, cell, batch, layers, args.channels, dtype)
        bytes_, flops = step_cost(x, cache, read_slots, weights, None, cell)
        baseline = None
        for name, (_, allocated) in impls.items():
            rows_allocated = allocated(batch)
            pad = rows_allocated - batch
            xp = jnp.pad(x, ((0, pad), (0, 0)))
            cp = jnp.pad(cache, ((0, 0), (0, pad), (0, 0)))
            steps = loops[name]
            label = [str(batch), str(rows_allocated), name, roofline.binding(bytes_, flops)]
            print(f"batch {batch} {name}", end=" ", file=sys.stderr, flush=True)
            try:
                seconds, (out, new_cache) = timing_gpu.measure(steps, (xp, cp, read_slots, write_slots), args.repeats)
                seconds /= args.steps
            except Exception as error:  # a failing kernel is a result to report, not the end of the run
                traceback.print_exc()
                rows.append(label + timing_gpu.failed_cells(error, 6))
                continue
            print(f"{seconds * 1e6:.1f} us", file=sys.stderr, flush=True)
            result = (np.asarray(first_rows(out, batch, cell)), np.asarray(new_cache)[:, :batch])
            speedup = baseline[0] / seconds if baseline else None
            error = f"{timing_gpu.max_error(result, baseline[1]):.1e}" if baseline else ""
            if baseline is None:
                baseline = (seconds, result)
            elif speedup:
                speedups[batch] = speedup
            rows.append(
                label
                + timing_gpu.rate_cells(roofline, bytes_, flops, seconds)
                + [f"{speedup:.2f}x" if speedup else "1.00x", error]
            )
    return rows, speedups


def stack_description(args) -> str:
    if args.cell == "gated_resnet":
        return f"gated_resnet stack (PixelCNN++) of {args.layers} blocks, two 2 x 2 convs each, C = {args.channels}"
    return f"gated stack of {args.layers} layers, k = 2, C = R = {args.channels}, {args.skip_channels} skip channels"


def goals(speedups: dict) -> list[str]:
    """The kernel >= 2x the XLA path at every batch of 16-256 this run timed."""
    measured = {batch: round(s, 2) for batch, s in speedups.items() if batch in GOAL_BATCHES}
    passed = None if not measured else min(measured.values()) >= 2.0
    return [timing_gpu.goal_line(passed, "cached step >= 2x XLA at batch 16-256", f"speed-ups {measured}")]


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    rows, speedups = run(args)
    header = ["batch", "allocated", "impl", "bound", "ms", "GB/s", "TFLOP/s", "roofline %", "vs xla", "max err"]
    command = "python3 -m benchmarks.cached_dilated_conv_gpu " + " ".join(argv)
    notes = [
        f"# Cached conv-stack step ({args.cell}): Pallas kernel vs XLA path",
        "",
        timing_gpu.machine_line(),
        f"- command: `{command}`",
        f"- {stack_description(args)}, {args.dtype}; time per step: median of {args.repeats} loops of"
        f" {args.steps} steps after compilation and a warm-up, divided by the steps",
        f"- roofline: {args.peak_tbps} TB/s, {args.peak_tflops} TFLOP/s; bytes and FLOPs: layout.step_cost",
        "",
    ]
    text = "\n".join(notes + timing_gpu.markdown_table(header, rows) + [""] + goals(speedups)) + "\n"
    with open(args.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
