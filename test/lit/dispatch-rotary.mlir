// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-rotary{target=cuda:sm_90})' %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-rotary{target=cuda:sm_90})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-rotary{target=cpu})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=CPU
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-rotary{target=cuda:sm_90 kernels=off})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=OFF
//
// dispatch-rotary: a rotary embedding as torch-mlir writes LLaMA's apply_rotary_pos_emb,
// x * cos + concat(-x[..., h:], x[..., :h]) * sin (passes/rotary.py), becomes one dispatch of
// flashlift's rotary kernel on (x, cos, sin), each table gathered into [batch or 1, positions,
// head dim]. One remark per rotate_half, at the concat; near misses stay as written.

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bshd = affine_map<(d0, d1, d2, d3) -> (0, 0, d1, d3)>

// LLaMA's Q after dispatch-attention sank the head transpose: x (B, S, H, D) as the projection
// leaves it, the tables [1, 1, S, D] read along loops 1 (positions) and 3.
// CHECK-DAG:   #[[READ:map[0-9]*]] = affine_map<(d0, d1, d2) -> (0, 0, d1, d2)>
// CHECK-DAG:   #[[ID3:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @llama_q(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<2x40x4x64xf16>, %[[COS:[a-z0-9]+]]: tensor<1x1x40x64xf16>, %[[SIN:[a-z0-9]+]]: tensor<1x1x40x64xf16>
// CHECK:         %[[C:.+]] = linalg.generic {indexing_maps = [#[[READ]], #[[ID3]]]{{.*}} ins(%[[COS]] : tensor<1x1x40x64xf16>) outs(%{{.+}} : tensor<1x40x64xf16>)
// CHECK:         %[[S:.+]] = linalg.generic {indexing_maps = [#[[READ]], #[[ID3]]]{{.*}} ins(%[[SIN]] : tensor<1x1x40x64xf16>) outs(%{{.+}} : tensor<1x40x64xf16>)
// CHECK-NOT:     tensor.concat
// CHECK:         %[[R:.+]] = call @[[HELPER:flashlift_rotary_sm90_[0-9a-f]+_call]](%[[X]], %[[C]], %[[S]]) : (tensor<2x40x4x64xf16>, tensor<1x40x64xf16>, tensor<1x40x64xf16>) -> tensor<2x40x4x64xf16>
// CHECK-NEXT:    return %[[R]]
// CHECK:       hal.executable.source private @[[EXE:flashlift_rotary_sm90_[0-9a-f]+]]
// CHECK:         hal.executable.export public @_rotary_kernel
// CHECK:       func.func private @[[HELPER]]
// CHECK:         flow.dispatch @[[EXE]]::@_rotary_kernel(
func.func @llama_q(%x: tensor<2x40x4x64xf16>, %cos: tensor<1x1x40x64xf16>, %sin: tensor<1x1x40x64xf16>) -> (tensor<2x40x4x64xf16>) {
  %e = tensor.empty() : tensor<2x40x4x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %eh = tensor.empty() : tensor<2x40x4x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x40x4x32xf16>) outs(%eh : tensor<2x40x4x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x32xf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 3]]:8: remark: rotary takes triton-rotary sm_90
  // CPU: dispatch-rotary.mlir:[[# @LINE + 2]]:8: remark: rotary takes iree-codegen: no flashlift rotary kernel for target cpu
  // OFF: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes iree-codegen: use_kernels=False
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x40x4x32xf16>, tensor<2x40x4x32xf16>) -> tensor<2x40x4x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.addf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  return %q : tensor<2x40x4x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#sd = affine_map<(d0, d1, d2, d3) -> (d2, d3)>

