"""The rules docs/architecture.md states about the layout, checked: the library never imports a paper, kernel
packages import only jax and numpy, every paper folder has the same skeleton, and scripts run through absl."""

import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKELETON = ("main.py", "config.py", "model.py", "train.py", "README.md")
KERNEL_IMPORTS = {"jax", "numpy", "kernels"}


def python_files(folder: str):
    for root, _, names in os.walk(os.path.join(REPO, folder)):
        yield from (os.path.join(root, name) for name in names if name.endswith(".py"))


def imported_modules(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def papers() -> list[str]:
    folder = os.path.join(REPO, "papers")
    return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name, "main.py")))


@pytest.mark.parametrize("folder", ["common", "kernels"])
def test_the_library_imports_no_paper(folder):
    offenders = [
        f"{os.path.relpath(path, REPO)}: {module}"
        for path in python_files(folder)
        for module in imported_modules(path)
        if module == "papers" or module.startswith("papers.")
    ]
    assert not offenders, offenders


def test_kernel_packages_import_only_jax_and_numpy():
    allowed = KERNEL_IMPORTS | set(sys.stdlib_module_names)
    offenders = [
        f"{os.path.relpath(path, REPO)}: {module}"
        for path in python_files("kernels")
        for module in imported_modules(path)
        if module.split(".")[0] not in allowed
    ]
    assert not offenders, offenders


def test_every_paper_has_the_same_skeleton_and_tests():
    assert len(papers()) >= 6
    for paper in papers():
        missing = [name for name in SKELETON if not os.path.exists(os.path.join(REPO, "papers", paper, name))]
        assert not missing, f"papers/{paper} lacks {missing}"
        assert os.path.isdir(os.path.join(REPO, "tests", "papers", paper)), f"papers/{paper} has no tests"


@pytest.mark.parametrize("folder", ["common", "papers"])
def test_scripts_take_flags_through_absl_only(folder):
    offenders = [os.path.relpath(path, REPO) for path in python_files(folder) if "argparse" in imported_modules(path)]
    assert not offenders, offenders


@pytest.mark.parametrize("folder", ["common", "papers"])
def test_scripts_start_through_common_app_run(folder):
    """One way to run a script: `app.run(main)`, which gives every script the same one-line errors."""
    offenders = []
    for path in python_files(folder):
        with open(path) as f:
            source = f.read()
        if path.endswith(os.path.join("common", "app.py")):
            continue
        if "absl_app.run(" in source or "from absl import app" in source:
            offenders.append(f"{os.path.relpath(path, REPO)}: calls absl.app directly")
        elif 'if __name__ == "__main__":' in source and "app.run(" not in source and "pytest" not in source:
            offenders.append(f"{os.path.relpath(path, REPO)}: a script that does not start with app.run")
    assert not offenders, offenders
