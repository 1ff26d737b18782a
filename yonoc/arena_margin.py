"""The margin yonoc adds to the smallest arena measured in TFLM's Python interpreter.

That interpreter is TFLM with reference kernels on a 64-bit host. A firmware may use CMSIS-NN
kernels, which ask for scratch buffers (live only while their operator runs) and a few
persistent buffers the reference kernels do not, and keep slightly larger per-operator data.
The margin is an upper bound of those extras computed from the model's shapes, following
CMSIS-NN's *_get_buffer_size functions (the commit TFLM pins, 4ab83cc) for the DSP (Cortex-M4/
M7) and MVE (Cortex-M55/M85) builds alike. A 32-bit target needs no margin of its own: every
TFLM structure in the arena that differs between 32- and 64-bit holds pointers, so it is
smaller there (docs/arena.md).
"""

from __future__ import annotations

import tflite

PER_OP_BYTES = 32  # CMSIS-NN OpData vs reference OpData (a few int32 + a pointer), aligned
CH_IN_BLOCK_MVE = 124  # CMSIS-NN arm_nn_types.h

_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _shape(sg, index: int) -> list:
    if index < 0:
        return []
    t = sg.Tensors(index)
    return [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []


def _op_extras(name: str, sg, op) -> tuple:
    """(scratch bytes live during this op, persistent bytes) CMSIS-NN adds for one operator."""
    ins = [op.Inputs(i) for i in range(op.InputsLength())]
    outs = [op.Outputs(i) for i in range(op.OutputsLength())]
    out = _shape(sg, outs[0]) if outs else []
    if name == "CONV_2D" and len(ins) > 1:
        f = _shape(sg, ins[1])  # [cout, kh, kw, cin]
        if len(f) == 4:
            col = f[1] * f[2] * f[3]
            # DSP im2col: 2 x align4(col) int16; MVE: 4 x align16(col) int8; 1xN (MVE): <= 2 col
            return max(4 * _align(col, 4), 4 * _align(col, 16)), 0
    if name == "DEPTHWISE_CONV_2D" and len(ins) > 1:
        f, x = _shape(sg, ins[1]), _shape(sg, ins[0])  # [1, kh, kw, cout], [n, h, w, cin]
        if len(f) == 4 and len(x) == 4:
            k, cin, cout = f[1] * f[2], x[3], f[3]
            size = 0
            if cin == cout:  # the "opt" kernel (DSP: int16 im2col; MVE: 4 channel blocks)
                size = max(2 * cin * k, 4 * CH_IN_BLOCK_MVE * k)
            if cin == 1:  # MVE runs one-input-channel depthwise as a conv
                size = max(size, 4 * _align(k, 16) + cout * k)
            return size, 0
    if name == "FULLY_CONNECTED" and len(ins) > 1:
        f = _shape(sg, ins[1])  # [units, accum]
        if len(f) == 2:
            units, accum = f
            if len(out) > 2 and accum % 4 == 0:
                # run as a 1x1 conv: per-channel params faked for per-tensor filters + buffer
                return 8 * units + 4 * accum, 0
            # MVE kernel sums: scratch, or persistent with KERNELS_OPTIMIZED_FOR_SPEED
            return 4 * units, 4 * units
    if name in ("AVERAGE_POOL_2D",) and len(out) == 4:
        return 4 * out[3], 0  # DSP: one int32 sum per channel
    if name == "TRANSPOSE_CONV" and len(ins) > 2:
        f = _shape(sg, ins[1])  # [cout, kh, kw, cin]
        if len(f) == 4:
            # as CONV_2D, plus an int32 accumulator row per output channel; per-channel params
            return 4 * _align(f[1] * f[2] * f[3], 16) + 4 * f[0], 8 * f[0]
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and out:
        return 0, 8 * 8 * out[-1]  # eight kernel-sum vectors, int64 for int16 activations
    if name == "BATCH_MATMUL" and out:
        return 4 * out[-1], 0
    return 0, 0


def arena_margin(model: bytes) -> int:
    """Bytes to add to the reference-kernel minimum: per-op data, the largest scratch buffer of
    any one op (scratch buffers live only while their op runs), all persistent extras."""
    try:
        m = tflite.Model.GetRootAsModel(model, 0)
        codes = []
        for i in range(m.OperatorCodesLength()):
            c = m.OperatorCodes(i)
            code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            codes.append(_NAMES.get(code, "CUSTOM"))
        ops = scratch = persistent = 0
        for s in range(m.SubgraphsLength()):
            sg = m.Subgraphs(s)
            for o in range(sg.OperatorsLength()):
                op = sg.Operators(o)
                ops += 1
                sc, pe = _op_extras(codes[op.OpcodeIndex()], sg, op)
                scratch = max(scratch, _align(sc, 16))
                persistent += _align(pe, 16)
    except Exception:  # not parseable: TFLM has rejected it already
        return 0
    return _align(PER_OP_BYTES * ops + scratch + persistent, 16)
