"""Cortical surfaces and a small renderer that paints values on them.

:func:`load_surface` reads the inflated surface (with its sphere and curvature) of a
hemisphere: fsaverage5 from the nilearn package for the embedded model, or a subject's
FreeSurfer files.  :func:`draw_surface` paints per-vertex values on it with an orthographic
renderer of our own (triangles projected to 2D, back faces culled, painted far to near,
Lambert-shaded), onto ordinary 2D axes.  It renders fsaverage5 (20480 triangles per
hemisphere) in well under a second per panel and the brain fills its panel, which
:mod:`mpl_toolkits.mplot3d` axes do not allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import HEMISPHERE_NAMES

_HEMIS = HEMISPHERE_NAMES
VIEWS = ("lateral", "medial")
# Camera direction (from the brain towards the viewer) and the screen's rightward axis, per
# (hemisphere, view); up is +z (superior). Lateral right and medial left views show anterior
# to the right, as PySurfer does.
_CAMERAS = {
    ("rh", "lateral"): ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    ("rh", "medial"): ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    ("lh", "lateral"): ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    ("lh", "medial"): ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
}
# Grey levels of vertices without data: gyri lighter, sulci darker (as in PySurfer).
GYRUS_GREY = 0.82
_SULCUS_GREY = 0.62
# Light from the camera and somewhat above: ambient part and diffuse part of the shading.
_AMBIENT = 0.5
_DIFFUSE = 0.5


@dataclass(frozen=True)
class CorticalSurface:
    """One hemisphere's inflated surface, with what the heatmaps need.

    Attributes
    ----------
    hemi : ``'lh'`` | ``'rh'``
        The hemisphere.
    inflated : ndarray, shape (n_vertices, 3)
        Inflated vertex positions (mm); vertex ``i`` is source-space vertex number ``i``.
    faces : ndarray of int, shape (n_faces, 3)
        Triangles, counter-clockwise seen from outside.
    sphere : ndarray, shape (n_vertices, 3)
        Positions on the registration sphere, where "nearest source vertex" is measured.
    sulc : ndarray, shape (n_vertices,)
        Sulcal depth (positive in sulci), for the grey background; zeros when unknown.
    """

    hemi: str
    inflated: np.ndarray
    faces: np.ndarray
    sphere: np.ndarray
    sulc: np.ndarray

    @property
    def n_vertices(self):
        """Number of vertices of the mesh."""
        return len(self.inflated)


def _nilearn_fsaverage5_dir():
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data" / "fsaverage5"


def load_surface(hemi, head_model="fsaverage", subjects_dir=None, subject=None):
    """Read one hemisphere's inflated surface, sphere and sulcal depth.

    Parameters
    ----------
    hemi : ``'lh'`` | ``'rh'``
        The hemisphere.
    head_model : ``'fsaverage'`` | ``'sample'`` | ``'custom'``
        ``'fsaverage'`` reads nilearn's fsaverage5 meshes (``infl_*``, ``sphere_*``,
        ``sulc_*``; ico5, 10242 vertices; the vertex numbers of every fsaverage source space of
        meg_unet index them). The others read FreeSurfer's ``surf/{lh,rh}.inflated``,
        ``.sphere`` and ``.sulc`` of ``subject`` in ``subjects_dir``.
    subjects_dir : path-like | None
        FreeSurfer subjects folder; for ``'sample'`` None means the MNE sample data set's.
    subject : str | None
        The subject; for ``'sample'`` None means ``"sample"``.

    Returns
    -------
    surface : CorticalSurface
        The surface.

    Raises
    ------
    FileNotFoundError
        If a surface file is missing (the message names it).
    """
    if hemi not in _HEMIS:
        raise ValueError(
            f"Invalid value for the 'hemi' parameter. Allowed values are 'lh' and 'rh', but got "
            f"{hemi!r} instead."
        )
    if head_model == "fsaverage":
        return _load_fsaverage5(hemi)
    if head_model not in ("sample", "custom"):
        raise ValueError(
            "Invalid value for the 'head_model' parameter. Allowed values are 'fsaverage', "
            f"'sample' and 'custom', but got {head_model!r} instead."
        )
    if head_model == "sample":
        if subjects_dir is None:
            from .headmodel.subject import default_sample_data_path

            subjects_dir = default_sample_data_path() / "subjects"
        subject = "sample" if subject is None else subject
    if subjects_dir is None or subject is None:
        raise ValueError("a 'custom' head model needs subjects_dir and subject")
    return _load_freesurfer(hemi, Path(subjects_dir) / subject / "surf")


def _load_fsaverage5(hemi):
    import nibabel as nib

    folder = _nilearn_fsaverage5_dir()
    side = {"lh": "left", "rh": "right"}[hemi]
    arrays = {}
    for kind in ("infl", "sphere", "sulc"):
        path = folder / f"{kind}_{side}.gii.gz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: fsaverage5 surface file not found (nilearn)")
        arrays[kind] = [np.asarray(a.data) for a in nib.load(path).darrays]
    return CorticalSurface(
        hemi=hemi,
        inflated=arrays["infl"][0].astype(np.float64),
        faces=arrays["infl"][1].astype(np.int64),
        sphere=arrays["sphere"][0].astype(np.float64),
        sulc=arrays["sulc"][0].astype(np.float64),
    )


def _load_freesurfer(hemi, surf_dir):
    import nibabel as nib

    inflated_path = surf_dir / f"{hemi}.inflated"
    if not inflated_path.is_file():
        raise FileNotFoundError(f"{inflated_path}: inflated surface not found")
    inflated, faces = nib.freesurfer.read_geometry(str(inflated_path))
    sphere_path = surf_dir / f"{hemi}.sphere"
    # Without a sphere, nearness is measured on the inflated surface (nearly as good).
    sphere = inflated
    if sphere_path.is_file():
        sphere = nib.freesurfer.read_geometry(str(sphere_path))[0]
    sulc = np.zeros(len(inflated))
    for name in ("sulc", "curv"):
        path = surf_dir / f"{hemi}.{name}"
        if path.is_file():
            sulc = nib.freesurfer.read_morph_data(str(path))
            break
    return CorticalSurface(
        hemi=hemi,
        inflated=np.asarray(inflated, dtype=np.float64),
        faces=np.asarray(faces, dtype=np.int64),
        sphere=np.asarray(sphere, dtype=np.float64),
        sulc=np.asarray(sulc, dtype=np.float64),
    )


def values_on_surface(surface, vertices, values, source_vertices=None):
    """Carry values at source vertices to every vertex of a surface mesh.

    Each mesh vertex takes the value of its nearest source vertex on the registration sphere
    (the source vertex whose patch of cortex it belongs to). Mesh vertices whose nearest source
    vertex has no value stay NaN (drawn grey).

    Parameters
    ----------
    surface : CorticalSurface
        The hemisphere's mesh.
    vertices : array-like of int, shape (n,)
        Vertex numbers that have a value (indices into the mesh).
    values : array-like of float, shape (n,)
        Their values.
    source_vertices : array-like of int | None
        All vertex numbers of the source space. None takes ``vertices`` only, so every mesh
        vertex is painted with the value of the nearest vertex that has one.

    Returns
    -------
    mesh_values : ndarray, shape (surface.n_vertices,)
        Values per mesh vertex, NaN where there is no data.
    """
    nearest, sources = nearest_source(surface, vertices, source_vertices)
    return carry_to_mesh(nearest, sources, vertices, values)


def carry_to_mesh(nearest, sources, vertices, values):
    """Values per mesh vertex from values at some of the (sorted) ``sources``."""
    by_source = np.full(len(sources), np.nan)
    by_source[np.searchsorted(sources, np.asarray(vertices, dtype=np.int64))] = values
    return by_source[nearest]


def nearest_source(surface, vertices, source_vertices):
    """Index into ``sources`` (sorted vertex numbers) of each mesh vertex's nearest source."""
    from scipy.spatial import cKDTree

    vertices = np.asarray(vertices, dtype=np.int64)
    extra = () if source_vertices is None else (np.asarray(source_vertices, dtype=np.int64),)
    sources = np.unique(np.concatenate([vertices, *extra]))
    if sources.size == 0:
        raise ValueError("no vertex with a value to draw")
    if sources[0] < 0 or sources[-1] >= surface.n_vertices:
        raise ValueError(
            f"vertex number {sources[-1] if sources[-1] >= 0 else sources[0]} is not on the "
            f"{surface.hemi} surface ({surface.n_vertices} vertices): do metrics.csv, "
            "HEAD_MODEL and HEMISPHERE belong together?"
        )
    _, nearest = cKDTree(surface.sphere[sources]).query(surface.sphere)
    return nearest, sources


