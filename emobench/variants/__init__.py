"""Variants by name. Modules are imported on demand (retrieval variants pull in bm25s/numpy)."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Variant, VariantOutput

VARIANTS: dict[str, tuple[str, str, str]] = {
    "direct": ("emobench.variants.direct", "Direct", "the task's prompt as is (default)"),
    "cot": (
        "emobench.variants.cot",
        "ChainOfThought",
        "reason step by step, then answer in the task's format",
    ),
    "rag": ("emobench.variants.rag", "RAG", "retrieve chunks of the sample's long context (BM25 or dense)"),
    "coem": (
        "emobench.variants.coem",
        "CoEM",
        "LongEmotion's 5-stage collaborative pipeline with a sage model",
    ),
    "refine": ("emobench.variants.refine", "Refine", "APOLO-style multi-agent instruction refinement on dev"),
    "fewshot": ("emobench.variants.fewshot", "FewShot", "k retrieved demonstrations from the train split"),
    "confidence": (
        "emobench.variants.confidence",
        "StatedConfidence",
        "the task's prompt, and the model states its confidence (0-100) in the reply's JSON",
    ),
    "permute": (
        "emobench.variants.permute",
        "Permute",
        "each sample in k cyclic option orders: per-order scores, spread, consistency, position bias",
    ),
    "paraphrase": (
        "emobench.variants.paraphrase",
        "Paraphrase",
        "the task's wording and 3+ rewordings of its instructions: per-template scores and spread",
    ),
}


def make_variant(name: str, args: dict[str, Any] | None = None) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    module_name, class_name, _ = VARIANTS[name]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"variant {name} is not available: {exc}") from None
    mine: dict[str, Any] = {}
    for key, value in (args or {}).items():
        if "." in key:
            vname, _, sub = key.partition(".")
            if vname == name:
                mine[sub] = value
        elif key in cls.arg_defaults:
            mine[key] = value
    return cls(**mine)


__all__ = ["VARIANTS", "Variant", "VariantOutput", "make_variant"]
