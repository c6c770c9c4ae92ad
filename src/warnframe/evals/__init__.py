"""Evaluations beside the study: capability checks, the HumanEval sandbox, external prompt sets."""
