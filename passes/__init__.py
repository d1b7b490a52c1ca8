"""flashlift's raising passes, on linalg (any frontend's): each pass is one module with NAME,
SUMMARY and run(). Target-specific codegen steps (causal-split for the CPU, dispatch-gemms
for CUDA) live in compiler/; compiler/pipeline.py registers both. Passes import only the IR
helpers here, never compiler/.

`run(module_op, results)` rewrites the IR in place; passes that make decisions a user should
see (what was raised, what was left alone and why) append SiteRecords (passes/records.py) to
`results`.
"""

from . import (drop_site_ids, externalize_parameters, fold_broadcasts, fold_reshapes, fold_scalars, fuse_linears,
               raise_attention, raise_softmax, unbatch_matmuls, unify_dims)


def _raise_attention_with_softmax(module, results):
    # raise-attention works on what torch-mlir emits: it brings in the softmax raising.
    raise_softmax.run(module, results)
    raise_attention.run(module, results)


REGISTRY = {
    unify_dims.NAME: (unify_dims.SUMMARY, unify_dims.run),
    fold_reshapes.NAME: (fold_reshapes.SUMMARY, fold_reshapes.run),
    fold_broadcasts.NAME: (fold_broadcasts.SUMMARY, fold_broadcasts.run),
    fold_scalars.NAME: (fold_scalars.SUMMARY, fold_scalars.run),
    raise_softmax.NAME: (raise_softmax.SUMMARY, raise_softmax.run),
    raise_attention.NAME: (raise_attention.SUMMARY, _raise_attention_with_softmax),
    unbatch_matmuls.NAME: (unbatch_matmuls.SUMMARY, unbatch_matmuls.run),
    fuse_linears.NAME: (fuse_linears.SUMMARY, fuse_linears.run),
    externalize_parameters.NAME: (externalize_parameters.SUMMARY, externalize_parameters.run),
    drop_site_ids.NAME: (drop_site_ids.SUMMARY, drop_site_ids.run),
}
