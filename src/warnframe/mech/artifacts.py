"""§5's outputs as one typed set: the site, the SAE, the probe and the selected latents.

The entanglement section writes them with :meth:`Artifacts.save` (``mech/artifacts.json`` and
``mech/probe.safetensors`` in the run directory); every later section reads them with
:func:`load`, which checks them once and, when they cannot be used, says why in one sentence.
When §5 is skipped it calls :func:`mark_skipped`, which replaces the index by the reason and
removes the probe, so artifacts left by an earlier run are never used. Usability is decided from
these files alone (never from §5's report output, ``metrics/entanglement.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from warnframe.mech.hooks import Site
from warnframe.mech.probes import LinearProbe
from warnframe.mech.sae_protocol import SAE, load_sae
from warnframe.runtime import keys
from warnframe.runtime.files import read_json, write_json

INDEX = ("mech", "artifacts.json")
PROBE = ("mech", "probe.safetensors")


@dataclass
class Artifacts:
    """What §5 hands on: the residual ``site``, the ``sae`` read there, the linear ``probe``
    (direct vs safe), the ``selected`` latents and the ``lead`` shared latent; ``causal`` is the
    causal check of the selected set (``mech.latent_check``: which set, passed, its Δ shift).
    ``digest`` names what an edit is made of (site, latents, lead, SAE): stages that edit with it
    key on it, so re-running the check alone retrains nothing. ``sae`` is of any architecture
    (:mod:`warnframe.mech.sae_protocol`)."""

    site: Site
    sae: SAE
    probe: LinearProbe | None
    selected: list[int]
    lead: int
    causal: dict | None = None
    digest: str = "none"

    def save(self, store, sae_spec: str) -> None:
        """Write the probe and the index (``sae_spec`` is where the SAE is loaded from, a
        :func:`~warnframe.mech.sae_protocol.load_sae` spec); without a probe an earlier one is removed."""
        if self.probe is not None:
            self.probe.save(store.path(*PROBE))
        else:
            store.path(*PROBE).unlink(missing_ok=True)
        write_json(store.path(*INDEX), {"site": str(self.site), "selected_latents": [int(x) for x in self.selected],
                                        "lead_latent": int(self.lead), "sae": str(sae_spec), "causal_check": self.causal})

    @classmethod
    def read(cls, store) -> Artifacts:
        """The saved set as it is on disk (raises when a file is missing or malformed, or §5 was
        skipped: see :func:`skipped`)."""
        path = store.path(*INDEX)
        art = read_json(path)
        if art.get("skipped"):
            raise ValueError(f"§5 (entanglement) was skipped: {art['skipped']}")
        probe = store.path(*PROBE)
        return cls(site=Site.parse(art["site"]), sae=load_sae(art["sae"]),
                   probe=LinearProbe.load(probe) if probe.is_file() else None,
                   selected=[int(x) for x in art["selected_latents"]], lead=int(art["lead_latent"]), causal=art.get("causal_check"),
                   digest=keys.digest({k: art[k] for k in ("site", "selected_latents", "lead_latent", "sae")}, 12))


def mark_skipped(store, why: str) -> str:
    """Record that §5 was skipped (``why``) in place of its artifacts: the index becomes
    ``{"skipped": why}`` and the probe goes, so :func:`load` says why instead of using what an
    earlier run left. §5 calls it where it returns ``{"skipped": why}``; returns ``why``."""
    store.path(*PROBE).unlink(missing_ok=True)
    write_json(store.path(*INDEX), {"skipped": str(why)})
    return why


def skipped(store) -> str | None:
    """Why §5 was skipped, when its index says it was (:func:`mark_skipped`); else None."""
    path = store.path(*INDEX)
    if not path.is_file():
        return None
    try:
        art = read_json(path)
    except Exception:  # noqa: BLE001 - a damaged index is not a skip marker; Artifacts.read says what is wrong
        return None
    return (art.get("skipped") or None) if isinstance(art, dict) else None


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
    why = skipped(study.store)
    if why:  # artifacts left by an earlier run do not belong to this one
        return None, f"§5 (entanglement) was skipped: {why}"
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
