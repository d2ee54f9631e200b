"""Derived physical fields of gas: the HI / H2 split of the neutral hydrogen and the 21 cm line
(DESIGN.md section 3).

TNG's NeutralHydrogenAbundance (and the generator's, which follows it) counts all neutral hydrogen,
molecular included, and star-forming cells carry the effective-equation-of-state value; so
X_H m f_neutral overestimates HI exactly where disks are densest. The ``br06`` model splits it with the
pressure relation of Blitz & Rosolowsky (2006), R_mol = Sigma_H2 / Sigma_HI = (P / P0)^alpha,
P0 / k_B = 4.3e4 K cm^-3, alpha = 0.92, applied cell by cell with the cell's pressure (thermal, or the
effective-EOS pressure of star-forming cells, P = (gamma - 1) rho u), the particle form of Bahe+16 and
one of the models of the TNG HI/H2 catalogues (Diemer+18). ``simple`` keeps all neutral hydrogen as HI.

21 cm, optically thin: N_HI = 1.823e18 cm^-2 (K km/s)^-1 x integral T_b dv (rest frame).
"""
from __future__ import annotations

import numpy as np
from astropy import units as u

from ..errors import ConfigError
from .units import X_H

HI_MODELS = {
    "br06": "Blitz & Rosolowsky 2006 per cell: f_H2 = R / (1 + R), R = (P / 4.3e4 K cm^-3)^0.92; "
            "HI = X_H m f_neutral (1 - f_H2)",
    "simple": "HI = X_H m f_neutral (all neutral hydrogen, H2 included)",
}
DEFAULT_HI_MODEL = "br06"
BR06_P0_K = 4.3e4  # K cm^-3
BR06_ALPHA = 0.92
#: N_HI [cm^-2] per K km/s of velocity-integrated brightness temperature (optically thin)
N_HI_PER_K_KMS = 1.823e18
#: HI atoms per cm^2 in 1 Msun / kpc^2
_N_PER_MSUN_KPC2 = float((u.Msun / u.kpc**2 / (1.00784 * u.u)).to(u.cm**-2).value)


def neutral_hydrogen_mass(mass: np.ndarray, neutral_fraction: np.ndarray) -> np.ndarray:
    """Neutral (atomic + molecular) hydrogen mass [Msun] = X_H m f_neutral."""
    return X_H * np.asarray(mass, dtype=np.float64) * np.asarray(neutral_fraction, dtype=np.float64)


def molecular_ratio_br06(pressure_k: np.ndarray) -> np.ndarray:
    """R_mol = M_H2 / M_HI = (P / P0)^alpha for P / k_B in K cm^-3."""
    return (np.asarray(pressure_k, dtype=np.float64) / BR06_P0_K) ** BR06_ALPHA


def check_hi_model(model: str) -> str:
    if model not in HI_MODELS:
        raise ConfigError(f"--hi-model {model!r}: expected one of {', '.join(HI_MODELS)}")
    return model


def split_neutral(neutral_mass: np.ndarray, pressure_k: np.ndarray | None, model: str = DEFAULT_HI_MODEL):
    """(HI mass, H2 mass) [Msun] of cells by ``model`` (one of :data:`HI_MODELS`); they sum to the
    neutral hydrogen mass."""
    check_hi_model(model)
    neutral = np.asarray(neutral_mass, dtype=np.float64)
    if model == "simple":
        return neutral, np.zeros_like(neutral)
    f_h2 = 1.0 / (1.0 + 1.0 / np.maximum(molecular_ratio_br06(pressure_k), 1e-300))
    h2 = neutral * f_h2
    return neutral - h2, h2


def hi_column_density(sigma_hi_msun_kpc2: np.ndarray) -> np.ndarray:
    """N_HI [cm^-2] of an HI surface density [Msun / kpc^2]."""
    return np.asarray(sigma_hi_msun_kpc2, dtype=np.float64) * _N_PER_MSUN_KPC2


def moment0_21cm(sigma_hi_msun_kpc2: np.ndarray) -> np.ndarray:
    """Velocity-integrated 21 cm brightness temperature [K km/s] of an HI column (optically thin):
    independent of the projection depth or the field of view."""
    return hi_column_density(sigma_hi_msun_kpc2) / N_HI_PER_K_KMS



def apply_hi_model(gas, model: str) -> None:
    """Set a gas ParticleSet's 'hi_mass' and 'h2_mass' fields by ``model`` from its 'neutral_h_mass'
    and 'pressure' (the reader's fields; a set without them is left as it is)."""
    if "neutral_h_mass" in gas.fields and "pressure" in gas.fields:
        gas.fields["hi_mass"], gas.fields["h2_mass"] = split_neutral(gas.fields["neutral_h_mass"],
                                                                     gas.fields["pressure"], model)
