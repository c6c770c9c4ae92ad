"""Sites and edits on tiny random-init transformers models (Llama, Gemma 2, Qwen 2, GPT-2, peft)."""

import pytest
import torch
from torch import nn

from warnframe.mech.hooks import Site, capture, decoder_layers, edit, project_out, replace, sae_latent_edit
from warnframe.runtime.errors import UserError

D = 32  # the width of conftest's random_lm models (3 layers, a vocabulary of 100)
ARCHS = ("gemma2", "gpt2", "llama", "qwen2")


def _final_norm(model):
    return model.transformer.ln_f if hasattr(model, "transformer") else model.model.norm


@pytest.fixture(scope="module")
def llama(random_lm):
    return random_lm("llama")


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))


def _acts(model, ids, layers=(0, 1, 2)):
    cap = capture()
    with edit(model, list(layers), cap), torch.no_grad():
        logits = model(ids).logits
    return cap, logits


def test_site_parse_and_str():
    site = Site.parse("blocks.20.hook_resid_post")
    assert site == Site(20) and str(site) == "blocks.20.hook_resid_post"
    assert Site.parse(3) == Site(3) and Site.parse(site) is site
    for bad in ("blocks.x.hook_resid_post", "blocks.2.hook_resid_pre", "layer 2", -1):
        with pytest.raises(UserError):
            Site.parse(bad)


@pytest.mark.parametrize("name", ARCHS)
def test_decoder_layers_and_capture_match_hidden_states(name, ids, random_lm):
    model = random_lm(name)
    layers = decoder_layers(model)
    expected = model.transformer.h if name == "gpt2" else model.model.layers
    assert layers is expected and len(layers) == 3
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    cap, _ = _acts(model, ids)
    for layer in (0, 1):  # blocks.L.hook_resid_post == hidden_states[L + 1]
        torch.testing.assert_close(cap[layer], hidden[layer + 1])
    with torch.no_grad():  # the last entry of hidden_states has the final norm applied
        torch.testing.assert_close(_final_norm(model)(cap[2]), hidden[3])


def test_decoder_layers_through_peft(random_lm):
    from peft import LoraConfig, get_peft_model

    base = random_lm("llama")
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert decoder_layers(peft_model) is base.model.layers
    cap = capture()
    with edit(peft_model, "blocks.1.hook_resid_post", cap), torch.no_grad():
        peft_model(torch.tensor([[1, 2, 3]]))
    assert cap[1].shape == (1, 3, D)


def test_edit_changes_later_layers_only_and_is_removed(llama, ids):
    before, logits_before = _acts(llama, ids)

    def shift(h, layer):
        return h + 1.0

    after = capture()
    with edit(llama, "blocks.1.hook_resid_post", shift), edit(llama, [0, 1, 2], after), torch.no_grad():
        logits_edit = llama(ids).logits
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[1], before[1] + 1.0)
    assert not torch.allclose(after[2], before[2]) and not torch.allclose(logits_edit, logits_before)
    _, logits_again = _acts(llama, ids)
    torch.testing.assert_close(logits_again, logits_before)
    assert all(not layer._forward_hooks for layer in decoder_layers(llama))


def test_hooks_removed_on_exception(llama, ids):
    with pytest.raises(RuntimeError, match="boom"):
        with edit(llama, 1, lambda h, layer: h * 0):
            raise RuntimeError("boom")
    assert all(not layer._forward_hooks for layer in decoder_layers(llama))


def test_edit_past_last_layer_is_user_error(llama):
    with pytest.raises(UserError):
        with edit(llama, 3, lambda h, layer: None):
            pass


class _TupleBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, h):
        return self.lin(h), "extra"


