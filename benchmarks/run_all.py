"""`make bench`: runs every benchmark and rewrites its section of docs/benchmarks.md.

python -m benchmarks.run_all [--only training] [--output docs/benchmarks.md]
"""

import argparse
import importlib

from common import app, report
from common.registry import lookup

# name -> module with a markdown() -> str function. One section of docs/benchmarks.md each.
BENCHMARKS = {
    "training": "benchmarks.training",
    "local_attention": "benchmarks.local_attention",
    "halo_attention": "benchmarks.halo_attention",
    "locally_connected": "benchmarks.locally_connected",
    "swish_search_children": "benchmarks.swish_search_children",
    "replay": "benchmarks.replay",
    "fast_wavenet": "benchmarks.fast_wavenet",
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", help=f"benchmark to run (default: all of {sorted(BENCHMARKS)})")
    parser.add_argument("--output", default="docs/benchmarks.md")
    args = parser.parse_args(argv)
    app.prepare_environment()
    for name in args.only or list(BENCHMARKS):
        module = importlib.import_module(lookup(BENCHMARKS, name, "benchmark"))
        print(f"running benchmark {name!r} ...", flush=True)
        section = module.markdown()
        report.replace_block(args.output, name, section)
        print(section, flush=True)


if __name__ == "__main__":
    main()
