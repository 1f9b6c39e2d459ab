"""Sweep expansion and overrides; generated Markdown blocks replace rather than append."""

import os

import pytest

from common import app, report, sweep
from common.registry import UnknownNameError
from tests.helpers import run_module


def test_points_are_the_cartesian_product_in_order():
    grid = sweep.Sweep(config="unused", axes={"model.activation": ["relu", "swish"], "seed": [0, 1, 2]})
    points = grid.points()
    assert len(points) == 6
    assert points[0] == {"model.activation": "relu", "seed": 0}
    assert points[-1] == {"model.activation": "swish", "seed": 2}
    assert sweep.point_name(points[1]) == "model.activation=relu,seed=1"


def test_the_swish_sweep_definition_applies_to_its_config():
    definition = sweep.load_sweep("configs/sweeps/swish_activations.py")
    base = sweep.load_config(definition.config)
    for point in definition.points():
        config = sweep.apply_overrides(base, point)
        assert config.model.activation == point["model.activation"]
        assert config.seed == point["seed"]
    assert base.model.activation == "swish"  # overrides never touch the base


def test_unknown_override_key_names_it_and_the_valid_keys():
    base = sweep.load_config("papers/swish/config.py:smoke")
    with pytest.raises(
        KeyError, match=r"unknown config key 'model.activaton': 'activaton' is not one of \['activation'"
    ):
        sweep.apply_overrides(base, {"model.activaton": "relu"})


def test_replace_block_replaces_in_place(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# Title\n\nintro\n")
    report.replace_block(str(path), "table", "first")
    report.replace_block(str(path), "table", "second")
    text = path.read_text()
    assert text.count("<!-- table:start -->") == 1
    assert "second" in text and "first" not in text
    assert text.startswith("# Title\n\nintro\n")


def test_markdown_table():
    assert report.markdown_table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_provenance_names_the_command_runs_and_median_speed(tmp_path):
    results = []
    for seed, rates in ((0, [1.0, 3.0]), (1, [2.0])):
        point = {"seed": seed}
        run_dir = tmp_path / sweep.point_name(point)
        run_dir.mkdir()
        lines = [f'{{"step": {i}, "train/steps_per_second": {rate}}}' for i, rate in enumerate(rates)]
        (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        results.append((point, {"eval/accuracy": 0.5}))
    text = sweep.provenance("`cmd`", "configs/sweeps/x.py", str(tmp_path), results, "a net", minutes=12.4)
    assert text.startswith("Measured by `cmd`, sweep `configs/sweeps/x.py`, on ")
    assert "; 2 runs of a net at a median 2.0 steps/s; this invocation took 12 min" in text
    for (point, _), seconds in zip(results, (1500.0, 1260.0), strict=True):  # what the Ray runner records per run
        (tmp_path / sweep.point_name(point) / "trial.json").write_text(
            f'{{"status": "finished", "seconds": {seconds}}}'
        )
    text = sweep.provenance("`cmd`", "configs/sweeps/x.py", str(tmp_path), results, "a net", minutes=0.2)
    assert "at a median 2.0 steps/s; the runs took 46 min summed over runs; this invocation took 0 min" in text


def test_where_keeps_only_the_matching_points_and_sweeps_run_in_the_files_order(tmp_path):
    grid = sweep.Sweep(config="unused", axes={"a": [1, 2, 4], "b": [2, 4]}, where=lambda p: p["a"] / p["b"] >= 0.5)
    assert [(p["a"], p["b"]) for p in grid.points()] == [(1, 2), (2, 2), (2, 4), (4, 2), (4, 4)]
    replay = sweep.load_sweep("configs/sweeps/replay_cartpole.py")
    assert len(replay.points()) == 2 * 8 * 2  # of the 9 cells, 250 / 16,000 falls below the ratio 0.02
    assert all(p["replay.oldest_policy_age"] / p["replay.capacity"] >= 0.02 for p in replay.points())
    lrlc = sweep.load_sweeps("configs/sweeps/lrlc_rank.py")
    assert [definition.axes["model.layer"] for definition in lrlc] == [["conv", "lc", "wide_conv"], ["lrlc"]]
    only_grids = tmp_path / "grids.py"  # SWEEPS without a SWEEP
    only_grids.write_text("from common.sweep import Sweep\nSWEEPS = [Sweep(config='c', axes={'seed': [0, 1]})]\n")
    assert [grid.axes for grid in sweep.load_sweeps(str(only_grids))] == [{"seed": [0, 1]}]
    assert sweep.load_sweeps("configs/sweeps/halonet_comparison.py") == [
        sweep.load_sweep("configs/sweeps/halonet_comparison.py")
    ]


def test_paper_config_file_from_a_file_of_the_paper_or_its_name():
    assert app.paper_config_file("papers/swish/search.py") == app.paper_config_file("swish")
    assert app.paper_config_file("swish").endswith(os.path.join("papers", "swish", "config.py"))
    with pytest.raises(UnknownNameError, match=r"unknown paper 'swosh'; valid choices: (\w+, )*fast_wavenet, halonet"):
        app.paper_config_file("swosh")


@pytest.mark.long
@pytest.mark.slow
def test_reproduce_runs_the_sweep_and_writes_the_block_and_plot_beside_the_readme(tmp_path):
    """A paper's reproduce.py end to end on a one-point sweep of the smoke config; a rerun only re-evaluates."""
    sweep_file = tmp_path / "one_point.py"
    sweep_file.write_text(
        "from common.sweep import Sweep\n\n"
        'SWEEP = Sweep(config="papers/swish/config.py:smoke", axes={"model.activation": ["relu"], "seed": [0]})\n'
    )
    readme, workdir = tmp_path / "docs" / "README.md", tmp_path / "runs"
    readme.parent.mkdir()
    readme.write_text("# Title\n")
    flags = [f"--sweep={sweep_file}", f"--workdir={workdir}", f"--readme={readme}"]
    run_module("papers.swish.reproduce", *flags)
    text = readme.read_text()
    stem = sweep_file.stem  # the block and the plot are named after the sweep file
    assert text.startswith("# Title\n") and f"<!-- {stem}:start -->" in text
    assert "| relu |" in text and f"![accuracy per activation]({stem}.png)" in text
    assert f"`python -m papers.swish.reproduce --workdir {workdir} --readme {readme} --sweep {sweep_file}`" in text
    assert (readme.parent / f"{stem}.png").stat().st_size > 0
    assert (workdir / "model.activation=relu,seed=0" / "checkpoints" / "30").exists()
    result = run_module("papers.swish.reproduce", *flags, "unexpected", check=False)
    assert result.returncode != 0 and "unexpected positional arguments: ['unexpected']" in result.stderr
