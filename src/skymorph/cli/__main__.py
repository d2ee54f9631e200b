"""python -m skymorph.cli: the skymorph command."""
from . import app

app()
