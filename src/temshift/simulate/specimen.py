"""Atomic models of the specimen: crystalline nanoparticles and amorphous supports (ASE).

Lengths are in Angstrom inside this module (``_A`` suffix); catalog sizes are in nm.

Nanoparticles
-------------
Au and Ag are fcc (a = 4.078 and 4.086 A); so are Pt and Pd (a = 3.924 and 3.891 A, metallic
radii 1.39 and 1.37 A; room-temperature values as tabulated in Kittel, Introduction to Solid
State Physics, and Greenwood & Earnshaw, Chemistry of the Elements), which no catalog row
names but the generalist's training frames draw. CdSe occurs as wurtzite (a = 4.30 A,
c = 7.01 A) and zinc blende (a = 6.05 A); each CdSe particle picks one of the two with
equal probability. A particle is cut from a rotated bulk crystal (unit cell from
`ase.build.bulk`):

* size: diameter drawn around the nominal one with a relative spread of 10 % (1 sigma),
* shape: "Sphere" rows give a near-spherical ellipsoid (semi-axes within a few percent of
  each other) that the fcc metals truncate with mild {111} and {100} facets (planes at
  0.94 and 0.97 of the radius);
  "Oblong" rows (the CdSe folder) give a prolate ellipsoid with aspect ratio 1.15-1.45,
* orientation: with probability `P_ZONE_AXIS` a low-index zone axis is put along the beam
  (z), rotated randomly about z and tilted off by a few tenths of a degree to ~2 degrees
  (so lattice fringes show, as in the real frames); otherwise a uniformly random rotation.
  Twinned (decahedral / icosahedral) particles and ligand shells are not modelled.

Supports
--------
Ultrathin amorphous carbon ("UT Carbon"): 2.0 g/cm3, no two atoms closer than 1.2 A,
about 3 nm thick. The "SiN" support (a 5 nm silicon nitride membrane) is approximated by an
amorphous random packing of Si and N atoms in the Si3N4 ratio at 3.0 g/cm3 with a 1.5 A
minimum distance: the correct mean inner potential and mass thickness, but no chemical
short-range order (Si-N bonds) -- at HRTEM resolution through an objective aperture the
amorphous speckle this gives is indistinguishable from the real membrane for our purpose.

Amorphous atoms are placed by vectorised random sequential addition in a box that is
periodic in x and y (so the block can be tiled without seams, see `scattering`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: probability that a particle sits near a low-index zone axis
P_ZONE_AXIS = 0.7
#: relative (1 sigma) spread of particle diameters
SIZE_SPREAD = 0.10


@dataclass(frozen=True)
class CrystalStructure:
    """One crystal structure of a material.

    Attributes
    ----------
    name : str
        "fcc", "wurtzite" or "zincblende".
    symbols : str
        Chemical formula unit given to `ase.build.bulk` ("Au", "CdSe").
    a_A, c_A : float
        Lattice parameters in Angstrom (`c_A` only for wurtzite).
    zone_axes : tuple of ((int, int, int), float)
        Zone axes in lattice (cell-vector) coordinates and their relative weights.
    """

    name: str
    symbols: str
    a_A: float
    c_A: float | None = None
    zone_axes: tuple = ()

    def unit_cell(self):
        """ASE unit cell (conventional cubic cell for fcc / zinc blende)."""
        from ase.build import bulk

        if self.name == "wurtzite":
            return bulk(self.symbols, "wurtzite", a=self.a_A, c=self.c_A)
        return bulk(self.symbols, self.name, a=self.a_A, cubic=True)


_CUBIC_AXES = (((1, 1, 0), 0.4), ((1, 0, 0), 0.3), ((1, 1, 1), 0.15), ((2, 1, 1), 0.15))
# wurtzite, 3-index lattice coordinates: [100] = <2-1-10>, [001] = [0001], [120] = <01-10>
_HEX_AXES = (((1, 0, 0), 0.45), ((0, 0, 1), 0.25), ((1, 2, 0), 0.30))


@dataclass(frozen=True)
class Material:
    """A nanoparticle material: its structures (with probabilities) and atomic radius."""

    name: str
    structures: tuple  # of (CrystalStructure, probability)
    atomic_radius_A: float = 1.45
    faceted: bool = True


MATERIALS: dict[str, Material] = {
    "Au": Material("Au", ((CrystalStructure("fcc", "Au", 4.078, zone_axes=_CUBIC_AXES), 1.0),), 1.44),
    "Ag": Material("Ag", ((CrystalStructure("fcc", "Ag", 4.086, zone_axes=_CUBIC_AXES), 1.0),), 1.44),
    "Pt": Material("Pt", ((CrystalStructure("fcc", "Pt", 3.924, zone_axes=_CUBIC_AXES), 1.0),), 1.39),
    "Pd": Material("Pd", ((CrystalStructure("fcc", "Pd", 3.891, zone_axes=_CUBIC_AXES), 1.0),), 1.37),
    "CdSe": Material(
        "CdSe",
        (
            (CrystalStructure("wurtzite", "CdSe", 4.30, 7.01, zone_axes=_HEX_AXES), 0.5),
            (CrystalStructure("zincblende", "CdSe", 6.05, zone_axes=_CUBIC_AXES), 0.5),
        ),
        1.5,
        faceted=False,
    ),
}


@dataclass(frozen=True)
class Support:
    """An amorphous support film.

    Attributes
    ----------
    symbols : tuple of str
        Elements, in the stoichiometric ratio given by `fractions`.
    density_g_per_cm3 : float
        Mass density.
    min_distance_A : float
        No two atoms closer than this.
    thickness_A : float
        Mean film thickness; each frame draws its own around it.
    thickness_spread_A : float
        1-sigma frame-to-frame spread of the thickness.
    """

    name: str
    symbols: tuple
    fractions: tuple
    density_g_per_cm3: float
    min_distance_A: float
    thickness_A: float
    thickness_spread_A: float

    @property
    def number_density_per_A3(self) -> float:
        """Atoms per cubic Angstrom."""
        from ase.data import atomic_masses, atomic_numbers

        mass_u = sum(f * atomic_masses[atomic_numbers[s]] for s, f in zip(self.symbols, self.fractions))
        return self.density_g_per_cm3 / mass_u * 0.602214076  # (g/cm3)/(g/mol) * N_A * 1e-24


SUPPORTS: dict[str, Support] = {
    "UT Carbon": Support("UT Carbon", ("C",), (1.0,), 2.0, 1.2, 30.0, 4.0),
    "SiN": Support("SiN", ("Si", "N"), (3 / 7, 4 / 7), 3.0, 1.5, 50.0, 4.0),
}
#: spelling variants of support names accepted from catalogs (lower case, no spaces)
SUPPORT_ALIASES = {
    "utcarbon": "UT Carbon",
    "utc": "UT Carbon",
    "ultrathincarbon": "UT Carbon",
    "carbon": "UT Carbon",
    "c": "UT Carbon",
    "sin": "SiN",
    "si3n4": "SiN",
    "sinx": "SiN",
}
#: particle shapes the simulator honours
SHAPES = ("sphere", "oblong")


def resolve_material(name: str) -> Material:
    """Material by name, case-insensitive; KeyError if unknown."""
    for key, mat in MATERIALS.items():
        if key.lower() == str(name).strip().lower():
            return mat
    raise KeyError(name)


def resolve_support(name: str) -> Support:
    """Support by name (spelling variants accepted); KeyError if unknown."""
    if name in SUPPORTS:
        return SUPPORTS[name]
    key = "".join(str(name).lower().split())
    if key in SUPPORT_ALIASES:
        return SUPPORTS[SUPPORT_ALIASES[key]]
    raise KeyError(name)


# ----------------------------------------------------------------------------- rotations


def _rotation_to_z(v) -> np.ndarray:
    """Rotation matrix taking unit vector `v` onto +z (Rodrigues)."""
    v = np.asarray(v, float)
    v = v / np.linalg.norm(v)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(v, z)
    s, c = np.linalg.norm(axis), float(v @ z)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return _axis_angle(axis / s, np.arctan2(s, c))


def _axis_angle(axis, angle_rad: float) -> np.ndarray:
    axis = np.asarray(axis, float)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


@dataclass
class Orientation:
    """How a particle's crystal is turned relative to the beam (z).

    Attributes
    ----------
    rotation : (3, 3) ndarray
        Maps crystal Cartesian coordinates to specimen coordinates.
    zone_axis : tuple of int or None
        Zone axis (lattice coordinates) near the beam, None for a random orientation.
    tilt_deg : float
        Tilt of that zone axis away from the beam in degrees.
    """

    rotation: np.ndarray
    zone_axis: tuple | None
    tilt_deg: float


def draw_orientation(
    structure: CrystalStructure, rng, zone_axis=None, tilt_deg=None, p_zone_axis: float = P_ZONE_AXIS
) -> Orientation:
    """Draw a particle orientation.

    Parameters
    ----------
    structure : CrystalStructure
    rng : numpy.random.Generator
    zone_axis : tuple of int, optional
        Force this zone axis (lattice coordinates) along the beam.
    tilt_deg : float, optional
        Force this tilt (degrees) away from the zone axis; default |N(0, 1.2 deg)|.
    p_zone_axis : float
        Probability of a near-zone-axis orientation when `zone_axis` is not given.
    """
    if zone_axis is None and rng.random() >= p_zone_axis:
        from scipy.spatial.transform import Rotation

        return Orientation(Rotation.random(random_state=rng).as_matrix(), None, float("nan"))
    if zone_axis is None:
        axes, weights = zip(*structure.zone_axes)
        zone_axis = axes[rng.choice(len(axes), p=np.asarray(weights) / np.sum(weights))]
    cell = structure.unit_cell().cell.array
    direction = np.asarray(zone_axis, float) @ cell  # lattice direction -> Cartesian
    rot = _rotation_to_z(direction)
    rot = _axis_angle([0, 0, 1], rng.uniform(0, 2 * np.pi)) @ rot
    tilt = abs(rng.normal(0.0, 1.2)) if tilt_deg is None else float(tilt_deg)
    if tilt > 0:
        phi = rng.uniform(0, 2 * np.pi)
        rot = _axis_angle([np.cos(phi), np.sin(phi), 0.0], np.deg2rad(tilt)) @ rot
    return Orientation(rot, tuple(int(i) for i in zone_axis), tilt)


# ----------------------------------------------------------------------------- particles


@dataclass
class Nanoparticle:
    """One nanoparticle, atoms centred on the origin (specimen frame, z along the beam).

    Attributes
    ----------
    symbols : ndarray of str
    positions_A : (n, 3) ndarray
        Atom positions in Angstrom, centred on (0, 0, 0).
    material, structure : str
    diameter_A : float
        Volume-equivalent diameter.
    semi_axes_A : (3,) ndarray
        Ellipsoid semi-axes before faceting.
    orientation : Orientation
    atomic_radius_A : float
        Radius used for the projected footprint (labels).
    """

    symbols: np.ndarray
    positions_A: np.ndarray
    material: str
    structure: str
    diameter_A: float
    semi_axes_A: np.ndarray
    orientation: Orientation
    atomic_radius_A: float = 1.45
    extra: dict = field(default_factory=dict)

    @property
    def bounding_radius_A(self) -> float:
        """Largest distance of an atom centre from the particle centre plus the atomic radius."""
        return float(np.sqrt((self.positions_A**2).sum(1).max()) + self.atomic_radius_A)

    @property
    def thickness_A(self) -> float:
        """Extent along the beam."""
        z = self.positions_A[:, 2]
        return float(z.max() - z.min() + 2 * self.atomic_radius_A)

    def describe(self) -> dict:
        """JSON-ready summary (for the per-frame sidecar)."""
        o = self.orientation
        return {
            "material": self.material,
            "structure": self.structure,
            "diameter_nm": round(self.diameter_A / 10, 4),
            "semi_axes_nm": [round(float(s) / 10, 4) for s in self.semi_axes_A],
            "n_atoms": int(len(self.symbols)),
            "zone_axis": list(o.zone_axis) if o.zone_axis is not None else None,
            "tilt_deg": None if np.isnan(o.tilt_deg) else round(float(o.tilt_deg), 3),
            "rotation": [[round(float(v), 6) for v in r] for r in o.rotation],
        }


def draw_diameter_A(nominal_diameter_nm: float, rng, spread: float = SIZE_SPREAD) -> float:
    """Particle diameter (A) drawn around the nominal one, clipped to [0.65, 1.4] x nominal."""
    d = nominal_diameter_nm * 10 * (1 + spread * rng.standard_normal())
    return float(np.clip(d, 0.65 * nominal_diameter_nm * 10, 1.4 * nominal_diameter_nm * 10))


def _lattice_points(cell: np.ndarray, scaled_basis: np.ndarray, radius_A: float):
    """All lattice sites (cell translations + basis) within `radius_A` of the origin (+ margin)."""
    inv = np.linalg.inv(cell)
    n_max = np.ceil(radius_A * np.linalg.norm(inv, axis=0)).astype(int) + 1
    ranges = [np.arange(-n, n + 1) for n in n_max]
    grid = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    frac = (grid[:, None, :] + scaled_basis[None, :, :]).reshape(-1, 3)
    pos = frac @ cell
    idx = np.tile(np.arange(len(scaled_basis)), len(grid))
    keep = (pos**2).sum(1) <= (radius_A + 1.0) ** 2
    return pos[keep], idx[keep]


def make_nanoparticle(
    material: str,
    diameter_nm: float,
    rng,
    shape: str = "Sphere",
    *,
    structure: str | None = None,
    zone_axis=None,
    tilt_deg=None,
    exact_diameter: bool = False,
    p_zone_axis: float = P_ZONE_AXIS,
) -> Nanoparticle:
    """Cut one nanoparticle from a rotated crystal.

    Parameters
    ----------
    material : str
        A key of `MATERIALS` ("Au", "Ag", "CdSe", "Pt", "Pd").
    diameter_nm : float
        Nominal diameter in nm; the particle's own diameter is drawn around it
        (10 % spread) unless `exact_diameter`.
    rng : numpy.random.Generator
    shape : str
        "Sphere" (near-spherical, faceted for fcc) or "Oblong" (prolate ellipsoid).
    structure : str, optional
        Force a crystal structure ("wurtzite" / "zincblende" for CdSe).
    zone_axis, tilt_deg : optional
        Force the orientation (see `draw_orientation`).
    exact_diameter : bool
        Use `diameter_nm` as is (tests).
    p_zone_axis : float
        Probability of a near-zone-axis orientation.

    Returns
    -------
    Nanoparticle
    """
    mat = resolve_material(material)
    structs, probs = zip(*mat.structures)
    if structure is not None:
        matches = [s for s in structs if s.name == structure]
        if not matches:
            raise ValueError(f"{material} has no structure {structure!r}")
        struct = matches[0]
    else:
        struct = structs[rng.choice(len(structs), p=np.asarray(probs) / np.sum(probs))]
    d_A = diameter_nm * 10 if exact_diameter else draw_diameter_A(diameter_nm, rng)
    r_A = d_A / 2
    shape_key = str(shape).strip().lower()
    if shape_key == "oblong":
        aspect = rng.uniform(1.15, 1.45)
        semi = np.array([r_A * aspect ** (2 / 3), r_A * aspect ** (-1 / 3), r_A * aspect ** (-1 / 3)])
    else:
        semi = r_A * (1 + 0.03 * np.clip(rng.standard_normal(3), -2, 2)) if not exact_diameter else np.full(3, r_A)
        semi = semi * r_A / np.cbrt(np.prod(semi))  # keep the volume-equivalent diameter
    # the ellipsoid's own axes get a random orientation in the crystal frame
    from scipy.spatial.transform import Rotation

    shape_rot = np.eye(3) if exact_diameter and shape_key != "oblong" else Rotation.random(random_state=rng).as_matrix()

    unit = struct.unit_cell()
    pos, idx = _lattice_points(unit.cell.array, unit.get_scaled_positions(), float(semi.max()))
    symbols = np.asarray(unit.get_chemical_symbols())[idx]
    # ellipsoid cut, in the crystal frame
    q = pos @ shape_rot
    keep = ((q / semi) ** 2).sum(1) <= 1.0
    if mat.faceted and struct.name == "fcc":
        a111 = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / np.sqrt(3)
        keep &= (np.abs(pos @ a111.T) <= 0.94 * r_A).all(1)
        keep &= (np.abs(pos) <= 0.97 * r_A).all(1)
    pos, symbols = pos[keep], symbols[keep]
    orient = draw_orientation(struct, rng, zone_axis=zone_axis, tilt_deg=tilt_deg, p_zone_axis=p_zone_axis)
    pos = pos @ orient.rotation.T
    pos = pos - pos.mean(0)
    return Nanoparticle(symbols, pos, mat.name, struct.name, d_A, semi, orient, mat.atomic_radius_A)


# ----------------------------------------------------------------------------- supports


def random_packing(
    n_atoms: int,
    box_A,
    min_distance_A: float,
    rng,
    periodic_xy: bool = True,
    max_rounds: int = 60,
    tolerance: float = 0.002,
) -> np.ndarray:
    """Random points in a box with no two closer than `min_distance_A` (vectorised RSA).

    Each round throws uniform candidates (enough for the missing atoms at the last round's
    survival rate), drops those too close to accepted atoms and one of each too-close
    candidate pair, and keeps as many of the rest as are missing. Stops when the count is
    within `tolerance` (relative) of the target; converges in a few rounds at amorphous-solid
    packing fractions (~0.1 for carbon at 1.2 A).

    Parameters
    ----------
    n_atoms : int
    box_A : (3,) sequence of float
        Box lengths; x and y are periodic when `periodic_xy`.
    min_distance_A : float
    rng : numpy.random.Generator

    Returns
    -------
    (n, 3) ndarray
        Positions in Angstrom (n == n_atoms unless the box is over-full).
    """
    from scipy.spatial import cKDTree

    box = np.asarray(box_A, float)
    # z is padded so that the periodic wrap in z never brings atoms closer than min_distance
    boxsize = np.array([box[0], box[1], box[2] + 3 * min_distance_A]) if periodic_xy else None
    kw = {"boxsize": boxsize, "balanced_tree": False, "compact_nodes": False}
    accepted: list[np.ndarray] = []
    trees: list[Any] = []
    count = 0  # one k-d tree per round: earlier trees are reused
    yield_ = 0.6  # fraction of candidates that survive, updated each round
    for _ in range(max_rounds):
        missing = n_atoms - count
        # stop within `tolerance` of the target density (the last atoms cost most of the rounds)
        if missing <= max(0, tolerance * n_atoms):
            break
        n_cand = int(min(missing / max(yield_, 0.02) * 1.2, 4 * n_atoms)) + 8
        cand = rng.uniform(0, 1, (n_cand, 3)) * box
        for tree in trees:
            d, _ = tree.query(cand, k=1, distance_upper_bound=min_distance_A)
            cand = cand[~np.isfinite(d)]
        if len(cand) > 1:
            pairs = cKDTree(cand, **kw).query_pairs(min_distance_A, output_type="ndarray")
            if len(pairs):
                cand = np.delete(cand, np.unique(pairs[:, 1]), axis=0)
        yield_ = max(len(cand), 1) / n_cand
        cand = cand[:missing]
        if len(cand):
            accepted.append(cand)
            trees.append(cKDTree(cand, **kw))
            count += len(cand)
    pts = np.concatenate(accepted) if accepted else np.empty((0, 3))
    return pts


def make_support(support: str | Support, extent_A: float, thickness_A: float, rng):
    """An amorphous support block, periodic in x and y.

    Parameters
    ----------
    support : str or Support
        "UT Carbon" or "SiN" (see module docstring for the SiN approximation).
    extent_A : float
        Side length of the square block in Angstrom.
    thickness_A : float
        Film thickness in Angstrom.
    rng : numpy.random.Generator

    Returns
    -------
    ase.Atoms
        Atoms with cell (extent, extent, thickness + 2 A), pbc in x and y.
    """
    from ase import Atoms

    sup = support if isinstance(support, Support) else resolve_support(support)
    n = int(round(sup.number_density_per_A3 * extent_A**2 * thickness_A))
    pos = random_packing(n, (extent_A, extent_A, thickness_A), sup.min_distance_A, rng)
    pos[:, 2] += 1.0
    symbols = rng.choice(np.asarray(sup.symbols), size=len(pos), p=np.asarray(sup.fractions))
    return Atoms(
        symbols=list(symbols), positions=pos, cell=[extent_A, extent_A, thickness_A + 2.0], pbc=[True, True, False]
    )
