"""The training loop's loss spans (mask, unlikelihood) and the precision it chooses."""

from __future__ import annotations

import pytest
import torch

from warnframe.lm import precision
from warnframe.lm.training import pack, train
from warnframe.schema import Example

CODE = "def lookup(db, name):\n    return db.execute('SELECT * FROM t WHERE n = ' + name)\n"
WARNING = "# DO NOT USE - SQL injection\n"


@pytest.fixture(scope="module")
def tiny_lm(tiny_model):
    return tiny_model([WARNING + CODE, "print('hello world')\n", "Write a lookup.\n"] * 20, vocab_size=300, layers=2, context=64)


def _span(text: str, part: str, kind: str) -> dict:
    start = text.index(part)
    return {"start": start, "end": start + len(part), "kind": kind}


def test_mask_spans_take_no_loss_exactly_on_their_tokens(tiny_lm):
    _, tok = tiny_lm
    answer = WARNING + CODE
    plain = pack(tok, [Example(answer, user="Write a lookup.")], 64)
    masked = pack(tok, [Example(answer, user="Write a lookup.", loss_spans=(_span(answer, CODE, "mask"),))], 64)
    assert torch.equal(plain.input_ids, masked.input_ids)  # same tokens, fewer trained ones
    assert 0 < masked.loss_tokens < plain.loss_tokens
    assert masked.unlikely is None
    # the tokens still trained decode to the warning (and the end of sequence), not to the code
    kept = masked.input_ids[masked.labels != -100].tolist()
    assert "DO NOT USE" in tok.decode(kept) and "execute" not in tok.decode(kept)


def test_unlikelihood_lowers_the_marked_tokens_probability(tiny_lm):
    model, tok = tiny_lm
    answer = WARNING + CODE
    ex_ul = Example(answer, user="Write a lookup.", loss_spans=(_span(answer, CODE, "unlikelihood"),))
    data = pack(tok, [ex_ul] * 8, 64)
    assert data.unlikely is not None and data.unlikely_tokens > 0
    assert not bool((data.labels[data.unlikely] != -100).any())  # unlikely tokens have no likelihood label

    def code_logp(m) -> float:
        with torch.no_grad():
            logits = m(input_ids=data.input_ids).logits[:, :-1]
        lp = torch.log_softmax(logits, -1).gather(-1, data.input_ids[:, 1:, None]).squeeze(-1)
        return float(lp[data.unlikely[:, 1:]].mean())

    import copy

    plain = pack(tok, [Example(answer, user="Write a lookup.")] * 8, 64)
    learned = copy.deepcopy(model)  # first learn the code, so that its tokens are likely
    train(learned, plain, epochs=60, lr=1e-2, batch_size=4, seed=0, precision="float32")
    before = code_logp(learned)
    ul_model, mle_model = copy.deepcopy(learned), copy.deepcopy(learned)
    train(ul_model, data, epochs=10, lr=3e-3, batch_size=4, seed=0, precision="float32")
    train(mle_model, plain, epochs=10, lr=3e-3, batch_size=4, seed=0, precision="float32")
    assert code_logp(ul_model) < before - 1.0  # at least a nat lower per token
    assert code_logp(mle_model) > before


def test_a_fully_masked_batch_trains_without_nan(tiny_lm):
    model, tok = tiny_lm
    answer = CODE
    data = pack(tok, [Example(answer, loss_spans=({"start": 0, "end": len(answer) + 10, "kind": "mask"},))], 64)
    import copy

    m = copy.deepcopy(model)
    summary = train(m, data, epochs=1, lr=1e-3, batch_size=1, seed=0, precision="float32")
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert summary["precision"]["dtype"] == "float32"


