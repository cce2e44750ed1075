"""The graphs movinas runs have a GPU kernel for every op, at the dtypes they use.

This machine has no GPU, but TensorFlow's Linux wheel registers its CUDA kernels whether or not a
GPU is present, so the kernel registry tells whether an op would fall back to the CPU (or fail
under XLA) on a GPU. Checked for a mixed_float16 training step and a float32 stream step.
"""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from tensorflow.python.framework import kernels

from search_space import ArchSpec, build_model, init_states, movinet

# graph plumbing that is not a kernel launch on any device
PLUMBING = {"Placeholder", "Const", "NoOp", "Identity", "IdentityN", "StatefulPartitionedCall", "PartitionedCall",
            "ReadVariableOp", "VarHandleOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
            "If", "StatelessIf", "While", "StatelessWhile"}  # control flow: lowered, runs wherever its body does
# kernels registered for device type DEFAULT (int32 shape arithmetic) run on any device, in host memory
DEVICES = ("GPU", "DEFAULT")


def gpu_kernels_registered() -> bool:
    return any(k.device_type == "GPU" for k in kernels.get_registered_kernels_for_op("Conv2D").kernel)


pytestmark = pytest.mark.skipif(not gpu_kernels_registered(),
                                reason="this TensorFlow build registers no GPU kernels (CPU-only wheel)")


def has_gpu_kernel(op) -> bool:
    for kernel in kernels.get_registered_kernels_for_op(op.type).kernel:
        if kernel.device_type not in DEVICES:
            continue
        ok = True
        for c in kernel.constraint:
            allowed = list(c.allowed_values.list.type)
            try:
                value = op.get_attr(c.name)
            except ValueError:
                continue
            if allowed and tf.as_dtype(value).as_datatype_enum not in allowed:
                ok = False
                break
        if ok:
            return True
    return False


# TF's depthwise kernels on a GPU (and on a CPU without oneDNN) refuse a stride along one axis only;
# the registry does not say so, so the check reads the attribute
EQUAL_STRIDES = {"DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
                 "DepthwiseConv2dNativeBackpropFilter"}


def unequal_strides(op) -> bool:
    if op.type not in EQUAL_STRIDES:
        return False
    strides = list(op.get_attr("strides"))
    layout = op.get_attr("data_format").decode()
    rows, cols = (strides[1], strides[2]) if layout == "NHWC" else (strides[2], strides[3])
    return rows != cols


def ops_without_gpu_kernel(graph) -> set[str]:
    missing = set()
    for op in graph.get_operations():
        if op.type in PLUMBING:
            continue
        if unequal_strides(op):
            missing.add(f"{op.type}(strides={list(op.get_attr('strides'))})")
        elif not has_gpu_kernel(op):
            dtypes = sorted({t.dtype.name for t in op.inputs})
            missing.add(f"{op.type}({', '.join(dtypes)})")
    for fn in graph._functions.values():  # nested functions (e.g. from keras ops) are checked too
        missing |= ops_without_gpu_kernel(fn.graph)
    return missing


def test_mixed_float16_training_step_has_gpu_kernels_for_every_op():
    spec = movinet("a0", stream=True, positional_encoding=True)
    assert ops_without_gpu_kernel(training_step_graph(spec, mixed=True)) == set()


def training_step_graph(spec, mixed: bool):
    """Graph of one compiled training step (AdamW, loss scaling under mixed_float16)."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        model = build_model(spec, num_classes=4, frames=4, resolution=32, batch_size=2)
        optimizer = keras.optimizers.AdamW(1e-3)
        if mixed:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return step.get_concrete_function(tf.TensorSpec((2, 4, 32, 32, 3)), tf.TensorSpec((2,), tf.int32)).graph
    finally:
        keras.mixed_precision.set_global_policy("float32")


def strided_spec(conv_type: str) -> ArchSpec:
    """Temporal stride 2 on a temporal-only kernel, on a full 3D kernel, and unequal spatial strides."""
    return ArchSpec.from_dict({
        "name": f"strided-{conv_type}", "conv_type": conv_type, "stem": {"filters": 8, "kernel": [3, 3, 3]},
        "stages": [{"filters": 8, "blocks": [{"expand": 16, "kernel": [3, 1, 1], "strides": [2, 1, 1]},
                                             {"expand": 16, "kernel": [3, 3, 3], "strides": [2, 2, 2]}]},
                   {"filters": 12, "blocks": [{"expand": 24, "kernel": [1, 3, 3], "strides": [1, 2, 1]}]}],
        "head": {"filters": 16, "hidden": 16},
    })


@pytest.mark.parametrize("conv_type", ["2plus1d", "3d"])
@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "mixed_float16"])
def test_strided_training_step_has_gpu_kernels_for_every_op(conv_type, mixed):
    assert ops_without_gpu_kernel(training_step_graph(strided_spec(conv_type), mixed)) == set()


def test_the_check_catches_a_depthwise_stride_along_one_axis():
    fn = tf.function(lambda x: tf.nn.depthwise_conv2d(x, tf.ones((3, 1, 2, 1)), [1, 2, 1, 1], "VALID"))
    graph = fn.get_concrete_function(tf.TensorSpec((1, 8, 8, 2))).graph
    assert ops_without_gpu_kernel(graph) == {"DepthwiseConv2dNative(strides=[1, 2, 1, 1])"}


def test_stream_step_has_gpu_kernels_for_every_op():
    spec = movinet("a0", stream=True, positional_encoding=True)
    model = build_model(spec, num_classes=4, mode="stream", resolution=32)
    states = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in init_states(spec, 1, 32).items()}
    fn = tf.function(lambda inputs: model(inputs, training=False))
    graph = fn.get_concrete_function({"image": tf.TensorSpec((1, 1, 32, 32, 3)), **states}).graph
    assert ops_without_gpu_kernel(graph) == set()


def test_the_check_catches_a_cpu_only_op():
    fn = tf.function(lambda s: tf.strings.length(s) + 1)
    graph = fn.get_concrete_function(tf.TensorSpec((None,), tf.string)).graph
    assert ops_without_gpu_kernel(graph) == {"StringLength(string)"}
