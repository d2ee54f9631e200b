"""Grid simulations: readers of Athena++ and FITS cubes, and skymorph's cube store."""