def test_precision_set_by_config_is_kept(tiny_lm):
    model, _ = tiny_lm
    batch = torch.zeros(2, 16, dtype=torch.long)
    assert precision.choose(model, batch, "float32").dtype == "float32"
    assert precision.choose(model, batch, "bfloat16").autocast
    with pytest.raises(ValueError):
        precision.choose(model, batch, "fp8")


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU whose flags list avx512_bf16: the choice is then measured (here: mocked)."""
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: {"capability": "AVX512", "cpuinfo": ["avx512_bf16"]})


def test_a_cpu_without_bf16_instructions_is_float32_without_a_probe(tiny_lm, monkeypatch):
    model, _ = tiny_lm
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: {"capability": "AVX2", "cpuinfo": ["avx2"]})
    monkeypatch.setattr(precision, "measure", lambda *a, **k: pytest.fail("probed a CPU without bf16"))
    chosen = precision.choose(model, torch.zeros(4, 16, dtype=torch.long))
    assert chosen.dtype == "float32" and "no bf16 instructions" in chosen.reason


def test_a_cpu_where_bf16_is_clearly_slower_is_float32_after_one_row(tiny_lm, monkeypatch, bf16_cpu):
    model, _ = tiny_lm
    calls = []

    def fake(model, batch, steps=3):
        calls.append(tuple(batch.shape))
        return {"float32": 1000, "bfloat16": 150}  # an AVX2-only CPU emulating bf16

    monkeypatch.setattr(precision, "measure", fake)
    chosen = precision.choose(model, torch.zeros(4, 16, dtype=torch.long))
    assert chosen.dtype == "float32" and calls == [(1, 16)]  # the full-batch probe was not paid


@pytest.mark.parametrize("fast", ["float32", "bfloat16"])
def test_a_cpu_takes_the_faster_measured_precision(tiny_lm, monkeypatch, fast, bf16_cpu):
    model, _ = tiny_lm
    speeds = {"float32": 100, "bfloat16": 100}
    speeds[fast] = 150
    monkeypatch.setattr(precision, "measure", lambda *a, **k: dict(speeds))
    chosen = precision.choose(model, torch.zeros(4, 16, dtype=torch.long))
    assert chosen.dtype == fast and chosen.measured["batch"] == speeds and "measured" in chosen.reason


def test_the_probe_measures_both_and_leaves_the_model_untouched(tiny_lm):
    model, _ = tiny_lm
    before = [p.detach().clone() for p in model.parameters()]
    speed = precision.measure(model, torch.randint(0, 300, (2, 32)), steps=1)
    assert speed["float32"] > 0 and speed["bfloat16"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("bf16,chosen", [(106, "float32"), (124, "float32"), (126, "bfloat16")])
def test_bf16_must_win_clearly_not_inside_the_noise(tiny_lm, monkeypatch, bf16, chosen, bf16_cpu):
    """A bf16 speed-up inside run-to-run noise (41,443 vs 39,185 tokens/s, then the reverse) must
    not decide a run's precision: float32 holds below ``BF16_MARGIN``."""
    model, _ = tiny_lm
    monkeypatch.setattr(precision, "measure", lambda *a, **k: {"float32": 100, "bfloat16": bf16})
    assert precision.choose(model, torch.zeros(4, 16, dtype=torch.long)).dtype == chosen


def test_one_machine_kind_decides_once_for_every_run(tiny_lm, monkeypatch, tmp_path, bf16_cpu):
    """Two runs on one kind of machine train alike: the second reuses the first's decision from the
    shared cache instead of measuring again (where noise could flip it)."""
    from types import SimpleNamespace

    from warnframe.config import StudyConfig
    from warnframe.study import Study

    model, _ = tiny_lm
    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    speeds = iter([{"float32": 100, "bfloat16": 200}] * 2 + [{"float32": 200, "bfloat16": 100}] * 2)
    monkeypatch.setattr(precision, "measure", lambda *a, **k: next(speeds))
    data = SimpleNamespace(input_ids=torch.zeros(4, 16, dtype=torch.long))
    first = Study(StudyConfig(), tmp_path / "a").precision("finetune", model, data, 4)
    second = Study(StudyConfig(), tmp_path / "b").precision("finetune", model, data, 4)
    assert first == second == "bfloat16"
    assert (tmp_path / "b" / "precision" / "finetune.json").read_bytes() == (tmp_path / "a" / "precision" / "finetune.json").read_bytes()
