"""Cut a data split or a recording into the tiles the U-Net sees, and run it over them.

Tiles
-----
The network sees tiles of ``T_STEPS`` consecutive samples of all vertices of the hemisphere, as
in training.  Whole tiles cover the samples from the start; the samples left over at the end
(training dropped them) are predicted by **one more tile aligned to the end** of the data, which
overlaps the last whole tile: every sample gets a prediction computed from real data, never from
padding.  Each sample takes its prediction from exactly one tile, its *owner*: the whole tile it
lies in, or the end-aligned tile for the leftover samples.  Only data shorter than one tile are
padded (with zeros after the preprocessing) to one tile.  Batch normalization runs in inference
mode (``Model.predict_on_batch``).

The border
----------
The U-Net is least reliable at the edges of a tile, so the thesis left its 2 outer pixels on each
side out of the metrics (``network.BORDER``; the ``border`` argument).  A tile's rows are the
hemisphere's vertices in source-space order, so with ``border=2`` the first two and the last two
vertices of the hemisphere (with HEMISPHERE = "both": the first two of lh and the last two of
rh) are never evaluated: no method can have its peak there.  A sample whose true source is one
of them stays in ``metrics.csv``, scored against the kept vertices (an estimate that is zero on
all of them gives NaN).  This is the thesis's behaviour and is kept.  A tile's columns are time
samples, so the ``border`` samples at each edge of the sample's owner tile are left out of
``metrics.csv`` too.  The same vertices and samples are left out for every method, so that all
four are compared on the same pixels.  The source estimates keep every vertex and sample.
"""

import dataclasses

import numpy as np

from .errors import check_int

__all__ = ["TileLayout", "active_probability", "predict_in_chunks", "predict_tiles", "tile_layout",
           "tile_window"]


# --------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """Where the tiles of ``n_times`` samples start, and which samples each one predicts.

    Build it with :func:`tile_layout`.

    Attributes
    ----------
    n_times : int
        Samples of the data.
    t_steps : int
        Samples per tile.
    starts : ndarray of int, shape (n_tiles,)
        First sample of each tile: ``0, t_steps, 2 * t_steps ...`` for the whole tiles, then
        ``n_times - t_steps`` for the tile aligned to the end when samples are left over.  With
        ``n_times < t_steps``, one tile at 0 that is padded after the data.
    """

    n_times: int
    t_steps: int
    starts: np.ndarray

    @property
    def n_tiles(self):
        """Number of tiles."""
        return len(self.starts)

    @property
    def n_whole(self):
        """Number of whole, non-overlapping tiles from the start."""
        return self.n_times // self.t_steps

    @property
    def padded(self):
        """Whether the data are shorter than one tile (then padded to one)."""
        return self.n_times < self.t_steps

    @property
    def end_aligned(self):
        """Whether a last tile aligned to the end predicts the samples left over."""
        return not self.padded and self.n_times % self.t_steps > 0

    def owned(self, index):
        """Return the slice of samples whose prediction comes from tile ``index``."""
        if not 0 <= index < self.n_tiles:
            raise IndexError(f"tile {index} out of range (there are {self.n_tiles} tiles)")
        if index < self.n_whole:
            start = index * self.t_steps
            return slice(start, start + self.t_steps)
        return slice(self.n_whole * self.t_steps, self.n_times)

    def evaluated(self, border):
        """Return which samples lie outside the ``border`` columns of their owner tile.

        Parameters
        ----------
        border : int
            Columns left out at each edge of a tile.

        Returns
        -------
        mask : ndarray of bool, shape (n_times,)
            True for the samples that the metrics use.
        """
        border = check_int(border, "border", 0)
        mask = np.zeros(self.n_times, dtype=bool)
        for index in range(self.n_tiles):
            owned = self.owned(index)
            position = np.arange(owned.start, owned.stop) - self.starts[index]
            mask[owned] = (position >= border) & (position < self.t_steps - border)
        return mask

    def describe(self):
        """Return a JSON-ready description (for prediction.json and the log)."""
        if self.padded:
            last = f"one tile padded with zeros after the {self.n_times} samples"
        elif self.end_aligned:
            last = (
                f"the last {self.n_times % self.t_steps} samples predicted by a tile aligned "
                f"to the end (samples {self.n_times - self.t_steps}-{self.n_times - 1})"
            )
        else:
            last = "no samples left over"
        return {
            "n_times": int(self.n_times),
            "t_steps": int(self.t_steps),
            "n_tiles": int(self.n_tiles),
            "n_whole_tiles": int(self.n_whole),
            "remainder": last,
        }


def tile_layout(n_times, t_steps):
    """Lay tiles of ``t_steps`` samples over ``n_times`` samples (see :class:`TileLayout`).

    Parameters
    ----------
    n_times : int
        Samples of the data (>= 1).
    t_steps : int
        Samples per tile (>= 1).

    Returns
    -------
    layout : TileLayout
        Whole tiles from the start, then one tile aligned to the end if samples are left over
        (or one padded tile if the data are shorter than a tile).
    """
    n_times, t_steps = check_int(n_times, "n_times", 1), check_int(t_steps, "t_steps", 1)
    n_whole = n_times // t_steps
    starts = list(range(0, n_whole * t_steps, t_steps))
    if n_whole == 0:
        starts = [0]
    elif n_times % t_steps:
        starts.append(n_times - t_steps)
    return TileLayout(n_times, t_steps, np.asarray(starts, dtype=np.int64))


def tile_window(array, start, t_steps):
    """Columns ``start .. start + t_steps`` of ``array`` (axis 1), zero-padded past its end."""
    window = array[:, start : start + t_steps]
    missing = t_steps - window.shape[1]
    if missing:
        pad = [(0, 0)] * window.ndim
        pad[1] = (0, missing)
        window = np.pad(window, pad)
    return window


# --------------------------------------------------------------------------------------------
# Running the network
# --------------------------------------------------------------------------------------------


def active_probability(probabilities):
    """Return the probability of "active" from the network's softmax output.

    Parameters
    ----------
    probabilities : ndarray, shape (..., n_classes)
        Softmax over the classes; class 0 is silent.

    Returns
    -------
    active : ndarray of float32, shape (...)
        ``1 - p(class 0)``: softmax channel 1 with two classes, the sum of all active classes
        with more.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim < 1 or probabilities.shape[-1] < 2:
        raise ValueError(
            "probabilities must have a last axis of at least 2 classes, but got shape "
            f"{probabilities.shape}"
        )
    return (1.0 - probabilities[..., 0]).astype(np.float32)