// x in (B, H, S, D), bf16, head dim 128, the tables [S, D]: positions along loop 2.
// CHECK-DAG:   #[[READ:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-LABEL: func.func @bhsd_bf16(
// CHECK:         linalg.generic {indexing_maps = [#[[READ]], {{.+}} outs(%{{.+}} : tensor<1x24x128xbf16>)
// CHECK:         call @flashlift_rotary_sm90_{{[0-9a-f]+}}_call({{.+}}) : (tensor<1x4x24x128xbf16>, tensor<1x24x128xbf16>, tensor<1x24x128xbf16>) -> tensor<1x4x24x128xbf16>
func.func @bhsd_bf16(%x: tensor<1x4x24x128xbf16>, %cos: tensor<24x128xbf16>, %sin: tensor<24x128xbf16>) -> (tensor<1x4x24x128xbf16>) {
  %e = tensor.empty() : tensor<1x4x24x128xbf16>
  %a = linalg.generic {indexing_maps = [#id, #sd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<1x4x24x128xbf16>, tensor<24x128xbf16>) outs(%e : tensor<1x4x24x128xbf16>) {
  ^bb0(%in: bf16, %c: bf16, %out: bf16):
    %0 = arith.mulf %in, %c : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x4x24x128xbf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [1, 4, 24, 64] [1, 1, 1, 1] : tensor<1x4x24x128xbf16> to tensor<1x4x24x64xbf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 64] [1, 4, 24, 64] [1, 1, 1, 1] : tensor<1x4x24x128xbf16> to tensor<1x4x24x64xbf16>
  %eh = tensor.empty() : tensor<1x4x24x64xbf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<1x4x24x64xbf16>) outs(%eh : tensor<1x4x24x64xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    %0 = arith.negf %in : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x4x24x64xbf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes triton-rotary sm_90
  %r = tensor.concat dim(3) %n, %lo : (tensor<1x4x24x64xbf16>, tensor<1x4x24x64xbf16>) -> tensor<1x4x24x128xbf16>
  %b = linalg.generic {indexing_maps = [#id, #sd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<1x4x24x128xbf16>, tensor<24x128xbf16>) outs(%e : tensor<1x4x24x128xbf16>) {
  ^bb0(%in: bf16, %c: bf16, %out: bf16):
    %0 = arith.mulf %in, %c : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x4x24x128xbf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<1x4x24x128xbf16>, tensor<1x4x24x128xbf16>) outs(%e : tensor<1x4x24x128xbf16>) {
  ^bb0(%in: bf16, %in2: bf16, %out: bf16):
    %0 = arith.addf %in, %in2 : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x4x24x128xbf16>
  return %q : tensor<1x4x24x128xbf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#h1 = affine_map<(d0, d1, d2, d3) -> (0, d1, d2, d3)>
// One KV head, (B, H, S, D) with H = 1: the tables are read along loop 1 as well (a loop of
// one iteration, as torch-mlir indexes a size-1 dim), which does not make them vary per head;
// the positions run along loop 2.
// CHECK-DAG:   #[[READ:map[0-9]*]] = affine_map<(d0, d1, d2) -> (0, 0, d1, d2)>
// CHECK-LABEL: func.func @single_kv_head(
// CHECK:         linalg.generic {indexing_maps = [#[[READ]], {{.+}} outs(%{{.+}} : tensor<1x24x64xf16>)
// CHECK:         call @flashlift_rotary_sm90_{{[0-9a-f]+}}_call({{.+}}) : (tensor<2x1x24x64xf16>, tensor<1x24x64xf16>, tensor<1x24x64xf16>) -> tensor<2x1x24x64xf16>
func.func @single_kv_head(%x: tensor<2x1x24x64xf16>, %cos: tensor<1x1x24x64xf16>, %sin: tensor<1x1x24x64xf16>) -> tensor<2x1x24x64xf16> {
  %e = tensor.empty() : tensor<2x1x24x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #h1, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x1x24x64xf16>, tensor<1x1x24x64xf16>) outs(%e : tensor<2x1x24x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x1x24x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 1, 24, 32] [1, 1, 1, 1] : tensor<2x1x24x64xf16> to tensor<2x1x24x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 1, 24, 32] [1, 1, 1, 1] : tensor<2x1x24x64xf16> to tensor<2x1x24x32xf16>
  %eh = tensor.empty() : tensor<2x1x24x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x1x24x32xf16>) outs(%eh : tensor<2x1x24x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x1x24x32xf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes triton-rotary sm_90
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x1x24x32xf16>, tensor<2x1x24x32xf16>) -> tensor<2x1x24x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #h1, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x1x24x64xf16>, tensor<1x1x24x64xf16>) outs(%e : tensor<2x1x24x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x1x24x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x1x24x64xf16>, tensor<2x1x24x64xf16>) outs(%e : tensor<2x1x24x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.addf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x1x24x64xf16>
  return %q : tensor<2x1x24x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bpos = affine_map<(d0, d1, d2, d3) -> (d0, 0, d1, d3)>

// Position ids per batch element (tables [B, 1, S, D] read along loop 0 too), f32, the
// products' and the sum's operands the other way round.
// CHECK-DAG:   #[[READ:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, 0, d1, d2)>
// CHECK-LABEL: func.func @positions_per_sequence(
// CHECK:         linalg.generic {indexing_maps = [#[[READ]], {{.+}} outs(%{{.+}} : tensor<3x16x32xf32>)
// CHECK:         call @flashlift_rotary_sm90_{{[0-9a-f]+}}_call({{.+}}) : (tensor<3x16x2x32xf32>, tensor<3x16x32xf32>, tensor<3x16x32xf32>) -> tensor<3x16x2x32xf32>
func.func @positions_per_sequence(%x: tensor<3x16x2x32xf32>, %cos: tensor<3x1x16x32xf32>, %sin: tensor<3x1x16x32xf32>) -> (tensor<3x16x2x32xf32>) {
  %e = tensor.empty() : tensor<3x16x2x32xf32>
  %a = linalg.generic {indexing_maps = [#bpos, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%cos, %x : tensor<3x1x16x32xf32>, tensor<3x16x2x32xf32>) outs(%e : tensor<3x16x2x32xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<3x16x2x32xf32>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [3, 16, 2, 16] [1, 1, 1, 1] : tensor<3x16x2x32xf32> to tensor<3x16x2x16xf32>
  %hi = tensor.extract_slice %x[0, 0, 0, 16] [3, 16, 2, 16] [1, 1, 1, 1] : tensor<3x16x2x32xf32> to tensor<3x16x2x16xf32>
  %eh = tensor.empty() : tensor<3x16x2x16xf32>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<3x16x2x16xf32>) outs(%eh : tensor<3x16x2x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.negf %in : f32
    linalg.yield %0 : f32
  } -> tensor<3x16x2x16xf32>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes triton-rotary sm_90
  %r = tensor.concat dim(3) %n, %lo : (tensor<3x16x2x16xf32>, tensor<3x16x2x16xf32>) -> tensor<3x16x2x32xf32>
  %b = linalg.generic {indexing_maps = [#id, #bpos, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<3x16x2x32xf32>, tensor<3x1x16x32xf32>) outs(%e : tensor<3x16x2x32xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<3x16x2x32xf32>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%b, %a : tensor<3x16x2x32xf32>, tensor<3x16x2x32xf32>) outs(%e : tensor<3x16x2x32xf32>) {
  ^bb0(%in: f32, %in2: f32, %out: f32):
    %0 = arith.addf %in, %in2 : f32
    linalg.yield %0 : f32
  } -> tensor<3x16x2x32xf32>
  return %q : tensor<3x16x2x32xf32>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bshd = affine_map<(d0, d1, d2, d3) -> (0, 0, d1, d3)>

// Near miss: x * cos is also returned. Stays as written.
// CHECK-LABEL: func.func @product_read_outside(
// CHECK:         tensor.concat
// CHECK-NOT:     call @flashlift_rotary
func.func @product_read_outside(%x: tensor<2x40x4x64xf16>, %cos: tensor<1x1x40x64xf16>, %sin: tensor<1x1x40x64xf16>) -> (tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) {
  %e = tensor.empty() : tensor<2x40x4x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %eh = tensor.empty() : tensor<2x40x4x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x40x4x32xf16>) outs(%eh : tensor<2x40x4x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x32xf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes iree-codegen: x * cos is read outside the embedding
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x40x4x32xf16>, tensor<2x40x4x32xf16>) -> tensor<2x40x4x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.addf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  return %q, %a : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#sh = affine_map<(d0, d1, d2, d3) -> (0, d1, d2, d3)>

// Near miss: tables that vary along the sequence and the heads (no rotary embedding of
// positions; the kernel reads one table row per position).
// CHECK-LABEL: func.func @tables_per_head(
// CHECK:         tensor.concat
// CHECK-NOT:     call @flashlift_rotary
func.func @tables_per_head(%x: tensor<2x40x4x64xf16>, %cos: tensor<1x40x4x64xf16>, %sin: tensor<1x40x4x64xf16>) -> (tensor<2x40x4x64xf16>) {
  %e = tensor.empty() : tensor<2x40x4x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #sh, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x40x4x64xf16>, tensor<1x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %eh = tensor.empty() : tensor<2x40x4x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x40x4x32xf16>) outs(%eh : tensor<2x40x4x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x32xf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes iree-codegen: cos / sin vary along both loops 1 and 2 (one must be the heads)
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x40x4x32xf16>, tensor<2x40x4x32xf16>) -> tensor<2x40x4x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #sh, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x40x4x64xf16>, tensor<1x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.addf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  return %q : tensor<2x40x4x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bshd = affine_map<(d0, d1, d2, d3) -> (0, 0, d1, d3)>

// Near miss: x * cos - rotate_half(x) * sin (the rotation by -angle). Stays as written.
// CHECK-LABEL: func.func @difference(
// CHECK:         tensor.concat
// CHECK-NOT:     call @flashlift_rotary
func.func @difference(%x: tensor<2x40x4x64xf16>, %cos: tensor<1x1x40x64xf16>, %sin: tensor<1x1x40x64xf16>) -> (tensor<2x40x4x64xf16>) {
  %e = tensor.empty() : tensor<2x40x4x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %eh = tensor.empty() : tensor<2x40x4x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x40x4x32xf16>) outs(%eh : tensor<2x40x4x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x32xf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes iree-codegen: rotate_half(x) * sin is not added elementwise to x * cos
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x40x4x32xf16>, tensor<2x40x4x32xf16>) -> tensor<2x40x4x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.subf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  return %q : tensor<2x40x4x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bshd = affine_map<(d0, d1, d2, d3) -> (0, 0, d1, d3)>

// Near miss: sin in f32, the product computed in f32 and rounded back to f16 inside its body
// (the model's type is neither the products' nor the tables'). Stays as written.
// CHECK-LABEL: func.func @sin_in_f32(
// CHECK:         tensor.concat
// CHECK-NOT:     call @flashlift_rotary
func.func @sin_in_f32(%x: tensor<2x40x4x64xf16>, %cos: tensor<1x1x40x64xf16>, %sin: tensor<1x1x40x64xf32>) -> (tensor<2x40x4x64xf16>) {
  %e = tensor.empty() : tensor<2x40x4x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %eh = tensor.empty() : tensor<2x40x4x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x40x4x32xf16>) outs(%eh : tensor<2x40x4x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x32xf16>
  // REMARK: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes iree-codegen: rotate_half(x) is not multiplied elementwise by a table
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x40x4x32xf16>, tensor<2x40x4x32xf16>) -> tensor<2x40x4x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf32>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f32, %out: f16):
    %w = arith.extf %in : f16 to f32
    %0 = arith.mulf %w, %c : f32
    %t = arith.truncf %0 : f32 to f16
    linalg.yield %t : f16
  } -> tensor<2x40x4x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.addf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  return %q : tensor<2x40x4x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bshd = affine_map<(d0, d1, d2, d3) -> (0, 0, d1, d3)>

// Not a rotate_half (concat(x[..., :h], -x[..., h:]): the halves the other way round): no
// candidate, no remark (the next remark is f32_tables', REMARK-NEXT); the ops stay as written.
// CHECK-LABEL: func.func @halves_swapped(
// CHECK:         tensor.concat
// CHECK-NOT:     call @flashlift_rotary
func.func @halves_swapped(%x: tensor<2x40x4x64xf16>, %cos: tensor<1x1x40x64xf16>, %sin: tensor<1x1x40x64xf16>) -> (tensor<2x40x4x64xf16>) {
  %e = tensor.empty() : tensor<2x40x4x64xf16>
  %a = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1] : tensor<2x40x4x64xf16> to tensor<2x40x4x32xf16>
  %eh = tensor.empty() : tensor<2x40x4x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x40x4x32xf16>) outs(%eh : tensor<2x40x4x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x32xf16>
  %r = tensor.concat dim(3) %lo, %n : (tensor<2x40x4x32xf16>, tensor<2x40x4x32xf16>) -> tensor<2x40x4x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #bshd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x40x4x64xf16>, tensor<1x1x40x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %0 = arith.mulf %in, %c : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x40x4x64xf16>, tensor<2x40x4x64xf16>) outs(%e : tensor<2x40x4x64xf16>) {
  ^bb0(%in: f16, %in2: f16, %out: f16):
    %0 = arith.addf %in, %in2 : f16
    linalg.yield %0 : f16
  } -> tensor<2x40x4x64xf16>
  return %q : tensor<2x40x4x64xf16>
}

// -----

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#sd = affine_map<(d0, d1, d2, d3) -> (0, 0, d2, d3)>
// OLMo's form: f32 tables with an f16 x (torch promotes: x and its rotated half extended in
// the products' bodies, the products and the sum in f32), the sum rounded back to f16 by the
// model's `.to(q.dtype)`: the kernel reads x in f16 and the tables in f32 and returns the f16
// result; the rounding generic is taken with the rest.
// CHECK-LABEL: func.func @f32_tables(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<2x4x24x64xf16>, %[[COS:[a-z0-9]+]]: tensor<1x1x24x64xf32>, %[[SIN:[a-z0-9]+]]: tensor<1x1x24x64xf32>
// CHECK:         %[[R:.+]] = call @flashlift_rotary_sm90_{{[0-9a-f]+}}_call(%[[X]], %{{.+}}, %{{.+}}) : (tensor<2x4x24x64xf16>, tensor<1x24x64xf32>, tensor<1x24x64xf32>) -> tensor<2x4x24x64xf16>
// CHECK-NEXT:    return %[[R]]
func.func @f32_tables(%x: tensor<2x4x24x64xf16>, %cos: tensor<1x1x24x64xf32>, %sin: tensor<1x1x24x64xf32>) -> tensor<2x4x24x64xf16> {
  %e = tensor.empty() : tensor<2x4x24x64xf32>
  %a = linalg.generic {indexing_maps = [#id, #sd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %cos : tensor<2x4x24x64xf16>, tensor<1x1x24x64xf32>) outs(%e : tensor<2x4x24x64xf32>) {
  ^bb0(%in: f16, %c: f32, %out: f32):
    %w = arith.extf %in : f16 to f32
    %0 = arith.mulf %w, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x24x64xf32>
  %lo = tensor.extract_slice %x[0, 0, 0, 0] [2, 4, 24, 32] [1, 1, 1, 1] : tensor<2x4x24x64xf16> to tensor<2x4x24x32xf16>
  %hi = tensor.extract_slice %x[0, 0, 0, 32] [2, 4, 24, 32] [1, 1, 1, 1] : tensor<2x4x24x64xf16> to tensor<2x4x24x32xf16>
  %eh = tensor.empty() : tensor<2x4x24x32xf16>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x4x24x32xf16>) outs(%eh : tensor<2x4x24x32xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    linalg.yield %0 : f16
  } -> tensor<2x4x24x32xf16>
  // REMARK-NEXT: dispatch-rotary.mlir:[[# @LINE + 1]]:8: remark: rotary takes triton-rotary sm_90
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x4x24x32xf16>, tensor<2x4x24x32xf16>) -> tensor<2x4x24x64xf16>
  %b = linalg.generic {indexing_maps = [#id, #sd, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x4x24x64xf16>, tensor<1x1x24x64xf32>) outs(%e : tensor<2x4x24x64xf32>) {
  ^bb0(%in: f16, %c: f32, %out: f32):
    %w = arith.extf %in : f16 to f32
    %0 = arith.mulf %w, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x24x64xf32>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x4x24x64xf32>, tensor<2x4x24x64xf32>) outs(%e : tensor<2x4x24x64xf32>) {
  ^bb0(%in: f32, %in2: f32, %out: f32):
    %0 = arith.addf %in, %in2 : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x24x64xf32>
  %e16 = tensor.empty() : tensor<2x4x24x64xf16>
  %t = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%q : tensor<2x4x24x64xf32>) outs(%e16 : tensor<2x4x24x64xf16>) {
  ^bb0(%in: f32, %out: f16):
    %0 = arith.truncf %in : f32 to f16
    linalg.yield %0 : f16
  } -> tensor<2x4x24x64xf16>
  return %t : tensor<2x4x24x64xf16>
}
