"""A record as the ledger writes it beside its jsonl line: a results.tsv row and an Optuna trial."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from metaexp.record.records import ExperimentRecord

if TYPE_CHECKING:
    import optuna

    from metaexp.decide.objectives import MultiObjective
    from metaexp.spec import Spec
    from metaexp.spec.space import Space


class Rows:
    def __init__(self, spec: Spec, space: Space, multi: MultiObjective) -> None:
        self.spec = spec
        self.metrics = list(spec.metrics)
        self.space = space
        self.multi = multi  # the objective mode: trial values (pareto: several), constraints

    def held_out(self) -> list[str]:
        """The validation harness's metrics: columns `val:<name>` after the run's own."""
        held_out = self.spec.harness.validation
        return list(held_out.metric_specs) if held_out is not None else []

    def repeated(self) -> bool:
        """A noisy harness: rows say how many runs the metrics are the mean of, and their spread."""
        return self.spec.noise.method != "none"

    def tsv_header(self) -> str:
        held_out = [f"val:{m}" for m in self.held_out()]
        spread = ["runs", f"std:{self.metrics[0]}"] if self.repeated() else []
        return "\t".join(["commit", *self.metrics, *spread, *held_out, "status", "description"]) + "\n"

    def tsv_row(self, rec: ExperimentRecord) -> str:
        values = [f"{rec.metrics[m]:.6f}" if m in rec.metrics else "" for m in self.metrics]
        if self.repeated():
            n, std = run_spread(rec, self.metrics[0])
            values += [str(n) if n else "", f"{std:.6f}" if std is not None else ""]
        validated = rec.extra.get("validation", {}).get("metrics", {})
        values += [f"{validated[m]:.6f}" if m in validated else "" for m in self.held_out()]
        text = " ".join(rec.description.split())  # no tabs or newlines inside a cell
        return "\t".join([(rec.commit or "-")[:7], *values, str(rec.status), text]) + "\n"

    def metric_names(self) -> list[str]:
        """What the trial values are: every compared metric (pareto), the weighted score, or the primary."""
        mode = self.multi.spec.mode
        if mode == "pareto":
            return self.multi.metric_names()
        return ["weighted_score" if mode == "weighted" else self.multi.spec.primary]

    def trial(
        self,
        rec: ExperimentRecord,
        extra: Mapping[str, Any] | None = None,
        system: Mapping[str, Any] | None = None,
    ) -> optuna.trial.FrozenTrial:
        """The try as a finished trial; `extra`: more user attrs, `system`: system attrs (its artifacts)."""
        from optuna.trial import TrialState, create_trial

        params = {k: v for k, v in rec.params.items() if k in self.space and self.space[k].contains(v)}
        ok = not rec.status.failed and rec.value is not None
        values = self.multi.values(rec.metrics) if ok else None
        constraints = None
        if values is not None and (self.multi.spec.constraints or self.multi.spec.threshold):
            names = self.multi.constraint_names()
            constraints = dict(zip(names, self.multi.constraint_values(rec.metrics), strict=True))
        return create_trial(
            state=TrialState.COMPLETE if values is not None else TrialState.FAIL,
            values=values,
            params=params,
            distributions={k: self.space[k].distribution() for k in params},
            user_attrs={**(extra or {}), **self.attrs(rec, params)},  # the diff first: the page shows it
            system_attrs=dict(system or {}),
            constraints=constraints,
        )

    def attrs(self, rec: ExperimentRecord, params: Mapping[str, Any]) -> dict[str, Any]:
        """What the dashboard shows of a try beside its values and params."""
        attrs: dict[str, Any] = {
            "experiment": rec.n,
            "commit": rec.commit,
            "parent": rec.parent,
            "status": str(rec.status),
            "description": rec.description[:500],
            "operator": rec.operator,
            "style": rec.style,
            "harness_s": round(rec.harness_s, 3),
            "island": rec.island,
            "cost_usd": float(rec.usage.get("cost_usd", 0.0)),
            **{f"metric:{k}": v for k, v in rec.metrics.items()},
            **{f"validation:{k}": v for k, v in rec.extra.get("validation", {}).get("metrics", {}).items()},
        }
        if "runs" in rec.extra:  # repeats: the values are means over n runs
            n, std = run_spread(rec, self.metrics[0])
            attrs.update({"runs": n, f"std:{self.metrics[0]}": std})
            attrs.update({f"noise:{k}": v for k, v in rec.extra.get("noise", {}).items()})
        if rec.extra.get("model"):
            attrs["model"] = rec.extra["model"]  # the model that proposed it (operator.models)
        if rec.reason:
            attrs["reason"] = rec.reason[:500]
        attrs.update({f"llm_{k}": v for k, v in rec.usage.items()})
        other = {k: v for k, v in rec.params.items() if k not in params}
        if other:
            attrs["params"] = json.loads(json.dumps(other, default=str))
        return attrs


def run_spread(rec: ExperimentRecord, metric: str) -> tuple[int, float | None]:
    """How many runs a record's metrics average, and the sample std of `metric` over them."""
    import statistics

    values = [r["metrics"][metric] for r in rec.extra.get("runs", []) if metric in r.get("metrics", {})]
    return len(values), statistics.stdev(values) if len(values) > 1 else None
