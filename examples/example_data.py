"""The example models' data: sklearn digits and breast cancer splits, the synthesized speech
(espeak-ng) and audio events, and the MFCC features of both (numpy/scipy only)."""

import os
import subprocess

import numpy as np
import scipy.fft
import scipy.io.wavfile
import scipy.signal
from example_export import SEED

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


# --------------------------------------------------------------------------
# Second set: train / val / test splits and synthetic audio events
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
