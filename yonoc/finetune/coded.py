"""Codebook layers inside the lifted PyTorch graph: a coded layer's weights replaced by the
nearest codewords of its frozen codebooks (the E-step's encoding, done in torch so training can
pass gradients straight through it: finetune/lift.py)."""

from __future__ import annotations

import numpy as np


def codeword_stages(torch, c, dtype) -> list:
    """[(codeword tensors, s), ...] of a CodedLayer, base stage first (residual rates)."""
    own = (
        [torch.as_tensor(np.asarray(b, np.float64), dtype=dtype) for b in c.subs],
        int(c.subvector_len),
    )
    return ([] if c.base is None else codeword_stages(torch, c.base, dtype)) + [own]


def nearest_codewords(torch, w, stages, perm):
    """w (int8 units, file order) replaced by its PQ reconstruction, as the E-step encodes it
    (sub-vector j uses sub-codebook j mod M; a short last sub-vector is zero-padded). A
    residual rate: each stage codes what the previous ones leave; the sum saturates."""
    flat = w.reshape(-1)
    if perm is not None:
        flat = flat[perm]
    q = _pq_stage(torch, flat, *stages[0])
    for subs, s in stages[1:]:
        q = torch.clamp(q + _pq_stage(torch, flat - q, subs, s), -128, 127)
    if perm is not None:
        q = torch.empty_like(q).index_copy_(0, perm, q)
    return q.reshape(w.shape)


def _pq_stage(torch, flat, subs, s):
    """One PQ stage's nearest-codeword reconstruction of a flat vector-order tensor."""
    size = flat.numel()
    n = -(-size // s)
    v = torch.nn.functional.pad(flat, (0, n * s - size)).reshape(n, s)
    out = torch.empty_like(v)
    for j, book in enumerate(subs):
        rows = v[j :: len(subs)]
        d = (book * book).sum(1) - 2.0 * rows @ book.T  # + |rows|^2, same for every codeword
        out[j :: len(subs)] = book[d.argmin(1)]
    return out.reshape(-1)[:size]
