"""The head-model cache's stages: :class:`meg_unet.io.Stage` with the cache's log lines.

A *stage* is a group of files built together (the cortical surfaces, a BEM solution, a source
space, a forward solution and its measurement info).  On load every checksum is verified: a
missing, truncated or altered file, a changed parameter or another mne version make the stage
be rebuilt (with a logged warning when files were there).
"""

import shutil

from .. import io
from ..io import atomic_path
from ._log import logger


def copy_atomic(src, dest):
    """Copy a file to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


class Stage(io.Stage):
    """One cached group of files under ``root`` (see :class:`meg_unet.io.Stage`)."""

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