def predict_tiles(model, inputs, layout, batch_size=1, progress=True):
    """Predict the probability of "active" for every sample of preprocessed inputs.

    Parameters
    ----------
    model : keras.Model
        The trained U-Net (input ``(batch, n_vertices, t_steps, n_channels)``).
    inputs : ndarray, shape (n_vertices, n_times, n_channels)
        Preprocessed inputs (e.g. :attr:`meg_unet.data_provider.DataProvider.inputs`).
    layout : TileLayout
        The tiles (:func:`tile_layout` of ``n_times`` and the model's ``t_steps``).
    batch_size : int
        Tiles per call of the network.
    progress : bool
        Show a progress bar over the tiles.

    Returns
    -------
    active : ndarray of float32, shape (n_vertices, n_times)
        Probability of "active" of each vertex and sample, from the sample's owner tile.
    """
    batch_size = check_int(batch_size, "batch_size", 1)
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[1] != layout.n_times:
        raise ValueError(
            f"inputs must have shape (n_vertices, {layout.n_times}, n_channels) to match the "
            f"layout, but got {inputs.shape}"
        )
    out = np.empty(inputs.shape[:2], dtype=np.float32)
    predict_in_chunks(
        model,
        layout,
        lambda start, stop: inputs[:, start:stop],
        out,
        chunk_tiles=layout.n_tiles,
        batch_size=batch_size,
        desc="predict",
        progress=progress,
    )
    return out


def predict_in_chunks(model, layout, inputs_of, out, chunk_tiles, batch_size, desc,
                      progress=True):
    """Predict ``layout``'s tiles chunk by chunk into ``out`` (n_vertices, n_times).

    ``inputs_of(start, stop)`` returns the preprocessed inputs of samples ``start:stop``; it is
    called once per chunk of ``chunk_tiles`` tiles, so that only one chunk is held at a time.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=layout.n_tiles, desc=desc, unit="tile", disable=not progress)
    for first in range(0, layout.n_tiles, chunk_tiles):
        tiles = range(first, min(first + chunk_tiles, layout.n_tiles))
        span_start = int(layout.starts[tiles[0]])
        span_stop = min(int(layout.starts[tiles[-1]]) + layout.t_steps, layout.n_times)
        inputs = np.asarray(inputs_of(span_start, span_stop), dtype=np.float32)
        _check_model_input(model, (inputs.shape[0], layout.t_steps, inputs.shape[2]))
        for batch_first in range(0, len(tiles), batch_size):
            batch = tiles[batch_first : batch_first + batch_size]
            windows = np.stack(
                [
                    tile_window(inputs, int(layout.starts[t]) - span_start, layout.t_steps)
                    for t in batch
                ]
            )
            active = active_probability(model.predict_on_batch(windows))
            for tile, tile_active in zip(batch, active):
                owned = layout.owned(tile)
                offset = int(layout.starts[tile])
                out[:, owned] = tile_active[:, owned.start - offset : owned.stop - offset]
            bar.update(len(batch))
    bar.close()
    return out


def _check_model_input(model, tile_shape):
    """Refuse tiles of (n_vertices, t_steps, n_channels) that the model does not take."""
    expected = tuple(model.input_shape)[1:]
    if len(expected) != 3 or any(e is not None and e != t for e, t in zip(expected, tile_shape)):
        raise ValueError(
            f"the model takes tiles of shape {expected} (vertices, samples, channels), but "
            f"the inputs make tiles of shape {tuple(tile_shape)}"
        )
