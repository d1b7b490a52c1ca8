"""flashlift's raising passes. Each pass is one module with NAME, SUMMARY and run().

`run(module_op, results)` rewrites the IR in place; passes that make decisions a user should
see (what was raised, what was left alone and why) append Outcome records to `results`.
"""

from . import raise_attention, raise_softmax


def _raise_attention_with_softmax(module, results):
    # raise-attention works on what torch-mlir emits: it brings in the softmax raising.
    raise_softmax.run(module, results)
    results.extend(raise_attention.run(module, results))


REGISTRY = {
    raise_softmax.NAME: (raise_softmax.SUMMARY, raise_softmax.run),
    raise_attention.NAME: (raise_attention.SUMMARY, _raise_attention_with_softmax),
}
