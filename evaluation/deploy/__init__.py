"""Deployment: export to Keras, SavedModel and TFLite (float, fp16, int8), a study's trial as an
exported model, loading models for inference, classifying videos (clip, stream, temporal
ensemble), the one-frame TFLite stream graph, its op profile, and latency on this machine.
"""

from __future__ import annotations

from evaluation.lazy import exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "ExportOptions": "export",
    "export_model": "export",
    "load_tflite": "export",
    "read_manifest": "export",
    "load_for_inference": "inference",
    "InferenceModel": "inference",
    "StreamSession": "inference",
    "read_labels": "inference",
    "predict_video": "predict",
    "Prediction": "predict",
    "softmax_top_k": "predict",
    "ensemble_logits": "ensemble",
    "StreamEnsemble": "ensemble",
    "op_profile": "tflite_ops",
    "measure_latency_ms": "latency",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
