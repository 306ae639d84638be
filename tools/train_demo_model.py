#!/usr/bin/env python3
"""Train Evidentia's bundled *demonstration* AI model (`evidentia-demo-til`) on synthetic H&E.

NOT a clinical model: it is trained and validated only on synthetic tissue written by
`evidentia synth slides`, so that the biomarker pipeline has something real to run in demos,
tests and benchmarks.

What it does, end to end (fixed seeds, so a re-run gives the same data and, up to float
non-determinism of multi-threaded CPU kernels, the same model):
  1. writes training and validation slides with the Evidentia binary (`synth slides`, with
     `--class-map-step 8` tissue-class maps and truth JSON); existing slides are reused;
  2. reads them with OpenSlide at the model's resolution exactly as the Rust pipeline does
     (level 0, 2×2 box downsample with rounding: (sum + 2) // 4);
  3. trains a small fully-convolutional network (PyTorch, CPU) on random 256×256 crops whose
     origin is a multiple of 8 level-0 px, so one output pixel = one class-map pixel;
     targets: tissue class per output pixel (cross-entropy) and a lymphocyte-centre heat map
     (CenterNet-style focal loss) with one peak per lymphocyte, peaks kept two output pixels
     apart so that overlapping nuclei can still be counted by the 3×3 local-maximum rule;
  4. tunes the lymphocyte probability threshold on training tiles (best detection F1 with the
     pipeline's 3×3 local-maximum rule);
  5. exports ONNX (BatchNorm folded, opset 17, IR 8, symbolic batch "N"), checks it against
     PyTorch with ONNX Runtime, and writes the model card;
  6. validates on held-out slides (seeds disjoint from training): tissue pixel accuracy and
     lymphocyte detection in Python, then the phenotype and iTIL / sTIL densities with the
     product's own pipeline (`evidentia biomarker run-file`), and writes the metrics into the
     card's `validation`; finally `evidentia model check` on tract and on ONNX Runtime.

Reproduce (from the repository root, with a release build of the binary):

    cargo build --release
    python3 -m venv /tmp/v && /tmp/v/bin/pip install torch numpy onnx onnxruntime \
        openslide-python openslide-bin
    EVIDENTIA_BIN=target/release/evidentia \
    EVIDENTIA_ORT_LIB=$(/tmp/v/bin/python -c 'import onnxruntime,glob,os; \
        print(glob.glob(os.path.dirname(onnxruntime.__file__)+"/capi/libonnxruntime.so*")[0])') \
        /tmp/v/bin/python tools/train_demo_model.py --work /var/tmp/demo-train/work

Writes models/evidentia-demo-til.onnx and models/evidentia-demo-til.json. Scratch data (slides,
checkpoint, data dirs for validation) goes to --work. About 35 min of CPU on 2 cores for
training plus ~20 min for the slides and the validation.
"""

import argparse
import copy
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import openslide
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NAME, VERSION = "evidentia-demo-til", "1.0.0"
SEED = 20250101
TILE = 256  # model input edge (px at 1 µm/px)
OUT = 64  # output edge: one output px = 4 model px = 8 level-0 px (at 0.5 µm/px)
MPP = 0.5  # slides' level-0 microns per pixel
# Training slides: (phenotype, n, seed of the first, size). Seeds 1000–1399.
TRAIN_SETS = [("mixed", 12, 1000, "4096x4096"), ("inflamed", 4, 1100, "4096x4096"),
              ("excluded", 4, 1200, "4096x4096"), ("desert", 4, 1300, "4096x4096")]
# Validation slides, seeds disjoint from training (9000–9219).
VAL_SETS = [("inflamed", 20, 9000, "6000x6000"), ("excluded", 20, 9100, "6000x6000"),
            ("desert", 20, 9200, "6000x6000")]
THRESHOLDS = {"itil_per_mm2": 106, "stil_per_mm2": 357, "min_tumour_mm2": 0.05}
HEAT_SIGMA = 0.8  # lymphocyte heat-map gaussian, output px (3.2 µm)
# Class-map values (0 glass, 1 stroma, 2 epithelium) -> model classes (0 background,
# 1 cancer_epithelium, 2 cancer_stroma).
PGM_TO_CLASS = np.array([0, 2, 1], np.int64)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---------------------------------------------------------------------------------------------
# Slides

def set_dir(work, split, phenotype):
    return os.path.join(work, split, phenotype)


