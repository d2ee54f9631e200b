"""Views of one galaxy: rotations, field of view, and all domains projected pixel for pixel."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..sim.derived import moment0_21cm
from ..sim.sources import Galaxy
from .domains import REF_TYPES, Domain
from .projection import project_channels


def view_rotations(n_random: int, rng: np.random.Generator, galaxy: Galaxy | None = None,
                   face_edge: bool = False) -> np.ndarray:
    """(V, 3, 3) rotation matrices: the unrotated view, ``n_random`` uniform on SO(3),
    then (with ``face_edge``) face-on and edge-on views from the stellar angular momentum."""
    mats = [np.eye(3)]
    if n_random:
        mats.extend(Rotation.random(n_random, random_state=rng).as_matrix())
    if face_edge:
        face = face_on_rotation(galaxy)
        edge = Rotation.from_euler("x", 90, degrees=True).as_matrix() @ face
        mats.extend([face, edge])
    return np.asarray(mats)


def face_on_rotation(galaxy: Galaxy) -> np.ndarray:
    """Rotation taking the angular momentum of stars within 2 stellar half-mass radii onto +z."""
    stars = galaxy.particles.get("stars")
    if stars is None or "velocity" not in stars.fields:
        raise InputError(f"{galaxy.source}: face-on views need star Velocities")
    r = np.linalg.norm(stars.pos, axis=1)
    sel = r < 2 * max(galaxy.half_mass_radius["stars"], 1e-3)
    v = stars.fields["velocity"][sel] - np.average(stars.fields["velocity"][sel], axis=0, weights=stars.mass[sel])
    ang = np.sum(stars.mass[sel, None] * np.cross(stars.pos[sel], v), axis=0)
    rot, _ = Rotation.align_vectors([[0, 0, 1]], [ang / np.linalg.norm(ang)])
    return rot.as_matrix()


@dataclass
class ViewSet:
    """Maps of one galaxy: ``maps[domain]`` float32 (V, npix, npix); per view, particles in the field."""

    maps: dict[str, np.ndarray]
    rotations: np.ndarray
    half_width: float  # kpc
    counts: np.ndarray  # (V, 3): gas, dm, stars particles inside the projected cube
    sf_fraction: np.ndarray  # (V,): gas mass fraction on the effective EOS (T not physical)


def _channels(ps, domains: list[Domain]) -> tuple[list[np.ndarray], dict]:
    """Distinct deposit weights of the domains of one species, and each domain's channel indices."""
    keys, arrays, index = [], [], {}
    for d in domains:
        needed = [(d.weight, None)] + ([(d.weight, d.value)] if d.value else [])
        idx = []
        for key in needed:
            if key not in keys:
                w = ps.mass if key[0] == "mass" else ps.fields[key[0]]
                arrays.append(w if key[1] is None else w * ps.fields[key[1]])
                keys.append(key)
            idx.append(keys.index(key))
        index[d.name] = idx
    return arrays, index


def render_views(galaxy: Galaxy, domains: list[Domain], npix: int, rotations: np.ndarray,
                 fov: float = 1.0, fov_ref: str = "gas", threads: int | None = 1) -> ViewSet:
    """Project every domain of ``galaxy`` for every rotation.

    Field of view: half-width = fov × half-mass radius of ``fov_ref``; depth = width, centred.
    """
    r_half = galaxy.half_mass_radius[REF_TYPES[fov_ref]]
    if not r_half > 0:
        raise InputError(f"{galaxy.source}: galaxy {galaxy.id} has no {fov_ref} half-mass radius "
                         f"(SubhaloHalfmassRadType is 0): cannot set the field of view")
    hw = float(fov * r_half)
    nview = len(rotations)
    maps = {d.name: np.zeros((nview, npix, npix), np.float32) for d in domains}
    counts = np.zeros((nview, 3), np.int64)
    sf = np.zeros(nview)
    by_type: dict[str, list[Domain]] = {}
    for d in domains:
        by_type.setdefault(d.ptype, []).append(d)
    for ptype, doms in by_type.items():
        ps = galaxy.particles[ptype]
        for name in {d.value for d in doms if d.value} | {d.weight for d in doms if d.weight != "mass"}:
            if name not in ps.fields:
                raise InputError(f"{galaxy.source}: {ptype} field for {name!r} missing")
        weights, index = _channels(ps, doms)
        weights = np.asarray(weights)
        for v, rot in enumerate(rotations):
            pos = ps.pos @ rot.T
            inside = (np.abs(pos[:, 2]) < hw) & np.all(np.abs(pos[:, :2]) < hw + ps.hsml[:, None], axis=1)
            counts[v, ("gas", "dm", "stars").index(ptype)] = int(inside.sum())
            if ptype == "gas" and "eos" in ps.fields:
                m = ps.mass[inside]
                sf[v] = float(np.sum(m * ps.fields["eos"][inside]) / m.sum()) if m.sum() > 0 else 0.0
            img = project_channels(pos[inside, :2], ps.hsml[inside], weights[:, inside], npix, hw, threads=threads)
            for d in doms:
                ch = img[index[d.name]]
                if d.value:
                    out = np.divide(ch[1], ch[0], out=np.zeros_like(ch[0]), where=ch[0] > 0)
                elif d.name == "hi21":
                    out = moment0_21cm(ch[0])
                else:
                    out = ch[0]
                maps[d.name][v] = out
    return ViewSet(maps, np.asarray(rotations), hw, counts, sf)
