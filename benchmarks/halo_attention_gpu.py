"""Halo attention on one accelerator: the Pallas kernel against the XLA reference, forward and forward + backward.

  python3 -m benchmarks.halo_attention_gpu --output halo_attention_gpu.md          (GPU; needs only jax and numpy)
  python3 -m benchmarks.halo_attention_gpu --quick --output /tmp/halo_quick.md     (CPU smoke test: tiny shapes,
                                                                                    the kernel interpreted)

For each HaloNet-like shape it times (median of --repeats calls after compilation and one warm-up) the jitted
forward and the jitted forward + backward (gradients wrt q, k, v and both tables) of each implementation, and
reports achieved bandwidth and FLOP rate from an implementation-independent count (Q = kept queries: N*H*W*heads
at stride 1, a quarter of it at --query_stride 2; K = N*H*W*heads keys):
  bytes  forward: read q, k, v, write out (2Q + 2K vectors of d); forward + backward adds reading q, k, v,
         out, dout and writing dq, dk, dv (6Q + 6K in all). The haloed memories are counted once, as HBM
         traffic at its minimum; re-reads of overlapping windows are the kernel's cost, not useful bytes.
  flops  per query and head, M = b + 2h: forward 4*d*M^2 (q.k and weights.v) + 4*d*M (row/column logits);
         backward 8*d*M^2 + 4*d*M (dv, dweights, dq, dk; no recomputation counted).
roofline %: benchmarks/timing_gpu.py (H100 SXM peaks by default). "max err" is the largest |pallas - xla| of the
outputs (forward) or of the gradients (forward + backward). The Pallas launch config (tiles, num_warps,
num_stages) comes from kernels/halo_attention/tiling.py by shape unless --num_warps overrides it; the run ends
with the GOAL lines (`goals`), which a GPU check script greps.
"""

import argparse
import dataclasses
import sys
import traceback

import jax
import jax.numpy as jnp

from benchmarks import timing_gpu
from kernels import backend
from kernels.halo_attention import halo_attention_pallas, halo_attention_reference, tiling
from tests.kernels.halo_attention_inputs import halo_attention_inputs  # jax only, like kernels/

# (batch, H, W, heads, d, block b, halo h): HaloNet stages at 256 px (64x64 after the stem down to 8x8),
# b = 8, h = 3 as in H0-H2 and HaloNet-50, and the other (b, h) of the model family (H3: 10/3, H4: 12/2, H6: 8/4).
SHAPES = (
    (32, 64, 64, 8, 16, 8, 3),
    (32, 64, 64, 8, 32, 8, 3),
    (32, 64, 64, 8, 64, 8, 3),
    (64, 64, 64, 8, 16, 8, 3),
    (64, 32, 32, 8, 32, 8, 3),
    (64, 16, 16, 8, 64, 8, 3),
    (32, 64, 64, 8, 32, 8, 2),
    (32, 64, 64, 8, 32, 4, 1),
    (32, 64, 64, 8, 32, 8, 4),
    (32, 60, 60, 8, 32, 10, 3),
    (32, 48, 48, 8, 32, 12, 2),
)
QUICK_SHAPES = ((1, 8, 8, 2, 8, 4, 1),)
DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="markdown file to write")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (runs on CPU)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 20; quick 2)")
    parser.add_argument(
        "--num_warps", default="", help="comma-separated Triton num_warps to try on GPU (default: the tile table's)"
    )
    parser.add_argument("--query_stride", type=int, choices=(1, 2), default=1, help="2: a strided layer's kept queries")
    parser.add_argument("--precision", choices=("highest", "default"), default="highest", help="float32 dots")
    timing_gpu.add_roofline_args(parser)
    parser.add_argument(
        "--shape",
        action="append",
        default=None,
        help="N,H,W,heads,d,b,h (repeatable); replaces the default list",
    )
    args = parser.parse_args(argv)
    if args.shape:
        args.shapes = [tuple(int(x) for x in s.split(",")) for s in args.shape]
        if any(len(s) != 7 for s in args.shapes):
            parser.error("--shape takes seven integers: N,H,W,heads,d,b,h")
    else:
        args.shapes = QUICK_SHAPES if args.quick else SHAPES
    args.repeats = args.repeats or (2 if args.quick else 20)
    return args


