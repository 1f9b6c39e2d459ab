"""SVPG with 16 particles: one vmapped call over all particles vs a Python loop over them, for the update (policy
gradients, critic regression, Adam) and for acting in the rollout, on real CartPole rollouts.

The update compares equal work: the vmapped update of 16 independent particles against 16 calls of the same jitted
update built for one particle (the SVGD coupling, timed too, needs all particles in one call anyway). The rollout
compares one jitted action call for all 16 x E environments per step against 16 calls (one per particle); both
step the same simulators, which bound the rollout: the bench also times the simulators stepped alone (fixed
actions). Interleaved call by call in one process.

The bound: the vmapped update's FLOPs (XLA's cost analysis of the compiled update) over its time, against this
machine's float32 matmul rate measured in the same run. A loop can only be much slower than the vmapped update
where the update is far from that rate (per-call overhead dominating); where the vmapped update already runs near
it, no batching can make it 8x faster than the loop.

python -m benchmarks.run_all --only svpg
"""

import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from common import report
from common.sweep import apply_overrides, load_config
from papers.svpg import train

CONFIG = "papers/svpg/config.py:cartpole"
MATMUL_SIZE, MATMUL_CHAIN = 512, 20


def compiled_flops(jitted, *args) -> float:
    """XLA's FLOP count of one call of `jitted` on `args` (a multiply-add counted as 2)."""
    analysis = jitted.lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis  # a list of one dict on older JAX
    return float(analysis["flops"])


def matmul_rate(repeats: int) -> float:
    """FLOP/s of this machine's float32 matmul: MATMUL_CHAIN dependent [512, 512] x [512, 512] products in one
    compiled call, the median over `repeats`."""

    def chain(x, w):
        return jax.lax.fori_loop(0, MATMUL_CHAIN, lambda _, x: jnp.tanh(x @ w), x)

    x = jnp.ones((MATMUL_SIZE, MATMUL_SIZE), jnp.float32) / MATMUL_SIZE
    run = jax.jit(chain)
    seconds = _timed(lambda: run(x, x), repeats)
    return MATMUL_CHAIN * 2 * MATMUL_SIZE**3 / seconds


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
    discrete = rollouts.num_actions > 0
    fixed = np.zeros((num_particles, envs, *rollouts.action_shape), np.int32 if discrete else np.float32)

    def simulator_only(observations, t):  # no policy: what stepping the simulators alone costs
        return fixed

    samples = num_particles * envs * steps
    rollout_times = {"vmap": [], "loop": [], "simulator": []}
    for _ in range(2):
        for name, act in (("vmap", vmap_act), ("loop", loop_act), ("simulator", simulator_only)):
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
    flops = compiled_flops(update_vmap, state, arrays)
    return {
        "update_gflop": flops / 1e9,
        "update_gflops_vmap": flops / times["update_vmap"] / 1e9,
        "matmul_gflops": matmul_rate(repeats) / 1e9,
        "env_steps_per_second_vmap": samples / min(rollout_times["vmap"]),
        "env_steps_per_second_loop": samples / min(rollout_times["loop"]),
        "env_steps_per_second_simulator": samples / min(rollout_times["simulator"]),
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
        f"{m['updates_per_second_svpg']:.2f} updates/s. The simulators stepped alone (fixed actions, no policy, "
        f"the same Python loop) run {m['env_steps_per_second_simulator']:,.0f} env steps/s: the vmapped rollout "
        f"reaches {m['env_steps_per_second_vmap'] / m['env_steps_per_second_simulator']:.0%} of that bound. "
        f"{num_particles} particles x {envs} CartPole environments x "
        f"{steps} steps ({m['samples']:,.0f} samples) per update; {config}'s networks. The vmapped update is "
        f"{m['update_gflop']:.2f} GFLOP (XLA's count) and runs at {m['update_gflops_vmap']:.1f} GFLOP/s, "
        f"{m['update_gflops_vmap'] / m['matmul_gflops']:.0%} of this machine's float32 matmul rate measured in the "
        f"same run ({m['matmul_gflops']:.1f} GFLOP/s, [{MATMUL_SIZE}, {MATMUL_SIZE}] products). "
        f"`python -m benchmarks.run_all --only svpg` on {report.machine_description()} (at the end; {load:.1f} at "
        "the start), "
        f"{time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    print(markdown())
