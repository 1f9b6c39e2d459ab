"""Training several search children in one program vs one at a time (papers/swish/child.py).

The activation search trains many small children. `child.train_children` can fuse a group of them into one jitted
program that steps every child on the same batch; this measures what that buys on the machine at hand: CPU
seconds (process user + system, so other jobs on a shared machine do not count) and wall seconds per child, for
one child per program and for groups, on the search's child setting (papers/swish/config.py:search_exhaustive)
with fewer steps. A first untimed call fills the dataset cache; group sizes then alternate.
"""

import resource
import statistics
import time

from common import report
from common.train import classification
from papers.swish import child, search_space
from papers.swish import config as swish_config

CANDIDATES = [
    "search:sigmoid_mul.0.beta_mul.0.x",
    "search:max.0.x.0.sigmoid",
    "search:sub.0.cos.0.x",
    "search:mul.0.x.0.tanh",
]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(group_sizes=(1, 4), num_steps: int = 100, repeats: int = 1, variant: str = "search_exhaustive") -> dict:
    """{group size: (median CPU s per child, median wall s per child)}; each call trains max(group_sizes) children."""
    config = swish_config.get_config(variant)
    config.train.num_steps = num_steps
    dataset = classification.load_dataset(config)
    candidates = [search_space.from_spec(spec) for spec in CANDIDATES][: max(group_sizes)]
    child.train_children(candidates[:1], config, dataset)  # fills the dataset cache; not timed
    cpu: dict[int, list[float]] = {size: [] for size in group_sizes}
    wall: dict[int, list[float]] = {size: [] for size in group_sizes}
    for _ in range(repeats):
        for size in group_sizes:
            cpu_start, wall_start = _cpu_seconds(), time.perf_counter()
            for start in range(0, len(candidates), size):
                child.train_children(candidates[start : start + size], config, dataset)
            cpu[size].append((_cpu_seconds() - cpu_start) / len(candidates))
            wall[size].append((time.perf_counter() - wall_start) / len(candidates))
    return {
        "config": f"{variant}, {num_steps} steps of batch {config.dataset.batch_size}, {config.model.name}",
        "children": len(candidates),
        "per_child": {size: (statistics.median(cpu[size]), statistics.median(wall[size])) for size in group_sizes},
    }


def markdown(**measure_options) -> str:
    result = measure(**measure_options)
    rows = [[size, f"{cpu_s:.1f}", f"{wall_s:.1f}"] for size, (cpu_s, wall_s) in sorted(result["per_child"].items())]
    table = report.markdown_table(["children per program", "CPU s per child", "wall s per child"], rows)
    return (
        "## Activation search: children per program (CPU)\n\n"
        f"{table}\n\n{result['children']} children of the activation search ({result['config']}), compilation and "
        f"the 2,000-image validation pass included; on {report.machine_description()}. CPU seconds are this "
        "process's own (user + system), so they hold on a shared machine where wall time does not."
    )