def work(shape, itemsize, query_stride=1):
    """(bytes, flops) of the forward and of forward + backward, by the count in the module docstring."""
    n, height, width, heads, depth, b, h = shape
    keys, memory = n * height * width * heads, b + 2 * h
    queries = keys // query_stride**2
    forward_flops = queries * (4 * depth * memory**2 + 4 * depth * memory)
    backward_flops = queries * (8 * depth * memory**2 + 4 * depth * memory)
    vector = depth * itemsize
    forward_bytes, backward_bytes = (2 * queries + 2 * keys) * vector, (6 * queries + 6 * keys) * vector
    return {
        "forward": (forward_bytes, forward_flops),
        "forward+backward": (backward_bytes, forward_flops + backward_flops),
    }


def build(fn, b, h, precision):
    """Jitted forward and forward + backward of one implementation."""

    def attention(q, k, v, rh, rw):
        return fn(q, k, v, rh, rw, block_size=b, halo_size=h, precision=precision)

    def forward(q, k, v, rh, rw, cotangent):
        del cotangent
        return attention(q, k, v, rh, rw)

    def forward_backward(q, k, v, rh, rw, cotangent):
        _, vjp = jax.vjp(attention, q, k, v, rh, rw)
        return vjp(cotangent)

    return {"forward": jax.jit(forward), "forward+backward": jax.jit(forward_backward)}


def implementations(args, shape, dtype):
    """name -> attention function: XLA, the kernel with the tile table's config, and one entry per --num_warps."""
    impls = {"xla": halo_attention_reference}
    platform = backend.accelerator()
    if platform == "gpu":
        b, h = shape[5:]
        config = tiling.gpu_config(b, h, dtype)
        impls[f"pallas w{config.num_warps}"] = halo_attention_pallas
        for warps in (int(w) for w in args.num_warps.split(",") if w):
            if warps != config.num_warps:
                other = dataclasses.replace(config, num_warps=warps)
                impls[f"pallas w{warps}"] = lambda *a, c=other, **kw: halo_attention_pallas(*a, config=c, **kw)
    else:
        impls["pallas" if platform else "pallas (interpret)"] = halo_attention_pallas
    return impls


@dataclasses.dataclass
class Result:
    """One timed (shape, pass, implementation): what the goals read."""

    shape: tuple
    kind: str
    impl: str
    seconds: float | None
    speedup: float | None
    roofline_percent: float | None


def run(args) -> tuple[list[list[str]], list[Result]]:
    """One table row per (shape, pass, implementation); the XLA rows are the baseline of the others."""
    dtype = DTYPES[args.dtype]
    itemsize = jnp.dtype(dtype).itemsize
    roofline = timing_gpu.Roofline(args.peak_tbps, args.peak_tflops)
    rows, results = [], []
    for shape in args.shapes:
        baselines = {}  # per shape, so earlier results free their device memory
        n, height, width, heads, depth, b, h = shape
        key, cotangent_key = jax.random.split(jax.random.PRNGKey(0))
        arrays = halo_attention_inputs(key, (b, h, n, height, width, heads, depth), dtype, args.query_stride)
        cotangent = jax.random.normal(cotangent_key, arrays[0].shape).astype(dtype)
        data = [*arrays, cotangent]
        counts = work(shape, itemsize, args.query_stride)
        label = f"{n}x{height}x{width}, {heads}x{depth}"
        for name, fn in implementations(args, shape, dtype).items():
            for kind, jitted in build(fn, b, h, args.precision).items():
                print(f"{label} b={b} h={h} {kind} {name}", end=" ", file=sys.stderr, flush=True)
                row = [label, str(b), str(h), kind, name]
                try:
                    seconds, result = timing_gpu.measure(jitted, data, args.repeats)
                except Exception as error:  # a failing kernel is a result to report, not the end of the run
                    traceback.print_exc()
                    rows.append(row + timing_gpu.failed_cells(error, 6))
                    results.append(Result(shape, kind, name, None, None, None))
                    continue
                print(f"{seconds * 1e3:.3f} ms", file=sys.stderr, flush=True)
                bytes_, flops = counts[kind]
                if name == "xla":
                    baselines[kind] = (seconds, result)
                base_seconds, base_result = baselines.get(kind, (None, None))
                speedup = base_seconds / seconds if base_seconds else None
                compare = base_result is not None and name != "xla"
                error = f"{timing_gpu.max_error(result, base_result):.1e}" if compare else ""
                rows.append(
                    row
                    + timing_gpu.rate_cells(roofline, bytes_, flops, seconds)
                    + [f"{speedup:.2f}x" if speedup else "", error]
                )
                percent = roofline.percent(bytes_, flops, seconds)
                results.append(Result(shape, kind, name, seconds, speedup, percent))
    return rows, results


