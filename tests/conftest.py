"""Shared fixtures: an isolated cache per test, a loopback OpenAI-compatible server, and paths to the
real public datasets in ../shared/datasets (tests that need them skip with a reason when absent)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from emobench.testing.server import LoopbackServer, ServerConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("EMOBENCH_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHROMIUM = os.environ.get("EMOBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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
        pytest.skip(
            f"real dataset file {path} not present (the shared datasets folder is only beside "
            "the developers' checkout); loader tested on fixtures instead"
        )
    return path


def loop_run_args(base_url: str, task_file: Path | None = None) -> list[str]:
    """`emobench run` against a loopback server (the start of a command line; tests add the rest)."""
    args = ["run", "--model", "openai/loop", "--base-url", base_url]
    return [*args, "--task-file", str(task_file)] if task_file else args


def build_site(root: Path, *runs: Path, out: Path | None = None) -> Path:
    """`emobench leaderboard build ROOT/board.yaml` over `runs` (default ROOT/runs); returns the site."""
    from emobench.cli import main

    out = out or root / "site"
    runs = runs or (root / "runs",)
    assert (
        main(["leaderboard", "build", str(root / "board.yaml"), "--out", str(out), "--runs", *map(str, runs)])
        == 0
    )
    return out


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


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Nina felt joy when the letter arrived.",
    "Omar was sad and tired after the long day.",
    "Which one is a feeling? A) chair B) hope C) seven",
    "Reply with the letter of the answer.",
] * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer random Llama + a byte-level BPE tokenizer trained here, saved like a hub checkpoint."""
    pytest.importorskip(
        "transformers", reason="transformers not installed: pip install torch, then 'emobench[hf]'"
    )
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.bos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def browser(site):
    """Headless Chromium for the site tests (the requesting module's `site` fixture). Started after the
    site is built: the runs use asyncio.run, which playwright's loop would block."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="python playwright is not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
