"""Writing measured results into Markdown: a generated block between markers, so reruns replace, never append."""

import os
import platform
import re

import jax


def machine_description() -> str:
    """One line naming where a number was measured: device kind and count, CPU cores, OS, and the one-minute load
    average when it was written (on a shared machine, speeds scale with it)."""
    device = jax.devices()[0]
    kind = device.device_kind if device.platform != "cpu" else "CPU"
    return (
        f"{jax.device_count()} x {kind} ({jax.default_backend()}), {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.machine()}, JAX {jax.__version__}, load average {os.getloadavg()[0]:.1f}"
    )


def replace_block(path: str, name: str, content: str) -> None:
    """Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` in `path` (appends if absent).

    Only process 0 of a multi-host job writes: every process measures, one report.
    """
    if jax.process_index() != 0:
        return
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{content.rstrip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
