"""Drawing MAP-Elites archives: one grid per island, each occupied cell coloured by its elite."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_archive(data: dict[str, Any], metric: str, direction: str, path: Path) -> Path | None:
    """Heat maps of the islands' archives from population.json; None if no island has one.
    One descriptor gives a strip, two a grid; with more, the first two are shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    islands = [i for i in data.get("islands", []) if i.get("archive")]
    if not islands:
        return None
    fig, axes = plt.subplots(1, len(islands), figsize=(4.5 * len(islands), 4), dpi=110, squeeze=False)
    try:
        for ax, island in zip(axes[0], islands, strict=True):
            bins = island["archive"]["bins"]
            shape = (int(bins[1][2]) if len(bins) > 1 else 1, int(bins[0][2]))
            grid = np.full(shape, np.nan)
            for cell in island["archive"]["elites"]:
                x, y = cell["cell"][0], cell["cell"][1] if len(cell["cell"]) > 1 else 0
                grid[y, x] = cell["elite"]["values"][0]
            cmap = "viridis_r" if direction == "minimize" else "viridis"
            image = ax.imshow(
                grid,
                origin="lower",
                cmap=cmap,
                aspect="auto",
                extent=(bins[0][0], bins[0][1], *(bins[1][:2] if len(bins) > 1 else (0, 1))),
            )
            filled = int(np.isfinite(grid).sum())
            ax.set_title(f"island {island['island']}: {filled}/{grid.size} cells")
            ax.set_xlabel("descriptor 1")
            ax.set_ylabel("descriptor 2" if len(bins) > 1 else "")
            fig.colorbar(image, ax=ax, label=f"{metric} of the cell's elite")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
