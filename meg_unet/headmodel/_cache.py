"""A small, verified on-disk cache for head-model pieces.

A *stage* is a group of files built together (the cortical surfaces, a BEM solution, a source
space, a forward solution and its measurement info). Each stage has a JSON manifest holding
the build parameters, the mne version and the SHA-256 checksum and size of every file. Files
are written under a temporary name and renamed when complete; the manifest is written last,
so a stage without a valid manifest is partial. On load, every checksum is verified: a
missing, truncated or altered file, a changed parameter or another mne version make the stage
be rebuilt (with a logged warning when files were there).
"""

import json
import shutil
from pathlib import Path

import mne

from ..io import atomic_path, sha256sum
from ._log import logger

MANIFEST_VERSION = 1


def write_json_atomic(path, data):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def copy_atomic(src, dest):
    """Copy a file to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


class Stage:
    """One cached group of files under ``root``.

    Parameters
    ----------
    root : Path
        Cache root; file names are stored relative to it.
    name : str
        Stage name; the manifest is ``root / "manifests" / f"{name}.json"``.
    params : dict
        JSON-serialisable build parameters; a change forces a rebuild.
    files : list of str
        Paths, relative to ``root``, of the files the stage writes.
    """

    def __init__(self, root, name, params, files):
        self.root = Path(root)
        self.name = name
        self.params = json.loads(json.dumps(params, sort_keys=True, default=str))
        self.files = list(files)
        self.manifest_path = self.root / "manifests" / f"{name}.json"

    def path(self, rel):
        """Absolute path of one of the stage's files."""
        return self.root / rel

    def problem(self):
        """Why the cached stage cannot be used, or None if it is complete and intact."""
        if not self.manifest_path.is_file():
            present = [rel for rel in self.files if self.path(rel).exists()]
            if present:
                return f"partial build: {present[0]} exists but the manifest is missing"
            return "not built"
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as err:
            return f"unreadable manifest {self.manifest_path} ({err})"
        if not isinstance(manifest, dict):
            return f"unreadable manifest {self.manifest_path}"
        if manifest.get("manifest_version") != MANIFEST_VERSION:
            return "manifest from another version of the cache format"
        if manifest.get("mne_version") != mne.__version__:
            return (
                f"built with mne {manifest.get('mne_version')}, running mne {mne.__version__}"
            )
        if manifest.get("params") != self.params:
            return "build parameters changed"
        recorded = manifest.get("files", {})
        if sorted(recorded) != sorted(self.files):
            return "the manifest lists other files"
        for rel, meta in recorded.items():
            path = self.path(rel)
            if not path.is_file():
                return f"missing file {path}"
            if path.stat().st_size != meta.get("size"):
                return f"{path} has {path.stat().st_size} bytes, expected {meta.get('size')}"
            if sha256sum(path) != meta.get("sha256"):
                return f"checksum mismatch for {path}"
        return None

    def is_valid(self, *, overwrite=False):
        """Check the stage; log a warning when files exist but cannot be used."""
        if overwrite:
            logger.info(f"Rebuilding cache stage {self.name!r} (overwrite=True)")
            return False
        problem = self.problem()
        if problem is None:
            logger.info(f"Loading cache stage {self.name!r} from {self.root}")
            return True
        if problem == "not built":
            logger.info(f"Building cache stage {self.name!r} in {self.root}")
        else:
            logger.warning(f"Cache stage {self.name!r} is unusable ({problem}); rebuilding it")
        return False

    def invalidate(self):
        """Remove the manifest (before rebuilding files in place)."""
        if self.manifest_path.exists():
            self.manifest_path.unlink()

    def checksums(self):
        """``{relative path: sha256}`` of the stage's files (as recorded when valid)."""
        manifest = json.loads(self.manifest_path.read_text())
        return {rel: meta["sha256"] for rel, meta in manifest["files"].items()}

    def commit(self):
        """Record the files' checksums and the parameters; call after all files are written."""
        files = {}
        for rel in self.files:
            path = self.path(rel)
            if not path.is_file():
                raise RuntimeError(f"cache stage {self.name!r} did not write {path}")
            files[rel] = dict(sha256=sha256sum(path), size=path.stat().st_size)
        write_json_atomic(
            self.manifest_path,
            dict(
                manifest_version=MANIFEST_VERSION,
                stage=self.name,
                mne_version=mne.__version__,
                params=self.params,
                files=files,
            ),
        )
