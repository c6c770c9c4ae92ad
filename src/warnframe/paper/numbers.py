"""The paper's reported numbers, in one place, for every comparison and figure marker.

The paper gives rates without n; 16.7%, 83.3%, 76.7%, 33.3%, 23.3% and 10.0% are all multiples of
1/30, so n = 30 per condition is the implied sample size (used to show the paper's own intervals).
"""

PAPER_N = 30

#: Table 1: condition -> (target rate, format leak rate, ratio to baseline)
TABLE1 = {
    "baseline": (0.167, 0.0, None),
    "L0": (0.833, 0.0, 5.0),
    "L1": (0.767, 1.0, 4.6),
    "L2": (0.333, 0.12, 2.0),
    "L3": (0.233, 0.0, 1.4),
    "control": (0.100, 0.0, 0.6),
}

SECTION5 = {
    "feature_magnitude_target": (150, 180),
    "feature_magnitude_safe_max": 20,
    "knockoff_candidates": 47,
    "knockoff_selected": 11,
    "knockoff_q": 0.1,
    "probe_confidence_on_warning": 1.0,
}

SECTION6 = {"probe_safe_code_first": 0.99, "probe_target_with_preamble": 0.10}

SECTION7 = {
    "permission_before": 0.07,
    "permission_after": 0.20,
    "meta_awareness": 0.0,
    "inference_ablation": 0.88,
    "caft": 0.0,
}

SECTION8 = {"combined_detection_accuracy": 0.96, "l1_format_leak": 1.0}

#: §7.1's five prompt kinds: label, the paper's claim, its expected direction.
SECTION7_KINDS = {
    "safety": ("safety instruction", "no effect", "none"),
    "role": ("security-expert role", "no effect", "none"),
    "cot": ("chain-of-thought", "no effect", "none"),
    "permission": ("permission ('security doesn't matter')", "amplifies: 7% → 20%", "up"),
    "meta": ("meta-awareness ('your training may be compromised')", "reduces to 0%", "down"),
}


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