# ---------------------------------------------------------------------------------------------
# Rendering a surface onto 2D axes


def _projection(surface, view):
    """Screen coordinates (n, 2) and depth (n,) of the inflated vertices for one view."""
    toward_viewer, right = (np.asarray(a) for a in _CAMERAS[(surface.hemi, view)])
    up = np.array([0.0, 0.0, 1.0])
    rr = surface.inflated - surface.inflated.mean(axis=0)
    return np.column_stack([rr @ right, rr @ up]), rr @ toward_viewer


def _face_normals(surface):
    v = surface.inflated[surface.faces]
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    # Outward normals whatever the file's winding: the signed volume must be positive.
    if np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() < 0:
        normals = -normals
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def draw_surface(ax, surface, mesh_values, view, cmap, norm, rasterized=True):
    """Paint per-vertex values (NaN: grey background) on one view of a surface."""
    from matplotlib.collections import PolyCollection

    xy, depth = _projection(surface, view)
    toward_viewer = np.asarray(_CAMERAS[(surface.hemi, view)][0])
    normals = _face_normals(surface)
    facing = normals @ toward_viewer > 0  # back faces are hidden on a closed surface
    faces = surface.faces[facing]
    order = np.argsort(depth[faces].mean(axis=1))  # far to near: the painter's algorithm
    faces = faces[order]

    colors = np.empty((surface.n_vertices, 3))
    blank = np.isnan(mesh_values)
    grey = np.where(surface.sulc > 0, _SULCUS_GREY, GYRUS_GREY)
    colors[blank] = grey[blank, None]
    if (~blank).any():
        colors[~blank] = cmap(norm(mesh_values[~blank]))[:, :3]
    light = toward_viewer + np.array([0.0, 0.0, 0.6])
    light /= np.linalg.norm(light)
    shade = _AMBIENT + _DIFFUSE * np.clip(normals[facing][order] @ light, 0, 1)
    face_colors = np.clip(colors[faces].mean(axis=1) * shade[:, None], 0, 1)

    collection = PolyCollection(
        xy[faces],
        facecolors=face_colors,
        edgecolors=face_colors,  # edges in the face colour close the seams antialiasing leaves
        linewidths=0.25,
        rasterized=rasterized,
    )
    ax.add_collection(collection)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return xy
