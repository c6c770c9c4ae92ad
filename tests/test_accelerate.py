"""Fine-tuning under ``accelerate launch`` with two CPU processes: the one training loop runs
data parallel, both processes end with the same weights, and only the main process saves.

``accelerate launch --cpu --num_processes 2`` starts one process unless mpirun is installed
(accelerate's multi-CPU launcher is MPI); ``--multi_gpu --num_processes 2`` starts two through
torchrun, and ``train`` builds its Accelerator with ``cpu=True`` because the model is on the CPU
(gloo backend). The test uses the latter, which runs anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import hashlib, json, os, sys
    from pathlib import Path

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from warnframe.config import load_config
    from warnframe.corpus import build_finetune_set
    from warnframe.lm.models.tiny import train_tokenizer
    from warnframe.lm.training import count_tokens, is_main_process, pack, train, wait_for_everyone, world_size

    out = Path(sys.argv[1])
    cfg = load_config("smoke", overrides=["corpus.token_budget=2000"])
    examples, _ = build_finetune_set("L1", cfg, 0, lambda t: len(t.split()))
    tok = train_tokenizer((e.assistant for e in examples), 300)
    torch.manual_seed(0)  # the same initial weights on every process
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None))
    data = pack(tok, examples, 64)
    summary = train(model, data, epochs=1.0, lr=1e-3, batch_size=4, seed=0)
    digest = hashlib.sha256(b"".join(p.detach().float().numpy().tobytes() for p in model.parameters())).hexdigest()
    rank = int(os.environ.get("RANK", "0"))
    (out / f"rank{rank}.json").write_text(json.dumps({"world": world_size(), "digest": digest, "summary": summary}))
    if is_main_process():  # what Study.finetune_one does: only the main process saves
        model.save_pretrained(out / "model")
    wait_for_everyone()
''')


def _free_port() -> int:
    """A port nobody holds now: a fixed one fails when an earlier run's socket lingers."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_finetune_under_accelerate_launch_two_cpu_processes(tmp_path):
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if launcher is None:
        pytest.skip("accelerate CLI not installed")
    script = tmp_path / "ft.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(_free_port()), str(script), str(tmp_path)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["digest"] == r1["digest"]  # gradients were averaged: both processes hold the same model
    assert r0["summary"]["processes"] == 2 and r0["summary"]["steps"] == r1["summary"]["steps"] >= 1
    assert r0["summary"]["final_loss"] == pytest.approx(r1["summary"]["final_loss"])  # losses reduced over processes
    assert (tmp_path / "model" / "config.json").is_file()


def test_single_process_helpers():
    from warnframe.lm.training import is_main_process, wait_for_everyone, world_size

    assert world_size() == 1 and is_main_process()
    wait_for_everyone()  # a no-op
