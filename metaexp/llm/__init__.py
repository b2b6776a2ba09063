"""Talking to an OpenAI-compatible endpoint: one client with accounting and record/replay."""

from __future__ import annotations

from metaexp.llm.client import LLMClient, LLMError, Reply, Usage

__all__ = ["LLMClient", "LLMError", "Reply", "Usage"]