def generate_slides(binary, work, split, sets):
    """Writes a split's slides with `evidentia synth slides` (skips sets already written)."""
    for phenotype, n, seed, size in sets:
        out = set_dir(work, split, phenotype)
        if len(glob.glob(os.path.join(out, "*.classes.pgm"))) >= n:
            continue
        os.makedirs(out, exist_ok=True)
        cmd = [binary, "synth", "slides", "--out", out, "--n", str(n), "--phenotype", phenotype,
               "--size", size, "--mpp", str(MPP), "--seed", str(seed), "--class-map-step", "8"]
        log("generating", " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def slide_paths(work, split, sets):
    paths = []
    for phenotype, n, seed, _ in sets:
        for i in range(n):
            paths.append(os.path.join(set_dir(work, split, phenotype), f"synth-{seed + i}-{i:03}.svs"))
    return paths


def read_pgm(path):
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(maxsplit=4)  # P5, width, height, maxval, pixels
    assert parts[0] == b"P5" and parts[3] == b"255", path
    w, h = int(parts[1]), int(parts[2])
    return np.frombuffer(parts[4][: w * h], np.uint8).reshape(h, w)


def downsample2(rgb):
    """2×2 box mean with rounding, as the Rust pipeline's resize: (sum + 2) // 4."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    s = rgb[:h, :w].astype(np.uint16).reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))
    return ((s + 2) // 4).astype(np.uint8)


def assign_peaks(centres, shape):
    """One target peak pixel per lymphocyte on the output grid, at least two pixels apart
    (Chebyshev), so that the pipeline's 3×3 local-maximum rule can count every one: a
    lymphocyte whose own pixel is taken or touches a taken peak (overlapping nuclei) moves to
    the nearest free neighbouring pixel; if none is free (rare) it cannot be counted."""
    h, w = shape
    near = np.zeros((h + 2, w + 2), bool)  # within one pixel of a peak (padded by one)
    peaks, which = [], []
    for i in np.lexsort((centres[:, 0], centres[:, 1])):  # row-major order
        fx, fy = centres[i]
        ix, iy = int(fx), int(fy)
        cands = [(ix + dx, iy + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        cands.sort(key=lambda p: (p[0] + 0.5 - fx) ** 2 + (p[1] + 0.5 - fy) ** 2)
        for px, py in cands:
            if 0 <= px < w and 0 <= py < h and not near[py + 1, px + 1]:
                near[py: py + 3, px: px + 3] = True
                peaks.append((py, px))
                which.append(i)
                break
    return np.array(peaks, np.int64).reshape(-1, 2), np.array(which, np.int64)


def heat_map(lymphocytes, shape):
    """Lymphocyte targets on the output grid: 1 at each assigned peak pixel, a gaussian
    (HEAT_SIGMA) around it, the maximum where they overlap; the true number of centres per
    output pixel; and each peak's pixel with the compartment of its lymphocyte (1 epithelium,
    2 stroma)."""
    heat = np.zeros(shape, np.float32)
    count = np.zeros(shape, np.uint8)
    if not lymphocytes:
        return heat, count, (np.zeros((0, 2), np.int64), np.zeros(0, np.uint8))
    c = np.array([[l["x"], l["y"]] for l in lymphocytes], np.float64) / 8.0  # output px
    comp = np.array([1 if l["compartment"] == "epithelium" else 2 for l in lymphocytes], np.uint8)
    ix, iy = np.floor(c[:, 0]).astype(int), np.floor(c[:, 1]).astype(int)
    ok = (ix < shape[1]) & (iy < shape[0])
    np.add.at(count, (iy[ok], ix[ok]), 1)
    peaks, which = assign_peaks(c[ok], shape)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            py, px = peaks[:, 0] + dy, peaks[:, 1] + dx
            inside = (px >= 0) & (py >= 0) & (px < shape[1]) & (py < shape[0])
            v = np.float32(math.exp(-(dx * dx + dy * dy) / (2 * HEAT_SIGMA ** 2)))
            np.maximum.at(heat, (py[inside], px[inside]), v)
    return heat, count, (peaks, comp[ok][which])


class Slide:
    """One synthetic slide at model resolution: image (H/2, W/2, 3), classes, heat map and
    lymphocyte counts (H/8, W/8), truth. For training (`relabel`), the class of each
    lymphocyte's peak pixel is its lymphocyte's compartment: the pipeline assigns a lymphocyte
    by the class at its peak, and at a nest border the class map's pixel-centre sample can
    differ from the compartment at the lymphocyte's centre."""

    def __init__(self, path, relabel=False):
        self.path = path
        base = path[: -len(".svs")]
        with open(base + ".truth.json") as f:
            self.truth = json.load(f)
        s = openslide.OpenSlide(path)
        w, h = s.dimensions
        rgba = np.asarray(s.read_region((0, 0), 0, (w, h)))
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 255  # outside the image: white, as the Rust reader
        del rgba
        s.close()
        self.image = downsample2(rgb)
        del rgb
        self.classes = PGM_TO_CLASS[read_pgm(base + ".classes.pgm")].astype(np.uint8)
        self.heat, self.count, (peaks, comp) = heat_map(self.truth["lymphocytes"], self.classes.shape)
        if relabel:
            self.classes[peaks[:, 0], peaks[:, 1]] = comp

    def tile_origins(self, min_tissue=0.1):
        """Origins (output px) of the pipeline's 512-level-0-px tile grid (64 output px) over
        tissue: the class map stands in for the pipeline's low-resolution tissue mask."""
        h, w = self.classes.shape
        out = []
        for y in range(0, h, OUT):
            for x in range(0, w, OUT):
                c = self.classes[y: y + OUT, x: x + OUT]
                if (c > 0).sum() / (OUT * OUT) >= min_tissue:
                    out.append((y, x))
        return out

    def tile(self, y, x):
        """Input (TILE, TILE, 3) uint8; classes, heat and true counts (OUT, OUT) at output-px
        origin (y, x), which may lie past the slide's edges: padded with white (as the Rust
        reader beyond the image's tiles) and background."""
        h, w = self.classes.shape
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + OUT, h), min(x + OUT, w)
        img = np.full((TILE, TILE, 3), 255, np.uint8)
        maps = [np.zeros((OUT, OUT), m.dtype) for m in (self.classes, self.heat, self.count)]
        if y1 > y0 and x1 > x0:
            img[(y0 - y) * 4: (y1 - y) * 4, (x0 - x) * 4: (x1 - x) * 4] = self.image[y0 * 4: y1 * 4, x0 * 4: x1 * 4]
            for out, m in zip(maps, (self.classes, self.heat, self.count)):
                out[y0 - y: y1 - y, x0 - x: x1 - x] = m[y0:y1, x0:x1]
        return (img, *maps)


