// RUN: attn-opt --split-input-file --fold-scalars %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(fold-scalars,canonicalize)' %s | FileCheck %s --check-prefix=CANON
//
// fold-scalars: a rank-0 linalg.generic on constants is a constant, computed in the body's
// own float types; canonicalize then folds what reads it.

// DeBERTa's scale, 1 / sqrt(64): the sqrt of a constant becomes the constant 8.0, and after
// canonicalize the scale is the constant 0.125.
// CHECK-LABEL: func.func @deberta_scale(
// CHECK-NOT:     linalg.generic
// CHECK:         %[[S:.+]] = arith.constant dense<8.000000e+00> : tensor<f32>
// CHECK:         tensor.extract %[[S]][]
// CANON-LABEL: func.func @deberta_scale(
// CANON-NEXT:    %[[C:.+]] = arith.constant 1.250000e-01 : f32
// CANON-NEXT:    return %[[C]]
#s = affine_map<() -> ()>
func.func @deberta_scale() -> f32 {
  %one = arith.constant 1.0 : f32
  %d = arith.constant dense<64.0> : tensor<f32>
  %e = tensor.empty() : tensor<f32>
  %r = linalg.generic {indexing_maps = [#s, #s], iterator_types = []} ins(%d : tensor<f32>) outs(%e : tensor<f32>) {
  ^bb0(%in: f32, %out: f32):
    %q = math.sqrt %in : f32
    linalg.yield %q : f32
  } -> tensor<f32>
  %x = tensor.extract %r[] : tensor<f32>
  %scale = arith.divf %one, %x : f32
  return %scale : f32
}

// -----

// Two constants, a product and a cast down to f16: the value rounds as the code would
// (3.3 * 3.0 = 9.9 in f32, 9.8984375 in f16).
// CHECK-LABEL: func.func @product_in_f16(
// CHECK-NOT:     linalg.generic
// CHECK:         arith.constant dense<9.89843{{[0-9]*}}e+00> : tensor<f16>
#s = affine_map<() -> ()>
func.func @product_in_f16() -> tensor<f16> {
  %a = arith.constant dense<3.3> : tensor<f32>
  %b = arith.constant dense<3.0> : tensor<f32>
  %e = tensor.empty() : tensor<f16>
  %r = linalg.generic {indexing_maps = [#s, #s, #s], iterator_types = []} ins(%a, %b : tensor<f32>, tensor<f32>) outs(%e : tensor<f16>) {
  ^bb0(%x: f32, %y: f32, %out: f16):
    %p = arith.mulf %x, %y : f32
    %h = arith.truncf %p : f32 to f16
    linalg.yield %h : f16
  } -> tensor<f16>
  return %r : tensor<f16>
}

// -----

// bf16 (DeBERTa-v2's scale in a bf16 model): computed in f32 and rounded to bf16 as torch
// does, sqrt(2) = 1.41421354 -> 1.4140625.
// CHECK-LABEL: func.func @sqrt_in_bf16(
// CHECK-NOT:     linalg.generic
// CHECK:         arith.constant dense<1.41406{{[0-9]*}}e+00> : tensor<bf16>
#s = affine_map<() -> ()>
func.func @sqrt_in_bf16() -> tensor<bf16> {
  %c = arith.constant dense<2.0> : tensor<f32>
  %e = tensor.empty() : tensor<bf16>
  %r = linalg.generic {indexing_maps = [#s, #s], iterator_types = []} ins(%c : tensor<f32>) outs(%e : tensor<bf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    %q = math.sqrt %t : bf16
    linalg.yield %q : bf16
  } -> tensor<bf16>
  return %r : tensor<bf16>
}

// -----

// Near misses, left as written: an input that is not a constant, an op the pass does not
// evaluate (math.tanh), an integer value, and a generic with loops.
// CHECK-LABEL: func.func @not_folded(
// CHECK-COUNT-4: linalg.generic
#s = affine_map<() -> ()>
#v = affine_map<(d0) -> (d0)>
func.func @not_folded(%arg: tensor<f32>) -> (tensor<f32>, tensor<f32>, tensor<i64>, tensor<4xf32>) {
  %c = arith.constant dense<2.0> : tensor<f32>
  %ci = arith.constant dense<2> : tensor<i64>
  %c4 = arith.constant dense<2.0> : tensor<4xf32>
  %e = tensor.empty() : tensor<f32>
  %ei = tensor.empty() : tensor<i64>
  %e4 = tensor.empty() : tensor<4xf32>
  %r0 = linalg.generic {indexing_maps = [#s, #s], iterator_types = []} ins(%arg : tensor<f32>) outs(%e : tensor<f32>) {
  ^bb0(%in: f32, %out: f32):
    %q = math.sqrt %in : f32
    linalg.yield %q : f32
  } -> tensor<f32>
  %r1 = linalg.generic {indexing_maps = [#s, #s], iterator_types = []} ins(%c : tensor<f32>) outs(%e : tensor<f32>) {
  ^bb0(%in: f32, %out: f32):
    %q = math.tanh %in : f32
    linalg.yield %q : f32
  } -> tensor<f32>
  %r2 = linalg.generic {indexing_maps = [#s, #s], iterator_types = []} ins(%ci : tensor<i64>) outs(%ei : tensor<i64>) {
  ^bb0(%in: i64, %out: i64):
    %q = arith.addi %in, %in : i64
    linalg.yield %q : i64
  } -> tensor<i64>
  %r3 = linalg.generic {indexing_maps = [#v, #v], iterator_types = ["parallel"]} ins(%c4 : tensor<4xf32>) outs(%e4 : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %q = math.sqrt %in : f32
    linalg.yield %q : f32
  } -> tensor<4xf32>
  return %r0, %r1, %r2, %r3 : tensor<f32>, tensor<f32>, tensor<i64>, tensor<4xf32>
}
