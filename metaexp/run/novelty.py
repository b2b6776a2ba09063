"""What counts as new: a candidate is evaluated only when its target files differ (whitespace aside)
from every try that ran and every one in flight, and, with `strategy.novelty`, when its declared
values lie farther than that from every evaluated or in-flight point (unit cube of the space, root
mean square per dimension). A repeat is recorded `invalid` with the twin's value, so the operator
learns what the point scored, and costs no harness run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from metaexp.candidate import Candidate, fingerprint
from metaexp.record.records import ExperimentRecord
from metaexp.spec.space import Space

Point = tuple[float, ...]


class Novelty:
    def __init__(
        self, space: Space | None, threshold: float, records: list[ExperimentRecord], primary: str
    ) -> None:
        self.records, self.primary = records, primary  # the session's records, growing
        self.names = sorted(n for n, p in (space or {}).items() if p.type != "categorical")
        self.space = space or {}
        self.threshold = threshold if self.names else 0.0
        self.seen: dict[str, int] = {}  # normalised target files -> the experiment that ran them
        self.evaluating: dict[str, Point | None] = {}  # ... and those being evaluated now (their point)
        self.points: list[tuple[int, Point]] = []  # evaluated points of the space, by experiment
        for rec in records:
            self.remember(rec)

    def check(self, cand: Candidate) -> tuple[str, dict[str, Any]]:
        """Why the candidate is not new ("" if it is), and what its twin scored."""
        identity = fingerprint(cand.tree)
        n = self.seen.get(identity)
        if n is not None:
            return self._twin(n, "duplicate")
        if identity in self.evaluating:
            return "duplicate of an evaluation in flight", {}
        point = self._point(cand.params)
        if point is None or not self.threshold:
            return "", {}
        near = [(m, _distance(point, p)) for m, p in self.points if _distance(point, p) < self.threshold]
        if near:
            m, d = min(near, key=lambda pair: pair[1])
            why, twin = self._twin(m, "near-duplicate")
            return f"{why}: distance {d:.3g} < strategy.novelty {self.threshold:g}", twin
        if any(p is not None and _distance(point, p) < self.threshold for p in self.evaluating.values()):
            return f"near-duplicate of an evaluation in flight (strategy.novelty {self.threshold:g})", {}
        return "", {}

    def flying(self, cand: Candidate) -> None:
        self.evaluating[fingerprint(cand.tree)] = self._point(cand.params)

    def landed(self, cand: Candidate) -> None:
        self.evaluating.pop(fingerprint(cand.tree), None)

    def remember(self, rec: ExperimentRecord) -> None:
        identity = rec.extra.get("fingerprint")
        if identity and rec.status.harness_ran:
            self.seen.setdefault(identity, rec.n)
            self.evaluating.pop(identity, None)
            if proposed := rec.extra.get("proposed_fingerprint"):  # a hybrid edit, before its tuning
                self.seen.setdefault(proposed, rec.n)
            point = self._point(rec.params)
            if point is not None and self.threshold:
                self.points.append((rec.n, point))

    def _twin(self, n: int, what: str) -> tuple[str, dict[str, Any]]:
        earlier = self.records[n - 1]
        why = f"{what} of #{n} ({earlier.status}, {self.primary}={earlier.value})"
        return why, {"twin": {"n": n, "value": earlier.value}}

    def _point(self, params: Mapping[str, Any]) -> Point | None:
        try:
            return tuple(self.space[n].to_unit(params[n]) for n in self.names)
        except (KeyError, TypeError, ValueError):
            return None  # not a point of the space (e.g. an LLM's edit that declares no values)


def _distance(a: Point, b: Point) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / len(a))
