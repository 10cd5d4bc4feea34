"""The custom U-Net of thesis section 3.5, from Keras layers only.

The model takes one tile of inverse solutions, an image of ``n_vertices x t_steps`` pixels with
one channel per inverse method (and optionally the vertex coordinates), and returns a softmax
over the target classes per pixel.  It is built from built-in ``keras`` layers (and, with a row
order, the registered :class:`RowOrder`) and runs on the TensorFlow, JAX and PyTorch backends;
a saved ``.keras`` file reloads without custom objects once this package is imported (the
custom loss and metric of :mod:`meg_unet.network.training` are registered there).

Architecture (thesis 3.5, Figure 25; Ronneberger et al. 2015 with batch normalization)::

    input -> zero padding to a multiple of pool_size**(n_levels - 1) in both dimensions
    level 0 .. n_levels-1 (features = root_features * 2**level):
        [conv filter_size x filter_size, "same" zero padding, He init
         -> batch normalization -> ReLU] x 2 -> dropout
        -> max pooling pool_size x pool_size (all levels but the deepest)
    back up, level n_levels-2 .. 0:
        transposed conv pool_size x pool_size, stride pool_size, ReLU
        -> concatenate with the skip connection of the level
        -> [conv -> batch normalization -> ReLU] x 2 -> dropout
    1 x 1 conv to n_classes -> crop the padding away -> softmax

Zero padding instead of the original U-Net's mirroring keeps the image size through the network
(thesis 3.5), so the output has the input's height and width: 642, 162 or 42 vertices work with
any depth.  Every convolution kernel (transposed and 1 x 1 included) carries an L1 penalty
``l1 * sum(|w|)`` (thesis 3.5, Table 1: lambda1 = 0.005) that Keras adds to the training loss.

With a ``row_order`` the model first puts the rows (vertices) of its input in that order and
puts the output's back at the end (:class:`RowOrder`, registered with Keras so that a saved
model reloads with it), so that a convolution sees mesh neighbours together while everything
outside the model keeps the source space's order.

With ``mesh_neighbours`` the model compares each vertex with its mesh neighbours twice
(:class:`MeshContext`): on its input, and on its last features just before the class scores
(which are then computed after the crop and the row order back, where they are equal).
"""

from __future__ import annotations

import keras

from ..errors import check_int

__all__ = ["MeshContext", "RowOrder", "SynchronizedBatchNormalization", "build_unet",
           "forward_flops", "mesh_neighbours", "mesh_row_order", "padding_for"]


