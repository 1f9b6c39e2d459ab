"""Times timm's PyTorch `HaloAttn` on CPU; run with the separate environment's interpreter (`make timm-env`).

  .venv-timm/bin/python benchmarks/timm_halo_attn.py --shapes 56x64,28x128 --block-sizes 8,4

Prints one JSON object per (shape, block size): images/s of a forward pass (no autograd) and of a forward +
backward pass (gradients wrt the input and the parameters, loss = sum of squared outputs), each the median of a
few calls after a warm-up. Maps that b does not divide are padded up to whole blocks first (timm asserts
divisibility; this repo's layer pads the same way internally). Imports only torch and timm, never this repo.
"""

import argparse
import json
import statistics
import time

import timm
import torch
from timm.layers.halo_attn import HaloAttn


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(size: int, channels: int, block_size: int, args) -> dict:
    padded = -(-size // block_size) * block_size
    layer = HaloAttn(channels, channels, num_heads=args.heads, block_size=block_size, halo_size=args.halo)
    x = torch.randn(args.batch, channels, padded, padded)

    def forward():
        with torch.no_grad():
            layer(x)

    def forward_backward():
        inputs = x.detach().requires_grad_(True)
        layer.zero_grad(set_to_none=True)
        (layer(inputs) ** 2).sum().backward()

    return {
        "size": size,
        "channels": channels,
        "block_size": block_size,
        "padded_size": padded,
        "forward_images_per_second": args.batch / _median_seconds(forward, args.repeats),
        "forward_backward_images_per_second": args.batch / _median_seconds(forward_backward, args.repeats),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="56x64,28x128,14x256,7x512", help="comma-separated HxC (H = W)")
    parser.add_argument("--block-sizes", default="8,4")
    parser.add_argument("--halo", type=int, default=3)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    for shape in args.shapes.split(","):
        size, channels = (int(part) for part in shape.split("x"))
        for block_size in (int(b) for b in args.block_sizes.split(",")):
            print(json.dumps(measure(size, channels, block_size, args)), flush=True)


if __name__ == "__main__":
    main()
