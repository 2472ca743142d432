"""Prompt templates: jinja2 files in `prompts/`, rendered in jinja2's immutable sandbox.

A task file's template is untrusted code, so every template, built-in or user-supplied, goes through
one bounded sandbox:
- jinja2's ImmutableSandboxedEnvironment: no Python internals (`{{ ''.__class__.__mro__ }}`) and no
  method that mutates a list, dict or set (`xs.append(...)`); none of the built-in templates needs one;
- `*`, `**` and `+` are checked before they run, so `'x' * 10**9` is refused instead of allocating a
  gigabyte (jinja2 would even compute it while compiling, as a constant);
- the output is counted as it is produced, and a template that writes more than MAX_RENDER_CHARS
  (a loop printing a long line 100,000 times) is stopped there.
Each refusal is a ConfigError naming the template. The hash of a template's source goes into the
manifest: two runs with different prompts are not comparable.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import ConfigError
from .paths import prompts_dir
from .types import stable_hash

# ~1M tokens, the largest context window of current models; LongEmotion's longest contexts, the longest
# prompts of the built-in tasks, are ~45k tokens (~200k characters).
MAX_RENDER_CHARS = 4_000_000
MAX_POWER_BITS = 4096  # `**` results above this are refused: no prompt needs a 1,200-digit number
_SEQUENCES = (str, list, tuple)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the operators that can build a huge value in one step checked first."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse (SecurityError) a repetition or concatenation longer than any prompt, or a huge power."""
    size = 0
    if operator == "*" and isinstance(left, _SEQUENCES) and isinstance(right, int):
        size = len(left) * right
    elif operator == "*" and isinstance(right, _SEQUENCES) and isinstance(left, int):
        size = len(right) * left
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        size = len(left) + len(right)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        bits = right * abs(left).bit_length()
        if abs(left) > 1 and bits > MAX_POWER_BITS:
            raise SecurityError(
                f"`**` would make a number too large ({bits:,} bits, over {MAX_POWER_BITS:,})"
            )
    if size > MAX_RENDER_CHARS:
        raise SecurityError(
            f"`{operator}` would make a value of {size:,} characters, over the "
            f"{MAX_RENDER_CHARS:,}-character limit for one prompt"
        )


@lru_cache(maxsize=1)
def _env() -> _BoundedSandbox:
    env = _BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    env.filters["letter"] = lambda i: chr(ord("A") + int(i))
    return env


def template_source(ref: str) -> str:
    """`ref` is a file name in prompts/ (e.g. `emobench_ea.j2`), a path, or inline template text."""
    if "\n" not in ref and ref.endswith((".j2", ".jinja", ".jinja2", ".txt")):
        for candidate in (prompts_dir() / ref, Path(ref).expanduser()):
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        raise ConfigError(f"template {ref!r} not found in {prompts_dir()} or as a path")
    return ref


def render(ref: str, **variables: Any) -> str:
    source = template_source(ref)
    try:
        return _bounded(_compile(source).generate(**variables), ref).strip()
    except SecurityError as exc:
        raise ConfigError(f"template {ref[:60]!r} refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise ConfigError(f"template error in {ref[:60]!r}: {exc}") from None


def _bounded(pieces: Iterable[str], ref: str) -> str:
    """Join the rendered pieces, stopping as soon as they pass MAX_RENDER_CHARS: a template that prints
    without end is cut off at the bound, not after it has filled the memory."""
    parts: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_RENDER_CHARS:
            raise ConfigError(
                f"template {ref[:60]!r} renders more than {MAX_RENDER_CHARS:,} characters, "
                "the limit for one prompt"
            )
        parts.append(piece)
    return "".join(parts)


@lru_cache(maxsize=256)
def _compile(source: str):
    try:
        return _env().from_string(source)
    except TemplateError as exc:
        raise ConfigError(f"template syntax error: {exc}") from None


def template_hash(*refs: str | None) -> str:
    return stable_hash([template_source(r) if r else "" for r in refs])[:16]
