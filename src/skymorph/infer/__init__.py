"""Simulation-based inference (DESIGN.md section 13): simulations with parameters -> summaries (binned
power spectrum, CNN by VMIM) -> posterior estimators (sbi NPE, Gaussian likelihood + emcee) -> validation
(TARP, SBC, figure of merit). Depends on the simulators (cosmo/), the training floor and the judge
(stats/, evaluate.report); nothing below imports it."""
