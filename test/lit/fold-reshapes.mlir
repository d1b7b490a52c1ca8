// RUN: attn-opt --split-input-file --fold-reshapes %s | FileCheck %s
//
// fold-reshapes: tensor.reshape by a computed shape becomes collapse_shape / expand_shape
// where the sizes provably regroup the source's dims.

// (B, 4, S, 8) -> (B*4, S, 8), sizes written the way torch-mlir infers a -1 size:
// select(n < 0, ...) where n is a size is never taken.
// CHECK-LABEL: func.func @collapse_inferred(
// CHECK-SAME:    %[[X:[a-zA-Z0-9_]+]]:
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1], [2], [3]] : tensor<?x4x?x8xf32> into tensor<?x?x8xf32>
// CHECK-NOT:     tensor.reshape
// CHECK:         return %[[C]]
func.func @collapse_inferred(%x: tensor<?x4x?x8xf32>) -> tensor<?x?x8xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c0_i64 = arith.constant 0 : i64
  %c1_i64 = arith.constant 1 : i64
  %c4_i64 = arith.constant 4 : i64
  %c8_i64 = arith.constant 8 : i64
  %d0 = tensor.dim %x, %c0 : tensor<?x4x?x8xf32>
  %d2 = tensor.dim %x, %c2 : tensor<?x4x?x8xf32>
  %b = arith.index_cast %d0 : index to i64
  %s = arith.index_cast %d2 : index to i64
  %bh = arith.muli %b, %c4_i64 : i64
  %neg = arith.cmpi slt, %bh, %c0_i64 : i64
  %total = arith.muli %bh, %s : i64
  %total8 = arith.muli %total, %c8_i64 : i64
  %known = arith.muli %s, %c8_i64 : i64
  %inferred = arith.divsi %total8, %known : i64
  %first = arith.select %neg, %inferred, %bh : i64
  %shape = tensor.from_elements %first, %s, %c8_i64 : tensor<3xi64>
  %r = tensor.reshape %x(%shape) : (tensor<?x4x?x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  return %r : tensor<?x?x8xf32>
}

// -----

// (B*4, S, S) -> (B, 4, S, S): the split sizes become the expand's output_shape.
// CHECK-LABEL: func.func @expand(
// CHECK:         %[[Y:.+]] = linalg.copy
// CHECK:         %[[B:.+]] = arith.index_cast %{{.+}} : i64 to index
// CHECK:         %[[S:.+]] = arith.index_cast %{{.+}} : i64 to index
// CHECK:         %[[S2:.+]] = arith.index_cast %{{.+}} : i64 to index
// CHECK:         %[[E:.+]] = tensor.expand_shape %[[Y]] {{\[}}[0, 1], [2], [3]] output_shape [%[[B]], 4, %[[S]], %[[S2]]]
// CHECK:         return %[[E]]
func.func @expand(%x: tensor<?x?x?xf32>, %q: tensor<?x4x?x8xf32>) -> tensor<?x4x?x?xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c0_i64 = arith.constant 0 : i64
  %c4_i64 = arith.constant 4 : i64
  %b0 = tensor.dim %q, %c0 : tensor<?x4x?x8xf32>
  %s0 = tensor.dim %q, %c2 : tensor<?x4x?x8xf32>
  %bh = affine.apply affine_map<()[s0] -> (s0 * 4)>()[%b0]
  %e = tensor.empty(%bh, %s0, %s0) : tensor<?x?x?xf32>
  %y = linalg.copy ins(%x : tensor<?x?x?xf32>) outs(%e : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %b = arith.index_cast %b0 : index to i64
  %s = arith.index_cast %s0 : index to i64
  %shape = tensor.from_elements %b, %c4_i64, %s, %s : tensor<4xi64>
  %r = tensor.reshape %y(%shape) : (tensor<?x?x?xf32>, tensor<4xi64>) -> tensor<?x4x?x?xf32>
  return %r : tensor<?x4x?x?xf32>
}

// -----

// Both at once: (B, S, 64) -> (B*S, 4, 16) is a collapse followed by an expand.
// CHECK-LABEL: func.func @collapse_then_expand(
// CHECK-SAME:    %[[X:[a-zA-Z0-9_]+]]:
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1], [2]] : tensor<?x?x64xf32> into tensor<?x64xf32>
// CHECK:         %[[E:.+]] = tensor.expand_shape %[[C]] {{\[}}[0], [1, 2]] output_shape [%{{.+}}, 4, 16] : tensor<?x64xf32> into tensor<?x4x16xf32>
// CHECK:         return %[[E]]
func.func @collapse_then_expand(%x: tensor<?x?x64xf32>) -> tensor<?x4x16xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4_i64 = arith.constant 4 : i64
  %c16_i64 = arith.constant 16 : i64
  %d0 = tensor.dim %x, %c0 : tensor<?x?x64xf32>
  %d1 = tensor.dim %x, %c1 : tensor<?x?x64xf32>
  %b = arith.index_cast %d0 : index to i64
  %s = arith.index_cast %d1 : index to i64
  %bs = arith.muli %s, %b : i64
  %shape = tensor.from_elements %bs, %c4_i64, %c16_i64 : tensor<3xi64>
  %r = tensor.reshape %x(%shape) : (tensor<?x?x64xf32>, tensor<3xi64>) -> tensor<?x4x16xf32>
  return %r : tensor<?x4x16xf32>
}

// -----

// Negative: a size read from a runtime value says nothing about the dims it covers.
// CHECK-LABEL: func.func @runtime_size(
// CHECK:         tensor.reshape
// CHECK-NOT:     tensor.collapse_shape
func.func @runtime_size(%x: tensor<?x4x?x8xf32>, %n: i64) -> tensor<?x?x8xf32> {
  %c2 = arith.constant 2 : index
  %d2 = tensor.dim %x, %c2 : tensor<?x4x?x8xf32>
  %s = arith.index_cast %d2 : index to i64
  %c8_i64 = arith.constant 8 : i64
  %shape = tensor.from_elements %n, %s, %c8_i64 : tensor<3xi64>
  %r = tensor.reshape %x(%shape) : (tensor<?x4x?x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  return %r : tensor<?x?x8xf32>
}

// -----

// Negative: B*2 is not a product of consecutive dims of (B, 4, S, 8).
// CHECK-LABEL: func.func @not_a_regrouping(
// CHECK:         tensor.reshape
// CHECK-NOT:     tensor.collapse_shape
func.func @not_a_regrouping(%x: tensor<?x4x?x8xf32>) -> tensor<?x?x16xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c2_i64 = arith.constant 2 : i64
  %c16_i64 = arith.constant 16 : i64
  %d0 = tensor.dim %x, %c0 : tensor<?x4x?x8xf32>
  %d2 = tensor.dim %x, %c2 : tensor<?x4x?x8xf32>
  %b = arith.index_cast %d0 : index to i64
  %s = arith.index_cast %d2 : index to i64
  %b2 = arith.muli %b, %c2_i64 : i64
  %shape = tensor.from_elements %b2, %s, %c16_i64 : tensor<3xi64>
  %r = tensor.reshape %x(%shape) : (tensor<?x4x?x8xf32>, tensor<3xi64>) -> tensor<?x?x16xf32>
  return %r : tensor<?x?x16xf32>
}
