"""The U-Net: shapes for odd sizes, inference-mode batch normalization, L1, FLOPs, backends."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from meg_unet.network.unet import (
    MeshContext,
    RowOrder,
    build_unet,
    forward_flops,
    mesh_neighbours,
    mesh_row_order,
    padding_for,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "input_shape, n_levels",
    [((642, 16, 3), 4), ((162, 30, 6), 3), ((42, 7, 3), 5), ((5, 3, 1), 1)],
)
def test_output_shape_for_odd_sizes(input_shape, n_levels):
    model = build_unet(input_shape, n_classes=3, n_levels=n_levels, filter_size=3,
                       root_features=2, seed=0)
    assert model.output.shape == (None, *input_shape[:2], 3)
    x = np.random.default_rng(0).random((2, *input_shape), dtype=np.float32)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (2, *input_shape[:2], 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_padding_makes_sizes_poolable():
    assert padding_for(642, 5) == (7, 7)  # 656 = 16 * 41
    assert padding_for(642, 4) == (3, 3)  # 648 = 8 * 81
    assert padding_for(42, 3) == (1, 1)
    assert padding_for(43, 3) == (0, 1)
    for size in (642, 162, 42, 7, 1, 16):
        for levels in (1, 2, 3, 5):
            before, after = padding_for(size, levels)
            assert (size + before + after) % 2 ** (levels - 1) == 0
            assert 0 <= after - before <= 1
            assert before + after < 2 ** (levels - 1)


def test_even_filter_size_keeps_the_shape():
    """Table 1's 4x4 filters ("same" padding is asymmetric for even kernels)."""
    model = build_unet((42, 10, 3), 2, n_levels=3, filter_size=4, root_features=2, seed=0)
    assert model.output.shape == (None, 42, 10, 2)


