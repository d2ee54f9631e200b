"""skymorph: deep learning on astrophysical simulations.

Layers (one-way): sim -> maps -> data -> methods -> evaluate; ground floor: errors, sph.
"""
__version__ = "0.1.0"