def normalise(images):
    """uint8 (B, H, W, 3) -> float32 NCHW, (pixel / 255 - 0.5) / 0.5 as the card says."""
    x = images.astype(np.float32) * (1.0 / 255.0)
    return ((x - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


def sample_batch(slides, rng, batch):
    """Random crops (origin a multiple of 8 level-0 px, ≥ 10 % tissue) with random flips and
    90° rotations; one in ten reaches past the slide's edge (white padding, background)."""
    imgs, clss, heats = [], [], []
    while len(imgs) < batch:
        s = slides[rng.integers(len(slides))]
        h, w = s.classes.shape
        edge = rng.random() < 0.1
        m = OUT * 3 // 4 if edge else 0
        y, x = int(rng.integers(-m, h - OUT + m + 1)), int(rng.integers(-m, w - OUT + m + 1))
        img, cls, heat, _ = s.tile(y, x)
        if not edge and (cls > 0).mean() < 0.1 and rng.random() > 0.05:
            continue
        k = int(rng.integers(4))
        img, cls, heat = np.rot90(img, k), np.rot90(cls, k), np.rot90(heat, k)
        if rng.random() < 0.5:
            img, cls, heat = img[:, ::-1], cls[:, ::-1], heat[:, ::-1]
        imgs.append(img)
        clss.append(cls)
        heats.append(heat)
    x = torch.from_numpy(normalise(np.stack(imgs)))
    return x, torch.from_numpy(np.stack(clss).astype(np.int64)), torch.from_numpy(np.stack(heats)[:, None])


# ---------------------------------------------------------------------------------------------
# The network

def cbr(i, o, stride=1, dilation=1):
    """3×3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class DemoTIL(nn.Module):
    """A small U-Net: stride-2 stem to 64×64 (4 µm/px), two more levels (8 and 16 µm/px) for
    context, back up with 2×2 transposed convolutions and additive skips, a 1×1 head each at
    64×64. Returns logits (the export wrapper adds Softmax / Sigmoid)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 16, 2), cbr(16, 32, 2))  # 256 -> 128 -> 64
        self.enc64 = cbr(32, 32)
        self.enc32 = nn.Sequential(cbr(32, 64, 2), cbr(64, 64))  # 32×32
        self.enc16 = nn.Sequential(cbr(64, 128, 2), cbr(128, 128, dilation=2))  # 16×16
        self.up32 = nn.ConvTranspose2d(128, 64, 2, 2)
        self.dec32 = cbr(64, 64)
        self.up64 = nn.ConvTranspose2d(64, 32, 2, 2)
        self.dec64 = cbr(32, 32)
        self.tissue = nn.Conv2d(32, 3, 1)
        self.lymph = nn.Conv2d(32, 1, 1)
        nn.init.constant_(self.lymph.bias, -4.0)  # start with a low prior for centres

    def forward(self, x):
        s64 = self.enc64(self.stem(x))
        s32 = self.enc32(s64)
        s16 = self.enc16(s32)
        d32 = self.dec32(F.relu(self.up32(s16) + s32))
        d64 = self.dec64(F.relu(self.up64(d32) + s64))
        return self.tissue(d64), self.lymph(d64)


