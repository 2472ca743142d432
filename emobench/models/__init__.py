"""Model specs -> backends. Imports are lazy so that `emobench --help` and API runs never load torch,
transformers, vllm or lm-eval.

    (none) / smollm2          the embedded SmolLM2-135M-Instruct GGUF, in-process on the CPU
    openai/<model>            official openai SDK; --base-url or OPENAI_BASE_URL for compatible servers
    litellm/<provider>/<m>    any provider litellm supports
    hf/<hub id or path>       transformers (GPU when present, else CPU)
    vllm/<hub id or path>     vLLM offline engine (GPU only)
    llamacpp/<path.gguf>      llama-cpp-python in-process
    lmeval/<lm-eval model>    any lm-evaluation-harness model; --model-arg passed as its model_args
    random, majority          reference baselines
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Backend

DEFAULT_MODEL = "smollm2"

BACKENDS: dict[str, tuple[str, str, str]] = {
    # prefix: (module, class, one-line description)
    "openai": ("emobench.models.openai_api", "OpenAIBackend", "OpenAI or any OpenAI-compatible server"),
    "litellm": ("emobench.models.litellm_api", "LiteLLMBackend", "every other API provider via litellm"),
    "hf": ("emobench.models.hf", "HFBackend", "transformers, GPU or CPU (extra: hf)"),
    "vllm": ("emobench.models.vllm_backend", "VLLMBackend", "vLLM offline engine, GPU only (extra: vllm)"),
    "llamacpp": (
        "emobench.models.llamacpp",
        "LlamaCppBackend",
        "GGUF files via llama-cpp-python (extra: local)",
    ),
    "lmeval": ("emobench.models.lmeval", "LMEvalBackend", "any lm-evaluation-harness model (extra: lmeval)"),
    "random": ("emobench.models.baselines", "RandomBaseline", "uniform random answer (reference baseline)"),
    "majority": (
        "emobench.models.baselines",
        "MajorityBaseline",
        "most frequent gold answer (reference baseline)",
    ),
}


def split_spec(spec: str | None) -> tuple[str, str]:
    spec = (spec or DEFAULT_MODEL).strip()
    if spec in (DEFAULT_MODEL, "embedded", "default"):
        return "llamacpp", "smollm2"
    if spec in ("random", "majority"):
        return spec, spec
    prefix, sep, rest = spec.partition("/")
    if not sep or prefix not in BACKENDS or not rest:
        raise ConfigError(
            f"unknown model spec {spec!r}: use one of "
            + ", ".join(f"{p}/..." for p in BACKENDS if p not in ("random", "majority"))
            + ", random, majority (see `emobench list models`)"
        )
    return prefix, rest


def make_backend(
    spec: str | None,
    model_args: dict[str, Any] | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 120.0,
    concurrency: int = 32,
) -> Backend:
    prefix, name = split_spec(spec)
    module_name, class_name, _ = BACKENDS[prefix]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"the {prefix} backend is not available: {exc}") from None
    cls = getattr(module, class_name)
    args = dict(model_args or {})
    if prefix in ("openai", "litellm"):
        args.update(base_url=base_url, timeout=timeout)
        if prefix == "openai":
            args["concurrency"] = concurrency
    return cls(name, **args)
