#!/usr/bin/env python3
"""Write the tiny ONNX model fixture in tests/fixtures/models/ and its onnxruntime reference.

Run with the dev venv (numpy, onnx, onnxruntime):
    /var/tmp/evpy/bin/python tools/make_test_model.py

Not a trained model. The weights are set by hand (colour and blob detectors) plus small random
filler from a fixed numpy seed, so re-running gives a byte-identical .onnx for the same onnx version.
The graph uses only conservative ops (Conv, Relu, Sigmoid, Softmax(axis=1)), opset 17, IR version 8,
with a symbolic batch dimension "N", so both ONNX Runtime (1.20+) and tract-onnx can run it.

Graph (input `tiles`: float32 [N, 3, 256, 256], NCHW, normalised (pixel/255 - 0.5) / 0.5):
  conv1  3x3, stride 2, pad 1, 3 -> 8   + Relu   -> [N, 8, 128, 128]
         ch0 white (green high), ch1 eosin (R - G), ch2 haematoxylin (dark, bluish),
         ch3 strong eosin, ch4..7 seeded random filters.
  conv2  5x5, stride 2, pad 2, 8 -> 8   + Relu   -> [N, 8, 64, 64]
         ch0..3 smoothed copies of conv1 ch0..3, ch4 centre-surround on haematoxylin
         (small dark-purple blobs), ch5..7 seeded random mixes.
  tissue_head  1x1 conv 8 -> 3, Softmax(axis=1)  -> `tissue` [N, 3, 64, 64]
         classes: background, cancer_epithelium, cancer_stroma.
  lymph_head   1x1 conv 8 -> 1, Sigmoid          -> `lymphocytes` [N, 1, 64, 64]

Files written (tests/fixtures/models/):
  tiny-fcn.onnx                 the model.
  tiny-fcn.json                 its model card.
  tiny-fcn.reference.json       onnxruntime outputs for a formula-generated batch of 2 tiles
                                (the formula is documented in the file, reproducible in Rust).
  not-onnx.onnx                 a few bytes of text (bad model file).
  tiny-fcn-wrong-input.json     card whose input shape is [-1, 3, 512, 512].
  tiny-fcn-wrong-outputs.json   card naming an output `heatmap` the model does not have.
"""

import copy
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

SEED = 20240517
TILE = 256
N_SAMPLES = 32

