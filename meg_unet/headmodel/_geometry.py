"""Pure geometry helpers of the head models: ray casting, BEM layers, helmet placement.

Everything here works on plain arrays (meters) and returns new arrays; no file I/O.
"""

import numpy as np
from scipy.spatial import cKDTree

#: Ratio of the skull to the (inner skull -> scalp) distance along each ray, and the largest
#: skull thickness (m) of the constructed outer skull (see :func:`make_three_layers`).
SKULL_FRACTION = 0.5
MAX_SKULL_THICKNESS = 0.007

#: Scalp-to-nearest-sensor distance (m) wanted at the top of the helmet, and the half-angle
#: (degrees) around the helmet's vertical axis that defines "the top".
TOP_GAP = 0.020
TOP_HALF_ANGLE = 30.0


def unit_vectors(rr):
    """Return ``rr`` divided by its row norms."""
    rr = np.asarray(rr, float)
    return rr / np.linalg.norm(rr, axis=1, keepdims=True)


def ray_radii(rr, tris, center, dirs):
    """Distance from ``center`` to a closed triangulated surface along unit rays.

    Möller–Trumbore ray/triangle intersection, vectorized; the candidate triangles of each ray
    are found with a k-d tree on the triangles' directions seen from ``center`` (a ray from
    ``center`` can only hit a triangle whose three vertex directions surround it).

    Parameters
    ----------
    rr : array, shape (n_vertices, 3)
        Vertex positions.
    tris : array of int, shape (n_triangles, 3)
        Triangles.
    center : array, shape (3,)
        Origin of the rays; must be inside the surface.
    dirs : array, shape (n_rays, 3)
        Unit ray directions.

    Returns
    -------
    radius : array, shape (n_rays,)
        Distance to the outermost intersection of each ray (``nan`` where a ray misses, which
        cannot happen for a closed surface around ``center``).
    n_hits : array of int, shape (n_rays,)
        Number of intersections of each ray: 1 everywhere for a surface that is star-shaped
        around ``center``.
    """
    rr = np.asarray(rr, float)
    tris = np.asarray(tris, int)
    dirs = np.asarray(dirs, float)
    rel = rr - np.asarray(center, float)
    tri_dirs = unit_vectors(rel)[tris]  # (n_tri, 3, 3)
    mid = unit_vectors(tri_dirs.sum(axis=1))
    reach = np.linalg.norm(tri_dirs - mid[:, np.newaxis], axis=2).max()
    candidates = cKDTree(mid).query_ball_point(dirs, reach * (1 + 1e-6) + 1e-9)
    counts = np.array([len(c) for c in candidates])
    ray_idx = np.repeat(np.arange(len(dirs)), counts)
    tri_idx = np.concatenate([np.asarray(c, int) for c in candidates] + [np.zeros(0, int)])
    d = dirs[ray_idx]
    v0 = rel[tris[tri_idx, 0]]
    e1 = rel[tris[tri_idx, 1]] - v0
    e2 = rel[tris[tri_idx, 2]] - v0
    p = np.cross(d, e2)
    det = np.einsum("ij,ij->i", p, e1)
    ok = np.abs(det) > 1e-20
    inv = np.zeros_like(det)
    inv[ok] = 1.0 / det[ok]
    tvec = -v0  # the ray origin (0) minus v0
    u = np.einsum("ij,ij->i", p, tvec) * inv
    q = np.cross(tvec, e1)
    v = np.einsum("ij,ij->i", d, q) * inv
    t = np.einsum("ij,ij->i", q, e2) * inv
    eps = 1e-7
    ok &= (u >= -eps) & (v >= -eps) & (u + v <= 1 + eps) & (t > 0)
    radius = np.full(len(dirs), -np.inf)
    np.maximum.at(radius, ray_idx[ok], t[ok])
    radius[~np.isfinite(radius)] = np.nan
    # a ray through an edge or a vertex hits several triangles at one point: count it once
    hit_t = np.round(t[ok] / 1e-9).astype(np.int64)
    unique_hits = np.unique(np.c_[ray_idx[ok], hit_t], axis=0)
    n_hits = np.bincount(unique_hits[:, 0], minlength=len(dirs))
    return radius, n_hits


