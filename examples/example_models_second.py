"""The second set of example models (issue 9: digits_mobilenet, digits_resnet5, cancer_mlp,
audio_cnn1d), each with a train / val / test split: their Keras definitions and training."""

import numpy as np
from example_data import AUDIO_CLASSES, audio_event, digits_3way, mfcc, shift_augment, three_way
from example_export import SEED, finish, seed_everything
from example_models_first import bn_relu, compile_model
from tensorflow import keras
from tensorflow.keras import layers

# --------------------------------------------------------------------------
# Second set (issue 9): other architectures and modalities, each with a
# train / val / test split (val: the build's decisions; test: reported only)
# --------------------------------------------------------------------------


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
