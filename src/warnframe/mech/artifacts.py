"""§5's outputs as one typed set: the site, the SAE, the probe and the selected latents.

The entanglement section writes them with :meth:`Artifacts.save` (``mech/artifacts.json`` and
``mech/probe.safetensors`` in the run directory); every later section reads them with
:func:`load`, which checks them once and, when they cannot be used, says why in one sentence.
Artifacts left by an earlier run whose §5 was skipped since are never used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from warnframe.mech.hooks import Site
from warnframe.mech.probes import LinearProbe
from warnframe.mech.sae import JumpReLUSAE
from warnframe.runtime.files import read_json, write_json

INDEX = ("mech", "artifacts.json")
PROBE = ("mech", "probe.safetensors")


@dataclass
class Artifacts:
    """What §5 hands on: the residual ``site``, the ``sae`` read there, the linear ``probe``
    (direct vs safe), the ``selected`` latents and the ``lead`` shared latent; ``causal`` is the
    causal check of the selected set (``mech.latent_check``: which set, passed, its Δ shift).
    ``digest`` names what an edit is made of (site, latents, lead, SAE): stages that edit with it
    key on it, so re-running the check alone retrains nothing."""

    site: Site
    sae: JumpReLUSAE
    probe: LinearProbe | None
    selected: list[int]
    lead: int
    causal: dict | None = None
    digest: str = "none"

    def save(self, store, sae_spec: str) -> None:
        """Write the probe and the index (``sae_spec`` is where the SAE is loaded from)."""
        if self.probe is not None:
            self.probe.save(store.path(*PROBE))
        write_json(store.path(*INDEX), {"site": str(self.site), "selected_latents": [int(x) for x in self.selected],
                                        "lead_latent": int(self.lead), "sae": str(sae_spec), "causal_check": self.causal})

    @classmethod
    def read(cls, store) -> Artifacts:
        """The saved set as it is on disk (raises when a file is missing or malformed)."""
        path = store.path(*INDEX)
        art = read_json(path)
        probe = store.path(*PROBE)
        return cls(site=Site.parse(art["site"]), sae=JumpReLUSAE.load(art["sae"]),
                   probe=LinearProbe.load(probe) if probe.is_file() else None,
                   selected=[int(x) for x in art["selected_latents"]], lead=int(art["lead_latent"]), causal=art.get("causal_check"),
                   digest=hashlib.sha256(json.dumps({k: art[k] for k in ("site", "selected_latents", "lead_latent", "sae")},
                                                    sort_keys=True).encode()).hexdigest()[:12])


def _model_width(study) -> int | None:
    from transformers import AutoConfig

    try:
        c = AutoConfig.from_pretrained(study.base_source, trust_remote_code=study.cfg.model.trust_remote_code)
    except (OSError, ValueError):
        return None
    c = c.get_text_config() if hasattr(c, "get_text_config") else c
    return getattr(c, "hidden_size", None)


def foreign_analysis_model(study) -> bool:
    """Is ``mech.analysis_model`` a model other than the one the study fine-tunes (so an SAE read
    there does not belong to the behaviour models)? The base, by source or by path, is not."""
    a = study.cfg.mech.analysis_model
    return bool(a) and a not in (study.cfg.model.source, study.base_source)


def load(study, *, editing: bool = False) -> tuple[Artifacts | None, str | None]:
    """``(artifacts, None)``, or ``(None, why)`` when §5's artifacts cannot be used.

    With ``editing`` (§7 edits and fine-tunes the behaviour model with the SAE) they must also
    belong to that model: no separate ``mech.analysis_model``, latents selected, and the SAE's
    width equal to the model's.
    """
    m = study.cfg.mech
    if editing and foreign_analysis_model(study):
        return None, (f"the §5 SAE belongs to mech.analysis_model ({m.analysis_model}), not to the fine-tuned model "
                      f"({study.cfg.model.source}); latent edits and CAFT need an SAE of the model they edit")
    ent = study.store.path("metrics", "entanglement.json")
    skipped = read_json(ent).get("skipped") if ent.is_file() else None
    if skipped:  # artifacts left by an earlier run do not belong to this one
        return None, f"§5 (entanglement) was skipped: {skipped}"
    if not study.store.path(*INDEX).is_file():
        return None, "no §5 artifacts: §5 (entanglement) has not run; add it to `sections` before this one"
    try:
        art = Artifacts.read(study.store)
    except Exception as e:  # noqa: BLE001 - any failure means: no §5 artifacts, say why
        return None, f"no §5 artifacts: they could not be loaded ({type(e).__name__}: {str(e)[:160]})"
    if editing:
        if not art.selected:
            return None, "§5 selected no latents"
        width = _model_width(study)
        if width is not None and width != art.sae.d_model:
            return None, f"the SAE has d_model {art.sae.d_model} but the model's width is {width}"
    return art, None
