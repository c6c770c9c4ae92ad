"""JumpReLU SAEs: Gemma Scope file layout, encode formula, hub errors, training, quality."""

import json
import time

import numpy as np
import pytest
import torch

from warnframe.mech.sae import JumpReLUSAE, sae_quality, train_sae
from warnframe.runtime.errors import UserError


def test_load_encode_decode_and_round_trip(tmp_path, random_sae):
    # Gemma Scope's params.npz: random biases and thresholds, so the formula below is exercised in full
    with np.load(random_sae(24, 40, seed=0, dec_scale=1.0, bias_scale=1.0, threshold=None, path=tmp_path / "params.npz")) as f:
        arrays = dict(f)
    sae = JumpReLUSAE.load(tmp_path)  # a folder holding params.npz, as on the hub
    assert (sae.d_model, sae.width) == (24, 40)
    x = np.random.default_rng(1).normal(size=(5, 24)).astype(np.float32)
    pre = x @ arrays["W_enc"] + arrays["b_enc"]
    f = np.maximum(pre, 0) * (pre > arrays["threshold"])
    with torch.no_grad():
        np.testing.assert_allclose(sae.encode(torch.from_numpy(x)).numpy(), f, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sae(torch.from_numpy(x)).numpy(), f @ arrays["W_dec"] + arrays["b_dec"],
                                   rtol=1e-4, atol=1e-4)

    sae.meta["site"] = "blocks.1.hook_resid_post"
    out = sae.save(tmp_path / "mine")
    assert out == tmp_path / "mine" / "params.npz"
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)
        for k, v in arrays.items():
            assert npz[k].dtype == np.float32
            np.testing.assert_array_equal(npz[k], v)
    meta = json.loads((tmp_path / "mine" / "params.json").read_text())
    assert meta["site"] == "blocks.1.hook_resid_post" and (meta["d_model"], meta["width"]) == (24, 40)
    again = JumpReLUSAE.load(out)
    assert again.meta["site"] == "blocks.1.hook_resid_post"
    for k in arrays:
        assert torch.equal(getattr(again, k), getattr(sae, k))


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        JumpReLUSAE.load(tmp_path / "nothing.npz")
    np.savez(tmp_path / "partial.npz", W_enc=np.zeros((2, 3), np.float32))
    with pytest.raises(UserError, match="lack"):
        JumpReLUSAE.load(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(UserError, match="cannot read"):
        JumpReLUSAE.load(tmp_path / "junk.npz")


def test_hub_spec_offline_without_cache_is_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        JumpReLUSAE.load("hf://google/gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71", cache_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "layer_20/width_16k/average_l0_71/params.npz" in msg


def test_saelens_spec_needs_sae_lens():
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install sae-lens"):
            JumpReLUSAE.load("saelens://gemma-scope-2b-pt-res-canonical/layer_20/width_16k/canonical")
    else:
        pytest.skip("sae_lens is installed; this checks the message when it is not")


def test_sae_quality_of_an_exact_autoencoder():
    d = 6
    sae = JumpReLUSAE.from_arrays({"W_enc": np.eye(d), "W_dec": np.eye(d), "b_enc": np.zeros(d),
                                   "b_dec": np.zeros(d), "threshold": np.zeros(d)})
    x = torch.rand(50, d) + 0.1
    x[:, 5] = 0.0  # latent 5 never fires
    q = sae_quality(sae, x)
    assert q["fvu"] < 1e-10 and q["l0"] == 5 and q["dead"] == pytest.approx(1 / 6) and q["n"] == 50


def _sparse_data(n=8000, d=32, atoms=64, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(atoms, d, generator=g)
    dictionary /= dictionary.norm(dim=-1, keepdim=True)
    codes = torch.zeros(n, atoms)
    idx = torch.rand(n, atoms, generator=g).argsort(-1)[:, :k]
    codes.scatter_(1, idx, torch.rand(n, k, generator=g) * 2 + 0.5)
    return codes @ dictionary + 0.01 * torch.randn(n, d, generator=g) + 3.0


@pytest.fixture
def one_thread():
    """Ops this small run faster on one thread (and far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_sae_on_a_known_dictionary(tmp_path, one_thread):
    x = _sparse_data()
    start = time.perf_counter()
    sae = train_sae(x, width=128, l0_target=3, steps=200, batch_size=512, seed=0, meta={"site": "synthetic"})
    seconds = time.perf_counter() - start
    q = sae_quality(sae, x)
    assert q["fvu"] < 0.3, q
    assert 1.5 < q["l0"] < 6, q
    assert seconds < 15
    assert sae.meta["site"] == "synthetic" and sae.meta["training"]["l0_target"] == 3
    assert torch.all(sae.threshold > 0)  # a real JumpReLU threshold, not ReLU

    again = train_sae(x[:2000], width=128, l0_target=3, steps=20, batch_size=256, seed=5)
    same = train_sae(x[:2000], width=128, l0_target=3, steps=20, batch_size=256, seed=5)
    assert torch.equal(again.W_enc, same.W_enc)  # seeded

    reloaded = JumpReLUSAE.load(sae.save(tmp_path / "sae"))
    assert sae_quality(reloaded, x)["fvu"] == pytest.approx(q["fvu"], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_sae_on_cuda():
    x = _sparse_data().cuda()
    sae = train_sae(x, width=128, l0_target=3, steps=200, batch_size=512, seed=0)
    assert sae_quality(sae.cuda(), x)["fvu"] < 0.3