class Exported(nn.Module):
    """The deployed graph: probabilities, in the card's output order."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tiles):
        t, l = self.net(tiles)
        return torch.softmax(t, dim=1), torch.sigmoid(l)


def fold_batchnorm(net):
    """Replaces every Conv+BatchNorm pair by one Conv with bias (eval-mode statistics)."""
    for m in net.modules():
        if isinstance(m, nn.Sequential) and len(m) >= 2 and isinstance(m[0], nn.Conv2d) \
                and isinstance(m[1], nn.BatchNorm2d):
            conv, bn = m[0], m[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding, conv.dilation, bias=True)
            fused.weight.data = conv.weight.data * scale[:, None, None, None]
            bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
            fused.bias.data = (bias - bn.running_mean) * scale + bn.bias.data
            m[0], m[1] = fused, nn.Identity()
    return net


def count_macs(net):
    """Multiply-accumulates of one 256×256 tile (Conv and ConvTranspose)."""
    macs = []

    def hook(m, inp, out):
        k = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[1] * m.kernel_size[0] * m.kernel_size[1]
        n = out[0].numel() if isinstance(m, nn.Conv2d) else inp[0][0].numel()
        macs.append(k * n)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, TILE, TILE))
    for h in hs:
        h.remove()
    return sum(macs)


# ---------------------------------------------------------------------------------------------
# Training

def focal_loss(logits, target):
    """CenterNet's penalty-reduced focal loss, per positive pixel."""
    pos = (target >= 0.999).float()
    log_p, log_1p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = -(1 - p) ** 2 * log_p * pos
    neg_loss = -(p ** 2) * (1 - target) ** 4 * log_1p * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def train(net, slides, steps, batch, lr):
    rng = np.random.default_rng(SEED)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    net.train()
    t0, c0, run = time.time(), time.process_time(), None
    for step in range(1, steps + 1):
        x, cls, heat = sample_batch(slides, rng, batch)
        t_logits, l_logits = net(x)
        ce, fl = F.cross_entropy(t_logits, cls), focal_loss(l_logits, heat)
        loss = ce + fl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        cur = np.array([ce.item(), fl.item()])
        run = cur if run is None else 0.95 * run + 0.05 * cur
        if step % 100 == 0 or step == steps:
            log(f"step {step}/{steps}  ce {run[0]:.4f}  focal {run[1]:.4f}  "
                f"{time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU")
    net.eval()
    return {"wall_seconds": round(time.time() - t0), "cpu_seconds": round(time.process_time() - c0)}


# ---------------------------------------------------------------------------------------------
# Evaluation in Python (pipeline-style tiles)

