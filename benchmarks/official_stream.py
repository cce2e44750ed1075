"""Convert the official MoViNet stream classifier to TFLite the way the official export does.

Runs in the side environment of `benchmarks/side_venv.py` (tf-models-official), never in movinas' own:

    python benchmarks/official_stream.py MODEL_ID RESOLUTION OUT.tflite

Builds `official.projects.movinet` MoViNet MODEL_ID stream (causal, 2plus1d, SE 2plus3d, hard-swish,
hard-sigmoid gating, no positional encoding, 600 classes, random weights: speed does not depend on them)
with `export_saved_model.build_and_export_saved_model` for batch 1, one frame, RESOLUTION² pixels and
TF Lite (`bundle_input_init_states_fn=False`), then converts that SavedModel with the plain
`tf.lite.TFLiteConverter.from_saved_model` (float32), as the official MoViNet TF Lite notes do.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    model_id, resolution, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    import tensorflow as tf
    from official.projects.movinet.tools import export_saved_model as official

    with tempfile.TemporaryDirectory(prefix="official-movinet-") as tmp:
        official.build_and_export_saved_model(
            export_path=tmp, model_id=model_id, causal=True, conv_type="2plus1d", se_type="2plus3d",
            activation="hard_swish", gating_activation="hard_sigmoid", use_positional_encoding=False,
            num_classes=600, input_shape=(1, 1, resolution, resolution, 3), bundle_input_init_states_fn=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        with open(out, "wb") as f:
            f.write(converter.convert())
    print(f"official {model_id} stream: {out}")


if __name__ == "__main__":
    main()
