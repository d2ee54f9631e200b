"""What a trained run relies on: attributions of its discriminators and generator (SHAP, saliency,
integrated gradients) and robustness probes (blurred, phase-only and noisy inputs).

Imports methods, data and evaluate; only the CLI imports it.
"""
from .attribution import ATTRIBUTIONS, attribute
from .explainer import explain_run, write_explanation
from .probe import PROBES, perturb, probe_run, write_probe

__all__ = ["ATTRIBUTIONS", "attribute", "explain_run", "write_explanation", "PROBES", "perturb", "probe_run",
           "write_probe"]
