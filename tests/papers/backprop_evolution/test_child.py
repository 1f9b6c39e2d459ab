"""Vmapped children (common/search/child.py:train_children_vmapped through the paper's adapter): K equations in
one vmapped program score what each equation scores trained alone, and a diverging child is marked without
touching the others."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.search import backward, child
from common.train import classification, optim
from papers.backprop_evolution import child as paper_child
from papers.backprop_evolution import config as paper_config
from papers.backprop_evolution import model, search_space

SPECS = [search_space.BACKPROP, "rule:mul.0.sign.3.x"]


@pytest.fixture(scope="module")
def setting():
    config = paper_config.get_config("search_smoke")
    config.train.num_steps = 8
    return config, classification.load_dataset(config)


def test_vmapped_children_match_each_equation_trained_alone(setting):
    config, dataset = setting
    candidates = [search_space.from_spec(spec) for spec in SPECS]
    vmapped = paper_child.train_children(candidates, config, dataset, vmapped=True)
    alone = [paper_child.train_children([c], config, dataset, vmapped=False)[0] for c in candidates]
    assert not any(r.diverged for r in vmapped + alone)
    np.testing.assert_allclose([r.accuracy for r in vmapped], [r.accuracy for r in alone], atol=1e-6)
    assert len({r.accuracy for r in alone}) > 1  # the equations really differ


def test_config_switch_selects_the_vmapped_path(setting, monkeypatch):
    config, dataset = setting
    config = paper_child.child_config(config, search_space.BACKPROP)
    config.search.vmap_children = True
    called = []
    monkeypatch.setattr(child, "train_children_vmapped", lambda models, *args: called.append(len(models)) or [])
    paper_child.train_children([search_space.from_spec(search_space.BACKPROP)] * 2, config, dataset)
    assert called == [2]


def test_a_diverging_child_is_marked_and_the_others_train(setting):
    config, dataset = setting
    rules = (backward.backprop, lambda operands: operands["g"] * 1e38)  # overflows to inf, then the loss to nan
    models = [
        backward.select_rule(
            model.RuleMLP(64, (16,), 10, rule=rules, activation=jnp.tanh, apply_to="both", rngs=nnx.Rngs(0)), index
        )
        for index in (0, 1, 0)
    ]
    num_steps = int(config.train.num_steps)
    tx = optim.make_optimizer(config.optimizer, num_steps)
    results = child.train_children_vmapped(models, tx, dataset, num_steps)
    assert [r.diverged for r in results] == [False, True, False]
    assert results[1].accuracy == 0.0 and results[0].accuracy == results[2].accuracy > 0.2


@pytest.mark.parametrize("hiddens", [[(16,), (16, 16)], [(16,), (32,)]])
def test_children_of_different_architectures_are_refused(setting, hiddens):
    config, dataset = setting
    models = [
        model.RuleMLP(64, hidden, 10, rule=(backward.backprop,), activation=jnp.tanh, apply_to="both", rngs=nnx.Rngs(0))
        for hidden in hiddens
    ]
    with pytest.raises(ValueError, match="child 1's state differs"):
        child.train_children_vmapped(models, optim.make_optimizer(config.optimizer, 2), dataset, 2)
