"""`make bench`: runs every benchmark and rewrites its section of docs/benchmarks.md.

python -m benchmarks.run_all [--only training] [--output docs/benchmarks.md]
"""

import importlib

from absl import flags

from common import app, report
from common.registry import lookup

FLAGS = flags.FLAGS

# name -> module with a markdown() -> str function. One section of docs/benchmarks.md each.
BENCHMARKS = {
    "training": "benchmarks.training",
    "local_attention": "benchmarks.local_attention",
    "halo_attention": "benchmarks.halo_attention",
    "locally_connected": "benchmarks.locally_connected",
    "swish_search_children": "benchmarks.swish_search_children",
    "replay": "benchmarks.replay",
    "fast_wavenet": "benchmarks.fast_wavenet",
    "fast_generation": "papers.fast_generation.bench",
    "svpg": "benchmarks.svpg",
    "backprop_evolution": "benchmarks.backprop_evolution",
    "seq2seq_pretraining": "benchmarks.seq2seq_pretraining",
    "sweep": "benchmarks.sweep",
}


def define_flags() -> None:
    flags.DEFINE_multi_string("only", None, f"A benchmark to run (repeatable; default: all of {sorted(BENCHMARKS)}).")
    flags.DEFINE_string("output", "docs/benchmarks.md", "The Markdown file whose sections to rewrite.")


def main(argv) -> None:
    app.prepare(argv)
    names = FLAGS.only or list(BENCHMARKS)
    modules = [lookup(BENCHMARKS, name, "benchmark") for name in names]  # a bad name fails before any benchmark runs
    for name, module_name in zip(names, modules, strict=True):
        module = importlib.import_module(module_name)
        print(f"running benchmark {name!r} ...", flush=True)
        section = module.markdown()
        report.replace_block(FLAGS.output, name, section)
        print(section, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
