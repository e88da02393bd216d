"""The LLM and embeddings calls the app log's httpx lines record, by kind and status."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

LLM_PATHS = ("/v1/messages", "/v1/complete", "/chat/completions", "/v1/responses")


def kind(target: str) -> str:
    """ "llm", "embeddings" or "other" for a call's "host/path"."""
    if "/embeddings" in target:
        return "embeddings"
    if "anthropic" in target.split("/", 1)[0] or target.endswith(LLM_PATHS):
        return "llm"
    return "other"


@dataclass
class Calls:
    """httpx-logged calls of a window: (target, status) -> count, LLM and embeddings only."""

    by_target: Counter = field(default_factory=Counter)

    @classmethod
    def of(cls, calls: Counter) -> Calls:
        out = cls()
        for key, n in calls.items():
            target, _, status = key.rpartition(" ")
            if kind(target) != "other":
                out.by_target[(target, status)] += n
        return out

    def total(self, what: str = "") -> int:
        return sum(n for (t, _), n in self.by_target.items() if not what or kind(t) == what)

    def failed(self) -> Counter:
        """Non-2xx calls by (target, status)."""
        return Counter({k: n for k, n in self.by_target.items() if not k[1].startswith("2")})

    def rejected(self) -> Counter:
        """Calls answered 401 or 403: a revoked or wrong key."""
        return Counter({k: n for k, n in self.by_target.items() if k[1] in ("401", "403")})

    @staticmethod
    def text(counts: Counter) -> str:
        """ "api.anthropic.com/v1/messages 401 x3, ..." (most first)."""
        return ", ".join(f"{t} {s} x{n}" for (t, s), n in counts.most_common())