def ico_directions(grade):
    """Unit vertices and triangles of mne's icosahedron subdivided ``grade`` times.

    Returns
    -------
    dirs : array, shape (n_vertices, 3)
        10 * 4**grade + 2 unit vectors.
    tris : array of int, shape (20 * 4**grade, 3)
        Outward-oriented triangles.
    """
    from mne.surface import _get_ico_surface

    ico = _get_ico_surface(int(grade))
    return unit_vectors(ico["rr"]), np.asarray(ico["tris"], int)


def resample_star_shaped(rr, tris, center, grade):
    """Resample a closed surface onto an icosahedral mesh by radial projection.

    Each vertex of the ``grade``-times subdivided icosahedron (a unit sphere around ``center``)
    is moved along its ray to the outermost intersection with the surface. The result is a
    closed, star-shaped mesh with the icosahedron's topology (so mne's BEM topology checks
    pass); where the input is not star-shaped around ``center`` (a few folds of the skull
    base) it bridges the fold from outside.

    Parameters
    ----------
    rr, tris : array
        The surface (m).
    center : array, shape (3,)
        Centre of the rays (inside the surface).
    grade : int
        Icosahedron subdivision: 3 (642 vertices), 4 (2562) or 5 (10242).

    Returns
    -------
    rr_new : array, shape (n_vertices, 3)
        The resampled vertices (m).
    tris_new : array of int, shape (n_triangles, 3)
        Its triangles.
    """
    dirs, ico_tris = ico_directions(grade)
    radius, _ = ray_radii(rr, tris, center, dirs)
    if np.isnan(radius).any():
        raise RuntimeError(
            f"{int(np.isnan(radius).sum())} rays from the centre missed the surface; it is not "
            "closed around the centre"
        )
    return center + radius[:, np.newaxis] * dirs, ico_tris


def make_three_layers(inner_rr, inner_tris, scalp_rr, scalp_tris, grade):
    """Build the nested inner skull, outer skull and scalp meshes of a 3-layer BEM.

    All three layers share the same rays: the vertices of the ``grade``-times subdivided
    icosahedron centred at the inner skull's centroid ``c``. Along each ray ``d``:

    - the inner skull radius ``r_i`` and the scalp radius ``r_s`` are the outermost
      intersections of the ray with the given surfaces (:func:`resample_star_shaped`);
    - the outer skull radius is ``r_o = r_i + min(SKULL_FRACTION * (r_s - r_i),
      MAX_SKULL_THICKNESS)``, i.e. half-way between inner skull and scalp, but never more
      than 7 mm outside the inner skull. On the fsaverage head the inner-skull-to-scalp
      distance along the rays is 6.3-121 mm (median 13 mm, 9-19 mm over the vertex), so the
      skull is 3.1-7 mm thick and the scalp at least 3.1 mm (more at the skull base and
      neck, where the remaining tissue has the scalp's conductivity).

    Because the three meshes are radial scalings of one spherical triangulation and
    ``r_i < r_o < r_s`` holds on every ray, they are nested everywhere (not only at the
    vertices): along any direction inside a triangle's cone the radius is a harmonic mean of
    the three corner radii, which is monotonic in each of them.

    Parameters
    ----------
    inner_rr, inner_tris : array
        Inner skull surface (m, MRI coordinates).
    scalp_rr, scalp_tris : array
        Scalp (outer skin) surface (m, MRI coordinates).
    grade : int
        Icosahedron subdivision of the output meshes.

    Returns
    -------
    layers : list of tuple
        ``[(rr, tris)]`` for the inner skull, outer skull and scalp, in that order.
    """
    center = np.asarray(inner_rr, float).mean(axis=0)
    dirs, tris = ico_directions(grade)
    r_in, _ = ray_radii(inner_rr, inner_tris, center, dirs)
    r_sc, _ = ray_radii(scalp_rr, scalp_tris, center, dirs)
    if np.isnan(r_in).any() or np.isnan(r_sc).any():
        raise RuntimeError("the inner skull or the scalp is not closed around the centre")
    gap = r_sc - r_in
    if (gap <= 0).any():
        raise RuntimeError(
            f"the scalp is inside the inner skull along {int((gap <= 0).sum())} rays"
        )
    r_out = r_in + np.minimum(SKULL_FRACTION * gap, MAX_SKULL_THICKNESS)
    return [(center + r[:, np.newaxis] * dirs, tris.copy()) for r in (r_in, r_out, r_sc)]


