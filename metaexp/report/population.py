"""The text block of a population run: its islands and its hall of fame."""

from __future__ import annotations

from typing import Any

__all__ = ["format_population"]


def format_population(data: dict[str, Any], metric: str) -> str:
    """Islands (their Logbook's last row, archive coverage) and the hall of fame of a population run."""
    lines = ["islands (fitness is the metric with its direction folded in: higher is better):"]
    for island in data.get("islands", []):
        row = island["logbook"][-1] if island.get("logbook") else {}
        text = ", ".join(f"{k} {v:.6g}" for k, v in row.items() if k in ("gen", "size", "max", "avg", "std"))
        archive = island.get("archive")
        if archive:
            cells = 1
            for _low, _high, bins in archive["bins"]:
                cells *= int(bins)
            text += f", archive {len(archive['elites'])}/{cells} cells"
        lines.append(f"  island {island['island']}: {text}")
    crossovers = data.get("crossovers") or {}
    if crossovers:
        total = sum(crossovers.values())
        wasted = total - crossovers.get("evaluated", 0)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(crossovers.items()))
        lines.append(f"crossovers: {total} ({parts}); {wasted / total:.0%} never evaluated")
    members = data.get("hall_of_fame", {}).get("members", [])
    if members:
        lines.append(f"hall of fame ({metric}):")
        lines += [
            f"  #{m['n']:<5} {m['commit'][:7]}  {m['values'][0]:.6g}  island {m['island']}"
            for m in members[:10]
        ]
    return "\n".join(lines)
