"""The ``skymorph`` command: thin typer wrappers that parse options and call library functions,
one module per command group. A :class:`~skymorph.errors.SkymorphError` becomes one red line on
stderr and exit code 1; Ctrl-C one line saying how to resume, exit code 130."""
from . import maps, translate, explain, cosmo, infer, grid, classify, clouds, radio  # noqa: F401, I001  (each registers its commands, in help order)
from .common import app

__all__ = ["app"]
