"""Training and decoding speed of the seq2seq model, measured in one run on real batches of the config's data.

python -m papers.seq2seq_pretraining.bench [--quick] [--json] [--steps N] [--sentences N]

Training: tokens per second of the stage-2 step (translation + both LM objectives: forward, backward, Adam), counting
the real (non-padding) target and monolingual tokens of each batch; compilation is left out (one warm-up step).
Decoding: validation sentences per second, greedy and beam 4, in batches of decode.batch_size, compiled first. The
weights are the fresh initialisation (speed does not depend on them, but an untrained model rarely stops early, so
every sentence runs to decode.max_length: the worst case). --quick: the smoke config, seconds.
"""

import json
import time

import jax
import optax
from absl import flags
from flax import nnx

from common import app, report
from papers.seq2seq_pretraining import config as configs
from papers.seq2seq_pretraining import train

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "The smoke config: seconds.")
flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
flags.DEFINE_integer("steps", 20, "Training steps timed.")
flags.DEFINE_integer("sentences", 200, "Validation sentences decoded per method.")


def time_training(config, dataset, source_lm, target_lm, steps: int) -> dict:
    """Tokens/s and steps/s of the jitted multitask step over `steps` real batches, after one warm-up step."""
    task = train.build_task(config, dataset, source_lm, target_lm)
    tx = optax.adam(config.optimizer.learning_rate)
    graphdef, params, rest = nnx.split(task.model, nnx.Param, ...)
    state = (params, rest, tx.init(params))

    @jax.jit
    def step(state, batch):
        params, rest, opt_state = state

        def loss(params):
            model = nnx.merge(graphdef, params, rest)
            value, _ = task.loss_fn(model, batch, jax.random.key(0))
            return value, nnx.state(model, nnx.Not(nnx.Param))

        (value, rest), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), rest, opt_state), value

    batches = task.make_train_iterator(0)
    state, value = step(state, next(batches))
    jax.block_until_ready(value)
    pad_id = dataset.tokenizer.pad_id
    tokens, started = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        tokens += sum(
            int((batch[key][:, 1:] != pad_id).sum()) for key in ("target", "source_lm", "target_lm") if key in batch
        )
        state, value = step(state, batch)
    jax.block_until_ready(value)
    seconds = time.perf_counter() - started
    return {"train_tokens_per_s": tokens / seconds, "train_steps_per_s": steps / seconds}


def time_decoding(config, dataset, seq2seq, sentences: int) -> dict:
    sources, _ = dataset.eval_texts("validation")
    sources = sources[:sentences]
    tokenizer = dataset.tokenizer
    seq2seq.eval()
    out = {}
    for method, beam_size in (("greedy", 1), ("beam4", 4)):
        translate = train.make_translator(seq2seq, config, tokenizer, beam_size)
        train.translate_all(translate, tokenizer, sources[: config.decode.batch_size], config)  # compile
        started = time.perf_counter()
        train.translate_all(translate, tokenizer, sources, config)
        out[f"{method}_sentences_per_s"] = len(sources) / (time.perf_counter() - started)
    return out


def measure(variant: str, steps: int, sentences: int) -> dict:
    """Training and decoding speed of config `variant`, with the machine it ran on."""
    config = configs.get_config(variant)
    dataset = train.load_translation(config)
    monolingual = [train.load_monolingual(config, side, dataset.tokenizer) for side in train.LANGUAGE_MODELS]
    row = {
        "config": variant,
        "batch_size": config.dataset.batch_size,
        "hidden_dim": config.model.hidden_dim,
        "num_layers": config.model.num_layers,
        "vocab_size": dataset.tokenizer.vocab_size,
    }
    row.update(time_training(config, dataset, *monolingual, steps))
    seq2seq = train.build_task(config, dataset).model
    row.update(time_decoding(config, dataset, seq2seq, sentences))
    row["machine"] = report.machine_description()
    return row


def main(argv):
    app.prepare(argv)
    row = measure("smoke" if FLAGS.quick else "default", FLAGS.steps, FLAGS.sentences)
    if FLAGS.json:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    app.run(main)