class SurfaceDistance:
    """Euclidean distance (m) from points to the nearest point of a triangulated surface.

    Exact point-to-triangle distances, vectorized: the candidate triangles of a point are
    those with a vertex closer than (distance to the nearest vertex + longest edge), a
    superset of the triangles that can hold the nearest point. (mne's
    ``_project_onto_surface`` is approximate away from the surface, and slow without numba.)

    Parameters
    ----------
    rr : array, shape (n_vertices, 3)
        Vertices.
    tris : array of int, shape (n_triangles, 3)
        Triangles.
    """

    def __init__(self, rr, tris):
        from scipy import sparse

        self.rr = np.asarray(rr, float)
        self.tris = np.asarray(tris, int)
        edges = np.concatenate([self.tris[:, [0, 1]], self.tris[:, [1, 2]], self.tris[:, [2, 0]]])
        self.max_edge = np.linalg.norm(self.rr[edges[:, 0]] - self.rr[edges[:, 1]], axis=1).max()
        self.tree = cKDTree(self.rr)
        n_tri = len(self.tris)
        self.incidence = sparse.csr_matrix(
            (np.ones(self.tris.size), (self.tris.ravel(), np.repeat(np.arange(n_tri), 3))),
            shape=(len(self.rr), n_tri),
        )

    def __call__(self, points):
        """Distances of ``points`` (array, shape (n, 3)) to the surface, shape (n,)."""
        from scipy import sparse

        points = np.atleast_2d(np.asarray(points, float))
        d_vert, _ = self.tree.query(points)
        near = self.tree.query_ball_point(points, d_vert + self.max_edge + 1e-9)
        counts = np.array([len(n) for n in near])
        pick = sparse.csr_matrix(
            (np.ones(counts.sum()), (np.repeat(np.arange(len(points)), counts),
                                     np.concatenate(near).astype(int))),
            shape=(len(points), len(self.rr)),
        )
        pt_idx, tri_idx = (pick @ self.incidence).nonzero()
        p = points[pt_idx]
        a, b, c = (self.rr[self.tris[tri_idx, k]] for k in range(3))
        # projection onto the triangle's plane, used when it falls inside the triangle
        e0, e1 = b - a, c - a
        normal = np.cross(e0, e1)
        nn2 = np.einsum("ij,ij->i", normal, normal)
        w = p - a
        height = np.einsum("ij,ij->i", w, normal) / nn2
        q = w - height[:, np.newaxis] * normal
        d00, d01, d11 = (np.einsum("ij,ij->i", x, y) for x, y in ((e0, e0), (e0, e1), (e1, e1)))
        q0, q1 = np.einsum("ij,ij->i", q, e0), np.einsum("ij,ij->i", q, e1)
        denom = d00 * d11 - d01**2
        s = (d11 * q0 - d01 * q1) / denom
        t = (d00 * q1 - d01 * q0) / denom
        inside = (s >= 0) & (t >= 0) & (s + t <= 1)
        dist = np.where(inside, np.abs(height) * np.sqrt(nn2), np.inf)
        for u, v in ((a, b), (b, c), (c, a)):
            seg = v - u
            frac = np.einsum("ij,ij->i", p - u, seg) / np.einsum("ij,ij->i", seg, seg)
            frac = np.clip(frac, 0, 1)
            dist = np.minimum(dist, np.linalg.norm(p - u - frac[:, np.newaxis] * seg, axis=1))
        out = np.full(len(points), np.inf)
        np.minimum.at(out, pt_idx, dist)
        return out


