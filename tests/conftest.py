"""Shared fixtures: an isolated cache per test, a loopback OpenAI-compatible server, and paths to the
real public datasets in ../shared/datasets (tests that need them skip with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emobench.testing.server import LoopbackServer, ServerConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("EMOBENCH_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache, and none inherits a real API key or URL."""
    monkeypatch.setenv("EMOBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("EMOBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def server():
    """A loopback server with no latency and no faults; tests may change `server.config` fields."""
    with LoopbackServer(ServerConfig()) as srv:
        yield srv


@pytest.fixture
def make_server():
    servers = []

    def factory(**kwargs) -> LoopbackServer:
        srv = LoopbackServer(ServerConfig(**kwargs)).start()
        servers.append(srv)
        return srv

    yield factory
    for srv in servers:
        srv.stop()


def shared_dataset(*parts: str) -> Path:
    """Path of a real public dataset file; skip the test with a clear reason when it is not here."""
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset file {path} not present (the shared datasets folder is only beside "
                    "the developers' checkout); loader tested on fixtures instead")
    return path


def has_embedded_model() -> bool:
    try:
        from emobench.models.llamacpp import embedded_model_path

        embedded_model_path()
        import llama_cpp  # noqa: F401
        return True
    except Exception:
        return False


def run_with_client(server, coro_fn):
    """Run `await coro_fn(client)` with a ModelClient on the loopback server (no cache, quick retries)."""
    import asyncio

    from emobench.client import ModelClient
    from emobench.models import make_backend

    async def main():
        backend = make_backend("openai/loop", base_url=server.base_url)
        client = ModelClient(backend, None, concurrency=4, max_retries=1, backoff_initial=0.01)
        try:
            return await coro_fn(client)
        finally:
            await backend.close()

    return asyncio.run(main())
