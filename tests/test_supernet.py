"""The supernet: every spec of a space is a sub-network of one set of weights, and `extract` gives an
ordinary `build_model(spec)` model that computes what the supernet computes for that spec."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_space import SearchSpace, SpecError, Stage, estimate_cost, init_states, stream_step
from search_space.supernet import Supernet, check_in_space, envelope, extract
from search_space.weight_map import weight_map

# widths that change per stage (a stride-1 stage whose envelope keeps its width but whose samples
# may not: the supernet adds a skip projection), 2+1D convs, 2plus3d SE, kernels of every shape
MIXED = """
name: mixed
frames: 6
resolution: [24, 32]
width_mult: [0.5, 1.0]
conv_type: 2plus1d
se_type: 2plus3d
se_ratio: [0.25, 0.5]
stem: {width: 8, width_mult: [0.75, 1.0], kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 16, width_mult: [0.75, 1.0], depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x1x1, 3x5x5],
     expand_ratios: [1.5, 3.0]}
  - {width: 16, width_mult: [0.75, 1.0], depth: [1, 2], strides: 1x1x1, kernels: [1x1x1, 5x3x3],
     expand_ratios: [2.0, 4.0]}
head: {ratio: 2.0, hidden: 32}
"""

CAUSAL = """
name: causal
frames: 6
resolution: 32
causal: true
positional_encoding: true
stem: {width: 8, kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 16, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3, 5x5x5], expand_ratios: [2.0, 3.0]}
  - {width: 24, depth: [1, 2], strides: 1x2x2, kernels: [1x5x5, 3x3x3], expand_ratios: [2.0, 3.0]}
