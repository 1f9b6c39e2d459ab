"""Bad input to every paper's main.py, as a new user types it: each case ends in one line on stderr that names
the bad value (and the valid choices), a non-zero exit, and no traceback. Papers join the catalogue as they land.
One case runs in `make test`; the whole catalogue in `make test-long`."""

import fcntl
import os

import pytest

from tests.helpers import run_main

# paper -> (its smoke variant, a count that must be positive)
PAPERS = {
    "swish": ("smoke", "train.num_steps"),
    "stand_alone_attention": ("smoke", "train.num_steps"),
    "halonet": ("smoke", "train.num_steps"),
    "low_rank_local": ("smoke", "train.num_steps"),
    "fast_wavenet": ("smoke", "train.num_steps"),
    "backprop_evolution": ("smoke", "train.num_steps"),
    "svpg": ("smoke", "run.iterations"),
    "replay_fundamentals": ("smoke", "run.total_updates"),
    "seq2seq_pretraining": ("smoke", "train.num_steps"),
    "fast_generation": ("smoke", "train.num_steps"),
}


# Cases only some papers have: fields read late (generation options), names of models and datasets.
EXTRA = {
    "fast_wavenet": [
        (["--config.generate.impl=cuda"], ["unknown generate.impl 'cuda'", "valid choices: auto, pallas, xla"]),
        (["--config.generate.methods=('fast','quick')"], ["'quick'", "valid choices: fast, naive"]),
    ],
    "seq2seq_pretraining": [
        (["--config.ablation=encoder"], ["unknown ablation 'encoder'", "valid choices"]),
    ],
    "swish": [
        (["--config.model.name=resnet21"], ["unknown resnet 'resnet21'", "valid choices"]),
        (["--config.dataset.name=fashion_mnst"], ["unknown dataset 'fashion_mnst'", "valid choices"]),
        (["--config.model.activation=swishh"], ["unknown activation 'swishh'", "valid choices"]),
        (["--config.optimizer.name=adamm"], ["unknown optimizer 'adamm'", "adam, adamw, momentum, nesterov, sgd"]),
    ],
}


def cases(paper: str) -> list[tuple[list[str], list[str]]]:
    """(flags, what stderr must name) for one paper: the mistakes whose handling involves the paper's own config
    for every paper; those the shared flag parser handles alike for every script (a missing config file, a
    non-integer, an unknown flag, a positional argument), once, on the first paper."""
    variant, count = PAPERS[paper]
    config = f"--config=papers/{paper}/config.py:{variant}"
    per_paper = [
        ([config, "--config.sede=3"], ["--config.sede", "'sede'", "did you mean seed"]),
        ([f"--config=papers/{paper}/config.py:smokee"], ["'smokee'", "valid choices", "smoke"]),
        ([config, f"--config.{count}=0"], [f"{count}=0", "must be a positive integer"]),
        ([config, f"--config.{count}=-5"], [f"{count}=-5", "must be a positive integer"]),
    ]
    shared = [
        ([f"--config=papers/{paper}/confg.py"], [f"papers/{paper}/confg.py", "No such file"]),
        ([config, f"--config.{count}=ten"], [f"--config.{count}=ten", "invalid literal"]),
        ([config, "--config.train.log_every=0"], ["train.log_every=0", "must be a positive integer"]),
        ([config, "--config.train.checkpoint_every=0"], ["train.checkpoint_every=0", "must be a positive integer"]),
        ([config, "--workdirr=/tmp/x"], ["workdirr", "Did you mean: workdir"]),
        ([config, "extra_argument"], ["extra_argument"]),
    ]
    extra = [([config, *flags], names) for flags, names in EXTRA.get(paper, [])]
    return per_paper + (shared if paper == next(iter(PAPERS)) else []) + extra


def assert_one_line_error(result, names: list[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for name in names:
        assert name in error_lines[0], (name, error_lines[0])


CATALOGUE = [(paper, flags, names) for paper in PAPERS for flags, names in cases(paper)]
CASE_IDS = [f"{paper}-{flags[-1].lstrip('-')[:40]}" for paper, flags, _ in CATALOGUE]


@pytest.mark.long
@pytest.mark.parametrize("paper, flags, names", CATALOGUE, ids=CASE_IDS)
def test_bad_input_is_one_line_error(paper, flags, names, tmp_path):
    workdir = f"--workdir={tmp_path / 'run'}"
    result = run_main(paper, *flags, workdir, check=False, timeout=600)
    assert_one_line_error(result, names)
    late = ("--config.model.name", "--config.dataset.name", "--config.model.activation", "--config.optimizer.name")
    if not any(flag.startswith(late) for flag in flags):
        assert not os.path.exists(tmp_path / "run" / "config.json")  # nothing written for a bad command


@pytest.mark.long
def test_a_workdir_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = run_main("swish", "--config=papers/swish/config.py:smoke", f"--workdir={tmp_path / 'file' / 'run'}",
                      check=False)  # fmt: skip
    assert_one_line_error(result, [f"cannot create workdir {tmp_path / 'file' / 'run'}", "pass another --workdir"])


def test_a_misspelt_field_lists_the_close_match_and_the_fields(tmp_path):
    result = run_main("swish", "--config=papers/swish/config.py:smoke", "--config.model.activaton=gelu",
                      f"--workdir={tmp_path}", check=False)  # fmt: skip
    assert_one_line_error(result, ["'activaton'", "did you mean activation", "its fields: activation, name"])


@pytest.mark.long
def test_a_workdir_in_use_or_holding_another_config_is_refused(tmp_path):
    smoke = ["--config=papers/swish/config.py:smoke", f"--workdir={tmp_path}", "--config.train.num_steps=2"]
    run_main("swish", *smoke)
    changed = run_main("swish", *smoke, "--config.model.activation=relu", check=False)
    assert_one_line_error(changed, ["model.activation: 'swish' -> 'relu'", "--allow_config_change=model.activation"])
    lower = "--config.optimizer.learning_rate=0.02"  # a change the saved state still fits, allowed explicitly
    assert_one_line_error(run_main("swish", *smoke, lower, check=False), ["optimizer.learning_rate: 0.05 -> 0.02"])
    run_main("swish", *smoke, lower, "--allow_config_change=optimizer.learning_rate")
    with open(tmp_path / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run in progress holds it
        busy = run_main("swish", *smoke, "--config.train.num_steps=3", check=False)
    assert_one_line_error(busy, [f"workdir {tmp_path} is in use"])