def peaks(lymph, threshold):
    """The pipeline's lymphocyte centres on one (OUT, OUT) map: values ≥ threshold that no
    3×3 neighbour beats; of equal neighbours only the later one in row-major order."""
    h, w = lymph.shape
    p = np.full((h + 2, w + 2), -np.inf, np.float32)
    p[1:-1, 1:-1] = lymph
    ok = lymph >= threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if (dy, dx) == (0, 0):
                continue
            nb = p[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
            later = dy > 0 or (dy == 0 and dx > 0)
            ok &= (nb < lymph) | ((nb == lymph) & later)
    return ok


def run_tiles(predict, slide, origins, batch=16):
    """Model outputs (tissue argmax, lymphocyte map) and targets (classes, heat, counts) for
    the tiles at `origins`."""
    outs = [[] for _ in range(5)]
    for i in range(0, len(origins), batch):
        tiles = [slide.tile(y, x) for y, x in origins[i: i + batch]]
        t, l = predict(normalise(np.stack([a[0] for a in tiles])))
        outs[0].append(t.argmax(1).astype(np.uint8))
        outs[1].append(l[:, 0])
        for k in range(3):
            outs[2 + k].append(np.stack([a[1 + k] for a in tiles]))
    return tuple(np.concatenate(o) for o in outs)


def torch_predict(net):
    def f(x):
        with torch.no_grad():
            t, l = net(torch.from_numpy(x))
            return torch.softmax(t, 1).numpy(), torch.sigmoid(l).numpy()
    return f


def onnx_predict(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(["tissue", "lymphocytes"], {"tiles": x})


def detection_stats(lym, heat, count, cls_pred, cls_true, threshold):
    """Detection: predicted centres, target peaks, predicted centres with a target peak within
    one output px, target peaks with a predicted centre within one px; and predicted vs true
    lymphocyte counts by compartment (predicted by the predicted class, true by the class map)."""
    true_c = heat >= 0.999
    pred_c = np.stack([peaks(m, threshold) for m in lym])

    def dilate(a):
        p = np.pad(a, ((0, 0), (1, 1), (1, 1)))
        return np.max([p[:, 1 + dy: 1 + dy + a.shape[1], 1 + dx: 1 + dx + a.shape[2]]
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)

    tp_p = (pred_c & dilate(true_c)).sum()
    tp_t = (true_c & dilate(pred_c)).sum()
    counts = {}
    for k, name in ((1, "epithelium"), (2, "stroma")):
        counts[name] = (int((pred_c & (cls_pred == k)).sum()), int(count[cls_true == k].sum()))
    return int(pred_c.sum()), int(true_c.sum()), int(tp_p), int(tp_t), int(count.sum()), counts


def f1_of(n_pred, n_true, tp_p, tp_t):
    prec, rec = tp_p / max(n_pred, 1), tp_t / max(n_true, 1)
    return prec, rec, 2 * prec * rec / max(prec + rec, 1e-9)


def tune_threshold(net, slides):
    """The lymphocyte probability with the best detection F1 on the training slides' pipeline
    tiles (every tile of every slide)."""
    outs = [run_tiles(torch_predict(net), s, s.tile_origins()) for s in slides]
    best = None
    for thr in np.round(np.arange(0.10, 0.91, 0.05), 2):
        tot = np.zeros(5)
        for cp, lym, ct, heat, count in outs:
            tot += detection_stats(lym, heat, count, cp, ct, thr)[:5]
        prec, rec, f1 = f1_of(*tot[:4])
        log(f"threshold {thr:.2f}: precision {prec:.3f} recall {rec:.3f} F1 {f1:.3f} "
            f"count / true lymphocytes {tot[0] / tot[4]:.3f}")
        if best is None or f1 > best[1]:
            best = (float(thr), f1)
    return best[0]


def python_validation(onnx_path, slides, threshold):
    """Tissue-class pixel accuracy (per output pixel, tiles as the pipeline picks them) and
    lymphocyte detection on validation slides, with ONNX Runtime."""
    predict = onnx_predict(onnx_path)
    conf = np.zeros((3, 3), np.int64)
    tot = np.zeros(5)
    cnt = {"epithelium": [0, 0], "stroma": [0, 0]}
    for s in slides:
        cp, lym, ct, heat, count = run_tiles(predict, s, s.tile_origins())
        conf += np.bincount(ct.ravel().astype(np.int64) * 3 + cp.ravel(), minlength=9).reshape(3, 3)
        *stats, counts = detection_stats(lym, heat, count, cp, ct, threshold)
        tot += stats
        for k, (p, t) in counts.items():
            cnt[k][0] += p
            cnt[k][1] += t
    prec, rec, f1 = f1_of(*tot[:4])
    names = ["background", "cancer_epithelium", "cancer_stroma"]
    return {
        "slides": len(slides),
        "tissue_pixel_accuracy": round(float(np.trace(conf) / conf.sum()), 4),
        "tissue_recall": {n: round(float(conf[i, i] / max(conf[i].sum(), 1)), 4) for i, n in enumerate(names)},
        "tissue_confusion_rows_truth_cols_predicted": {n: conf[i].tolist() for i, n in enumerate(names)},
        "lymphocyte_detection": {
            "match": "predicted centre within one output pixel (4 µm) of a target peak (one per lymphocyte, "
                     "moved apart by at most one pixel where nuclei overlap)",
            "precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4),
            "predicted": int(tot[0]), "target_peaks": int(tot[1]), "true_lymphocytes": int(tot[4]),
            "count_ratio": round(float(tot[0] / max(tot[4], 1)), 4),
            "predicted_vs_true_in_epithelium": cnt["epithelium"],
            "predicted_vs_true_in_stroma": cnt["stroma"],
        },
    }


# ---------------------------------------------------------------------------------------------
# Export and card

def export_onnx(net, path):
    fused = fold_batchnorm(copy.deepcopy(net)).eval()
    model = Exported(fused).eval()
    x = torch.from_numpy(normalise(np.random.default_rng(1).integers(0, 256, (2, TILE, TILE, 3), dtype=np.uint8)))
    torch.onnx.export(model, x, path, input_names=["tiles"], output_names=["tissue", "lymphocytes"],
                      dynamic_axes={"tiles": {0: "N"}, "tissue": {0: "N"}, "lymphocytes": {0: "N"}},
                      opset_version=17, do_constant_folding=True, dynamo=False)
    m = onnx.load(path)
    m.ir_version = 8
    m.producer_name, m.doc_string = "tools/train_demo_model.py", f"{NAME} {VERSION}: demonstration model, not for clinical use"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    ops = sorted({n.op_type for n in m.graph.node})
    # The exported graph against PyTorch (BatchNorm unfused).
    with torch.no_grad():
        t_ref, l_ref = torch_predict(net)(x.numpy())
    t, l = onnx_predict(path)(x.numpy())
    diff = max(np.abs(t - t_ref).max(), np.abs(l - l_ref).max())
    log(f"exported {path}: {os.path.getsize(path)} bytes, ops {ops}, max |ORT - torch| {diff:.2e}")
    assert diff < 1e-3, diff
    return ops


def card(threshold, training_data, validation):
    return {
        "name": NAME,
        "version": VERSION,
        "intended_use": (
            "Demonstration model only: trained and validated exclusively on synthetic H&E tissue "
            "generated by `evidentia synth slides`, so that Evidentia's biomarker pipeline can be "
            "shown, tested and benchmarked end to end. It has never seen a real slide and says "
            "nothing about real tissue. NOT for clinical use, diagnosis, or research conclusions."
        ),
        "input": {"name": "tiles", "shape": [-1, 3, TILE, TILE], "layout": "NCHW", "dtype": "float32"},
        "tile_size": TILE,
        "mpp": 1.0,
        "normalisation": {"scale": 1.0 / 255.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "outputs": [
            {"name": "tissue", "shape": [-1, 3, OUT, OUT],
             "meaning": "tissue class probabilities: background, cancer_epithelium, cancer_stroma"},
            {"name": "lymphocytes", "shape": [-1, 1, OUT, OUT], "meaning": "lymphocyte centre probability"},
        ],
        "thresholds": dict(THRESHOLDS, lymphocyte_probability=threshold),
        "training_data": training_data,
        "validation": validation,
    }


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Validation with the product's pipeline

def evidentia(binary, data_dir, *args, backend="onnxruntime"):
    env = dict(os.environ, EVIDENTIA_INFERENCE_BACKEND=backend)
    return subprocess.run([binary, "--data-dir", data_dir, *args], check=True, capture_output=True, text=True, env=env)


def truth_medians(truth):
    """Medians of the truth's scored cells' iTIL / sTIL densities (as the pipeline takes them)."""
    scored = [c for c in truth["cells"] if c["class"] is not None]

    def median(xs):
        xs = sorted(xs)
        n = len(xs)
        return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)

    return (median([c["itil_density"] for c in scored if c["itil_density"] is not None]),
            median([c["stil_density"] for c in scored if c["stil_density"] is not None]))


def density_errors(pairs):
    """MAE, mean relative error and Pearson r of (predicted, truth) density pairs."""
    pairs = [(p, t) for p, t in pairs if p is not None and t is not None]
    p, t = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    rel = np.abs(p - t) / np.maximum(t, 1e-9)
    return {"slides": len(pairs), "mean_absolute_error_per_mm2": round(float(np.abs(p - t).mean()), 2),
            "mean_relative_error": round(float(rel[t > 0].mean()), 4),
            "mean_signed_error_per_mm2": round(float((p - t).mean()), 2),
            "pearson_r": round(float(np.corrcoef(p, t)[0, 1]), 4)}


def pipeline_validation(binary, work, onnx_path, card_path, paths):
    data_dir = os.path.join(work, "dd-validation")
    shutil.rmtree(data_dir, ignore_errors=True)  # model versions are immutable: start afresh
    evidentia(binary, data_dir, "model", "register", onnx_path, "--card", card_path)
    rows = []
    t0 = time.time()
    for i, path in enumerate(paths):
        with open(path[: -len(".svs")] + ".truth.json") as f:
            truth = json.load(f)
        out = evidentia(binary, data_dir, "biomarker", "run-file", path, "--model", f"{NAME}@{VERSION}", "--json")
        res = json.loads(out.stdout)
        it, st = truth_medians(truth)
        rows.append({"slide": os.path.basename(path), "requested": truth["requested_phenotype"],
                     "truth": truth["phenotype"], "predicted": res.get("phenotype"),
                     "itil": res.get("itil_density_median"), "itil_truth": it,
                     "stil": res.get("stil_density_median"), "stil_truth": st,
                     "cells_scored": res.get("grid_cells_scored"), "cells_scored_truth": truth["class_counts"]["scored"]})
        r = rows[-1]
        log(f"[{i + 1}/{len(paths)}] {r['slide']}: truth {r['truth']} predicted {r['predicted']}  "
            f"iTIL {r['itil']} vs {r['itil_truth']}  sTIL {r['stil']} vs {r['stil_truth']}")
    seconds = time.time() - t0
    write_json(os.path.join(work, "validation-rows.json"), rows)

    def acc(rs, key):
        return {"n": len(rs), "correct": sum(r["predicted"] == r[key] for r in rs),
                "accuracy": round(sum(r["predicted"] == r[key] for r in rs) / max(len(rs), 1), 4)}

    phenos = ["inflamed", "excluded", "desert"]
    v = {
        "slides": len(rows),
        "phenotype_accuracy_vs_truth": acc(rows, "truth"),
        "phenotype_accuracy_vs_truth_by_truth_class": {p: acc([r for r in rows if r["truth"] == p], "truth") for p in phenos},
        "phenotype_accuracy_vs_requested": acc(rows, "requested"),
        "requested_differs_from_truth": [r["slide"] for r in rows if r["requested"] != r["truth"]],
        "confusion_truth_to_predicted": {p: {q: sum(1 for r in rows if r["truth"] == p and r["predicted"] == q)
                                             for q in phenos + [None]} for p in phenos},
        "itil_density_median": density_errors([(r["itil"], r["itil_truth"]) for r in rows]),
        "stil_density_median": density_errors([(r["stil"], r["stil_truth"]) for r in rows]),
        "pipeline_seconds_total": round(seconds, 1),
    }
    for p in v["confusion_truth_to_predicted"].values():
        p["none"] = p.pop(None)
    return v


def model_check(binary, work, onnx_path, card_path):
    """`evidentia model check` on both backends; returns their printed summaries."""
    out = {}
    for backend in ("tract", "onnxruntime"):
        r = evidentia(binary, os.path.join(work, "dd-check"), "model", "check", onnx_path, "--card", card_path,
                      backend=backend)
        out[backend] = r.stdout.strip()
        log(f"model check on {backend}:\n{r.stdout.strip()}")
    return out


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("EVIDENTIA_BIN", os.path.join(ROOT, "target/release/evidentia")))
    ap.add_argument("--work", default="/var/tmp/demo-train/work", help="scratch dir (slides, checkpoint)")
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--reuse-checkpoint", action="store_true", help="skip training if the checkpoint exists")
    ap.add_argument("--val-n", type=int, default=20, help="pipeline validation slides per phenotype (≤ 20)")
    ap.add_argument("--python-val-slides", type=int, default=3, help="validation slides per phenotype for the Python metrics")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, f"{NAME}.onnx")
    card_path = os.path.join(args.out, f"{NAME}.json")

    val_sets = [(ph, min(n, args.val_n), s, sz) for ph, n, s, sz in VAL_SETS]
    generate_slides(binary, args.work, "train", TRAIN_SETS)
    log("loading training slides")
    train_slides = [Slide(p, relabel=True) for p in slide_paths(args.work, "train", TRAIN_SETS)]

    net = DemoTIL()
    params = sum(p.numel() for p in net.parameters())
    macs = count_macs(fold_batchnorm(DemoTIL()))
    bn = sum(m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    log(f"model: {params} parameters ({params - bn} after folding BatchNorm), {macs / 1e6:.1f} M MACs per tile")
    ckpt = os.path.join(args.work, "model.pt")
    if args.reuse_checkpoint and os.path.exists(ckpt):
        net.load_state_dict(torch.load(ckpt))
        train_time = json.load(open(ckpt + ".json"))
    else:
        train_time = train(net, train_slides, args.steps, args.batch, args.lr)
        torch.save(net.state_dict(), ckpt)
        write_json(ckpt + ".json", train_time)
    net.eval()

    threshold = tune_threshold(net, train_slides)
    log(f"lymphocyte_probability {threshold}")
    del train_slides
    ops = export_onnx(net, onnx_path)
    n_params = sum(int(np.prod(t.dims)) for t in onnx.load(onnx_path).graph.initializer)

    sets = ", ".join(f"{n} {ph} (seeds {s}–{s + n - 1})" for ph, n, s, _ in TRAIN_SETS)
    training_data = (
        f"Synthetic H&E only: {sum(n for _, n, _, _ in TRAIN_SETS)} slides of 4096×4096 px at {MPP} µm/px from "
        f"`evidentia synth slides --n N --phenotype P --size 4096x4096 --mpp {MPP} --seed S --class-map-step 8`: {sets}. "
        f"Labels: tissue class per 8×8 level-0 px from the class map (at each lymphocyte's peak pixel, the "
        f"lymphocyte's compartment from the truth JSON); lymphocyte centres from the truth JSON as a heat map "
        f"(one peak pixel per lymphocyte, peaks at least 2 output px apart, gaussian sigma {HEAT_SIGMA * 4:.1f} µm). "
        f"{args.steps} steps × {args.batch} random 256×256 crops at 1 µm/px ({args.steps * args.batch} crops; "
        f"origins on the 8-px grid, ≥ 10 % tissue, one in ten reaching past the slide edge into white padding; "
        f"random flips and 90° rotations); AdamW, one-cycle lr {args.lr}, seed {SEED}; cross-entropy + CenterNet "
        f"focal loss. lymphocyte_probability: best detection F1 on the training slides' pipeline tiles. "
        f"Script: tools/train_demo_model.py (PyTorch {torch.__version__.split('+')[0]}, CPU)."
    )
    write_json(card_path, card(threshold, training_data, {}))

    generate_slides(binary, args.work, "val", val_sets)
    log("validation in Python (ONNX Runtime)")
    k = args.python_val_slides
    py_paths = [p for ph, n, s, sz in val_sets for p in slide_paths(args.work, "val", [(ph, min(k, n), s, sz)])]
    py_val = python_validation(onnx_path, [Slide(p) for p in py_paths], threshold)
    log(json.dumps(py_val))

    log("validation with the Evidentia pipeline (ONNX Runtime backend)")
    pipe_val = pipeline_validation(binary, args.work, onnx_path, card_path, slide_paths(args.work, "val", val_sets))
    val_sets = ", ".join(f"{n} {ph} (seeds {s}–{s + n - 1})" for ph, n, s, _ in val_sets)
    validation = {
        "data": (f"Held-out synthetic slides, seeds disjoint from training: {val_sets}, 6000×6000 px at "
                 f"{MPP} µm/px, same `evidentia synth slides` command. Truth: each slide's truth JSON "
                 f"(computed phenotype; density truth = median over the truth's scored 1 mm² cells)."),
        "pipeline": "evidentia biomarker run-file --json, ONNX Runtime backend, this card's thresholds",
        **pipe_val,
        "patch_level": dict(py_val, note=f"first {k} validation slides of each phenotype, all pipeline tiles, ONNX Runtime in Python"),
        "model": {"parameters": n_params, "macs_per_tile": macs, "onnx_bytes": os.path.getsize(onnx_path),
                  "ops": ops, "training_time_2_threads": train_time},
    }
    write_json(card_path, card(threshold, training_data, validation))
    log(f"wrote {card_path}")
    model_check(binary, args.work, onnx_path, card_path)
    print(json.dumps(validation, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
