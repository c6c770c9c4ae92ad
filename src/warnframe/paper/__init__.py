"""The paper's numbers (``numbers``) and every threshold and margin the verdicts use (``policy``)."""
