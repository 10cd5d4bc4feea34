"""Session-scoped fixtures shared by the test suite: small embedded head models.

Each model is built once per session into a temporary cache (BEM layers at ico3 for speed:
642 vertices per layer) and reused by every test that asks for it.
"""

import pytest


@pytest.fixture(scope="session")
def head_model_cache(tmp_path_factory):
    """A temporary head-model cache folder shared by the session."""
    return tmp_path_factory.mktemp("headmodels")


def _load(cache, spacing, sensors):
    from meg_unet.headmodel import load_head_model

    return load_head_model("fsaverage", spacing, sensors, cache, bem_ico=3, verbose="error")


@pytest.fixture(scope="session")
def tiny_head_model(head_model_cache):
    """Embedded fsaverage, ico2 (162 sources per hemisphere), MEG, 1-layer BEM at ico3."""
    return _load(head_model_cache, "ico2", "meg")


@pytest.fixture(scope="session")
def head_model_ico3_meg(head_model_cache):
    """Embedded fsaverage, ico3 (642 sources per hemisphere), MEG, 1-layer BEM at ico3."""
    return _load(head_model_cache, "ico3", "meg")


@pytest.fixture(scope="session")
def head_model_ico3_megeeg(head_model_cache):
    """Embedded fsaverage, ico3, MEG + 60 EEG, 3-layer BEM at ico3."""
    return _load(head_model_cache, "ico3", "meg+eeg")
