"""Every sweep definition in configs/sweeps loads, and every override it makes names a key of its config: a typo
in a sweep file fails here, not hours into a sweep."""

import glob
import os

import pytest

from common.sweep import trials

SWEEPS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "sweeps")
SWEEP_FILES = sorted(path for path in glob.glob(os.path.join(SWEEPS_DIR, "*.py")) if not path.endswith("__init__.py"))


def test_sweep_files_are_found():
    assert len(SWEEP_FILES) >= 10


@pytest.mark.parametrize("path", SWEEP_FILES, ids=os.path.basename)
def test_every_override_of_the_sweep_names_a_config_key(path, tmp_path):
    sweep_trials = trials.sweep_trials(path, str(tmp_path))
    assert sweep_trials, f"{path} defines no trials"
    errors = {trial.name: trials.check_overrides(trial) for trial in sweep_trials}
    assert {name: error for name, error in errors.items() if error} == {}
