"""GPU paths of the local backends (hf on CUDA in bfloat16, vllm). Skipped with a reason without CUDA;
benchmarks/gpu_check.py runs the same checks as one script on a GPU machine."""

from __future__ import annotations

import asyncio

import pytest
from test_local_backends import MSGS

torch = pytest.importorskip("torch", reason="torch not installed")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


def test_hf_on_cuda_shared_prefix_matches_per_option_and_batches(tiny_model_dir):
    from emobench.models import make_backend
    from emobench.types import ChatRequest, GenParams

    backend = make_backend(f"hf/{tiny_model_dir}", {"dtype": "float32"})
    assert backend.device.startswith("cuda")
    conts = [" A", " B", " hope and joy"]
    shared = backend.score_options(MSGS, conts)
    backend.ll_mode = "per_option"
    assert shared == pytest.approx(backend.score_options(MSGS, conts), abs=1e-3)
    params = GenParams(max_tokens=4)

    async def many():
        return await asyncio.gather(
            *(
                backend.generate([ChatRequest(({"role": "user", "content": f"n {i}"},), params)])
                for i in range(8)
            )
        )

    assert len(asyncio.run(many())) == 8 and max(backend._batcher.batch_sizes) > 1


def test_vllm_generates_and_scores_options(tiny_model_dir):
    pytest.importorskip("vllm", reason="vllm not installed: pip install 'emobench[vllm]'")
    from emobench.models import make_backend
    from emobench.types import ChatRequest, GenParams

    backend = make_backend(f"vllm/{tiny_model_dir}", {"gpu_memory_utilization": 0.3, "max_model_len": 256})
    out = asyncio.run(backend.generate([ChatRequest(tuple(MSGS), GenParams(max_tokens=4))]))[0]
    assert out.completion_tokens > 0
    hf = make_backend(f"hf/{tiny_model_dir}", {"dtype": "float32"})
    conts = [" A", " B"]
    assert asyncio.run(backend.loglikelihood(MSGS, conts)) == pytest.approx(
        hf.score_options(MSGS, conts), abs=5e-2
    )


def test_hf_on_cuda_records_its_environment_and_samples_each_row_with_its_own_seed(tiny_model_dir):
    from emobench.models import make_backend
    from emobench.types import ChatRequest, GenParams

    backend = make_backend(f"hf/{tiny_model_dir}", {"dtype": "float32"})
    env = backend.environment()
    assert (
        env["device"].startswith("cuda")
        and env["cuda"]
        and env["gpu"]
        and "cuda" not in str(backend.identity())
    )
    requests = [
        ChatRequest(
            ({"role": "user", "content": f"n {i}"},), GenParams(temperature=1.0, max_tokens=4, seed=7 + i)
        )
        for i in range(3)
    ]

    async def together():
        return [c[0].text for c in await asyncio.gather(*(backend.generate([r]) for r in requests))]

    assert asyncio.run(together()) == [asyncio.run(backend.generate([r]))[0].text for r in requests]
