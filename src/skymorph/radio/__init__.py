"""Radio: simulated galaxies as sky models (HI cubes with celestial + spectral WCS, Karabo/OSKAR tables)."""