class _TupleModel(nn.Module):
    """Layers that return a tuple, as older transformers versions and some architectures do."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(_TupleBlock() for _ in range(2))

    def forward(self, h):
        outs = []
        for layer in self.layers:
            out = layer(h)
            outs.append(out)
            h = out[0]
        return outs


def test_edit_keeps_tuple_outputs():
    model = _TupleModel()
    h = torch.randn(1, 3, 4)
    plain = model(h)
    with edit(model, 0, lambda x, layer: x + 2.0):
        edited = model(h)
    assert edited[0][1] == "extra"
    torch.testing.assert_close(edited[0][0], plain[0][0] + 2.0)


@pytest.fixture
def sae(random_sae):
    return random_sae(D, 16, seed=0, dec_scale=0.1, threshold=0.1)


def test_sae_latent_edit_identity_and_clamp(llama, ids, sae):
    idx = [2, 5, 9]
    base, logits = _acts(llama, ids, layers=(1,))
    for scale, expect in [(1.0, 0.0), (0.0, -1.0), (3.0, 2.0)]:
        after = capture()
        with edit(llama, 1, sae_latent_edit(sae, idx, scale)), edit(llama, 1, after), torch.no_grad():
            out = llama(ids).logits
        with torch.no_grad():
            f = sae.encode(base[1])[..., idx]
            contribution = f @ sae.W_dec[idx]
        assert f.abs().sum() > 0  # the chosen latents do fire here
        torch.testing.assert_close(after[1], base[1] + expect * contribution)
        if scale == 1.0:
            assert torch.equal(out, logits)


def test_project_out_is_orthogonal(llama, ids):
    g = torch.Generator().manual_seed(3)
    dirs = torch.randn(3, D, generator=g)
    dirs = torch.cat([dirs, dirs[:1] * 2])  # a dependent direction adds nothing to the span
    base, _ = _acts(llama, ids, layers=(1,))
    after = capture()
    with edit(llama, 1, project_out(dirs)), edit(llama, 1, after), torch.no_grad():
        llama(ids)
    assert (after[1] @ dirs.T).abs().max() < 1e-4
    q, _ = torch.linalg.qr(dirs[:3].T)
    torch.testing.assert_close(after[1], base[1] - (base[1] @ q) @ q.T)


def test_project_out_keeps_gradients(llama, ids):
    dirs = torch.randn(2, D, generator=torch.Generator().manual_seed(4))
    with edit(llama, 1, project_out(dirs)):
        loss = llama(ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for p in decoder_layers(llama)[0].parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    llama.zero_grad(set_to_none=True)


def test_replace_patches_activations(llama, ids):
    other = torch.randint(0, 100, ids.shape, generator=torch.Generator().manual_seed(5))
    src, logits_src = _acts(llama, other)
    with edit(llama, 1, replace(src[1])), torch.no_grad():  # all positions: downstream follows the source
        logits = llama(ids).logits
    torch.testing.assert_close(logits, logits_src)

    base, _ = _acts(llama, ids)
    after = capture()
    with edit(llama, 1, replace(src, positions=[4])), edit(llama, [1, 2], after), torch.no_grad():
        llama(ids)
    torch.testing.assert_close(after[1][:, 4], src[1][:, 4])
    torch.testing.assert_close(after[1][:, :4], base[1][:, :4])
    torch.testing.assert_close(after[2][:, :4], base[2][:, :4])  # causal: earlier tokens unchanged
    assert not torch.allclose(after[2][:, 4:], base[2][:, 4:])


def test_capture_with_mask_keeps_rows(llama, ids):
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    mask[0, 3] = mask[1, 5] = mask[1, 6] = True
    base, _ = _acts(llama, ids, layers=(1,))
    cap = capture(mask)
    with edit(llama, 1, cap), torch.no_grad():
        llama(ids)
    torch.testing.assert_close(cap[1], base[1][mask])


@pytest.mark.parametrize("name", ["llama", "gemma2", "gpt2"])
def test_capture_during_cached_generation(name, random_lm):
    model = random_lm(name)
    prompt = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    new = 4
    kwargs = dict(max_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0)
    everything, generated = capture(), capture(skip_prefill=True)
    with edit(model, 1, everything), edit(model, 1, generated), torch.no_grad():
        seqs = model.generate(prompt, **kwargs)
    assert seqs.shape[1] == prompt.shape[1] + new
    assert everything[1].shape == (2, prompt.shape[1] + new - 1, D)
    assert generated[1].shape == (2, new - 1, D)
    teacher, _ = _acts(model, seqs[:, :-1], layers=(1,))  # the same tokens, one teacher-forced pass
    torch.testing.assert_close(everything[1], teacher[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(generated[1], teacher[1][:, prompt.shape[1]:], atol=1e-4, rtol=1e-4)

    with edit(model, 1, project_out(torch.eye(D)[:4])), torch.no_grad():  # edits apply under generate
        steered = capture(skip_prefill=True)
        with edit(model, 1, steered):
            model.generate(prompt, **kwargs)
    assert steered[1][..., :4].abs().max() < 1e-5


def test_bf16_model_edits(ids, random_lm, sae):
    model = random_lm("llama").to(torch.bfloat16)
    cap = capture(float32=False)
    with edit(model, 1, sae_latent_edit(sae, [1, 2], 0.0)), edit(model, 1, project_out(torch.eye(D)[:2])), \
            edit(model, 1, cap), torch.no_grad():
        logits = model(ids).logits
    assert cap[1].dtype == torch.bfloat16 and logits.dtype == torch.bfloat16
    assert torch.isfinite(logits.float()).all()
    assert cap[1][..., :2].float().abs().max() < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_edits_on_cuda_bf16(ids, random_lm, sae):  # the SAE stays on the CPU: the edit moves what it needs
    model = random_lm("llama").to("cuda", torch.bfloat16)
    ids = ids.cuda()
    cap = capture()
    with edit(model, 1, sae_latent_edit(sae, [1, 2], 0.0)), edit(model, 1, project_out(torch.eye(D)[:2])), \
            edit(model, 1, cap), torch.no_grad():
        model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert cap[1].device.type == "cpu" and cap[1].dtype == torch.float32
    assert cap[1][..., :2].abs().max() < 1e-2
    with edit(model, 1, replace(cap[1][:, : ids.shape[1]])), torch.no_grad():
        assert torch.isfinite(model(ids).logits.float()).all()
