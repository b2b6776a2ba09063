"""The LLM operator: an OpenAI-compatible model proposes edits to the target files.

It keeps its memory in files, not in a context window: the human's program
(re-read before every proposal), the run's notes.md (rewritten by the model
every `notes_every` experiments), and the recent history from the records.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from metaexp.candidate import Candidate, fingerprint, malformed
from metaexp.errors import SpecError
from metaexp.llm import LLMClient, LLMError, Reply, Usage
from metaexp.llm.client import Prices
from metaexp.operators import Context, InvalidProposal, LineageState, RejectedProposal
from metaexp.operators.edits import EditError, EditRejected, apply_reply
from metaexp.operators.models import Models
from metaexp.operators.prompt import (
    Brief,
    OptimiserState,
    notes_messages,
    proposal_messages,
    retry_messages,
)
from metaexp.record.records import ExperimentRecord, Status

SHARED_SHOWN = 5  # other islands' bests and migrants shown in a prompt
SANDBOX_PATH = re.compile(r"[^\s'\"]*-sandboxes/(?:\d+-)?[0-9a-f]{32}/")  # a tree: PID-UUID (sandbox.py)


class LLMOperator:
    name = "llm"

    def __init__(self, ctx: Context) -> None:
        self.spec = ctx.spec
        self.op = ctx.spec.operator
        self.root = ctx.root
        self.styles = ctx.styles
        self.out = ctx.out
        self.history: list[ExperimentRecord] = list(ctx.history)
        self.tried: dict[str, ExperimentRecord] = {}  # target files (fingerprint) -> the try that ran them
        self.shared: dict[int, ExperimentRecord] = {}  # other islands' bests and migrants received, by n
        for record in self.history:
            self._remember(record)
        self.optimiser: Callable[[LineageState], OptimiserState] | None = None  # set by the hybrid
        self.notes_path = self.out / "notes.md" if self.out else None
        self.models = Models(self.op, self._client)
        self.client = self.models.first  # notes and reflections
        self._since_notes = len(self.history) % (self.op.notes_every or 1) if self.op.notes_every else 0
        if self.op.program and not self._program_path().exists():
            raise SpecError(
                f"operator.program: {self.op.program!r} not found (a Markdown file of directions)"
            )
        if self.notes_path is not None:
            self._warm_start()

    # --- the Operator protocol

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        usage = self._maybe_reflect()
        style = self.styles.pick(rng)
        brief = Brief(
            metric=self.spec.objective.primary,
            direction=self.spec.direction,
            program=self._read_program(),
            notes=self._read_notes(),
            files=state.files,
            history=self.history[-self.op.history :] if self.op.history else [],
            crash_tail=self._crash_tail(state.commit),
            style=style,
            edit_format=self.op.edit_format,
            incumbent=state.value,
            optimiser=self.optimiser(state) if self.optimiser else None,
            shared=self._shared_best(),
        )
        messages = proposal_messages(brief)
        model = self.models.choose(rng, self.history, 1.0 if self.spec.direction == "minimize" else -1.0)
        client, named = self.models.clients[model], {"model": model}
        state_key = self._state_key(state, style.name) + (f":{model}" if self.models.several else "")
        reply, usage = self._ask(client, messages, state_key, "propose", usage, named)
        edit, first = self._attempt(reply.content, state)
        if first and self.op.retry_invalid:  # once more, told why: it does not apply, parse, or is a repeat
            retry = retry_messages(messages, reply.content, first)
            reply, usage = self._ask(client, retry, state_key + ":retry", "retry", usage, named)
            again, second = self._attempt(reply.content, state)
            if again is None:
                reason = f"the reply does not apply ({first}); nor did the retry ({second})"
                raise InvalidProposal(reason, named, usage=_dict(usage)) from None
            edit = again  # a repeat again: the core records it as the duplicate it is, and runs nothing
        if edit is None:
            raise InvalidProposal(f"the reply does not apply: {first}", named, usage=_dict(usage)) from None
        return Candidate(state.commit, edit.files, edit.description, style.name, {}, named, _dict(usage))

    def observe_shared(self, record: ExperimentRecord) -> None:
        """Another island's new best, or a migrant this island received (populations only)."""
        if record.value is not None:
            self.shared[record.n] = record

    def _shared_best(self) -> list[ExperimentRecord]:
        sign = 1.0 if self.spec.direction == "minimize" else -1.0
        ranked = sorted(self.shared.values(), key=lambda r: (sign * float(r.value or 0.0), r.n))
        return ranked[:SHARED_SHOWN]

    def observe(self, record: ExperimentRecord) -> None:
        self.history.append(record)
        self._remember(record)
        self._since_notes += 1

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        return {}

    # --- asking

    def _ask(
        self,
        client: LLMClient,
        messages: list[dict[str, str]],
        state_key: str,
        purpose: str,
        usage: Usage,
        named: dict[str, str],
    ) -> tuple[Reply, Usage]:
        try:
            reply = client.complete(messages, state_key=state_key, purpose=purpose)
        except LLMError as exc:
            raise InvalidProposal(str(exc), named, usage=_dict(usage)) from None
        return reply, usage + reply.usage

    def _attempt(self, content: str, state: LineageState) -> tuple[Any, str]:
        """(the edit, "") for a new change; (the edit, why) for a repeat of a try that ran;
        (None, why) when the reply does not apply or leaves a file that does not parse."""
        try:
            edit = self._apply(content, state)
        except EditError as exc:
            return None, str(exc)
        earlier = self.tried.get(fingerprint({**state.files, **edit.files}))
        if earlier is None:
            return edit, ""
        scored = f"{self.spec.objective.primary}={earlier.value}" if earlier.value is not None else "no value"
        return edit, (
            f"it is the same change as experiment #{earlier.n} ({earlier.status}, {scored}), "
            "already tried: propose a different one"
        )

    def _remember(self, record: ExperimentRecord) -> None:
        if record.status.harness_ran:
            for key in ("fingerprint", "proposed_fingerprint"):  # the tuned files, and the edit as proposed
                if identity := record.extra.get(key):
                    self.tried.setdefault(identity, record)

    def _apply(self, content: str, state: LineageState) -> Any:
        """The reply's edit on the files; EditError when it does not apply or leaves a target file
        that does not parse (the retry tells the model the parser's message)."""
        try:
            edit = apply_reply(
                content,
                self.op.edit_format,
                state.files,
                targets=self.spec.target,
                max_file_bytes=self.op.max_file_bytes,
            )
        except EditRejected as exc:
            raise RejectedProposal(str(exc)) from None
        why = malformed(edit.files)
        if why:
            raise EditError(why)
        return edit

    def _maybe_reflect(self) -> Usage:
        """Every notes_every experiments: the model rewrites notes.md from the results so far."""
        every = self.op.notes_every
        if not every or self.notes_path is None or self._since_notes < every or not self.history:
            return Usage()
        self._since_notes = 0
        messages = notes_messages(
            self._read_program(),
            self._read_notes(),
            self.history[-200:],
            self.spec.objective.primary,
            self.spec.direction,
        )
        try:
            reply = self.client.complete(messages, state_key=f"notes:{len(self.history)}", purpose="notes")
        except LLMError:
            return Usage()  # the notes stay as they were; the proposal goes on
        _write_atomic(self.notes_path, reply.content.strip() + "\n")
        return reply.usage

    # --- memory in files

    def _program_path(self) -> Path:
        return self.root / (self.op.program or "program.md")

    def _read_program(self) -> str:
        path = self._program_path()
        return path.read_text(errors="replace") if self.op.program and path.exists() else ""

    def _read_notes(self) -> str:
        if self.notes_path is None or not self.notes_path.exists():
            return ""
        return self.notes_path.read_text(errors="replace")

    def _warm_start(self) -> None:
        source = self.op.warm_start
        assert self.notes_path is not None
        if not source or self.notes_path.exists():
            return
        path = self.root / source
        if not path.is_file():
            path = self.root / ".metaexp" / source / "notes.md"  # an earlier run's tag
        if not path.is_file():
            raise SpecError(
                f"operator.warm_start: {source!r} is neither a notes file nor a run tag with notes.md"
            )
        _write_atomic(self.notes_path, path.read_text(errors="replace"))

    def _crash_tail(self, commit: str) -> str:
        """The log tail of the last try from `commit` if it crashed, its sandbox's path shown as the
        tree (`./`): the path holds a random name, and a prompt must not differ from run to run
        (a replay matches requests exactly)."""
        for rec in reversed(self.history):
            if rec.parent == commit and rec.status.harness_ran:
                failed = rec.status in (Status.CRASH, Status.TIMEOUT)
                return SANDBOX_PATH.sub("./", rec.log_tail) if failed else ""
        return ""

    def _state_key(self, state: LineageState, style: str) -> str:
        """Target files + style + how often this state was asked before: replay_key 'state'."""
        digest = hashlib.sha256()
        for path in sorted(state.files):
            digest.update(path.encode() + b"\0" + state.files[path] + b"\0")
        asked = sum(1 for r in self.history if r.parent == state.commit and r.style == style)
        return f"{digest.hexdigest()[:24]}:{style}:{asked}"

    def _client(self, model: str, base_url: str | None, prices: Any) -> LLMClient:
        op = self.op
        replay = (self.root / op.replay) if op.replay else None
        return LLMClient(
            model=model,
            base_url=base_url,
            api_key_env=op.api_key_env,
            temperature=op.temperature,
            max_tokens=op.max_tokens,
            timeout_s=op.timeout_s,
            max_retries=op.max_retries,
            prices=Prices(**prices.model_dump()),
            record_path=(self.out / "llm.jsonl") if self.out else None,
            replay_path=replay,
            replay_key=op.replay_key,
            replay_miss=op.replay_miss,
        )


def _dict(usage: Usage) -> dict[str, float]:
    return dict(usage.__dict__)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
