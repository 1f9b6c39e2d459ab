"""SVPG with 16 particles: one vmapped call over all particles vs a Python loop over them, for the update (policy
gradients, critic regression, Adam) and for acting in the rollout, on real CartPole rollouts.

The update compares equal work: the vmapped update of 16 independent particles against 16 calls of the same jitted
update built for one particle (the SVGD coupling, timed too, needs all particles in one call anyway). The rollout
compares one jitted action call for all 16 x E environments per step against 16 calls (one per particle); both
step the same simulators, which bound the rollout. Interleaved call by call in one process.

python -m benchmarks.run_all --only svpg
"""

import os
import statistics
import time

import jax
import numpy as np

from common import report
from common.sweep import apply_overrides, load_config
from papers.svpg import train

CONFIG = "papers/svpg/config.py:cartpole"


def _timed(call, repeats: int) -> float:
    """Median seconds of `call()` (blocking on its result) over `repeats` runs after one warm-up."""
    jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(num_particles: int, envs: int, steps: int, repeats: int, config: str) -> dict[str, float]:
    base = apply_overrides(
        load_config(config),
        {"svpg.num_particles": num_particles, "rollout.envs_per_particle": envs, "rollout.steps": steps},
    )
    independent = apply_overrides(base, {"svpg.method": "independent"})
    one = apply_overrides(independent, {"svpg.num_particles": 1})
    setup, setup_one = train.build(independent), train.build(one)
    state = train.init_state(setup, 0)
    states = [train.init_state(setup_one, seed) for seed in range(num_particles)]
    policy = setup.policy
    act_all = jax.jit(lambda p, o, k: jax.vmap(policy.sample)(p, o, jax.random.split(k, num_particles)))
    act_one = jax.jit(lambda p, o, k: jax.vmap(policy.sample)(p, o, jax.random.split(k, 1)))
    key = jax.random.key(0)

    def loop_act(observations, t):
        return np.concatenate(
            [
                np.asarray(act_one(s["policy"], observations[i : i + 1], jax.random.fold_in(key, t)))
                for i, s in enumerate(states)
            ]
        )

    def vmap_act(observations, t):
        return act_all(state["policy"], observations, jax.random.fold_in(key, t))

    rollouts = setup.rollouts
    samples = num_particles * envs * steps
    rollout_times = {"vmap": [], "loop": []}
    for _ in range(2):
        for name, act in (("vmap", vmap_act), ("loop", loop_act)):
            start = time.perf_counter()
            batch = rollouts.collect(act, 0)
            rollout_times[name].append(time.perf_counter() - start)
    arrays = {k: v for k, v in batch.items() if k not in ("first_returns", "episodes")}
    slices = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(num_particles)]
    update_vmap = train.make_update(setup, independent)
    update_svpg = train.make_update(setup, base)
    update_one = train.make_update(setup_one, one)
    times = {
        "update_vmap": _timed(lambda: update_vmap(state, arrays), repeats),
        "update_svpg": _timed(lambda: update_svpg(state, arrays), repeats),
        "update_loop": _timed(lambda: [update_one(s, b) for s, b in zip(states, slices, strict=True)], repeats),
    }
    return {
        "env_steps_per_second_vmap": samples / min(rollout_times["vmap"]),
        "env_steps_per_second_loop": samples / min(rollout_times["loop"]),
        "updates_per_second_vmap": 1 / times["update_vmap"],
        "updates_per_second_svpg": 1 / times["update_svpg"],
        "updates_per_second_loop": 1 / times["update_loop"],
        "samples": float(samples),
    }


def markdown(num_particles: int = 16, envs: int = 3, steps: int = 200, repeats: int = 5, config: str = CONFIG) -> str:
    started, load = time.perf_counter(), os.getloadavg()[0]
    m = measure(num_particles, envs, steps, repeats, config)
    rows = [
        [
            "update (16 particles' gradients, critic, Adam)" if num_particles == 16 else "update",
            f"{m['updates_per_second_vmap']:.2f}/s",
            f"{m['updates_per_second_loop']:.2f}/s",
            f"{m['updates_per_second_vmap'] / m['updates_per_second_loop']:.1f}x",
        ],
        [
            "rollout (acting + simulator)",
            f"{m['env_steps_per_second_vmap']:,.0f} env steps/s",
            f"{m['env_steps_per_second_loop']:,.0f} env steps/s",
            f"{m['env_steps_per_second_vmap'] / m['env_steps_per_second_loop']:.1f}x",
        ],
    ]
    table = report.markdown_table(["", "vmapped over particles", "Python loop over particles", "ratio"], rows)
    return (
        f"{table}\n\nThe coupled SVGD update (kernel on the flattened policies) runs at "
        f"{m['updates_per_second_svpg']:.2f} updates/s. {num_particles} particles x {envs} CartPole environments x "
        f"{steps} steps ({m['samples']:,.0f} samples) per update; {config}'s networks. "
        f"`python -m benchmarks.run_all --only svpg` on {report.machine_description()}, load average {load:.1f}, "
        f"{time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    print(markdown())
