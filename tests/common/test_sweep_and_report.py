"""Sweep expansion and overrides; generated Markdown blocks replace rather than append."""

import pytest

from common import report, sweep


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


def test_report_arguments_defaults_and_the_command_that_reproduces_a_report():
    defaults = {"workdir": "w", "readme": "R.md", "sweep_file": "configs/sweeps/a.py", "plot": "p.png"}
    args = sweep.report_arguments([], "doc", **defaults)
    assert (args.workdir, args.readme, args.sweep, args.plot) == ("w", "R.md", "configs/sweeps/a.py", "p.png")
    assert (
        sweep.report_command("papers.x.y", args, "configs/sweeps/a.py")
        == "`python -m papers.x.y --workdir w --readme R.md`"
    )
    args = sweep.report_arguments(["--sweep", "b.py", "--workdir", "v"], "doc", **{**defaults, "plot": None})
    assert not hasattr(args, "plot")
    assert (
        sweep.report_command("m", args, "configs/sweeps/a.py") == "`python -m m --workdir v --readme R.md --sweep b.py`"
    )
