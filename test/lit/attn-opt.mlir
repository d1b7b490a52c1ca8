// The attn-opt driver itself: pass listing, stdin, -o, pipelines mixing flashlift and MLIR
// passes, IR printing, and clear diagnostics (file:line:col, non-zero exit) on bad input.
//
// RUN: attn-opt --list-passes | FileCheck %s --check-prefix=LIST
// LIST: --raise-softmax
// LIST: --raise-attention
// LIST: --annotate-lowering
//
// RUN: attn-opt --print-pipeline=cpu | FileCheck %s --check-prefix=PIPELINE-CPU
// PIPELINE-CPU: builtin.module(unify-dims,fold-reshapes,fold-broadcasts,fold-scalars,raise-attention,unbatch-matmuls,fuse-linears{reads=attention},canonicalize,cse,canonicalize-layouts,dispatch-attention{target=cpu kernels=on},dispatch-norms{target=cpu kernels=on},pretranspose-keys,causal-split,annotate-lowering{target=cpu},drop-site-ids,externalize-parameters)
// RUN: attn-opt --print-pipeline=cuda:sm_90 | FileCheck %s --check-prefix=PIPELINE-SM90
// PIPELINE-SM90: unbatch-matmuls,fuse-linears{reads=attention},canonicalize,cse,
// PIPELINE-SM90-SAME: canonicalize-layouts,dispatch-attention{target=cuda:sm_90 kernels=on},dispatch-norms{target=cuda:sm_90},dispatch-gemms{target=cuda:sm_90},dispatch-rotary{target=cuda:sm_90},mask-dynamic-keys,annotate-lowering{target=cuda:sm_90},drop-site-ids,externalize-parameters)
//
// RUN: attn-opt --pass-pipeline='builtin.module(raise-softmax,canonicalize,cse)' - < %S/Inputs/softmax.mlir | FileCheck %s --check-prefix=PIPE
// PIPE: linalg.softmax dimension(2)
// PIPE-NOT: linalg.generic
//
// RUN: attn-opt --raise-softmax %S/Inputs/softmax.mlir -o %t.mlir && FileCheck %s --check-prefix=PIPE --input-file=%t.mlir
//
// RUN: attn-opt --raise-softmax --mlir-print-ir-after-all %S/Inputs/softmax.mlir 2>&1 >/dev/null | FileCheck %s --check-prefix=AFTER
// AFTER: IR Dump After raise-softmax
// AFTER: linalg.softmax
//
// RUN: not attn-opt --raise-attention %S/Inputs/malformed.mlir 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: malformed.mlir:2:24: error: expected
// BAD-NOT: Traceback
//
// RUN: not attn-opt --raise-attention %S/Inputs/no-such-file.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: attn-opt: error: cannot read '{{.*}}no-such-file.mlir'
//
// RUN: not attn-opt --pass-pipeline='builtin.module(no-such-pass)' %S/Inputs/softmax.mlir 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: attn-opt: error: unknown pass or bad pipeline element 'no-such-pass'
// UNKNOWN-SAME: flashlift passes: annotate-lowering, canonicalize-layouts, causal-split, dispatch-attention, dispatch-gemms, dispatch-norms, dispatch-rotary, drop-site-ids, externalize-parameters, fold-broadcasts, fold-reshapes, fold-scalars, fuse-linears, mask-dynamic-keys, pretranspose-keys, raise-attention, raise-softmax, unbatch-matmuls, unify-dims
// UNKNOWN-NOT: Traceback
//
// RUN: not attn-opt --pass-pipeline='builtin.module(dispatch-gemms{tile=64})' %S/Inputs/softmax.mlir 2>&1 | FileCheck %s --check-prefix=OPTION
// OPTION: attn-opt: error: pass option 'tile' is not known to this pass
// OPTION-NOT: Traceback

// An empty pipeline round-trips the input.
// RUN: attn-opt %s | FileCheck %s --check-prefix=ROUNDTRIP
// ROUNDTRIP: func.func @identity
func.func @identity(%arg0: tensor<4xf32>) -> tensor<4xf32> {
  return %arg0 : tensor<4xf32>
}
