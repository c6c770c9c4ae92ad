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
