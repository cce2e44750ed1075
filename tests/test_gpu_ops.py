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

from search_space import build_model, init_states, movinet

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


def ops_without_gpu_kernel(graph) -> set[str]:
    missing = set()
    for op in graph.get_operations():
        if op.type in PLUMBING:
            continue
        if not has_gpu_kernel(op):
            dtypes = sorted({t.dtype.name for t in op.inputs})
            missing.add(f"{op.type}({', '.join(dtypes)})")
    for fn in graph._functions.values():  # nested functions (e.g. from keras ops) are checked too
        missing |= ops_without_gpu_kernel(fn.graph)
    return missing


def test_mixed_float16_training_step_has_gpu_kernels_for_every_op():
    spec = movinet("a0", stream=True, positional_encoding=True)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(spec, num_classes=4, frames=4, resolution=32, batch_size=2)
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.AdamW(1e-3))
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

        graph = step.get_concrete_function(tf.TensorSpec((2, 4, 32, 32, 3)), tf.TensorSpec((2,), tf.int32)).graph
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ops_without_gpu_kernel(graph) == set()


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
