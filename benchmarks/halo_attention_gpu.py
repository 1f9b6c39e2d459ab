"""Halo attention on one accelerator: the Pallas kernel against the XLA reference, forward and forward + backward.

  python3 -m benchmarks.halo_attention_gpu --output halo_attention_gpu.md          (GPU; needs only jax and numpy)
  python3 -m benchmarks.halo_attention_gpu --quick --output /tmp/halo_quick.md     (CPU smoke test: tiny shapes,
                                                                                    the kernel interpreted)

For each HaloNet-like shape it times (median of --repeats calls after compilation and one warm-up) the jitted
forward and the jitted forward + backward (gradients wrt q, k, v and both tables) of each implementation, and
reports achieved bandwidth and FLOP rate from an implementation-independent count:
  bytes  forward: read q, k, v, write out (4 arrays of N*H*W*heads*d); forward + backward adds reading q, k, v,
         out, dout and writing dq, dk, dv (12 arrays in all). The haloed memories are counted once, as HBM
         traffic at its minimum; re-reads of overlapping windows are the kernel's cost, not useful bytes.
  flops  per query and head, M = b + 2h: forward 4*d*M^2 (q.k and weights.v) + 4*d*M (row/column logits);
         backward 8*d*M^2 + 4*d*M (dv, dweights, dq, dk; no recomputation counted).
roofline % = max(bytes / peak bandwidth, flops / peak FLOP rate) / time: how close a run is to the bound of the
H100 SXM by default (3.35 TB/s HBM3, ~990 dense bf16 TFLOP/s; --peak_tbps, --peak_tflops for other cards or
float32). "max err" is the largest |pallas - xla| of the outputs (forward) or of the gradients (forward + backward).
"""

import argparse
import statistics
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from kernels import backend
from kernels.halo_attention import KernelConfig, halo_attention_pallas, halo_attention_reference
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
    parser.add_argument("--num_warps", default="4,8", help="comma-separated Triton num_warps to try on GPU")
    parser.add_argument("--peak_tbps", type=float, default=3.35, help="peak memory bandwidth, TB/s (H100 SXM)")
    parser.add_argument("--peak_tflops", type=float, default=990.0, help="peak dense TFLOP/s (H100 SXM, bf16)")
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


def work(shape, itemsize):
    """(bytes, flops) of the forward and of forward + backward, by the count in the module docstring."""
    n, height, width, heads, depth, b, h = shape
    queries, memory = n * height * width * heads, b + 2 * h
    array = queries * depth * itemsize
    forward_flops = queries * (4 * depth * memory**2 + 4 * depth * memory)
    backward_flops = queries * (8 * depth * memory**2 + 4 * depth * memory)
    return {"forward": (4 * array, forward_flops), "forward+backward": (12 * array, forward_flops + backward_flops)}


def build(fn, b, h):
    """Jitted forward and forward + backward of one implementation."""
    attention = lambda q, k, v, rh, rw: fn(q, k, v, rh, rw, block_size=b, halo_size=h)  # noqa: E731

    def forward(q, k, v, rh, rw, cotangent):
        del cotangent
        return attention(q, k, v, rh, rw)

    def forward_backward(q, k, v, rh, rw, cotangent):
        _, vjp = jax.vjp(attention, q, k, v, rh, rw)
        return vjp(cotangent)

    return {"forward": jax.jit(forward), "forward+backward": jax.jit(forward_backward)}


def measure(fn, args, repeats):
    """(median seconds, result) of `fn(*args)` after compiling and one warm-up call."""
    compiled = fn.lower(*args).compile()
    result = jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def max_error(a, b):
    """Largest |a - b| over matching arrays of two results."""
    pairs = zip(a, b, strict=True)
    return max(float(np.max(np.abs(np.asarray(x, np.float32) - np.asarray(y, np.float32)))) for x, y in pairs)


def implementations(args):
    """name -> attention function; one Pallas entry per num_warps on GPU, one interpreted entry elsewhere."""
    impls = {"xla": halo_attention_reference}
    platform = backend.accelerator()
    if platform == "gpu":
        for warps in (int(w) for w in args.num_warps.split(",")):
            config = KernelConfig(num_warps=warps, num_stages=1, min_tile=16)
            impls[f"pallas w{warps}"] = lambda *a, config=config, **kw: halo_attention_pallas(*a, config=config, **kw)
    else:
        impls["pallas" if platform else "pallas (interpret)"] = halo_attention_pallas
    return impls


def run(args) -> list[list[str]]:
    """One table row per (shape, pass, implementation); the XLA rows are the baseline of the others."""
    dtype = DTYPES[args.dtype]
    itemsize = jnp.dtype(dtype).itemsize
    rows = []
    for shape in args.shapes:
        baselines = {}  # per shape, so earlier results free their device memory
        n, height, width, heads, depth, b, h = shape
        key, cotangent_key = jax.random.split(jax.random.PRNGKey(0))
        arrays = halo_attention_inputs(key, (b, h, n, height, width, heads, depth), dtype)
        cotangent = jax.random.normal(cotangent_key, arrays[0].shape).astype(dtype)
        data = [*arrays, cotangent]
        counts = work(shape, itemsize)
        label = f"{n}x{height}x{width}, {heads}x{depth}"
        for name, fn in implementations(args).items():
            for kind, jitted in build(fn, b, h).items():
                print(f"{label} b={b} h={h} {kind} {name}", end=" ", file=sys.stderr, flush=True)
                row = [label, str(b), str(h), kind, name]
                try:
                    seconds, result = measure(jitted, data, args.repeats)
                except Exception as error:  # a failing kernel is a result to report, not the end of the run
                    traceback.print_exc()
                    message = (str(error).strip().splitlines() or [type(error).__name__])[0][:100]
                    rows.append(row + [f"failed: {message.replace('|', '/')}"] + [""] * 5)
                    continue
                print(f"{seconds * 1e3:.3f} ms", file=sys.stderr, flush=True)
                result = result if isinstance(result, tuple | list) else (result,)
                bytes_, flops = counts[kind]
                bound = max(bytes_ / (args.peak_tbps * 1e12), flops / (args.peak_tflops * 1e12))
                if name == "xla":
                    baselines[kind] = (seconds, result)
                base_seconds, base_result = baselines.get(kind, (None, None))
                speedup = f"{base_seconds / seconds:.2f}x" if base_seconds else ""
                error = f"{max_error(result, base_result):.1e}" if base_result is not None and name != "xla" else ""
                rows.append(
                    row
                    + [
                        f"{seconds * 1e3:.3f}",
                        f"{bytes_ / seconds / 1e9:.4g}",
                        f"{flops / seconds / 1e12:.3g}",
                        f"{100 * bound / seconds:.3g}",
                        speedup,
                        error,
                    ]
                )
    return rows


def markdown(args, rows, argv) -> str:
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
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    device = jax.devices()[0]
    command = "python3 -m benchmarks.halo_attention_gpu " + " ".join(argv)
    notes = [
        "# Halo attention: Pallas kernel vs XLA reference",
        "",
        f"- machine: {device.device_kind} ({device.platform}), JAX {jax.__version__}, {len(jax.devices())} device(s)",
        f"- command: `{command}`",
        f"- dtype {args.dtype}; median of {args.repeats} calls after compilation and a warm-up",
        f"- roofline: {args.peak_tbps} TB/s, {args.peak_tflops} TFLOP/s; counts as in benchmarks/halo_attention_gpu.py",
        "",
    ]
    return "\n".join(notes + lines) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    text = markdown(args, run(args), argv)
    with open(args.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
