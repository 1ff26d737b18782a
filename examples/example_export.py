"""Shared by the example-model scripts: the fixed seeds and TensorFlow set-up, the int8 TFLite
conversion, its evaluation (LiteRT, TFLite-Micro) and writing a model's files to models/.

TensorFlow's environment is set here, before TensorFlow is first imported (oneDNN off: the
converted models must not depend on the CPU's instruction set), so import this module before
anything else that imports TensorFlow."""

import contextlib
import io
import os
import random

SEED = 1234
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONHASHSEED"] = str(SEED)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

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
