// RUN: attn-opt --split-input-file --canonicalize-layouts %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(canonicalize-layouts,pretranspose-keys)' %s | FileCheck %s --check-prefix=KT
//
// canonicalize-layouts: an attention op whose Q, K, V or O is not in the canonical layout
// Q (batch.., m, k1), K (batch.., k2, k1), V (batch.., k2, n), O (batch.., m, n) reads
// fenced copies in that layout (linalg.transpose + compute_barrier) and its result is copied
// back; canonical ops are left alone. pretranspose-keys (CPU) then stores K as (batch.., k1, k2).

#q = affine_map<(b, h, m, n, k1, k2) -> (b, m, h, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, k2, h, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, k2, h, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, m, h, n)>

// BERT's and LLaMA's (B, S, H, D) layout, Sq = 16 != Skv = 12: every operand is copied to
// (B, H, S, D) and the result back to (B, S, H, D).
// CHECK-LABEL: func.func @bshd(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x16x4x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x12x4x8xf32>, %[[V:[a-z0-9]+]]: tensor<2x12x4x8xf32>
// CHECK:         %[[QT:.+]] = linalg.transpose ins(%[[Q]] : tensor<2x16x4x8xf32>) outs(%{{.+}} : tensor<2x4x16x8xf32>) permutation = [0, 2, 1, 3]
// CHECK:         %[[QF:.+]] = iree_tensor_ext.compute_barrier.start %[[QT]]
// CHECK:         %[[KTR:.+]] = linalg.transpose ins(%[[K]] : tensor<2x12x4x8xf32>) outs(%{{.+}} : tensor<2x4x12x8xf32>) permutation = [0, 2, 1, 3]
// CHECK:         %[[KF:.+]] = iree_tensor_ext.compute_barrier.start %[[KTR]]
// CHECK:         %[[VT:.+]] = linalg.transpose ins(%[[V]] : tensor<2x12x4x8xf32>) outs(%{{.+}} : tensor<2x4x12x8xf32>) permutation = [0, 2, 1, 3]
// CHECK:         %[[VF:.+]] = iree_tensor_ext.compute_barrier.start %[[VT]]
// CHECK:         %[[A:.+]] = iree_linalg_ext.attention <indexing_maps = [#[[MQ:.+]], #[[MK:.+]], #[[MV:.+]], #{{.+}}, #[[MO:.+]]]> ins(%[[QF]], %[[KF]], %[[VF]], %{{.+}} : {{.*}}) outs(%{{.+}} : tensor<2x4x16x8xf32>)
// CHECK:         %[[OT:.+]] = linalg.transpose ins(%[[A]] : tensor<2x4x16x8xf32>) outs(%{{.+}} : tensor<2x16x4x8xf32>) permutation = [0, 2, 1, 3]
// CHECK:         %[[OF:.+]] = iree_tensor_ext.compute_barrier.start %[[OT]]
// CHECK:         return %[[OF]]
// With K stored transposed: one more fenced copy, (B, H, D, Skv), and K's map reads (b, h, k1, k2).
// KT-LABEL:      func.func @bshd(
// KT:            %[[KF:.+]] = iree_tensor_ext.compute_barrier.start %{{.+}} : tensor<2x4x12x8xf32>
// KT:            %[[KK:.+]] = linalg.transpose ins(%[[KF]] : tensor<2x4x12x8xf32>) outs(%{{.+}} : tensor<2x4x8x12xf32>) permutation = [0, 1, 3, 2]
// KT:            %[[KKF:.+]] = iree_tensor_ext.compute_barrier.start %[[KK]]
// KT:            iree_linalg_ext.attention {{.*}} ins(%{{.+}}, %[[KKF]], %{{.+}}, %{{.+}} : tensor<2x4x16x8xf32>, tensor<2x4x8x12xf32>, tensor<2x4x12x8xf32>, f32)
func.func @bshd(%q: tensor<2x16x4x8xf32>, %k: tensor<2x12x4x8xf32>, %v: tensor<2x12x4x8xf32>) -> tensor<2x16x4x8xf32> {
  %scale = arith.constant 0.35 : f32
  %init = tensor.empty() : tensor<2x16x4x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<2x16x4x8xf32>, tensor<2x12x4x8xf32>, tensor<2x12x4x8xf32>, f32) outs(%init : tensor<2x16x4x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x16x4x8xf32>
  return %r : tensor<2x16x4x8xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// Already canonical, batch 1 with one head: no copy; pretranspose-keys alone transposes K.
// CHECK-LABEL: func.func @canonical(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<1x1x16x8xf32>, %[[K:[a-z0-9]+]]: tensor<1x1x16x8xf32>, %[[V:[a-z0-9]+]]: tensor<1x1x16x8xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[A:.+]] = iree_linalg_ext.attention {{.*}} ins(%[[Q]], %[[K]], %[[V]], %{{.+}} : {{.*}})
// CHECK-NOT:     linalg.transpose
// CHECK:         return %[[A]]
// KT-LABEL:      func.func @canonical(
// KT-SAME:       %[[Q:[a-z0-9]+]]: tensor<1x1x16x8xf32>, %[[K:[a-z0-9]+]]: tensor<1x1x16x8xf32>
// KT:            %[[KK:.+]] = linalg.transpose ins(%[[K]] : tensor<1x1x16x8xf32>) outs(%{{.+}} : tensor<1x1x8x16xf32>) permutation = [0, 1, 3, 2]
// KT:            %[[KKF:.+]] = iree_tensor_ext.compute_barrier.start %[[KK]]
// KT:            iree_linalg_ext.attention {{.*}} ins(%[[Q]], %[[KKF]], %{{.+}}, %{{.+}} :
func.func @canonical(%q: tensor<1x1x16x8xf32>, %k: tensor<1x1x16x8xf32>, %v: tensor<1x1x16x8xf32>) -> tensor<1x1x16x8xf32> {
  %scale = arith.constant 0.35 : f32
  %init = tensor.empty() : tensor<1x1x16x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>, f32) outs(%init : tensor<1x1x16x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<1x1x16x8xf32>
  return %r : tensor<1x1x16x8xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// A dynamic key length: K is not copied (pretranspose-keys takes static K only).
// KT-LABEL:      func.func @dynamic_keys(
// KT-NOT:        linalg.transpose
// KT:            iree_linalg_ext.attention
func.func @dynamic_keys(%q: tensor<1x2x16x8xf32>, %k: tensor<1x2x?x8xf32>, %v: tensor<1x2x?x8xf32>) -> tensor<1x2x16x8xf32> {
  %scale = arith.constant 0.35 : f32
  %init = tensor.empty() : tensor<1x2x16x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<1x2x16x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, f32) outs(%init : tensor<1x2x16x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<1x2x16x8xf32>
  return %r : tensor<1x2x16x8xf32>
}