head: {ratio: 2.0, hidden: 32}
"""


@pytest.fixture(scope="module")
def small():
    return Supernet(SearchSpace.from_yaml("small"), num_classes=5)


@pytest.fixture(scope="module")
def mixed():
    return Supernet(SearchSpace.from_yaml(MIXED), num_classes=3)


@pytest.fixture(scope="module")
def causal():
    return Supernet(SearchSpace.from_yaml(CAUSAL), num_classes=3)


def _clip(spec, batch=2, seed=0):
    return np.random.default_rng(seed).random((batch, spec.frames, spec.resolution, spec.resolution, 3),
                                               dtype=np.float32)


def _perturb(net):
    """Random shared weights (and BN statistics), so equal logits are not an accident of the init."""
    rng = np.random.default_rng(7)
    for path, v in net.variables.items():
        scale = 0.5 if path.endswith(("scale", "pe_scale")) else 0.2
        value = rng.normal(0, scale, v.shape)
        if path.endswith(("moving_variance", "gamma")):
            value = 1 + np.abs(value)
        v.assign(value.astype("float32"))


def _assert_close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, np.max(np.abs(b)))


@pytest.mark.parametrize("which", ["small", "mixed", "causal"])
def test_supernet_run_of_a_subnet_equals_its_extracted_model(which, request):
    net = request.getfixturevalue(which)
    _perturb(net)
    for seed in range(3):
        spec = net.space.sample(seed)
        x = _clip(spec, seed=seed)
        logits, _ = net.forward(spec, x, training=False)
        _assert_close(logits, extract(net, spec)(x, training=False))


@pytest.mark.parametrize("which", ["small", "mixed", "causal"])
def test_extracted_params_equal_the_cost_model(which, request):
    net = request.getfixturevalue(which)
    for spec in (net.space.sample(11), net.largest, net.smallest):
        model = extract(net, spec)
        assert model.count_params() == estimate_cost(spec, num_classes=net.num_classes).params


def test_largest_subnetwork_of_the_small_space_uses_the_whole_envelope(small):
    # every axis of `small` takes its largest choice in the envelope, so nothing is sliced away
    model = extract(small, small.largest)
    assert model.count_params() == sum(int(np.prod(v.shape)) for v in small.variables.values())


def test_causal_extraction_streams_frame_by_frame_like_the_clip(causal):
    _perturb(causal)
    spec = causal.space.sample(3)
    x = _clip(spec, batch=1)
    clip_logits = extract(causal, spec)(x, training=False)
    stream = extract(causal, spec, mode="stream")
    states = init_states(spec, 1, spec.resolution)
    for t in range(spec.frames):
        logits, states = stream_step(stream, x[:, t:t + 1], states)
    _assert_close(logits, clip_logits)


def test_causal_sub_kernels_are_the_most_recent_taps(causal):
    space = causal.space
    params = {**space.nearest(causal.largest), "s1_b1_kernel": "1x3x3"}
    spec = space.decode(params)
    model = extract(causal, spec)
    big = causal.variables["b0_dw/kernel"].numpy()  # 5x5x5 envelope
    # t: the last tap (the current frame); h, w: the centre 3x3
    np.testing.assert_array_equal(model.get_layer("b0_dw").kernel.numpy()[0], big[4, 1:4, 1:4, :spec.stages[0].blocks[0].expand])


def test_base_sub_kernels_are_the_centre_crop(small):
    spec = small.space.decode({**small.space.nearest(small.largest), "s3_b1_kernel": "3x3x3"})
    big = small.variables[f"b{1 + 2}_dw/kernel"].numpy()  # stage 3 starts at layer 3 of the envelope
    got = extract(small, spec).get_layer(f"b{1 + len(spec.stages[1].blocks)}_dw").kernel.numpy()
    np.testing.assert_array_equal(got, big[1:4, :, :, :got.shape[-1]])


def test_depth_takes_the_first_layers_of_each_stage(small):
    spec = small.space.decode({**small.space.nearest(small.largest), "s2_depth": 1})
    model = extract(small, spec)
    # layer 2 of the sub-network is stage 3's first layer, layer 3 of the envelope
    np.testing.assert_array_equal(model.get_layer("b2_project").kernel.numpy(),
                                  small.variables["b3_project/kernel"].numpy()[:model.get_layer("b2_project").kernel.shape[0]])


def test_a_spec_outside_the_space_is_refused_with_the_field(small):
    spec = small.largest
    bad = spec.replace(stages=(*spec.stages[:2], Stage(40, spec.stages[2].blocks)))
    with pytest.raises(SpecError, match=r"stages\[2\]\.filters 40 is outside the supernet's space 'small'"):
        extract(small, bad)
    with pytest.raises(SpecError, match="resolution 64 is outside"):
        check_in_space(small.space, spec.replace(resolution=64))


def test_a_space_with_a_searched_conv_type_is_refused():
    space = SearchSpace.from_yaml(MIXED.replace("conv_type: 2plus1d", "conv_type: [3d, 2plus1d]"))
    with pytest.raises(SpecError, match=r"conv_type: \['3d', '2plus1d'\], a supernet needs a single value"):
        Supernet(space, 3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_every_sampled_spec_fits_the_envelope_and_is_in_the_space(seed):
    space = SearchSpace.from_yaml(MIXED)
    env = envelope(space)
    spec = space.sample(seed)
    check_in_space(space, spec)
    for s, e in zip(spec.stages, env.stages):
        assert s.filters <= e.filters and len(s.blocks) <= len(e.blocks)
        for b, eb in zip(s.blocks, e.blocks):
            assert b.expand <= eb.expand and all(k <= ek for k, ek in zip(b.kernel, eb.kernel))


def test_gradients_of_a_subnetwork_reach_only_the_weights_it_reads(small):
    spec = small.smallest
    x = _clip(spec)
    with tf.GradientTape() as tape:
        logits, _ = small.forward(spec, x, training=True)
        loss = tf.reduce_sum(logits)
    grads = dict(zip(small.variables, tape.gradient(loss, list(small.variables.values()))))
    assert grads["b0_expand/kernel"] is not None
    assert grads["b4_expand/kernel"] is None  # stage 3's second layer: the smallest has depth 1


@pytest.mark.parametrize("which", ["small", "causal"])
def test_masked_envelope_run_equals_the_extracted_model(which, request):
    net = request.getfixturevalue(which)
    _perturb(net)
    space = net.space  # causal: with a positional encoding only full-width SE layers mask
    checked = 0
    for seed in range(8):
        spec = space.sample(seed)
        masks = net.masks(spec)
        if masks is None:
            continue
        x = _clip(spec, seed=seed)
        _assert_close(net.masked_forward(masks, x)[0], extract(net, spec)(x, training=False))
        checked += 1
    assert checked >= 1


def test_masks_cover_exactly_the_extracted_weights(small):
    for seed in range(5):
        spec = small.space.sample(seed)
        model = extract(small, spec)
        assert sum(int(m.sum()) for m in small.masks(spec)) == sum(int(np.prod(w.shape))
                                                                   for w in model.trainable_variables)


@pytest.mark.parametrize("which", ["mixed", "causal"])
def test_the_weight_map_names_every_weight_of_the_sub_network_with_its_shape(which, request):
    net = request.getfixturevalue(which)
    for spec in (net.smallest, net.space.sample(5)):
        parts = weight_map(net.envelope, spec, net.num_classes)
        model = net.model(spec)
        assert {w.path: tuple(w.shape) for w in model.weights if "seed_generator" not in w.path} == {
            path: part.shape for path, part in parts.items()}
        assert all(part.source in net.variables for part in parts.values())


def test_unmaskable_sub_networks_are_recognised(mixed):
    # a 2+1D layer with temporal kernel 1 has no temporal conv, which the envelope has
    space = mixed.space
    spec = space.decode({**space.nearest(mixed.largest), "s1_b1_kernel": "1x3x3"})
    assert mixed.masks(spec) is None
