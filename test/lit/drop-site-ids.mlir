// RUN: attn-opt --split-input-file --drop-site-ids %s | FileCheck %s
// RUN: attn-opt --split-input-file --raise-attention %S/raise-attention.mlir | FileCheck %s --check-prefix=RAISED
//
// drop-site-ids: the `flashlift.site` ids raise-attention gives its ops (the index of the op's
// decision record, passes/records.py) go before iree-compile; other attributes stay.

// RAISED-LABEL: func.func @attention_4d_f32(
// RAISED:         iree_linalg_ext.attention <indexing_maps = [{{.+}}]> {flashlift.site = 0 : i64}

// CHECK-LABEL: func.func @site_id_dropped(
// CHECK-SAME:    %[[Q:.+]]: tensor<1x4x8xf32>, %[[K:.+]]: tensor<1x4x8xf32>, %[[V:.+]]: tensor<1x4x8xf32>
// CHECK:         iree_linalg_ext.attention
// CHECK-SAME:      {other.attr = 1 : i64}
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]],
// CHECK-NOT:     flashlift.site
#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
func.func @site_id_dropped(%q: tensor<1x4x8xf32>, %k: tensor<1x4x8xf32>, %v: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
  %scale = arith.constant 0.353553385 : f32
  %init = tensor.empty() : tensor<1x4x8xf32>
  %0 = iree_linalg_ext.attention <indexing_maps = [#q, #k, #v, #s, #o]> {flashlift.site = 3 : i64, other.attr = 1 : i64}
         ins(%q, %k, %v, %scale : tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, f32)
         outs(%init : tensor<1x4x8xf32>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<1x4x8xf32>
  return %0 : tensor<1x4x8xf32>
}

// -----

// An op without an id (one the input already had) is left as it is.
// CHECK-LABEL: func.func @no_site_id(
// CHECK:         iree_linalg_ext.attention <indexing_maps = [{{.+}}]> ins(
#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
func.func @no_site_id(%q: tensor<1x4x8xf32>, %k: tensor<1x4x8xf32>, %v: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
  %scale = arith.constant 0.353553385 : f32
  %init = tensor.empty() : tensor<1x4x8xf32>
  %0 = iree_linalg_ext.attention <indexing_maps = [#q, #k, #v, #s, #o]>
         ins(%q, %k, %v, %scale : tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, f32)
         outs(%init : tensor<1x4x8xf32>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<1x4x8xf32>
  return %0 : tensor<1x4x8xf32>
}