def test_batch_norm_runs_in_inference_mode_at_prediction():
    model = build_unet((42, 8, 3), 2, n_levels=2, filter_size=3, root_features=4,
                       dropout_rate=0.5, seed=1)
    rng = np.random.default_rng(1)
    x = rng.random((4, 42, 8, 3), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (4, 42, 8))]
    # a little training moves the moving statistics away from their initial values
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)

    predicted = model.predict(x, verbose=0)
    inference = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(predicted, inference, rtol=1e-5, atol=1e-7)
    # with moving statistics a tile's prediction does not depend on the rest of its batch,
    # and with dropout off repeated predictions agree
    alone = model.predict(x[:1], verbose=0)
    np.testing.assert_allclose(alone[0], predicted[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict(x, verbose=0), predicted, rtol=1e-5, atol=1e-7)
    # in training mode the batch statistics are used (last: this also updates the moving ones)
    training = keras.ops.convert_to_numpy(model(x, training=True))
    assert not np.allclose(predicted, training, atol=1e-3)


def test_l1_penalty_on_every_convolution_kernel():
    model = build_unet((16, 8, 3), 2, n_levels=3, filter_size=3, root_features=2, l1=0.01,
                       seed=0)
    kernels = [
        layer.kernel
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
    ]
    # 2 convs per level on the way down (3) and up (2), 2 transposed convs, the 1x1 logits
    assert len(kernels) == 2 * 3 + 2 * 2 + 2 + 1
    assert len(model.losses) == len(kernels)
    expected = 0.01 * sum(np.abs(keras.ops.convert_to_numpy(k)).sum() for k in kernels)
    total = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert total == pytest.approx(expected, rel=1e-5)
    plain = build_unet((16, 8, 3), 2, n_levels=3, filter_size=3, root_features=2, seed=0)
    assert len(plain.losses) == 0


def test_seed_makes_the_initialization_reproducible():
    def weights(seed):
        model = build_unet((16, 8, 3), 2, n_levels=2, filter_size=3, root_features=2, seed=seed)
        return [np.array(w) for w in model.get_weights()]

    first, again, other = weights(3), weights(3), weights(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    # each layer has its own seed: kernels of the same shape differ
    model = build_unet((16, 8, 3), 2, n_levels=1, filter_size=3, root_features=3, seed=0)
    conv1 = keras.ops.convert_to_numpy(model.get_layer("down0_conv1").kernel)
    conv2 = keras.ops.convert_to_numpy(model.get_layer("down0_conv2").kernel)
    assert conv1.shape == conv2.shape
    assert not np.allclose(conv1, conv2)


def test_forward_flops_by_hand():
    model = build_unet((4, 4, 1), 2, n_levels=1, filter_size=3, root_features=2,
                       batch_norm=False, seed=0)
    # conv 1 -> 2 channels, conv 2 -> 2 channels (3x3 kernels), 1x1 logits 2 -> 2; 16 pixels
    expected = 2 * 16 * (9 * 1 * 2 + 9 * 2 * 2 + 1 * 2 * 2)
    assert forward_flops(model) == expected
    deeper = build_unet((4, 4, 1), 2, n_levels=2, filter_size=3, root_features=2,
                        batch_norm=False, seed=0)
    # + level 1 (2x2 pixels, 2 -> 4 -> 4), transposed 4 -> 2 (2x2 kernel on 2x2 inputs),
    # up convs (4 -> 2 -> 2) at 4x4
    expected += 2 * 4 * (9 * 2 * 4 + 9 * 4 * 4) + 2 * 4 * (4 * 4 * 2) + 2 * 16 * (
        9 * 4 * 2 + 9 * 2 * 2
    )
    assert forward_flops(deeper) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (16, 8)}, "input_shape"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_levels": 0}, "n_levels"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"l1": -1.0}, "l1"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = dict(input_shape=(16, 8, 3), n_classes=2, n_levels=2, filter_size=3,
                     root_features=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_unet(**arguments)


def test_saved_model_reloads_without_custom_objects(tmp_path):
    model = build_unet((42, 7, 3), 2, n_levels=3, filter_size=3, root_features=2,
                       dropout_rate=0.2, l1=0.001, seed=0)
    x = np.random.default_rng(0).random((1, 42, 7, 3), dtype=np.float32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_builds_and_predicts_under_jax():
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import keras, numpy as np
        assert keras.backend.backend() == "jax"
        from meg_unet.network.unet import build_unet
        from meg_unet.network.training import WeightedCategoricalCrossentropy, pixel_error
        model = build_unet((42, 7, 3), 2, n_levels=3, filter_size=4, root_features=2,
                           dropout_rate=0.2, l1=0.001, seed=0)
        x = np.random.default_rng(0).random((2, 42, 7, 3), dtype=np.float32)
        y = np.eye(2, dtype=np.float32)[np.random.default_rng(1).integers(0, 2, (2, 42, 7))]
        out = model.predict(x, verbose=0)
        assert out.shape == (2, 42, 7, 2), out.shape
        loss = WeightedCategoricalCrossentropy([1.0, 10.0])(y, out)
        error = np.mean(keras.ops.convert_to_numpy(pixel_error(y, out)))
        assert np.isfinite(float(loss)) and 0 <= error <= 1
        print("ok")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


# ---- the row order inside the network (network.ROW_ORDER) -------------------------------------


def test_a_row_order_shows_the_network_its_input_reordered_and_restores_the_output():
    arguments = dict(input_shape=(42, 8, 3), n_classes=2, n_levels=3, filter_size=3,
                     root_features=2, seed=0)
    order = np.random.default_rng(1).permutation(42)
    plain = build_unet(**arguments)
    ordered = build_unet(**arguments, row_order=order)
    assert len(ordered.weights) == len(plain.weights)  # the same network, same seeds
    x = np.random.default_rng(0).random((2, 42, 8, 3), dtype=np.float32)
    inside = plain.predict(x[:, order], verbose=0)  # what the network computes on its rows
    out = ordered.predict(x, verbose=0)
    np.testing.assert_allclose(out[:, order], inside, rtol=1e-5, atol=1e-6)
    # without the row order the same weights give another answer: the order matters
    assert not np.allclose(plain.predict(x, verbose=0), out, atol=1e-4)


def test_a_model_with_a_row_order_reloads(tmp_path):
    model = build_unet((42, 7, 3), 2, n_levels=2, filter_size=3, root_features=2, seed=0,
                       row_order=np.arange(42)[::-1])
    x = np.random.default_rng(0).random((1, 42, 7, 3), dtype=np.float32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    assert again.get_layer("row_order").order == list(range(42))[::-1]


def test_bad_row_orders_are_refused():
    with pytest.raises(ValueError, match="permutation"):
        RowOrder([0, 0, 1])
    with pytest.raises(ValueError, match="must order the 42 rows"):
        build_unet((42, 7, 3), 2, n_levels=2, filter_size=3, root_features=2,
                   row_order=range(40))


def test_mesh_row_order_brings_neighbours_together(tiny_head_model):
    from meg_unet.metrics import mesh_adjacency

    adjacency = mesh_adjacency(tiny_head_model.src[1])
    order = mesh_row_order(adjacency)
    assert sorted(order) == list(range(adjacency.shape[0]))
    position = np.empty(len(order), int)
    position[order] = np.arange(len(order))
    i, j = adjacency.nonzero()
    # on ico2 the source space's order puts neighbours up to ~150 rows apart
    assert np.abs(i - j).max() > 100
    assert np.abs(position[i] - position[j]).max() < np.abs(i - j).max() / 3


# ---- the mesh neighbours inside the network (network.MESH_CONTEXT) ----------------------------


def _square_and_lone_vertex():
    """A 4-cycle 0-1-2-3 and a vertex 4 without neighbours."""
    from scipy import sparse

    first, second = [0, 1, 2, 3], [1, 2, 3, 0]
    adjacency = sparse.coo_array((np.ones(4), (first, second)), shape=(5, 5))
    return (adjacency + adjacency.T).tocsr()


def test_mesh_neighbours_pads_with_a_neighbour_so_a_low_degree_peak_still_stands_out():
    assert mesh_neighbours(_square_and_lone_vertex()) == [
        [1, 3], [0, 2], [1, 3], [0, 2], [4, 4]]
    from scipy import sparse

    # vertex 1 has one neighbour, vertex 0 three: 1 is padded with 0, not with itself
    first, second = [0, 0, 0], [1, 2, 3]
    star = sparse.coo_array((np.ones(3), (first, second)), shape=(4, 4))
    neighbours = mesh_neighbours(star + star.T)
    assert neighbours == [[1, 2, 3], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    tile = np.array([1.0, 4.0, 0.5, 2.0], np.float32).reshape(1, 4, 1, 1)
    contrast = np.asarray(MeshContext(neighbours)(tile))[0, :, 0, 1]
    np.testing.assert_array_equal(contrast, [-3.0, 3.0, -0.5, 1.0])


def test_mesh_context_says_how_far_a_vertex_stands_above_its_neighbours():
    neighbours = mesh_neighbours(_square_and_lone_vertex())
    values = np.array([1.0, 5.0, 2.0, 0.0, 7.0], np.float32)
    tile = np.stack([values, -values], axis=-1).reshape(1, 5, 1, 2)  # two channels
    out = np.asarray(MeshContext(neighbours)(tile))
    assert out.shape == (1, 5, 1, 4)
    np.testing.assert_array_equal(out[..., :2], tile)  # the input comes through unchanged
    # 1 - max(5, 0), 5 - max(1, 2), 2 - max(5, 0), 0 - max(1, 2); the lone vertex: 7 - 7
    np.testing.assert_array_equal(out[0, :, 0, 2], [-4.0, 3.0, -3.0, -2.0, 0.0])
    # each channel on its own: -values peaks (only) at vertex 3, where values is lowest
    np.testing.assert_array_equal(out[0, :, 0, 3], [-1.0, -4.0, -2.0, 1.0, 0.0])


def test_a_model_with_mesh_context_reloads_and_sees_its_neighbours(tmp_path):
    ring = [[(v - 1) % 42, (v + 1) % 42] for v in range(42)]
    model = build_unet((42, 7, 3), 2, n_levels=2, filter_size=3, root_features=2, seed=0,
                       mesh_neighbours=ring, row_order=np.arange(42)[::-1])
    assert model.get_layer("input_mesh_context").output.shape[-1] == 6
    assert model.get_layer("logits").input.shape[-1] == 4  # 2 features and their contrast
    x = np.random.default_rng(0).random((1, 42, 7, 3), dtype=np.float32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    assert again.get_layer("output_mesh_context").neighbours == ring


def test_without_mesh_context_the_thesis_network_is_built_unchanged():
    arguments = dict(input_shape=(42, 8, 3), n_classes=2, n_levels=3, filter_size=3,
                     root_features=2, seed=0)
    plain = build_unet(**arguments)
    assert not any(isinstance(layer, MeshContext) for layer in plain.layers)
    assert build_unet(**arguments, mesh_neighbours=[[v] for v in range(42)]).count_params() > (
        plain.count_params())


def test_bad_mesh_neighbours_are_refused():
    with pytest.raises(ValueError, match="same number"):
        MeshContext([[1, 2], [0]])
    with pytest.raises(ValueError, match=r"rows in 0\.\.1"):
        MeshContext([[1], [2]])
    with pytest.raises(ValueError, match="neighbours of 42 rows, but has 40"):
        build_unet((42, 7, 3), 2, n_levels=2, filter_size=3, root_features=2,
                   mesh_neighbours=[[v] for v in range(40)])
