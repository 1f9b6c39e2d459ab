"""Backprop evolution's search children: children trained per hour, one equation per program vs several in one.

`papers/backprop_evolution/child.py` trains a group of equations as one jitted program, either side by side (every
child its own MLP and optimizer state, K copies of every op) or vmapped (one MLP whose parameters and optimizer
state are stacked K times, the equation picked per child by a switch; one copy of every op). This times the
search's child setting (papers/backprop_evolution/config.py:search, fewer steps) with 1 equation per program, 4
side by side and 4 vmapped: wall and CPU seconds (this process's user + system, which hold on a shared machine)
per child, and children per hour from each.
"""

import resource
import time

from common import report
from common.train import classification
from papers.backprop_evolution import child, search_space
from papers.backprop_evolution import config as paper_config

SPECS = [
    search_space.BACKPROP,
    "rule:mul.0.sign.3.x",  # sign(g) * dact
    "rule:mul.0.x.3.tensor_norm",
    "rule:add.0.x.6.x+mul.7.x.3.x",  # (g + noise) * dact
]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    group_sizes=(1, 4),
    num_steps: int = 100,
    variant: str = "search",
    num_children: int = len(SPECS),
    vmapped_sizes=(4,),
) -> dict:
    """{(group size, vmapped): (CPU s per child, wall s per child)} for the first `num_children` of SPECS, groups
    of each of `group_sizes` side by side and of each of `vmapped_sizes` vmapped; compilation and validation
    included, as in a search. A first untimed child fills the dataset cache."""
    config = paper_config.get_config(variant)
    config.train.num_steps = num_steps
    dataset = classification.load_dataset(config)
    candidates = [search_space.from_spec(spec) for spec in SPECS[:num_children]]
    child.train_children(candidates[:1], config, dataset)
    per_child = {}
    settings = [(size, False) for size in group_sizes] + [(size, True) for size in vmapped_sizes]
    for size, vmapped in settings:
        cpu_start, wall_start = _cpu_seconds(), time.perf_counter()
        for start in range(0, len(candidates), size):
            child.train_children(candidates[start : start + size], config, dataset, vmapped=vmapped)
        per_child[size, vmapped] = (
            (_cpu_seconds() - cpu_start) / len(candidates),
            (time.perf_counter() - wall_start) / len(candidates),
        )
    setting = f"{variant}: {config.model.name} {list(config.model.hidden)}, {num_steps} steps of batch "
    return {"setting": setting + str(config.dataset.batch_size), "per_child": per_child, "children": len(candidates)}


def _row_name(size: int, vmapped: bool) -> str:
    if vmapped:
        return f"{size} vmapped in one program"
    return str(size) if size == 1 else f"{size} side by side"


def markdown(**measure_options) -> str:
    result = measure(**measure_options)
    rows = [
        [_row_name(size, vmapped), f"{cpu:.1f}", f"{wall:.1f}", f"{3600 / wall:.0f}", f"{3600 / cpu:.0f}"]
        for (size, vmapped), (cpu, wall) in sorted(result["per_child"].items())
    ]
    table = report.markdown_table(
        ["equations per program", "CPU s per child", "wall s per child", "children/hour (wall)", "children/hour (CPU)"],
        rows,
    )
    return (
        "## Backprop evolution: children per hour (CPU)\n\n"
        f"{table}\n\n{result['children']} equations ({result['setting']}), compilation and the validation pass "
        f"included; on {report.machine_description()}. Children/hour (CPU) is per busy core-second of this "
        "process; wall time depends on the machine's other load."
    )