def distance_to_surface(points, rr, tris):
    """Distance (m) from each point to a triangulated surface (see :class:`SurfaceDistance`)."""
    return SurfaceDistance(rr, tris)(points)


def fit_sphere(points):
    """Least-squares sphere through points: ``(radius, center)`` in the points' units."""
    points = np.asarray(points, float)
    # |p|^2 = 2 p.c + (r^2 - |c|^2): linear in (c, k)
    a = np.c_[2 * points, np.ones(len(points))]
    b = (points**2).sum(axis=1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    center = sol[:3]
    radius = np.sqrt(sol[3] + center @ center)
    return float(radius), center


def place_head_in_helmet(sensor_pos, scalp_rr, scalp_tris, *, top_gap=TOP_GAP,
                         top_half_angle=TOP_HALF_ANGLE, search_mm=20.0):
    """Translation that seats a head inside an MEG helmet.

    The rotation between the device and head frames is the identity (the head looks along
    the device's +y axis, its vertex points along +z). The translation is found in three
    steps:

    1. fit a sphere to the sensor positions (device frame) and one to the upper scalp
       (head frame, ``z > 0``), and align the two centres;
    2. for an anterior-posterior offset ``dy`` of the head, find by bisection the vertical
       offset that makes the smallest distance between the scalp and the sensors at the top
       of the helmet (those within ``top_half_angle`` of the helmet's vertical axis, seen
       from its centre) equal ``top_gap``;
    3. keep the ``dy`` whose smallest scalp-to-sensor distance over *all* sensors is largest
       (the head centred front-to-back): a 5 mm grid over ``+-search_mm``, then a 1 mm grid
       around the best value.

    Parameters
    ----------
    sensor_pos : array, shape (n_sensors, 3)
        Sensor positions in the device frame (m).
    scalp_rr, scalp_tris : array
        Scalp surface in the head frame (m).
    top_gap : float
        Wanted scalp-to-sensor distance at the top (m).
    top_half_angle : float
        Half-angle of the top cap of sensors (degrees).
    search_mm : float
        Range of the anterior-posterior search (mm).

    Returns
    -------
    translation : array, shape (3,)
        ``t`` such that ``head = device + t`` (m).
    """
    sensor_pos = np.unique(np.asarray(sensor_pos, float).round(9), axis=0)
    scalp_rr = np.asarray(scalp_rr, float)
    _, c_helmet = fit_sphere(sensor_pos)
    _, c_scalp = fit_sphere(scalp_rr[scalp_rr[:, 2] > 0])
    axis_dirs = unit_vectors(sensor_pos - c_helmet)
    top = axis_dirs[:, 2] > np.cos(np.radians(top_half_angle))
    distance = SurfaceDistance(scalp_rr, scalp_tris)
    base = sensor_pos + c_scalp - c_helmet  # sensors in the head frame, centres aligned

    def seat(dy):
        """Vertical offset giving the wanted top gap, and the smallest gap overall."""
        lo, hi = -0.05, 0.05  # helmet centre below / above the scalp centre
        for _ in range(20):  # 0.1 mm / 2**20
            mid = 0.5 * (lo + hi)
            if distance(base[top] + [0.0, dy, mid]).min() > top_gap:
                hi = mid
            else:
                lo = mid
        offset = np.array([0.0, dy, 0.5 * (lo + hi)])
        return distance(base + offset).min(), offset

    coarse = [seat(dy) for dy in np.arange(-search_mm, search_mm + 0.5, 5.0) / 1000.0]
    best = max(coarse, key=lambda r: r[0])
    fine = [seat(best[1][1] + dy) for dy in np.arange(-4.0, 4.5, 1.0) / 1000.0]
    best = max(fine, key=lambda r: r[0])
    return c_scalp + best[1] - c_helmet
