"""Point clouds of galaxies: datasets of particle clouds (dark matter -> gas), a conditional
flow-matching model that draws any number of target points, and the judges of generated clouds."""