CARD = {
    "name": "tiny-fcn",
    "version": "0.1.0",
    "intended_use": "Test fixture for Evidentia's inference engine; not a trained model, not for clinical use.",
    "input": {"name": "tiles", "shape": [-1, 3, 256, 256], "layout": "NCHW", "dtype": "float32"},
    "tile_size": 256,
    "mpp": 1.0,
    "normalisation": {"scale": 0.00392156862745098, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    "outputs": [
        {
            "name": "tissue",
            "shape": [-1, 3, 64, 64],
            "meaning": "tissue class probabilities: background, cancer_epithelium, cancer_stroma",
        },
        {"name": "lymphocytes", "shape": [-1, 1, 64, 64], "meaning": "lymphocyte centre probability"},
    ],
    "thresholds": {"itil_per_mm2": 106, "stil_per_mm2": 357, "min_tumour_mm2": 0.1, "lymphocyte_probability": 0.5},
    "training_data": "None: weights set by hand from a fixed seed (tools/make_test_model.py).",
    "validation": {},
}


def smooth_kernel(k):
    """Normalised binomial k x k kernel (k = 3 or 5)."""
    row = {3: np.array([1, 2, 1], np.float64), 5: np.array([1, 4, 6, 4, 1], np.float64)}[k]
    ker = np.outer(row, row)
    return ker / ker.sum()


def build_weights():
    rng = np.random.default_rng(SEED)

    # conv1: 3 -> 8, 3x3. Per-channel colour weights (R, G, B) times a smoothing kernel.
    s3 = smooth_kernel(3)
    w1 = np.zeros((8, 3, 3, 3), np.float64)
    b1 = np.zeros(8, np.float64)
    colour = [
        ((0.0, 1.0, 0.0), -0.5),     # 0 white background: green channel high
        ((1.0, -1.0, 0.0), -0.1),    # 1 eosin: red above green
        ((-0.5, -0.5, 0.5), 0.0),    # 2 haematoxylin: dark, bluish
        ((1.5, -1.5, 0.0), -0.5),    # 3 strong eosin (stroma)
    ]
    for o, ((r, g, b), bias) in enumerate(colour):
        for c, wc in enumerate((r, g, b)):
            w1[o, c] = wc * s3
        b1[o] = bias
    w1[4:] = rng.normal(0.0, 0.15, size=(4, 3, 3, 3))
    b1[4:] = rng.normal(0.0, 0.05, size=4)

    # conv2: 8 -> 8, 5x5 at 128 px (2 um / px): copies, a blob detector and random mixes.
    s5 = smooth_kernel(5)
    w2 = np.zeros((8, 8, 5, 5), np.float64)
    b2 = np.zeros(8, np.float64)
    for o in range(4):
        w2[o, o] = s5
    # centre-surround on haematoxylin: centre 3x3 sums to +1, outer ring (16 px) sums to -1,
    # plus a little absolute darkness so a blob must also be dark.
    cs = np.full((5, 5), -1.0 / 16.0)
    cs[1:4, 1:4] = 1.0 / 9.0
    w2[4, 2] = 4.0 * cs + 0.5 * s5
    b2[4] = -0.05
    w2[5:] = rng.normal(0.0, 0.04, size=(3, 8, 5, 5))
    b2[5:] = rng.normal(0.0, 0.05, size=3)

    # tissue head: 1x1, 8 -> 3 (background, cancer_epithelium, cancer_stroma).
    wt = np.zeros((3, 8, 1, 1), np.float64)
    bt = np.array([0.0, 0.2, 0.0])
    wt[0, 0] = 8.0                       # white -> background
    wt[1, 2], wt[1, 1] = 6.0, 1.0        # haematoxylin (+ some eosin) -> epithelium
    wt[2, 3], wt[2, 1] = 8.0, 2.0        # strong eosin -> stroma
    wt[2, 2] = -2.0
    wt[:, 4:] += rng.normal(0.0, 0.3, size=(3, 4, 1, 1))

    # lymphocyte head: 1x1, 8 -> 1.
    wl = np.zeros((1, 8, 1, 1), np.float64)
    wl[0, 4] = 6.0
    wl[0, 0] = -2.0
    wl[0, 5:] = rng.normal(0.0, 0.3, size=(3, 1, 1))
    bl = np.array([-3.0])

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return {
        "conv1.weight": f32(w1), "conv1.bias": f32(b1),
        "conv2.weight": f32(w2), "conv2.bias": f32(b2),
        "tissue_head.weight": f32(wt), "tissue_head.bias": f32(bt),
        "lymph_head.weight": f32(wl), "lymph_head.bias": f32(bl),
    }


def build_model():
    w = build_weights()
    inits = [numpy_helper.from_array(v, name=k) for k, v in w.items()]
    nodes = [
        helper.make_node("Conv", ["tiles", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1",
                         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
                         kernel_shape=[5, 5], strides=[2, 2], pads=[2, 2, 2, 2], dilations=[1, 1], group=1),
        helper.make_node("Relu", ["conv2"], ["features"], name="relu2"),
        helper.make_node("Conv", ["features", "tissue_head.weight", "tissue_head.bias"], ["tissue_logits"],
                         name="tissue_head", kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0],
                         dilations=[1, 1], group=1),
        helper.make_node("Softmax", ["tissue_logits"], ["tissue"], name="tissue_softmax", axis=1),
        helper.make_node("Conv", ["features", "lymph_head.weight", "lymph_head.bias"], ["lymph_logits"],
                         name="lymph_head", kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0],
                         dilations=[1, 1], group=1),
        helper.make_node("Sigmoid", ["lymph_logits"], ["lymphocytes"], name="lymph_sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-fcn",
        [helper.make_tensor_value_info("tiles", TensorProto.FLOAT, ["N", 3, TILE, TILE])],
        [
            helper.make_tensor_value_info("tissue", TensorProto.FLOAT, ["N", 3, 64, 64]),
            helper.make_tensor_value_info("lymphocytes", TensorProto.FLOAT, ["N", 1, 64, 64]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="evidentia-tools-make_test_model",
        producer_version="0.1.0",
        opset_imports=[helper.make_opsetid("", 17)],
        doc_string="Evidentia test fixture; hand-set weights, not trained, not for clinical use.",
    )
    model.ir_version = 8  # opset 17 era; ONNX Runtime 1.20+ and tract-onnx accept it
    model.model_version = 1
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------- reference input

INPUT_FORMULA = (
    "All integer arithmetic on non-negative integers (u32), '/' is floor division, '%' remainder. "
    "For tile b in 0..2, channel c in 0..3 (R, G, B), row y in 0..256, column x in 0..256: "
    "region = (x/64 + 4*(y/64) + b) % 3; "
    "base = BASE[region][c] with BASE = [[240, 240, 240], [235, 150, 205], [110, 70, 160]] "
    "(0 white background, 1 eosin pink, 2 haematoxylin purple); "
    "dx = x % 16, dy = y % 16; dot = ((dx - 8)^2 + (dy - 8)^2 <= 9) computed in signed integers, "
    "and only where (x/16 + y/16 + b) % 2 == 0; "
    "if dot then base = DOT[c] with DOT = [60, 30, 110] (small dark-purple blob); "
    "noise = (x*5 + y*3 + c*31 + b*7) % 16; "
    "pixel(b, c, y, x) = base + noise (always <= 255, stored as u8). "
    "Then normalised with the card: value = (pixel * scale - mean[c]) / std[c] as f32, "
    "i.e. (pixel as f32 * 0.00392156862745098 - 0.5) / 0.5, laid out NCHW as [2, 3, 256, 256]."
)

BASE = np.array([[240, 240, 240], [235, 150, 205], [110, 70, 160]], np.int64)
DOT = np.array([60, 30, 110], np.int64)


def reference_pixels():
    b = np.arange(2).reshape(2, 1, 1, 1)
    c = np.arange(3).reshape(1, 3, 1, 1)
    y = np.arange(TILE).reshape(1, 1, TILE, 1)
    x = np.arange(TILE).reshape(1, 1, 1, TILE)
    region = (x // 64 + 4 * (y // 64) + b) % 3                      # [2, 1, 256, 256]
    region = np.broadcast_to(region, (2, 3, TILE, TILE))
    cc = np.broadcast_to(c, (2, 3, TILE, TILE))
    base = BASE[region, cc]
    dx, dy = x % 16, y % 16
    dot = ((dx - 8) ** 2 + (dy - 8) ** 2 <= 9) & ((x // 16 + y // 16 + b) % 2 == 0)
    dot = np.broadcast_to(dot, (2, 3, TILE, TILE))
    base = np.where(dot, DOT[cc], base)
    noise = (x * 5 + y * 3 + c * 31 + b * 7) % 16
    pix = base + noise
    assert pix.min() >= 0 and pix.max() <= 255
    return pix.astype(np.uint8)


def normalise(pix):
    scale = np.float32(CARD["normalisation"]["scale"])
    mean = np.array(CARD["normalisation"]["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(CARD["normalisation"]["std"], np.float32).reshape(1, 3, 1, 1)
    return ((pix.astype(np.float32) * scale - mean) / std).astype(np.float32)


def sample_indices(size):
    return [int(round(i * (size - 1) / (N_SAMPLES - 1))) for i in range(N_SAMPLES)]


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    import onnxruntime as ort

    os.makedirs(OUT, exist_ok=True)
    model = build_model()
    model_path = os.path.join(OUT, "tiny-fcn.onnx")
    onnx.save_model(model, model_path)
    onnx.checker.check_model(model_path, full_check=True)

    write_json("tiny-fcn.json", CARD)
    bad_in = copy.deepcopy(CARD)
    bad_in["input"]["shape"] = [-1, 3, 512, 512]
    write_json("tiny-fcn-wrong-input.json", bad_in)
    bad_out = copy.deepcopy(CARD)
    bad_out["outputs"][1] = {"name": "heatmap", "shape": [-1, 1, 64, 64], "meaning": "lymphocyte centre probability"}
    write_json("tiny-fcn-wrong-outputs.json", bad_out)
    with open(os.path.join(OUT, "not-onnx.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model\n")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])
    tiles = normalise(reference_pixels())
    names = ["tissue", "lymphocytes"]
    results = sess.run(names, {"tiles": tiles})

    outputs = {}
    for name, arr in zip(names, results):
        assert arr.dtype == np.float32
        flat = arr.reshape(-1)
        idx = sample_indices(flat.size)
        outputs[name] = {
            "shape": list(arr.shape),
            "sum": float(flat.astype(np.float64).sum()),
            "sum_abs": float(np.abs(flat.astype(np.float64)).sum()),
            "min": float(flat.min()),
            "max": float(flat.max()),
            "samples": [[i, float(flat[i])] for i in idx],
        }
    ref = {
        "model": "tiny-fcn.onnx",
        "card": "tiny-fcn.json",
        "generator": "tools/make_test_model.py",
        "onnxruntime_version": ort.__version__,
        "onnx_version": onnx.__version__,
        "execution_provider": "CPUExecutionProvider, intra_op_num_threads=1",
        "batch_shape": [2, 3, TILE, TILE],
        "input_formula": INPUT_FORMULA,
        "input_checks": {
            "pixel_sum_u64": int(reference_pixels().astype(np.uint64).sum()),
            "pixel_samples": [[i, int(v)] for i, v in zip(sample_indices(tiles.size),
                                                        reference_pixels().reshape(-1)[sample_indices(tiles.size)])],
            "normalised_sum": float(tiles.astype(np.float64).sum()),
        },
        "sample_indices": f"{N_SAMPLES} flat (row-major NCHW) indices: round(i * (len - 1) / {N_SAMPLES - 1}) for i in 0..{N_SAMPLES}",
        "suggested_tolerance": {"abs": 1e-4, "sum_rel": 1e-5},
        "outputs": outputs,
    }
    write_json("tiny-fcn.reference.json", ref)

    for name, arr in zip(names, results):
        print(f"{name}: shape={arr.shape} min={arr.min():.4f} max={arr.max():.4f} "
              f"mean={arr.mean():.4f} std={arr.std():.4f}")
    print(f"wrote {OUT} ({os.path.getsize(model_path)} bytes model)")


if __name__ == "__main__":
    main()
