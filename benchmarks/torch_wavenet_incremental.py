"""Times PyTorch incremental WaveNet generation on CPU, the way users run it today; run with the separate torch
environment's interpreter (never this project's dependencies; see benchmarks/fast_wavenet.py):

  <torch venv>/bin/python benchmarks/torch_wavenet_incremental.py --batches 1,4,16,64 --positions 4000

The step is the one of r9y9's wavenet_vocoder (`WaveNet.incremental_forward`, `Conv1d.incremental_forward`):
every dilated conv keeps an input buffer [B, (k-1)*d + 1, C] that is shifted by one position per sample, the
current input is written at its end, the taps are `buffer[:, ::d]` and the conv is one `F.linear` over them;
then tanh * sigmoid, 1x1 residual and skip convs (as linears), the skip sum, ReLU -> 1x1 -> ReLU -> 1x1 and a
draw from the softmax. Same sizes as the JAX benchmark: 20 layers (dilations 1..512 twice), residual 64, skip
128, width 2, 256 classes, random weights, float32, inference mode (no autograd).

Prints one JSON object per batch: samples/s of wall-clock time and of this process's CPU time, the fastest of
`repeats` runs after a warm-up, with the torch version and its thread count. Imports only torch.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F


class IncrementalWaveNet(torch.nn.Module):
    """A gated WaveNet with wavenet_vocoder's per-layer input buffers for sample-by-sample generation."""

    def __init__(self, dilations, residual: int, skip: int, kernel_size: int, classes: int):
        super().__init__()
        self.dilations, self.kernel_size, self.residual = tuple(dilations), kernel_size, residual
        self.embed = torch.nn.Embedding(classes, residual)
        # Conv1d weights [out, in, k] as in the model; incremental_forward flattens them once per layer.
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv1d(residual, 2 * residual, kernel_size, dilation=d) for d in self.dilations
        )
        self.residuals = torch.nn.ModuleList(torch.nn.Linear(residual, residual) for _ in self.dilations)
        self.skips = torch.nn.ModuleList(torch.nn.Linear(residual, skip) for _ in self.dilations)
        self.head_hidden = torch.nn.Linear(skip, skip)
        self.head_out = torch.nn.Linear(skip, classes)
        # wavenet_vocoder's _get_linearized_weight: [out, k * in], taps oldest first.
        self.linearized = [conv.weight.transpose(1, 2).contiguous().view(2 * residual, -1) for conv in self.convs]

    def new_buffers(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, (self.kernel_size - 1) * d + 1, self.residual) for d in self.dilations]

    def step(self, codes: torch.Tensor, buffers: list[torch.Tensor]) -> torch.Tensor:
        """codes int64 [B] -> logits [B, classes]; shifts every layer's buffer by one position."""
        x = self.embed(codes)
        skip = 0.0
        for layer, dilation in enumerate(self.dilations):
            buffer = buffers[layer]
            buffer[:, :-1] = buffer[:, 1:].clone()  # Conv1d.incremental_forward's shift
            buffer[:, -1] = x
            taps = buffer[:, 0::dilation, :].reshape(x.shape[0], -1)
            a = F.linear(taps, self.linearized[layer], self.convs[layer].bias)
            z = torch.tanh(a[:, : self.residual]) * torch.sigmoid(a[:, self.residual :])
            skip = skip + self.skips[layer](z)
            x = x + self.residuals[layer](z)
        return self.head_out(F.relu(self.head_hidden(F.relu(skip))))

    def generate(self, batch: int, num_samples: int, classes: int) -> torch.Tensor:
        buffers = self.new_buffers(batch)
        codes = torch.full((batch,), classes // 2, dtype=torch.long)
        out = torch.empty(batch, num_samples, dtype=torch.long)
        for t in range(num_samples):
            probabilities = F.softmax(self.step(codes, buffers), dim=-1)
            codes = torch.multinomial(probabilities, 1).squeeze(1)
            out[:, t] = codes
        return out


def measure(model: IncrementalWaveNet, batch: int, num_samples: int, classes: int, repeats: int) -> dict:
    model.generate(batch, min(num_samples, 50), classes)  # warm-up
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.generate(batch, num_samples, classes)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return {
        "batch": batch,
        "samples": num_samples,
        "samples_per_s": batch * num_samples / wall,
        "cpu_samples_per_s": batch * num_samples / cpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,4,16,64,256", help="comma-separated batch sizes")
    parser.add_argument("--positions", type=int, default=4000, help="batch * samples generated per timed run")
    parser.add_argument("--min-samples", type=int, default=100, help="samples per sequence, at least")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per batch; the fastest is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dilations = [2**i for i in range(10)] * 2
    model = IncrementalWaveNet(dilations, residual=64, skip=128, kernel_size=2, classes=256).eval()
    with torch.inference_mode():
        for batch in (int(b) for b in args.batches.split(",")):
            samples = max(args.min_samples, args.positions // batch)
            print(json.dumps(measure(model, batch, samples, 256, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