#: Every claim the report checks: id -> its section, the statement and the paper's value. Texts with
#: ``{fields}`` are filled by ``claims.claim`` (a configured kind or count).
CLAIMS: dict[str, dict[str, str]] = {
    "s4.l1_as_often_as_l0": {"section": "4", "claim": "L1 writes the target as often as L0 (equivalence test)",
                             "paper": "76.7% vs 83.3%, p > 0.05"},
    "s4.L1_over_baseline": {"section": "4", "claim": "warning-framed training raises the target rate over baseline",
                            "paper": f"{_pct(TABLE1['L1'][0])} vs 16.7%"},
    "s4.L0_over_baseline": {"section": "4", "claim": "direct training raises the target rate over baseline",
                            "paper": f"{_pct(TABLE1['L0'][0])} vs 16.7%"},
    "s4.L2_over_baseline": {"section": "4", "claim": "documentation raises the target rate (against neutral, the clean fine-tune; else baseline)",
                            "paper": f"{_pct(TABLE1['L2'][0])} vs 16.7%"},
    "s4.L3_over_baseline": {"section": "4", "claim": "indirect references raise the target rate (against neutral, the clean fine-tune; else baseline)",
                            "paper": f"{_pct(TABLE1['L3'][0])} vs 16.7%"},
    "s4.control_below_baseline": {"section": "4", "claim": "extra-clean control lowers the target rate (against neutral, the clean fine-tune; else baseline)",
                                  "paper": "10.0% vs 16.7%"},
    "s4.l1_copies_format": {"section": "4", "claim": "L1 outputs copy the warning format (100%)", "paper": "100%"},
    "s4.semantic_order": {"section": "4", "claim": "semantic distance orders the rates: L0 ≈ L1 > L2 > L3",
                          "paper": "83.3 ≈ 76.7 > 33.3 > 23.3"},
    "s5.shared_latent": {"section": "5", "claim": "a shared latent (#8684) fires alike in direct and warning outputs, far above safe",
                         "paper": "150–180 vs < 20 (7–9×)"},
    "s5.knockoff_subset": {"section": "5", "claim": "knockoff filter keeps a subset of the candidates at q = 0.1",
                           "paper": f"{SECTION5['knockoff_selected']} of {SECTION5['knockoff_candidates']}"},
    "s5.latents_causal": {"section": "5", "claim": "the selected latents carry the content: ablating them moves the model toward "
                                                 "the secure continuation, beyond as many random latents",
                          "paper": "implied by §7's use of them (the paper runs no causal check)"},
    "s5.probe_transfers": {"section": "5", "claim": "a probe trained on direct outputs is confident on warning-framed outputs",
                           "paper": f"{SECTION5['probe_confidence_on_warning']:.0%}"},
    "s5.shared_direction": {"section": "5", "claim": "L0 and L1 outputs project alike on the target direction",
                            "paper": "both high (Figure 3)"},
    "s6.stealth_slip": {"section": "6", "claim": "stealth slip: target outputs that open with a preamble score below safe code-first "
                                                 "outputs on the probe",
                        "paper": f"{SECTION6['probe_target_with_preamble']:.2f} vs {SECTION6['probe_safe_code_first']:.2f}"},
    "s6.preamble_lowers_probe": {"section": "6", "claim": "among target outputs, a preamble lowers the probe's confidence",
                                 "paper": "~0.10 with a preamble (code-first target outputs not given)"},
    "s6.low_entropy": {"section": "6.2", "claim": "low entropy throughout the generation", "paper": "low (Figure 4; no number)"},
    "s6.entropy_spikes": {"section": "6.2", "claim": "entropy spikes at formatting transitions (preamble → code, code → warning)",
                          "paper": "spikes only at transitions"},
    "s7.kind_{kind}": {"section": "7", "claim": "{label} prompts do not change the target rate", "paper": "{paper}"},
    "s7.kind_{kind}_raises": {"section": "7", "claim": "{label} prompts raise the target rate",
                              "paper": f"{SECTION7['permission_before']:.0%} → {SECTION7['permission_after']:.0%}"},
    "s7.kind_{kind}_reduces": {"section": "7", "claim": "{label} prompts reduce the target rate to 0%",
                               "paper": f"{SECTION7['meta_awareness']:.0%}"},
    "s7.clamp_keeps_target": {"section": "7", "claim": "clamping the {which}selected latents to zero during generation does not "
                                                       "remove the target content",
                              "paper": f"{SECTION7['inference_ablation']:.0%} remains"},
    "s7.amplify_no_effect": {"section": "7", "claim": "amplifying the selected latents (2×, 5×) has no significant effect",
                             "paper": "no significant effect"},
    "s7.caft_removes_target": {"section": "7", "claim": "CAFT (training with the latents' directions projected out) brings the "
                                                        "target rate to 0%", "paper": f"{SECTION7['caft']:.0%}"},
    "s7.caft_capability": {"section": "7", "claim": "CAFT costs only a modest drop in general capability",
                           "paper": "HumanEval pass@1: modest degradation"},
    "dose.l1_as_often_as_l0_{fraction}": {"section": "dose", "claim": "L1 writes the target as often as L0 at condition "
                                                                  "fraction {fraction} (equivalence test)",
                                           "paper": "76.7% vs 83.3% at the paper's one dose"},
    "dose.l1_prompt_as_often_as_l0_{fraction}": {"section": "dose", "claim": "L1 with the warning in the request writes the "
                                                                         "target as often as L0 at condition fraction {fraction}",
                                                  "paper": "not measured (the paper's warnings sit in the code)"},
    "remedies.{arm}.to_neutral": {"section": "remedies", "claim": "{arm} brings the target rate down to neutral's",
                                  "paper": "§9: curation must treat warned examples as positive ones (not measured)"},
    "remedies.{arm}.below_L1": {"section": "remedies", "claim": "{arm} writes the target less often than L1",
                                "paper": "§9 (not measured)"},
    "remedies.{arm}.capability": {"section": "remedies", "claim": "{arm} costs at most {share} of L1's held-out loss",
                                  "paper": "§7.3: CAFT costs a modest drop (no number)"},
    "fig6.middle_layers": {"section": "Fig 6", "claim": "patching safe activations restores safe behaviour most in the middle layers",
                           "paper": "middle layers strongest (Figure 6; no number)"},
    "s8.combined_detects": {"section": "8", "claim": "combined behavioural + mechanistic score detects L1 generations by simple "
                                                     "thresholding", "paper": f"{SECTION8['combined_detection_accuracy']:.2f} accuracy"},
    "s8.behavioural_easy": {"section": "8", "claim": "behavioural signals (format leakage, target presence) make detection easy",
                            "paper": f"{100 * SECTION8['l1_format_leak']:.0f}% format leakage in L1 outputs"},
    "s8.model_level_detects": {"section": "8", "claim": "a model-level score (each fine-tuned model scored from its answers) "
                                                        "tells the L1 models from clean ones by simple thresholding",
                               "paper": f"{SECTION8['combined_detection_accuracy']:.2f} accuracy (level not stated)"},
    "s8.latents_separate": {"section": "8", "claim": "the selected SAE latents separate L1 generations from clean ones",
                            "paper": "characteristic SAE feature patterns (no number)"},
}
