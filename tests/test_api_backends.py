"""The openai and litellm backends against a real HTTP server on 127.0.0.1 (no SDK mocks)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import pytest

from emobench.client import ModelClient
from emobench.errors import ModelCallError
from emobench.manifest import RunConfig
from emobench.models import make_backend
from emobench.models.base import Unsupported
from emobench.runner import run
from emobench.types import GenParams, Usage

FEELINGS = str(Path(__file__).parent / "fixtures" / "custom" / "feelings.yaml")
MESSAGES = [{"role": "user", "content": "Say hi"}]


def _client(spec: str, base_url: str, **kwargs) -> ModelClient:
    backend = make_backend(
        spec, kwargs.pop("model_args", None), base_url=base_url, timeout=kwargs.pop("timeout", 5.0)
    )
    return ModelClient(
        backend, None, kwargs.pop("concurrency", 4), backoff_initial=0.01, timeout=5.0, **kwargs
    )


@pytest.mark.parametrize("spec", ["openai/loopback", "litellm/openai/loopback"])
def test_backend_returns_text_and_usage(make_server, spec):
    srv = make_server(answers={"Say hi": "hello there"})
    client = _client(spec, srv.base_url)
    usage = Usage()
    out = asyncio.run(client.chat(MESSAGES, GenParams(max_tokens=8), usage))
    assert out.text == "hello there"
    assert usage.calls == 1 and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert srv.state.requests == 1


@pytest.mark.parametrize("spec", ["openai/loopback", "litellm/openai/loopback"])
def test_retries_429_with_retry_after_then_succeeds(make_server, spec):
    srv = make_server(fault_rate=0.5, faults=("429",), retry_after=0.2, seed=3)
    client = _client(spec, srv.base_url)

    async def go():
        return await asyncio.gather(
            *(client.chat([{"role": "user", "content": f"q{i}"}], GenParams(), Usage()) for i in range(12))
        )

    outs = asyncio.run(go())
    assert len(outs) == 12
    faults = srv.state.faults["429"]
    assert faults > 0 and client.stats.retries == faults
    assert client.stats.retry_after_waits and all(
        w == pytest.approx(0.2) for w in client.stats.retry_after_waits
    )


@pytest.mark.parametrize("fault", ["500", "truncated", "empty_choices", "reset"])
def test_transient_faults_are_retried(make_server, fault):
    srv = make_server(fault_rate=0.5, faults=(fault,), seed=1)
    client = _client("openai/loopback", srv.base_url)

    async def go():
        return await asyncio.gather(
            *(client.chat([{"role": "user", "content": f"q{i}"}], GenParams(), Usage()) for i in range(8))
        )

    assert len(asyncio.run(go())) == 8
    assert srv.state.faults[fault] > 0


def test_hang_past_timeout_becomes_error_after_retries(make_server):
    srv = make_server(fault_rate=1.0, faults=("hang",), hang_seconds=3.0)
    backend = make_backend("openai/loopback", base_url=srv.base_url, timeout=0.3)
    client = ModelClient(backend, None, 2, max_retries=1, timeout=0.3, backoff_initial=0.01)
    with pytest.raises(ModelCallError, match="gave up after 2 attempts"):
        asyncio.run(client.chat(MESSAGES, GenParams(), Usage()))
    assert srv.state.requests == 2


def test_chat_api_reports_loglikelihood_unsupported(make_server):
    srv = make_server()
    client = _client("openai/loopback", srv.base_url)
    with pytest.raises(Unsupported):
        asyncio.run(client.loglikelihood(MESSAGES, [" A", " B"], Usage()))


def test_concurrency_limit_is_respected(make_server, tmp_path):
    srv = make_server(latency=0.05)
    config = RunConfig(
        model="openai/m",
        base_url=srv.base_url,
        task_files=[FEELINGS],
        concurrency=3,
        output=str(tmp_path / "run"),
        use_cache=False,
    )
    collector = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    asyncio.run(run(config))
    assert srv.state.peak_in_flight == 3
    # the run tunes the garbage collector for its own duration only (tests and notebooks run many)
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == collector


def test_cache_serves_repeated_run_without_calls(make_server, tmp_path):
    srv = make_server()
    base = dict(model="openai/m", base_url=srv.base_url, task_files=[FEELINGS])
    asyncio.run(run(RunConfig(**base, output=str(tmp_path / "a"))))
    assert srv.state.requests == 6
    _, results = asyncio.run(run(RunConfig(**base, output=str(tmp_path / "b"))))
    assert srv.state.requests == 6
    assert results["results"][0]["usage"]["cached_calls"] == 6
    a = [json.loads(line)["response"] for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    b = [json.loads(line)["response"] for line in (tmp_path / "b" / "samples.jsonl").read_text().splitlines()]
    assert a == b


def test_multiple_choice_task_falls_back_to_generate_on_chat_api_and_says_so(make_server, tmp_path):
    task = Path(FEELINGS).read_text().replace("metrics:", "output_mode: multiple_choice\nmetrics:")
    (tmp_path / "mc.yaml").write_text(task)
    (tmp_path / "feelings.jsonl").write_text((Path(FEELINGS).parent / "feelings.jsonl").read_text())
    srv = make_server()
    _, results = asyncio.run(
        run(
            RunConfig(
                model="openai/m",
                base_url=srv.base_url,
                task_files=[str(tmp_path / "mc.yaml")],
                output=str(tmp_path / "r"),
            )
        )
    )
    assert "answered by generation" in results["results"][0]["note"]


def test_api_key_is_sent_but_never_written(make_server, tmp_path, monkeypatch):
    canary = "sk-canary-4f1d2c3b9a8e7d6c5b4a"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    srv = make_server()
    out = tmp_path / "run"
    asyncio.run(
        run(
            RunConfig(
                model="openai/m",
                base_url=srv.base_url,
                task_files=[FEELINGS],
                output=str(out),
                cache_path=str(tmp_path / "cache.sqlite"),
            )
        )
    )
    assert any(canary in h for h in srv.state.auth_headers)
    for path in [*out.rglob("*"), *tmp_path.glob("cache.sqlite*")]:
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


# ---- the run seed -----------------------------------------------------------------------------------
# a 26-option question: the loopback server's sampled answer is one of 26 letters, picked by (prompt, seed)
QUESTION = [
    {
        "role": "user",
        "content": "Which feeling?\n" + "\n".join(f"{chr(65 + i)}) option {i}" for i in range(26)),
    }
]
SAMPLED = GenParams(temperature=0.8, max_tokens=8)


def _draws(client: ModelClient, n: int = 6) -> list[str]:
    async def go():
        return [(await client.chat(QUESTION, SAMPLED, Usage(), draw=d)).text for d in range(n)]

    return asyncio.run(go())


@pytest.mark.parametrize("spec", ["openai/loopback", "litellm/openai/loopback"])
def test_run_seed_is_sent_per_request_and_another_seed_gives_other_draws(make_server, spec):
    srv = make_server()
    first = _draws(_client(spec, srv.base_url, seed=1))
    sent = [body["seed"] for body in srv.state.bodies]
    client = _client(spec, srv.base_url, seed=1)
    assert sent == [
        client.request(QUESTION, SAMPLED, d).params.seed for d in range(6)
    ]  # what reached the server
    assert len(set(sent)) == 6  # each draw of a voting protocol has its own seed
    assert _draws(client) == first  # the same seed: the same draws
    assert _draws(_client(spec, srv.base_url, seed=2)) != first  # another seed: other draws
    no_seed = _client(spec, srv.base_url)
    asyncio.run(no_seed.chat(QUESTION, SAMPLED, Usage()))
    assert "seed" not in srv.state.bodies[-1]  # no run seed, nothing sent


def test_seed_is_part_of_the_cache_key_and_independent_of_order(make_server, tmp_path):
    from emobench.cache import ResponseCache

    srv = make_server()
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = make_backend("openai/loopback", base_url=srv.base_url)

    def client(seed):
        return ModelClient(backend, cache, 4, backoff_initial=0.01, seed=seed)

    async def draws_in(order, c):
        replies = await asyncio.gather(*(c.chat(QUESTION, SAMPLED, Usage(), draw=d) for d in order))
        return dict(zip(order, (r.text for r in replies), strict=True))

    forward = asyncio.run(draws_in([0, 1, 2, 3], client(7)))
    assert srv.state.requests == 4
    # a second run with the same seed, asking in another order and concurrency: all from the cache
    assert asyncio.run(draws_in([3, 1, 0, 2], client(7))) == forward and srv.state.requests == 4
    assert asyncio.run(draws_in([0, 1, 2, 3], client(8))) != forward and srv.state.requests == 8
    greedy = GenParams(max_tokens=8)
    assert client(7).request(QUESTION, greedy).params.seed != client(8).request(QUESTION, greedy).params.seed
    cache.close()


def test_litellm_sends_a_seed_only_to_providers_that_take_one(make_server):
    assert make_backend("litellm/openai/loopback", base_url=make_server().base_url).sends_seed
    # litellm refuses the whole call when given a parameter the provider does not have
    assert not make_backend("litellm/anthropic/claude-3-5-sonnet-latest").sends_seed


def test_api_backends_report_their_sdk_version_as_environment(make_server):
    import openai

    srv = make_server()
    assert make_backend("openai/m", base_url=srv.base_url).environment() == {"openai": openai.__version__}
    assert set(make_backend("litellm/openai/m", base_url=srv.base_url).environment()) == {"litellm"}
    assert make_backend("random").environment() == {}