@keras.saving.register_keras_serializable(package="meg_unet")
class SynchronizedBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization over the global batch of a TensorFlow multi-device step.

    Under ``tf.distribute.MirroredStrategy`` each replica normalizes with its own part of the
    batch, so two devices train another network than one (measured: weights 0.04 apart after
    two steps); ``synchronized=True`` sums the statistics over the replicas.  Keras accepts
    that flag with the TensorFlow backend only, and JAX's ``DataParallel`` needs none (one
    program over the whole batch), so under any other backend, e.g. when a model trained on
    several GPUs with TensorFlow is loaded under JAX, the layer is plain batch normalization.
    """

    def __init__(self, **kwargs):
        kwargs["synchronized"] = keras.backend.backend() == "tensorflow"
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package="meg_unet")
class RowOrder(keras.layers.Layer):
    """Reorder the rows (axis 1) of a batch of tiles: ``output[:, i] = input[:, order[i]]``.

    Parameters
    ----------
    order : sequence of int
        A permutation of the rows.
    inverse : bool
        Apply the inverse permutation instead (``output[:, order[i]] = input[:, i]``).
    """

    def __init__(self, order, inverse=False, **kwargs):
        super().__init__(**kwargs)
        self.order = [int(i) for i in order]
        self.inverse = bool(inverse)
        if sorted(self.order) != list(range(len(self.order))):
            raise ValueError("Invalid value for the 'order' parameter: it must be a permutation "
                             f"of 0..{len(self.order) - 1}")
        take = self.order
        if self.inverse:
            take = [0] * len(self.order)
            for position, row in enumerate(self.order):
                take[row] = position
        self._take = take

    def call(self, inputs):
        return keras.ops.take(inputs, self._take, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "order": self.order, "inverse": self.inverse}


@keras.saving.register_keras_serializable(package="meg_unet")
class MeshContext(keras.layers.Layer):
    """Append to each feature how far a vertex stands above its highest mesh neighbour.

    For rows (axis 1) that are the vertices of a cortical mesh, the output is the input
    followed by ``input[:, v] - max(input[:, u] for u in neighbours[v])`` for every channel:
    positive exactly where a vertex is a local maximum of that channel.  A convolution over
    the rows of a tile sees only the vertices that happen to lie a few rows away, not the
    vertex's mesh neighbours, so it cannot tell the peak of a blurred inverse solution from
    the vertices around it; this layer hands it that comparison.

    Parameters
    ----------
    neighbours : sequence of sequence of int
        ``neighbours[v]``: the rows of the mesh neighbours of row ``v``, all of the same
        length (pad by repeating a neighbour, see :func:`mesh_neighbours`).
    """

    def __init__(self, neighbours, **kwargs):
        super().__init__(**kwargs)
        self.neighbours = [[int(u) for u in row] for row in neighbours]
        n_rows = len(self.neighbours)
        widths = {len(row) for row in self.neighbours}
        if n_rows == 0 or len(widths) != 1 or 0 in widths or any(
                not 0 <= u < n_rows for row in self.neighbours for u in row):
            raise ValueError("Invalid value for the 'neighbours' parameter: it must give every "
                             "row the same number (at least 1) of rows in 0.."
                             f"{n_rows - 1}")
        # one gather per neighbour slot keeps the memory at one copy of the input
        self._columns = [[row[k] for row in self.neighbours] for k in range(widths.pop())]

    def call(self, inputs):
        highest = keras.ops.take(inputs, self._columns[0], axis=1)
        for column in self._columns[1:]:
            highest = keras.ops.maximum(highest, keras.ops.take(inputs, column, axis=1))
        return keras.ops.concatenate([inputs, inputs - highest], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], None if input_shape[-1] is None else 2 * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "neighbours": self.neighbours}


def mesh_neighbours(adjacency):
    """The neighbour table of :class:`MeshContext` for a mesh adjacency.

    Parameters
    ----------
    adjacency : scipy sparse array, shape (n_vertices, n_vertices)
        Mesh adjacency of the rows (the diagonal is ignored).

    Returns
    -------
    neighbours : list of list of int
        ``neighbours[v]``: the neighbours of ``v`` in increasing order, padded to the largest
        degree by repeating the first of them (which changes no maximum; padding with ``v``
        itself would keep a vertex of lower degree from ever standing above its neighbours).
        A vertex without neighbours is its own, and its contrast is 0.
    """
    from scipy import sparse

    graph = sparse.csr_matrix(adjacency, dtype=bool)
    graph.setdiag(False)
    graph.eliminate_zeros()
    rows = [sorted(int(u) for u in graph.indices[graph.indptr[v]:graph.indptr[v + 1]])
            for v in range(graph.shape[0])]
    width = max([len(row) for row in rows] + [1])
    return [row + [row[0] if row else v] * (width - len(row)) for v, row in enumerate(rows)]


def mesh_row_order(adjacency):
    """A row order that keeps mesh neighbours close: reverse Cuthill-McKee of the adjacency.

    Parameters
    ----------
    adjacency : scipy sparse array, shape (n_vertices, n_vertices)
        Mesh adjacency of the rows (the diagonal is ignored).

    Returns
    -------
    order : list of int
        ``order[i]`` is the source-space row shown at position ``i``.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    graph = sparse.csr_matrix(adjacency, dtype=float)
    graph.setdiag(0)
    graph.eliminate_zeros()
    return [int(i) for i in reverse_cuthill_mckee(graph, symmetric_mode=True)]


def padding_for(size, n_levels, pool_size=2):
    """Return the (before, after) zero padding that makes ``size`` poolable ``n_levels - 1`` times.

    Parameters
    ----------
    size : int
        Height or width of the input in pixels.
    n_levels : int
        Levels of the U-Net.
    pool_size : int
        Pooling factor per level.

    Returns
    -------
    before, after : int
        Pixels added before and after; ``after`` takes the odd one.
    """
    multiple = pool_size ** (n_levels - 1)
    total = (-size) % multiple
    return total // 2, total - total // 2


