"""FITS export of one map: BUNIT, pixel scale and extent in kpc in the header (opens in DS9 / astropy)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import __version__
from ..atomic import atomic_path
from ..atomic import check_output
from .store import MapStore

FITS_UNITS = {"Msun/kpc^2": "solMass/kpc2", "mK": "mK", "K": "K", "K km/s": "K km s-1", "Gauss": "G"}


def export_fits(store: MapStore, index: int, domain: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write map ``index`` of ``domain`` as a FITS image with a linear kpc coordinate system centred on 0."""
    out = check_output(out, overwrite)
    store.check_index(index)
    img = store.maps(domain, index).astype(np.float32)
    hw = float(store.meta("half_width_kpc", index))
    npix = img.shape[0]
    pix = 2 * hw / npix
    hdr = fits.Header()
    hdr["BUNIT"] = (FITS_UNITS.get(store.unit(domain), store.unit(domain)), "physical unit of the map")
    for ax in (1, 2):
        hdr[f"CTYPE{ax}"] = ("X" if ax == 1 else "Y", "offset from the subhalo centre")
        hdr[f"CUNIT{ax}"] = "kpc"
        hdr[f"CRPIX{ax}"] = (npix + 1) / 2.0
        hdr[f"CRVAL{ax}"] = 0.0
        hdr[f"CDELT{ax}"] = (pix, "pixel size [kpc]")
    hdr["PIXSCALE"] = (pix, "pixel size [kpc]")
    hdr["EXTENT"] = (2 * hw, "full width of the map [kpc]")
    hdr["DOMAIN"] = domain
    hdr["GALAXY"] = int(store.meta("galaxy_id", index))
    hdr["VIEW"] = int(store.meta("view", index))
    hdr["REDSHIFT"] = float(store.meta("redshift", index))
    hdr["ORIGIN"] = f"skymorph {__version__}"
    with atomic_path(out) as tmp:
        fits.PrimaryHDU(img, hdr).writeto(tmp, overwrite=True)
    return out
