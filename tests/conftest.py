"""Test-wide settings: CPU only, quiet TensorFlow, the repo root importable, and skipping `reverb` tests.

Tests marked `reverb` need dm-reverb, which only the pinned stack has (requirements/constraints.txt); on the current
stack (requirements/current.txt) they are skipped with the reason, and everything else runs.
"""

import importlib.util
import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REVERB_SKIP_REASON = "needs dm-reverb, which needs Python <= 3.11 and the pinned stack: make setup"


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("reverb") is not None:  # found without importing TensorFlow
        return
    skip = pytest.mark.skip(reason=REVERB_SKIP_REASON)
    for item in items:
        if "reverb" in item.keywords:
            item.add_marker(skip)
