"""yonoc's shortcut in front of the tflite_micro Python interpreter (yonoc/interpreter.py)."""

from __future__ import annotations

import flatbuffers
import pytest

from conftest import example_models

rt = pytest.importorskip("tflite_micro").runtime
fb = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")


def _model_with_var_handles(shared_names: list) -> bytes:
    """A graph of VAR_HANDLE ops (with the given shared names) and one ADD: enough for the count,
    not meant to run."""
    m = fb.ModelT()
    m.version = 3
    var, add = fb.OperatorCodeT(), fb.OperatorCodeT()
    var.builtinCode = fb.BuiltinOperator.VAR_HANDLE
    var.deprecatedBuiltinCode = 127  # PLACEHOLDER_FOR_GREATER_OP_CODES (an int8 field)
    add.builtinCode = add.deprecatedBuiltinCode = fb.BuiltinOperator.ADD
    m.operatorCodes = [add, var]
    sg = fb.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = [], [], [], []
    for name in shared_names:
        op = fb.OperatorT()
        op.opcodeIndex = 1
        op.builtinOptionsType = fb.BuiltinOptions.VarHandleOptions
        op.builtinOptions = fb.VarHandleOptionsT()
        op.builtinOptions.sharedName = name
        op.inputs, op.outputs = [], []
        sg.operators.append(op)
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [], []
    sg.operators.append(op)
    m.subgraphs = [sg]
    m.buffers = [fb.BufferT()]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize(
    "names", [[], ["a"], ["a", "a"], ["a", "b", "a", "c"]], ids=["none", "one", "same", "three"]
)
def test_resource_variable_count_is_tflm_s(names):
    from yonoc.interpreter import _count_resource_variables

    data = _model_with_var_handles([n.encode() for n in names])
    # TFLM's way: the whole model through the object API
    from tflite_micro.python.tflite_micro.runtime import convert_bytearray_to_object

    obj = convert_bytearray_to_object(data)
    reference = len(
        {
            op.builtinOptions.sharedName
            for sg in obj.subgraphs
            for op in sg.operators
            if obj.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.VAR_HANDLE
        }
    )
    assert _count_resource_variables(data) == reference == len(set(names))


def test_interpreters_still_run_with_the_shortcut():
    from yonoc import interpreter
    from yonoc.frontend import read_model

    m = read_model(example_models()[0])
    xs = interpreter.generated_inputs(m, 2)
    interpreter._runtime()
    assert rt.count_resource_variables is interpreter._count_resource_variables
    outs = interpreter.run(m.data, xs)
    assert len(outs) == 2 and outs[0][0].size > 0
