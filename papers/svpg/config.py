"""Configs for "Stein Variational Policy Gradient" (Liu, Ramachandran, Liu, Peng; UAI 2017).

Run:  python -m papers.svpg.main --config=papers/svpg/config.py:<variant> [--config.svpg.method=independent]
Variants:
  smoke          4 particles x 2 CartPole environments x 50 steps for 3 iterations: seconds; what the tests run.
  cartpole       16 particles, REINFORCE, 3 environments x 200 steps (600 samples) per particle per iteration,
                 120 iterations on gymnasium CartPole (episodes capped at 200 steps): about 1 min per run on one
                 core. The comparison of papers/svpg/README.md sweeps method and seed over it
                 (configs/sweeps/svpg_cartpole.py, `python -m papers.svpg.reproduce`).
  pendulum       the same on gymnasium Pendulum-v1 (a swing-up, continuous torque; Gaussian policy), A2C.
  cartpole_swingup / double_pendulum   the paper's tasks from real simulators (dm_control cartpole swingup,
                 gymnasium MuJoCo InvertedDoublePendulum), the paper's 10,000 samples per particle, 500-step
                 episodes, up to 1,000 iterations: days on this CPU.
  cartpole_swingup_cpu / double_pendulum_cpu   the same tasks and networks at 1% of the paper's samples: 1,000
                 per particle per iteration; 200 iterations of the swing-up (about 15 min per run on one core), 100
                 of the double pendulum (about 3 min; it rises linearly for far longer than this CPU affords)
                 (configs/sweeps/svpg_swingup.py, svpg_double_pendulum.py).
Fields: svpg.method (svpg | independent | joint), svpg.num_particles, svpg.alpha (temperature; the paper keeps 10),
svpg.alpha_final (> 0: anneal geometrically to it; 0: fixed), agent.estimator (reinforce | a2c), agent.hidden
(the paper's 100-50-25 tanh policy), rollout.envs_per_particle x rollout.steps samples per particle per iteration.
"""

from ml_collections import ConfigDict

from common.registry import lookup


def _default() -> ConfigDict:
    return ConfigDict(
        {
            "seed": 0,
            "env": {"name": "cartpole", "max_episode_steps": 200},
            "svpg": {"method": "svpg", "num_particles": 16, "alpha": 10.0, "alpha_final": 0.0},
            "agent": {
                "estimator": "reinforce",
                "hidden": (100, 50, 25),
                "critic_hidden": (64, 64),
                "init_log_std": 0.0,
                "discount": 0.99,
                "gae_lambda": 0.95,
                "learning_rate": 5e-3,  # the original code's Adam step
                "critic_learning_rate": 5e-3,
                "critic_steps": 5,
                "normalize_advantages": True,
            },
            "rollout": {"envs_per_particle": 3, "steps": 200},
            "run": {"iterations": 120, "checkpoint_every": 10},
        }
    )


def _smoke() -> ConfigDict:
    config = _default()
    config.env.max_episode_steps = 50
    config.svpg.num_particles = 4
    config.agent.update(hidden=(16, 16), critic_hidden=(16,), critic_steps=2)
    config.rollout.update(envs_per_particle=2, steps=50)
    config.run.update(iterations=3, checkpoint_every=2)
    return config


def _pendulum() -> ConfigDict:
    config = _default()
    config.env.update(name="pendulum", max_episode_steps=200)
    config.agent.update(estimator="a2c", init_log_std=-0.5)
    config.run.iterations = 100
    return config


def _paper_task(name: str):
    def make() -> ConfigDict:
        config = _default()
        config.env.update(name=name, max_episode_steps=500)
        config.agent.estimator = "a2c"
        config.rollout.update(envs_per_particle=20, steps=500)  # 10,000 samples per particle per iteration
        config.run.update(iterations=1_000, checkpoint_every=25)
        return config

    return make


def _paper_task_cpu(name: str, iterations: int):
    """The paper's task and networks at 1% of its samples: 1,000 per particle per iteration (2 episodes of 500
    steps), `iterations` iterations."""

    def make() -> ConfigDict:
        config = _paper_task(name)()
        config.rollout.update(envs_per_particle=2, steps=500)
        config.run.update(iterations=iterations, checkpoint_every=10)
        return config

    return make


VARIANTS = {
    "smoke": _smoke,
    "cartpole": _default,
    "pendulum": _pendulum,
    "cartpole_swingup": _paper_task("cartpole_swingup"),
    "double_pendulum": _paper_task("inverted_double_pendulum"),
    "cartpole_swingup_cpu": _paper_task_cpu("cartpole_swingup", iterations=200),
    "double_pendulum_cpu": _paper_task_cpu("inverted_double_pendulum", iterations=100),
}


def get_config(variant: str = "cartpole") -> ConfigDict:
    return lookup(VARIANTS, variant, "svpg config variant")()
