"""Where particles come from: TNG/Arepo readers, the synthetic generator, particle sets, derived fields."""
from .particles import Header, ParticleSet, half_mass_radius
from .reader import (loadHalo, loadHalos, loadHeader, loadSingle, loadSnapHeader, loadSubhalo, loadSubhalos, loadSubset,
                     read_cutout)
from .sources import CutoutFolder, Galaxy, TNGSimulation, open_source

__all__ = ["Header", "ParticleSet", "half_mass_radius", "read_cutout", "loadHalo", "loadHalos", "loadHeader",
           "loadSingle", "loadSnapHeader", "loadSubhalo", "loadSubhalos", "loadSubset", "CutoutFolder", "TNGSimulation",
           "Galaxy", "open_source"]
