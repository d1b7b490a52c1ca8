// RUN: attn-opt --split-input-file --fold-broadcasts %s | FileCheck %s
//
// fold-broadcasts: torch-mlir's gather-style broadcast of a dynamic-shape matmul operand
// to its own shape is the operand itself.

// The broadcast torch-mlir emits for torch.matmul(q, k^T) with dynamic batch and sequence:
// the output has the source's sizes, so every index reads itself.
// CHECK-LABEL: func.func @broadcast_to_own_shape(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<?x4x?x8xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         return %[[X]]
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
func.func @broadcast_to_own_shape(%x: tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %b = tensor.dim %x, %c0 : tensor<?x4x?x8xf32>
  %s = tensor.dim %x, %c2 : tensor<?x4x?x8xf32>
  %e = tensor.empty(%b, %s) : tensor<?x4x?x8xf32>
  %r = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%e : tensor<?x4x?x8xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %i2 = linalg.index 2 : index
    %i3 = linalg.index 3 : index
    %b1 = arith.cmpi eq, %b, %c1 : index
    %j0 = arith.select %b1, %c0, %i0 : index
    %s1 = arith.cmpi eq, %s, %c1 : index
    %j2 = arith.select %s1, %c0, %i2 : index
    %v = tensor.extract %x[%j0, %i1, %j2, %i3] : tensor<?x4x?x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x4x?x8xf32>
  return %r : tensor<?x4x?x8xf32>
}

// -----

// Sizes shared through the importer's symbols: the output is sized from another input
// whose batch dim is the same symbol.
// CHECK-LABEL: func.func @sized_from_other_input(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<?x8xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         return %[[X]]
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @sized_from_other_input(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>) -> tensor<?x8xf32>
    attributes {flashlift.input_dims = [["s0", 8], ["s0", 8]]} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = tensor.dim %y, %c0 : tensor<?x8xf32>
  %bx = tensor.dim %x, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%b) : tensor<?x8xf32>
  %r = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<?x8xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %b1 = arith.cmpi eq, %bx, %c1 : index
    %j0 = arith.select %b1, %c0, %i0 : index
    %v = tensor.extract %x[%j0, %i1] : tensor<?x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

// Negative: without symbols, y's batch size may differ from x's (x of size 1 broadcasts).
// CHECK-LABEL: func.func @real_broadcast(
// CHECK:         linalg.generic
// CHECK:         tensor.extract
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @real_broadcast(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = tensor.dim %y, %c0 : tensor<?x8xf32>
  %bx = tensor.dim %x, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%b) : tensor<?x8xf32>
  %r = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<?x8xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %b1 = arith.cmpi eq, %bx, %c1 : index
    %j0 = arith.select %b1, %c0, %i0 : index
    %v = tensor.extract %x[%j0, %i1] : tensor<?x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

// Negative: the select tests some other size, so row i may read row 0: not a copy.
// CHECK-LABEL: func.func @select_on_other_size(
// CHECK:         linalg.generic
// CHECK:         tensor.extract
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @select_on_other_size(%x: tensor<?x8xf32>, %n: index) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = tensor.dim %x, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%b) : tensor<?x8xf32>
  %r = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<?x8xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %b1 = arith.cmpi eq, %n, %c1 : index
    %j0 = arith.select %b1, %c0, %i0 : index
    %v = tensor.extract %x[%j0, %i1] : tensor<?x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

// Negative: reads the transpose of the source (indices swapped).
// CHECK-LABEL: func.func @transposed_read(
// CHECK:         linalg.generic
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @transposed_read(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %e = tensor.empty() : tensor<8x8xf32>
  %r = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<8x8xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %v = tensor.extract %x[%i1, %i0] : tensor<8x8xf32>
    linalg.yield %v : f32
  } -> tensor<8x8xf32>
  return %r : tensor<8x8xf32>
}