class _Seeds:
    """Distinct integer seeds for the layers of one model (None stays None: unseeded)."""

    def __init__(self, seed):
        self._seed = seed
        self._count = 0

    def __call__(self):
        if self._seed is None:
            return None
        self._count += 1
        return int(self._seed) * 1000 + self._count


def build_unet(
    input_shape,
    n_classes,
    n_levels,
    filter_size,
    root_features,
    pool_size=2,
    dropout_rate=0.0,
    batch_norm=True,
    l1=0.0,
    seed=None,
    row_order=None,
    mesh_neighbours=None,
    synchronized_batch_norm=False,
    name="unet",
):
    """Build the thesis's U-Net for tiles of a fixed shape.

    Parameters
    ----------
    input_shape : tuple of int, (height, width, n_channels)
        Shape of one tile without the batch axis: ``(n_vertices, t_steps, n_channels)``.  Any
        height and width; the model pads them internally to a multiple of
        ``pool_size ** (n_levels - 1)`` and crops its output back.
    n_classes : int
        Target classes, i.e. output channels of the softmax (>= 2).
    n_levels : int
        Levels of the U-Net (thesis Table 1: 5); 1 is a plain two-convolution network.
    filter_size : int
        Side of the square convolution kernels (Table 1: 4).
    root_features : int
        Feature channels of the first level, doubled per level (Table 1: 64).
    pool_size : int
        Side of the max pooling and of the transposed-convolution kernels and strides
        (thesis 3.5: 2).
    dropout_rate : float
        Fraction of activations dropped after each level's convolutions during training,
        ``1 - keep probability`` (thesis 3.6: keep 0.8, i.e. 0.2).
    batch_norm : bool
        Batch normalization after each convolution (thesis 3.5).  At prediction (``training=
        False``, as ``model.predict`` does) it uses its moving statistics.
    l1 : float
        L1 penalty on every convolution kernel (Table 1: 0.005); 0 adds none.
    seed : int | None
        Seed of the He-normal initializers and of the dropout layers (each layer gets its own
        seed derived from it); None draws them at random.
    row_order : sequence of int | None
        A permutation of the ``height`` rows that the network sees its input in (e.g.
        :func:`mesh_row_order`); its output comes back in the input's order.  None keeps the
        input's order.
    mesh_neighbours : sequence of sequence of int | None
        The mesh neighbours of each row (:func:`mesh_neighbours`).  If given, a
        :class:`MeshContext` shows the network, beside its input and beside its last features
        before the class scores, how far each vertex stands above its mesh neighbours.  None
        builds the thesis's network.
    synchronized_batch_norm : bool
        Batch normalization over the global batch on several TensorFlow devices
        (:class:`SynchronizedBatchNormalization`); the training sets it when it runs under
        ``tf.distribute.MirroredStrategy``.  Results on one device are the same either way.
    name : str
        Name of the model.

    Returns
    -------
    model : keras.Model
        Maps ``(batch, height, width, n_channels)`` to ``(batch, height, width, n_classes)``
        class probabilities (float32).
    """
    input_shape = tuple(input_shape)
    _check_arguments(input_shape, n_classes, n_levels, filter_size, root_features, pool_size,
                     dropout_rate, l1)
    seeds = _Seeds(seed)
    layers = keras.layers

    def regularizer():
        return keras.regularizers.L1(l1) if l1 > 0 else None

    def he_normal():
        return keras.initializers.HeNormal(seed=seeds())

    normalization = (SynchronizedBatchNormalization if synchronized_batch_norm
                     else layers.BatchNormalization)

    def conv_block(x, features, prefix):
        for i in (1, 2):
            # batch normalization's offset replaces the bias
            x = layers.Conv2D(features, filter_size, padding="same", use_bias=not batch_norm,
                              kernel_initializer=he_normal(), kernel_regularizer=regularizer(),
                              name=f"{prefix}_conv{i}")(x)
            if batch_norm:
                x = normalization(name=f"{prefix}_bn{i}")(x)
            x = layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, seed=seeds(), name=f"{prefix}_dropout")(x)
        return x

    height, width, _ = input_shape
    pad_h = padding_for(height, n_levels, pool_size)
    pad_w = padding_for(width, n_levels, pool_size)

    inputs = keras.Input(shape=input_shape, name="tile")
    x = inputs
    if mesh_neighbours is not None:
        if len(mesh_neighbours) != height:
            raise ValueError(f"Invalid value for the 'mesh_neighbours' parameter: it must list "
                             f"the neighbours of {height} rows, but has {len(mesh_neighbours)}")
        x = MeshContext(mesh_neighbours, name="input_mesh_context")(x)
    if row_order is not None:
        if len(row_order) != height:
            raise ValueError(f"Invalid value for the 'row_order' parameter: it must order the "
                             f"{height} rows, but has {len(row_order)} entries")
        x = RowOrder(row_order, name="row_order")(x)
    if any(pad_h) or any(pad_w):
        x = layers.ZeroPadding2D((pad_h, pad_w), name="pad")(x)

    skips = []
    for level in range(n_levels):
        x = conv_block(x, root_features * 2**level, f"down{level}")
        if level < n_levels - 1:
            skips.append(x)
            x = layers.MaxPooling2D(pool_size, name=f"down{level}_pool")(x)

    for level in reversed(range(n_levels - 1)):
        x = layers.Conv2DTranspose(
            root_features * 2**level, pool_size, strides=pool_size, padding="same",
            activation="relu", kernel_initializer=he_normal(), kernel_regularizer=regularizer(),
            name=f"up{level}_transpose")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
        x = conv_block(x, root_features * 2**level, f"up{level}")

    logits = layers.Conv2D(n_classes, 1, kernel_initializer=he_normal(),
                           kernel_regularizer=regularizer(), name="logits")
    if mesh_neighbours is None:
        x = logits(x)
    if any(pad_h) or any(pad_w):
        x = layers.Cropping2D((pad_h, pad_w), name="crop")(x)
    if row_order is not None:
        x = RowOrder(row_order, inverse=True, name="row_order_back")(x)
    if mesh_neighbours is not None:
        # the last features back on the mesh's rows, so the scores can weigh a vertex
        # against its neighbours (a 1 x 1 convolution commutes with the crop and the order)
        x = logits(MeshContext(mesh_neighbours, name="output_mesh_context")(x))
    # float32 probabilities even under a mixed-precision policy.
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def _check_arguments(input_shape, n_classes, n_levels, filter_size, root_features, pool_size,
                     dropout_rate, l1):
    """Refuse arguments of :func:`build_unet` that no network can be built with."""
    if len(input_shape) != 3:
        raise ValueError(
            "Invalid value for the 'input_shape' parameter. It must be (height, width, "
            f"n_channels), but got {input_shape!r} instead."
        )
    for dim_name, dim in zip(("height", "width", "n_channels"), input_shape):
        check_int(dim, f"input_shape {dim_name}")
    check_int(n_classes, "n_classes", 2)
    for value, name in ((n_levels, "n_levels"), (filter_size, "filter_size"),
                        (root_features, "root_features")):
        check_int(value, name)
    check_int(pool_size, "pool_size", 2)
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            "Invalid value for the 'dropout_rate' parameter. It must be in [0, 1), but got "
            f"{dropout_rate!r} instead."
        )
    if l1 < 0:
        raise ValueError(f"Invalid value for the 'l1' parameter. It must be >= 0, but got {l1!r}.")


def forward_flops(model):
    """Count the floating-point operations of one forward pass, per sample, from its convolutions.

    A convolution with a ``k_h x k_w`` kernel from ``c_in`` to ``c_out`` channels costs
    ``2 k_h k_w c_in c_out`` operations (a multiply and an add) per output pixel; a transposed
    convolution the same per *input* pixel.  Batch normalization, activations, pooling and the
    softmax are left out (a few percent).  A training step costs about three forward passes
    (the backward pass computes gradients with respect to both inputs and kernels).

    Parameters
    ----------
    model : keras.Model
        A built functional model (e.g. from :func:`build_unet`).

    Returns
    -------
    flops : int
        Operations per sample of one forward pass.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, in_h, in_w, c_in = layer.input.shape
            k_h, k_w = layer.kernel_size
            total += 2 * in_h * in_w * k_h * k_w * c_in * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, out_h, out_w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            k_h, k_w = layer.kernel_size
            total += 2 * out_h * out_w * k_h * k_w * c_in * c_out
    return int(total)
