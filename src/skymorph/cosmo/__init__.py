"""Differentiable cosmology in torch: linear theory, initial conditions, FastPM N-body, lensing.

Units throughout: comoving lengths in Mpc/h, wavenumbers in h/Mpc, P(k) in (Mpc/h)^3, time in 1/H0.
"""
from skymorph.cosmo.lensing import kappa_power_limber, ks_forward, ks_inverse, shape_noise_std
from skymorph.cosmo.lightcone import born_convergence, convergence_map, lens_planes
from skymorph.cosmo.linear import (Cosmology, growth_factor, growth_factor_2, growth_rate, growth_rate_2,
                                   linear_power, transfer_eh98)
from skymorph.cosmo.mesh import cic_paint, cic_readout, gravity, linear_field, power_spectrum_3d
from skymorph.cosmo.nbody import Snapshot, lpt, simulate

__all__ = ["Cosmology", "transfer_eh98", "linear_power", "growth_factor", "growth_rate", "growth_factor_2",
           "growth_rate_2", "linear_field", "cic_paint", "cic_readout", "gravity", "power_spectrum_3d", "lpt",
           "simulate", "Snapshot", "lens_planes", "born_convergence", "convergence_map", "ks_forward",
           "ks_inverse", "shape_noise_std", "kappa_power_limber"]
