"""The loss-curve PNG of a job (matplotlib, headless), written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from trainerbot.fileio import atomic_write_bytes


def loss_curve(losses: list[tuple[int, float]], target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if losses:
        ax.plot(
            [s for s, _ in losses],
            [v for _, v in losses],
            color="#5865F2",
            linewidth=1.8,
            marker="." if len(losses) < 30 else None,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(target, buf.getvalue())