def goals(args, results: list[Result]) -> list[str]:
    """The kernel's GPU goals, read off this run: forward + backward >= 2x XLA at b = 8 in bfloat16; >= 40% of
    the binding roofline for the forward at b = 8; never slower than XLA at a tested shape (each dtype is its own
    run). The best Pallas config of each (shape, pass) counts."""
    best = {}
    for r in results:
        if r.impl != "xla":
            key = (r.shape, r.kind)
            if key not in best or (
                r.seconds is not None and (best[key].seconds is None or r.seconds < best[key].seconds)
            ):
                best[key] = r
    b8 = [r for (shape, _), r in best.items() if shape[5] == 8]
    lines = []
    suffix = f"{args.dtype}, stride {args.query_stride}"
    if args.dtype == "bfloat16":
        speedups = [r.speedup or 0.0 for r in b8 if r.kind == "forward+backward"]  # a failed run counts as 0
        passed, detail = _worst(speedups, 2.0, "{:.2f}x")
        lines.append(timing_gpu.goal_line(passed, "halo fwd+bwd >= 2x XLA at b=8, bf16", f"{detail}; {suffix}"))
    percents = [r.roofline_percent or 0.0 for r in b8 if r.kind == "forward"]
    passed, detail = _worst(percents, 40.0, "{:.1f}%")
    lines.append(
        timing_gpu.goal_line(passed, "halo forward >= 40% of the binding roofline at b=8", f"{detail}; {suffix}")
    )
    slowest = min(best.values(), key=lambda r: r.speedup or 0.0, default=None)
    passed, detail = _worst([] if slowest is None else [slowest.speedup or 0.0], 1.0, "{:.2f}x")
    where = "" if slowest is None else f" at N,H,W,heads,d,b,h = {','.join(map(str, slowest.shape))} {slowest.kind}"
    lines.append(timing_gpu.goal_line(passed, "halo never slower than XLA", f"{detail}{where}; {suffix}"))
    return lines


def _worst(values: list[float], threshold: float, form: str) -> tuple[bool | None, str]:
    """(worst >= threshold, "worst <value>"), or (None, "no such row in this run") for no values."""
    if not values:
        return None, "no such row in this run"
    worst = min(values)
    return worst >= threshold, "worst " + form.format(worst)


def markdown(args, rows, goal_lines, argv) -> str:
    header = [
        "N x H x W, heads x d",
        "b",
        "h",
        "pass",
        "impl",
        "ms",
        "GB/s",
        "TFLOP/s",
        "roofline %",
        "vs xla",
        "max err",
    ]
    command = "python3 -m benchmarks.halo_attention_gpu " + " ".join(argv)
    notes = [
        "# Halo attention: Pallas kernel vs XLA reference",
        "",
        timing_gpu.machine_line(),
        f"- command: `{command}`",
        f"- dtype {args.dtype}, query stride {args.query_stride}, precision {args.precision}; median of {args.repeats}"
        " calls after compilation and a warm-up",
        f"- roofline: {args.peak_tbps} TB/s, {args.peak_tflops} TFLOP/s; counts as in benchmarks/halo_attention_gpu.py",
        "",
    ]
    return "\n".join(notes + timing_gpu.markdown_table(header, rows) + [""] + goal_lines) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    rows, results = run(args)
    text = markdown(args, rows, goals(args, results), argv)
    with open(args.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
