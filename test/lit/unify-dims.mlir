// RUN: attn-opt --split-input-file --unify-dims %s | FileCheck %s
//
// unify-dims: dynamic input sizes that the importer named alike are read from one tensor.dim.

// q's and k's batch and sequence sizes are the symbols s0 and s1: every size is read from q.
// CHECK-LABEL: func.func @same_symbols(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<?x4x?x8xf32>, %[[K:[a-z0-9]+]]: tensor<?x4x?x8xf32>
// CHECK-DAG:     %[[B:.+]] = tensor.dim %[[Q]], %c0
// CHECK-DAG:     %[[S:.+]] = tensor.dim %[[Q]], %c2
// CHECK-NOT:     tensor.dim %[[K]]
// CHECK:         tensor.empty(%[[B]], %[[S]], %[[S]])
func.func @same_symbols(%q: tensor<?x4x?x8xf32>, %k: tensor<?x4x?x8xf32>) -> tensor<?x4x?x?xf32>
    attributes {flashlift.input_dims = [["s0", 4, "s1", 8], ["s0", 4, "s1", 8]]} {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %b = tensor.dim %k, %c0 : tensor<?x4x?x8xf32>
  %sq = tensor.dim %q, %c2 : tensor<?x4x?x8xf32>
  %sk = tensor.dim %k, %c2 : tensor<?x4x?x8xf32>
  %e = tensor.empty(%b, %sq, %sk) : tensor<?x4x?x?xf32>
  return %e : tensor<?x4x?x?xf32>
}

// -----

// Cross-attention: the key length is its own symbol; only the batch size is shared.
// CHECK-LABEL: func.func @different_symbols(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<?x4x?x8xf32>, %[[K:[a-z0-9]+]]: tensor<?x4x?x8xf32>
// CHECK-DAG:     %[[B:.+]] = tensor.dim %[[Q]], %c0
// CHECK-DAG:     %[[SQ:.+]] = tensor.dim %[[Q]], %c2
// CHECK-DAG:     %[[SK:.+]] = tensor.dim %[[K]], %c2
// CHECK:         tensor.empty(%[[B]], %[[SQ]], %[[SK]])
func.func @different_symbols(%q: tensor<?x4x?x8xf32>, %k: tensor<?x4x?x8xf32>) -> tensor<?x4x?x?xf32>
    attributes {flashlift.input_dims = [["s0", 4, "s1", 8], ["s0", 4, "s2", 8]]} {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %b = tensor.dim %k, %c0 : tensor<?x4x?x8xf32>
  %sq = tensor.dim %q, %c2 : tensor<?x4x?x8xf32>
  %sk = tensor.dim %k, %c2 : tensor<?x4x?x8xf32>
  %e = tensor.empty(%b, %sq, %sk) : tensor<?x4x?x?xf32>
  return %e : tensor<?x4x?x?xf32>
}

// -----

// Negative: without the importer's symbols nothing says the sizes are equal.
// CHECK-LABEL: func.func @no_symbols(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<?x8xf32>, %[[K:[a-z0-9]+]]: tensor<?x8xf32>
// CHECK:         %[[A:.+]] = tensor.dim %[[Q]], %c0
// CHECK:         %[[B:.+]] = tensor.dim %[[K]], %c0
// CHECK:         tensor.empty(%[[A]], %[[B]])
func.func @no_symbols(%q: tensor<?x8xf32>, %k: tensor<?x8xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %a = tensor.dim %q, %c0 : tensor<?x8xf32>
  %b = tensor.dim %k, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%a, %b) : tensor<?x?xf32>
  return %e : tensor<?x?xf32>
}
