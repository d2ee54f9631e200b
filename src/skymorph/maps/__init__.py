"""Maps of galaxies: SPH projection, the domain registry, and views (rotations, field of view, all domains)."""
from .domains import DOMAINS, REF_TYPES, Domain, get_domains
from .projection import project_channels, project_mean, project_particles
from .views import ViewSet, face_on_rotation, render_views, view_rotations

__all__ = ["DOMAINS", "REF_TYPES", "Domain", "get_domains", "project_channels", "project_mean", "project_particles",
           "ViewSet", "face_on_rotation", "render_views", "view_rotations"]
