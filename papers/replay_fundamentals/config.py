"""Configs for "Revisiting Fundamentals of Experience Replay" (Fedus et al., ICML 2020).

Run:  python -m papers.replay_fundamentals.main --config=papers/replay_fundamentals/config.py:<variant>
Variants:
  smoke            DQN on CartPole for 120 gradient updates through a Reverb table: seconds; what the tests run.
  smoke_distributed  the same through a Reverb server process, 2 actor processes and the learner.
  cartpole_dqn     DQN on CartPole for 2,000 updates (8.5k environment steps at replay ratio 0.25): learns to
                   balance (the slow test checks it beats a random policy clearly); ~30 s on 2 CPU cores.
  minatar_dqn      the baseline cell of the MinAtar grid, ~10x below the paper: capacity 100K, oldest policy 25K
                   updates (replay ratio 0.25), 1.25M gradient updates (5M environment steps, MinAtar Breakout).
                   Days on a 2-core CPU; an accelerator and parallel seeds are the intended setting.
  minatar_rainbow  the same cell with Dopamine's Rainbow (C51 + 3-step returns + Adam + prioritised replay).
  minatar_<dqn|rainbow>_<plus|minus>_<component>  the additive and ablative studies: DQN plus one Rainbow
                   component, or Rainbow minus one (component: n_step, c51, adam, prioritized).
  atari_dqn / atari_rainbow  the paper's Atari setting (1M capacity, 250K oldest policy, 12.5M updates = 200M
                   frames, sticky actions; needs the `atari` extra).
The grids (replay capacity x age of the oldest policy, in gradient updates) are sweeps in configs/sweeps/replay_*.py,
run by `python -m papers.replay_fundamentals.reproduce`: a cell sets replay.capacity and replay.oldest_policy_age, the
replay ratio follows (age / capacity), and everything counted in gradient updates (total, target-network period,
epsilon decay) stays fixed.
"""

from ml_collections import ConfigDict

from common.registry import lookup
from common.rl.dqn.rainbow import COMPONENTS, with_components
from common.sweep import apply_overrides


def _dqn() -> ConfigDict:
    """Dopamine's DQN, counted in gradient updates; the MinAtar baseline cell."""
    return ConfigDict(
        {
            "seed": 0,
            "env": {"name": "minatar/breakout", "max_episode_steps": 27_000, "sticky_action_prob": 0.1},
            "agent": {
                "name": "dqn",  # common/rl/agents.py; Rainbow is the same agent with COMPONENTS on
                "network": "minatar",
                "hidden": (128,),
                "distributional": False,
                "num_atoms": 51,
                "v_max": 10.0,
                "discount": 0.99,
                "n_step": 1,
                "optimizer": {"name": "rmsprop", "learning_rate": 2.5e-4, "eps": 1e-5, "schedule": "constant"},
                "target_update_period": 2_000,  # 8,000 environment steps at ratio 0.25
                "huber_delta": 1.0,
                "importance_exponent": 0.0,
                "epsilon_start": 1.0,
                "epsilon_final": 0.01,
                "epsilon_decay_updates": 25_000,  # 100K environment steps at ratio 0.25
            },
            "replay": {
                "backend": "reverb",
                "capacity": 100_000,
                "sampler": "uniform",
                "priority_exponent": 0.5,
                "replay_ratio": 0.25,
                "oldest_policy_age": 0,  # > 0: replay_ratio = oldest_policy_age / capacity (the grid's second axis)
                "batch_size": 32,
                "min_size_to_sample": 5_000,
                "error_batches": 4.0,
            },
            "run": {
                "mode": "single_process",
                "total_updates": 1_250_000,
                "log_every": 10_000,
                "checkpoint_every": 50_000,
                "final_fraction": 0.1,  # the score: mean return of the episodes ending in the last 10% of the run
                "num_actors": 2,
                "variables_every": 100,  # distributed: updates between parameter broadcasts to the actors
                "max_actor_restarts": 10,  # distributed: actor deaths the run survives before it stops
            },
        }
    )


def _rainbow() -> ConfigDict:
    return with_components(_dqn(), COMPONENTS)


def _minatar_study(base, plus: bool, component: str):
    def make() -> ConfigDict:
        rainbow, dqn = COMPONENTS[component]
        return apply_overrides(base(), rainbow if plus else dqn)

    return make


def _cartpole(config: ConfigDict) -> ConfigDict:
    config.env.update(name="cartpole", max_episode_steps=500, sticky_action_prob=0.0)
    config.agent.update(network="mlp", hidden=(64, 64), target_update_period=100, epsilon_decay_updates=1_000)
    config.agent.update(epsilon_final=0.02)
    config.agent.optimizer.update(name="adam", learning_rate=1e-3, eps=1e-8)
    config.replay.update(capacity=10_000, min_size_to_sample=500)
    config.run.update(total_updates=2_000, log_every=1_000, checkpoint_every=1_000, final_fraction=0.25)
    return config


def _cartpole_dqn() -> ConfigDict:
    return _cartpole(_dqn())


def _smoke() -> ConfigDict:
    config = _cartpole(_dqn())
    config.agent.update(hidden=(32,), target_update_period=20, epsilon_decay_updates=50)
    config.replay.update(capacity=400, min_size_to_sample=64, batch_size=16)
    config.run.update(total_updates=120, log_every=100, checkpoint_every=60, variables_every=10)
    return config


def _smoke_distributed() -> ConfigDict:
    config = _smoke()
    config.run.mode = "distributed"
    return config


def _atari(base):
    def make() -> ConfigDict:
        config = base()
        config.env.update(name="atari/pong", max_episode_steps=27_000, sticky_action_prob=0.25)
        config.agent.update(network="nature", hidden=(512,), epsilon_decay_updates=62_500)
        config.replay.update(capacity=1_000_000, min_size_to_sample=20_000)
        config.run.update(total_updates=12_500_000, log_every=250_000, checkpoint_every=250_000)
        return config

    return make


VARIANTS = {
    "smoke": _smoke,
    "smoke_distributed": _smoke_distributed,
    "cartpole_dqn": _cartpole_dqn,
    "minatar_dqn": _dqn,
    "minatar_rainbow": _rainbow,
    "atari_dqn": _atari(_dqn),
    "atari_rainbow": _atari(_rainbow),
    **{f"minatar_dqn_plus_{name}": _minatar_study(_dqn, True, name) for name in COMPONENTS},
    **{f"minatar_rainbow_minus_{name}": _minatar_study(_rainbow, False, name) for name in COMPONENTS},
}


def get_config(variant: str = "minatar_dqn") -> ConfigDict:
    return lookup(VARIANTS, variant, "replay_fundamentals config variant")()
