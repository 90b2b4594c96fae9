"""Figures written into RUN_DIR/plots (matplotlib, headless). Missing matplotlib skips them."""

from __future__ import annotations

import os


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        print("matplotlib is not installed: skipping plots (pip install '.[demo]')")
        return None


def training_curves(history: list[dict], monitor: str, plots_dir: str) -> str | None:
    """Loss and the monitored metric per epoch, train vs validation."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    os.makedirs(plots_dir, exist_ok=True)
    base = monitor[4:] if monitor.startswith("val_") else monitor
    names = ["loss"] + ([base] if base != "loss" else [])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    epochs = [e["epoch"] for e in history]
    for ax, name in zip(axes[0], names):
        for key, style in ((name, "-o"), (f"val_{name}", "--s")):
            values = [e.get(key) for e in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = os.path.join(plots_dir, "training_curves.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def confusion_matrix(matrix, class_names, plots_dir: str, title: str = "confusion matrix"):
    """Counts with row-normalised colours (rows = true class)."""
    import numpy as np

    plt = _pyplot()
    if plt is None:
        return None
    os.makedirs(plots_dir, exist_ok=True)
    matrix = np.asarray(matrix)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(3.5, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    out = os.path.join(plots_dir, "confusion_matrix.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def piano_roll(notes, path: str, prompt_length: int = 0, unit: str = "beats",
               title: str = "") -> str | None:
    """Writes a piano-roll PNG of notes [n, 3] (pitch, step, duration): time on x, pitch on
    y, the first ``prompt_length`` notes in grey. Returns the path, or None without matplotlib."""
    import numpy as np

    plt = _pyplot()
    if plt is None:
        return None
    onsets = np.cumsum(notes[:, 1])
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, ((pitch, _, duration), onset) in enumerate(zip(notes, onsets, strict=True)):
        ax.broken_barh([(onset, max(duration, 1e-3))], (pitch - 0.4, 0.8),
                       color="0.6" if i < prompt_length else "tab:blue")
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or f"{len(notes) - prompt_length} generated notes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
