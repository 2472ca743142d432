"""Fitting long documents into a model's context window, the same way for every variant.

Long tasks (LongEmotion's 45k-token scenarios, papers and segment lists) keep the document in
`Sample.context` and render it through `{{ context }}`. A model with a smaller window would reject the
request or silently cut it at an arbitrary place, so the harness cuts it first, by a declared policy:

- ``middle`` (default, as LongBench): keep the first and last halves of the token budget;
- ``left``: keep only the tail (drop the beginning);
- ``error``: refuse the sample (outcome ``error``, with the token counts in the message).

The hook is `Task.fit_context(sample, messages, client) -> (messages, info)`. `variants.base.ask` calls
it on the final messages of *any* variant just before the model call, so direct, few-shot, RAG or
refined prompts all get the same treatment: only the occurrences of `sample.context` inside the
messages are shortened, everything the variant added stays. `info` goes into the sample's trace
(`{"truncated": bool, "context_tokens": N, "kept_tokens": M, "policy": ...}`).

Tokens are counted with `client.count_tokens`: the model's own tokenizer for local backends, a
4-characters-per-token estimate for API backends (hence the safety margin below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import ConfigError
from .types import Message, Sample

if TYPE_CHECKING:
    from .client import ModelClient

POLICIES = ("middle", "left", "error")
TOKENS_PER_MESSAGE = 8  # chat-template overhead per message (role markers, separators)
SAFETY_TOKENS = 64  # slack for tokenizer estimates and special tokens
MARKER = "\n[…]\n"  # what replaces the dropped middle


class Window(Protocol):
    """What fitting reads from a client (a ModelClient is one): its window and its token counter."""

    @property
    def context_window(self) -> int | None: ...

    def count_tokens(self, text: str) -> int: ...


class ContextTooLong(ValueError):
    """The document does not fit and the policy is `error`. Not an EmobenchError on purpose: it
    refuses one sample (outcome `error`, message kept in the record), not the whole run."""


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ConfigError(f"truncate={policy!r}: expected one of {', '.join(POLICIES)}")
    return policy


def _prefix_chars(text: str, budget: int, count: Callable[[str], int]) -> int:
    """Largest n such that text[:n] has at most `budget` tokens (binary search on characters)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _suffix_chars(text: str, budget: int, count: Callable[[str], int]) -> int:
    """Largest n such that text[-n:] has at most `budget` tokens."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[len(text) - mid :]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def truncate_text(text: str, budget: int, policy: str, count: Callable[[str], int]) -> str:
    """`text` cut to at most about `budget` tokens by `policy` ('middle' or 'left')."""
    if budget <= 0:
        return ""
    if count(text) <= budget:
        return text
    if policy == "left":
        return text[len(text) - _suffix_chars(text, budget, count) :]
    budget -= count(MARKER)
    head = _prefix_chars(text, budget // 2, count)
    tail = _suffix_chars(text, budget - budget // 2, count)
    return text[:head] + MARKER + text[len(text) - tail :]


def fit_messages(
    messages: list[Message], context: str | None, client: Window, max_tokens: int, policy: str = "middle"
) -> tuple[list[Message], dict[str, Any]]:
    """Shorten `context` inside `messages` so that prompt + `max_tokens` fit `client.context_window`.

    Returns the (possibly new) messages and the record of what was done. When the context does not
    appear verbatim in the messages (a variant replaced it), the longest message is cut instead.
    """
    check_policy(policy)
    window = client.context_window
    count = client.count_tokens
    total = sum(count(m["content"]) + TOKENS_PER_MESSAGE for m in messages)
    info: dict[str, Any] = {"truncated": False, "prompt_tokens": total, "window": window, "policy": policy}
    if not window or total + max_tokens + SAFETY_TOKENS <= window:
        return messages, info
    target = context if context and any(context in m["content"] for m in messages) else None
    if target is None:  # cut the longest message as a whole
        target = max((m["content"] for m in messages), key=len)
    occurrences = sum(m["content"].count(target) for m in messages)
    target_tokens = count(target)
    other = total - occurrences * target_tokens
    budget = (window - max_tokens - SAFETY_TOKENS - other) // max(1, occurrences)
    info.update(context_tokens=target_tokens)
    if policy == "error" or budget <= 0:
        raise ContextTooLong(
            f"context of {target_tokens} tokens does not fit the {window}-token window "
            f"(other prompt parts {other}, max_tokens {max_tokens}; truncate={policy})"
        )
    kept = truncate_text(target, budget, policy, count)
    fitted = [{**m, "content": m["content"].replace(target, kept)} for m in messages]
    info.update(
        truncated=True,
        kept_tokens=count(kept),
        prompt_tokens=sum(count(m["content"]) + TOKENS_PER_MESSAGE for m in fitted),
    )
    return fitted, info


class LongContextTask:
    """Mixin for tasks whose `Sample.context` may exceed a model's window: its `fit_context` replaces
    `Task`'s, which fits nothing.

    Put it before `Task` in the bases and merge `LONG_CONTEXT_ARGS` into `arg_defaults`; the policy
    is then a `--task-arg truncate=...`, hence recorded in the run manifest.
    """

    LONG_CONTEXT_ARGS: ClassVar[dict[str, Any]] = {"truncate": "middle"}

    def fit_context(
        self, sample: Sample, messages: list[Message], client: ModelClient
    ) -> tuple[list[Message], dict[str, Any]]:
        policy = check_policy(str(self.args.get("truncate", "middle")))  # type: ignore[attr-defined]
        max_tokens = int(client.gen_overrides.get("max_tokens") or self.gen_params.max_tokens)  # type: ignore[attr-defined]
        return fit_messages(messages, sample.context, client, max_tokens, policy)
