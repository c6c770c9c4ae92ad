"""The SAE protocol, the loader by spec and its registry, the SAELens adapter, and §5's artifacts
deciding their usability from their own files."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from warnframe.mech import artifacts as A
from warnframe.mech import sae_protocol as P
from warnframe.mech.edits import caft_directions
from warnframe.mech.hooks import Site, sae_latent_edit
from warnframe.mech.probes import LinearProbe
from warnframe.mech.sae import JumpReLUSAE, sae_quality
from warnframe.mech.sae_protocol import SAE, SAEKind, kind_for, load_sae, register
from warnframe.mech.saelens import SAELensSAE
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import write_json
from warnframe.runtime.store import Store

FIXTURES = Path(__file__).parent / "data" / "saelens"  # written by SAELens itself: make_fixtures.py there
ARCHS = ("standard", "jumprelu", "topk", "gated")


def _reference(arch):
    return load_file(FIXTURES / arch / "reference.safetensors")


@pytest.fixture
def jumprelu(random_sae) -> JumpReLUSAE:
    """Our own SAE (Gemma Scope's layout), every parameter random: 8 → 16."""
    return random_sae(8, 16, seed=0, dec_scale=1.0, bias_scale=0.3, threshold=None)


# ---------------------------------------------------------------- the SAELens adapter


@pytest.mark.parametrize("arch", ARCHS)
def test_saelens_folder_encodes_and_decodes_as_saelens(arch):
    ref = _reference(arch)
    sae = load_sae(FIXTURES / arch)
    assert isinstance(sae, SAELensSAE) and isinstance(sae, SAE)
    assert (sae.d_model, sae.d_sae, sae.width) == (8, 16, 16)
    assert sae.meta["architecture"] == arch and sae.meta["hook_name"] == "blocks.1.hook_resid_post"
    assert sae.meta["source"] == str(FIXTURES / arch)
    with torch.no_grad():
        f = sae.encode(ref["x"])
        torch.testing.assert_close(f, ref["f"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.decode(ref["f"]), ref["x_hat"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae(ref["x"]), ref["x_hat"], rtol=1e-5, atol=1e-5)
    again = load_sae(FIXTURES / arch / "sae_weights.safetensors")  # a file in the folder names it too
    assert torch.equal(again.W_enc, sae.W_enc)


@pytest.mark.parametrize("arch", ARCHS)
def test_saelens_save_round_trip(arch, tmp_path):
    sae = load_sae(FIXTURES / arch)
    out = sae.save(tmp_path / "copy")
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    again = load_sae(out)
    x = _reference(arch)["x"]
    with torch.no_grad():
        assert torch.equal(again.encode(x), sae.encode(x)) and torch.equal(again(x), sae(x))


@pytest.mark.parametrize("source", ["gemma-scope", *ARCHS])
def test_directions_and_subset_agree_with_encode_and_decode(source, jumprelu):
    """What the edits use: decode(f) = f @ directions() + decode(0); a subset encodes its latents
    as the full SAE does (TopK's latents compete, so its subset reads the full encode)."""
    sae = jumprelu if source == "gemma-scope" else load_sae(FIXTURES / source)
    x = torch.randn(7, sae.d_model, generator=torch.Generator().manual_seed(3)) * 2
    idx = [5, 1, 12]
    with torch.no_grad():
        f = sae.encode(x)
        torch.testing.assert_close(sae.decode(f), f @ sae.directions() + sae.decode(torch.zeros(sae.d_sae)), rtol=1e-5, atol=1e-5)
        sub = sae.subset(idx, "cpu")
        assert isinstance(sub, SAE) and (sub.d_model, sub.d_sae) == (sae.d_model, 3)
        torch.testing.assert_close(sub.encode(x), f[:, idx])
        torch.testing.assert_close(sub.directions(), sae.directions(idx))
    assert torch.equal(caft_directions(sae, idx), sae.directions(idx).cpu())


def test_topk_directions_are_unit_rows_when_rescaled():
    sae = load_sae(FIXTURES / "topk")
    assert sae.cfg["rescale_acts_by_decoder_norm"]
    torch.testing.assert_close(sae.directions().norm(dim=-1), torch.ones(16))


@pytest.mark.parametrize("arch", ["topk", "standard"])
def test_latent_edit_with_a_saelens_sae(arch):
    """``hooks.sae_latent_edit`` on any architecture: clamping latents removes exactly their part."""
    sae, idx = load_sae(FIXTURES / arch), [0, 3, 7, 9]
    h = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        f = sae.encode(h)[..., idx]
        out = sae_latent_edit(sae, idx, 0.0)(h, 1)
        torch.testing.assert_close(out, h - f @ sae.directions(idx), rtol=1e-5, atol=1e-5)
        assert sae_latent_edit(sae, idx, 1.0)(h, 1) is None


def test_sae_quality_takes_any_architecture():
    sae = load_sae(FIXTURES / "topk")
    q = sae_quality(sae, _reference("topk")["x"])
    assert q["n"] == 6 and q["l0"] <= 3 and 0 <= q["dead"] <= 1


@pytest.mark.parametrize("arch", ["standard", "jumprelu"])
def test_jumprelu_load_converts_relu_and_jumprelu_saelens_saes(arch):
    """``JumpReLUSAE.load`` keeps working for callers that need a JumpReLU SAE: SAELens's are
    converted (the input's - b_dec folded into b_enc), others refused."""
    ref = _reference(arch)
    sae = JumpReLUSAE.load(FIXTURES / arch)
    assert isinstance(sae, JumpReLUSAE) and sae.meta["architecture"] == arch
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(ref["x"]), ref["f"], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sae.decode(ref["f"]), ref["x_hat"], rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="not a JumpReLU SAE"):
        JumpReLUSAE.load(FIXTURES / "topk")


def test_saelens_bad_folders_are_user_errors(tmp_path):
    src = FIXTURES / "standard"
    cfg = json.loads((src / "cfg.json").read_text())
    weights = (src / "sae_weights.safetensors").read_bytes()

    def folder(name, cfg=cfg, weights=weights):
        d = tmp_path / name
        d.mkdir()
        (d / "cfg.json").write_text(json.dumps(cfg) if isinstance(cfg, dict) else cfg)
        (d / "sae_weights.safetensors").write_bytes(weights)
        return d

    with pytest.raises(UserError, match="architecture 'matching_pursuit' is not supported"):
        load_sae(folder("mp", {**cfg, "architecture": "matching_pursuit"}))
    with pytest.raises(UserError, match="layer_norm"):
        load_sae(folder("ln", {**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(UserError, match="hook_z"):
        load_sae(folder("z", {**cfg, "reshape_activations": "hook_z"}))
    with pytest.raises(UserError, match="lacks threshold"):
        load_sae(folder("thr", {**cfg, "architecture": "jumprelu"}))
    with pytest.raises(UserError, match="d_sae 99"):
        load_sae(folder("size", {**cfg, "d_sae": 99}))
    with pytest.raises(UserError, match="cannot read"):
        load_sae(folder("json", "{not json"))
    with pytest.raises(UserError, match="cannot read"):
        load_sae(folder("weights", weights=b"junk"))


def test_pre_6_saelens_config_defaults_as_saelens_does(tmp_path):
    """Configs older than SAELens 6 lack ``architecture``: standard, or topk for a topk activation."""
    cfg = json.loads((FIXTURES / "topk" / "cfg.json").read_text())
    old = {k: v for k, v in cfg.items() if k not in ("architecture", "k", "metadata", "apply_b_dec_to_input")}
    old |= {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3}, "hook_point": "blocks.1.hook_resid_post"}
    d = tmp_path / "old"
    d.mkdir()
    (d / "cfg.json").write_text(json.dumps(old))
    (d / "sae_weights.safetensors").write_bytes((FIXTURES / "topk" / "sae_weights.safetensors").read_bytes())
    sae = load_sae(d)
    ref = _reference("topk")
    assert sae.architecture == "topk" and sae.cfg["k"] == 3
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(ref["x"]), ref["f"], rtol=1e-5, atol=1e-5)


def test_saelens_spec_without_sae_lens_is_a_user_error():
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install sae-lens"):
            load_sae("saelens://gemma-scope-2b-pt-res-canonical/layer_20/width_16k/canonical")
    else:
        pytest.skip("sae_lens is installed; this checks the message when it is not")


def test_saelens_spec_goes_through_sae_lens_pretrained(monkeypatch):
    """``saelens://release/id``: SAELens's ``SAE.from_pretrained`` (stood in for here: no network)
    gives the SAE, whose config and weights the adapter takes; older SAELens returned a tuple."""
    cfg = json.loads((FIXTURES / "jumprelu" / "cfg.json").read_text())
    state = load_file(FIXTURES / "jumprelu" / "sae_weights.safetensors")
    calls = []

    class FakeSAE:
        @staticmethod
        def from_pretrained(release, sae_id, device):
            calls.append((release, sae_id, device))
            loaded = SimpleNamespace(cfg=SimpleNamespace(to_dict=lambda: dict(cfg)), state_dict=lambda: dict(state))
            return (loaded, cfg, None) if len(calls) > 1 else loaded

    monkeypatch.setitem(sys.modules, "sae_lens", SimpleNamespace(SAE=FakeSAE))
    spec = "saelens://gemma-scope-2b-pt-res-canonical/layer_20/width_16k/canonical"
    ref = _reference("jumprelu")
    for sae in (load_sae(spec), JumpReLUSAE.load(spec)):  # the second: converted for JumpReLU callers
        assert sae.meta["source"] == spec
        with torch.no_grad():
            torch.testing.assert_close(sae.encode(ref["x"]), ref["f"], rtol=1e-4, atol=1e-4)
    assert isinstance(sae, JumpReLUSAE)
    assert calls[0] == ("gemma-scope-2b-pt-res-canonical", "layer_20/width_16k/canonical", "cpu")


def test_against_sae_lens_itself(tmp_path):
    """Where sae-lens is installed: an SAE built and saved by it loads here and matches it."""
    sae_lens = pytest.importorskip("sae_lens")
    for arch, cfg in (("standard", sae_lens.StandardSAEConfig(d_in=6, d_sae=10, apply_b_dec_to_input=False)),
                      ("topk", sae_lens.TopKSAEConfig(d_in=6, d_sae=10, k=2)),
                      ("jumprelu", sae_lens.JumpReLUSAEConfig(d_in=6, d_sae=10)),
                      ("gated", sae_lens.GatedSAEConfig(d_in=6, d_sae=10))):
        theirs = sae_lens.SAE.from_dict(cfg.to_dict())
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _, p in theirs.named_parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            if arch == "jumprelu":
                theirs.threshold.abs_()
        theirs.save_model(tmp_path / arch)
        ours = load_sae(tmp_path / arch)
        x = torch.randn(9, 6, generator=g) * 2
        with torch.no_grad():
            torch.testing.assert_close(ours.encode(x), theirs.encode(x), rtol=1e-5, atol=1e-5)
            live = SAELensSAE.from_sae_lens(theirs, "live")  # what saelens:// does with the loaded SAE
            torch.testing.assert_close(live.encode(x), theirs.encode(x), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ours.decode(theirs.encode(x)), theirs.decode(theirs.encode(x)), rtol=1e-5, atol=1e-5)
        ours.save(tmp_path / f"{arch}-back")  # and SAELens reads what we write
        back = sae_lens.SAE.load_from_disk(tmp_path / f"{arch}-back")
        with torch.no_grad():
            torch.testing.assert_close(back.encode(x), theirs.encode(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the registry


def test_kind_for_specs(tmp_path, jumprelu):
    jumprelu.save(tmp_path / "npz")
    assert kind_for(tmp_path / "npz").name == "gemma-scope"
    assert kind_for(tmp_path / "npz" / "params.npz").name == "gemma-scope"
    assert kind_for("hf://google/gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71").name == "gemma-scope"
    assert kind_for("saelens://gemma-scope-2b-pt-res-canonical/layer_20/width_16k/canonical").name == "saelens"
    assert kind_for(FIXTURES / "gated").name == "saelens"
    assert isinstance(load_sae(tmp_path / "npz"), JumpReLUSAE)
    with pytest.raises(UserError, match="unknown SAE scheme nope://"):
        kind_for("nope://x/y")
    with pytest.raises(UserError, match="not found"):
        load_sae(tmp_path / "missing.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no known SAE format"):
        load_sae(tmp_path / "empty")


class _Identity(P.BaseSAE):
    """A toy architecture: an identity SAE of width d, in a file holding one number, d."""

    def __init__(self, d: int, source: str):
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.eye(d), requires_grad=False)
        self.meta = {"source": source}

    d_model = property(lambda self: self.W_dec.shape[1])
    d_sae = property(lambda self: self.W_dec.shape[0])

    def encode(self, x):
        return x.float()

    def decode(self, f):
        return f @ self.W_dec

    @classmethod
    def from_spec(cls, spec, **kwargs):
        text, path = str(spec), Path(spec)
        if text.startswith("ident://"):
            return cls(int(text.removeprefix("ident://")), text)
        return cls(int((path / "identity.txt" if path.is_dir() else path).read_text()), text)


def test_a_new_architecture_is_one_class_and_one_register_line(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "KINDS", list(P.KINDS))
    register(SAEKind("identity", f"{__name__}:_Identity", schemes=("ident",), files=("identity.txt",)))
    (tmp_path / "identity.txt").write_text("5")
    for spec in ("ident://4", tmp_path, tmp_path / "identity.txt"):
        sae = load_sae(spec)
        assert isinstance(sae, _Identity) and isinstance(sae, SAE)
    assert sae.d_model == 5 and torch.equal(sae.subset([1, 3]).encode(torch.arange(5.0)), torch.tensor([1.0, 3.0]))
    h = torch.arange(10.0).reshape(2, 5)
    torch.testing.assert_close(sae_latent_edit(sae, [1], 0.0)(h, 0), h * torch.tensor([1.0, 0, 1, 1, 1]))


# ---------------------------------------------------------------- §5's artifacts


def _study(tmp_path):
    mech = SimpleNamespace(analysis_model=None)
    cfg = SimpleNamespace(mech=mech, model=SimpleNamespace(source="base", trust_remote_code=False))
    return SimpleNamespace(cfg=cfg, store=Store(tmp_path / "run"), base_source="base")


def _probe(d=8):
    g = np.random.default_rng(0)
    return LinearProbe().fit(g.normal(size=(20, d)), np.r_[np.ones(10), np.zeros(10)])


def test_artifacts_usable_from_their_own_files(tmp_path, monkeypatch):
    study = _study(tmp_path)
    art, why = A.load(study)
    assert art is None and "has not run" in why

    spec = str(FIXTURES / "topk")  # any architecture the loader knows
    A.Artifacts(Site(1), load_sae(spec), _probe(), [2, 4], 4, causal={"passed": True}).save(study.store, spec)
    art, why = A.load(study)
    assert why is None and isinstance(art.sae, SAELensSAE) and art.selected == [2, 4] and art.lead == 4
    assert art.probe is not None and art.digest != "none" and art.causal == {"passed": True}
    # §5's report output is not read: a 'skipped' there does not decide anything.
    write_json(study.store.path("metrics", "entanglement.json"), {"skipped": "from a report", "verdicts": []})
    assert A.load(study)[1] is None

    # §5 skipped: its index says why and the probe goes, so the earlier artifacts are never used.
    assert A.mark_skipped(study.store, "too few matched samples per context") == "too few matched samples per context"
    assert not study.store.path(*A.PROBE).exists()
    art, why = A.load(study)
    assert art is None and why == "§5 (entanglement) was skipped: too few matched samples per context"
    assert A.skipped(study.store) == "too few matched samples per context"
    with pytest.raises(ValueError, match="skipped"):
        A.Artifacts.read(study.store)

    # §5 runs again: usable again; without a probe, none is left from before.
    A.Artifacts(Site(1), load_sae(spec), _probe(), [3], 3).save(study.store, spec)
    A.Artifacts(Site(1), load_sae(spec), None, [3], 3).save(study.store, spec)
    art, why = A.load(study)
    assert why is None and art.probe is None and art.selected == [3] and A.skipped(study.store) is None

    # Editing: the SAE must fit the model's width and latents must be selected.
    monkeypatch.setattr(A, "_model_width", lambda s: 48)
    assert "d_model 8" in A.load(study, editing=True)[1]
    monkeypatch.setattr(A, "_model_width", lambda s: 8)
    assert A.load(study, editing=True)[0] is not None
    study.cfg.mech.analysis_model = "google/gemma-2-2b"
    assert "analysis_model" in A.load(study, editing=True)[1]


def test_damaged_index_says_why(tmp_path):
    study = _study(tmp_path)
    study.store.path(*A.INDEX).parent.mkdir(parents=True)
    study.store.path(*A.INDEX).write_text("{broken")
    assert A.skipped(study.store) is None
    art, why = A.load(study)
    assert art is None and why.startswith("no §5 artifacts: they could not be loaded")
    write_json(study.store.path(*A.INDEX), {"site": "blocks.1.hook_resid_post", "selected_latents": [1], "lead_latent": 1,
                                            "sae": str(tmp_path / "gone")})
    assert "could not be loaded" in A.load(study)[1]
