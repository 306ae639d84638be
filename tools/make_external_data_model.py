#!/usr/bin/env python3
"""Write tests/fixtures/models/tiny-fcn-external.onnx: tiny-fcn.onnx with its weights moved out
to an "external data" file that is another model's file (`tiny-fcn.onnx` itself, as a registered
model's neighbour would be). Evidentia must refuse it: the model's SHA-256 would not cover the
bytes it runs with. Only the .onnx is kept (the reference is what is refused, not the data).

Run with any Python that has `onnx` (pip install onnx):
    python tools/make_external_data_model.py
"""
import os
import shutil
import tempfile

import onnx

here = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models")
model = onnx.load(os.path.join(here, "tiny-fcn.onnx"))
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "tiny-fcn-external.onnx")
    onnx.save_model(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="tiny-fcn.onnx", size_threshold=0)
    shutil.copy(out, os.path.join(here, "tiny-fcn-external.onnx"))
print("wrote tests/fixtures/models/tiny-fcn-external.onnx")
