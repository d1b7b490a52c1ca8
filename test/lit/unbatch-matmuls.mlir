// RUN: attn-opt --split-input-file --unbatch-matmuls %s | FileCheck %s
//
// unbatch-matmuls: batch_matmul(A, broadcast(W)) -> expand_shape(matmul(collapse_shape(A), W)),
// the nn.Linear torch decomposes into a batch matmul when its 3-D input is not viewable as 2-D
// (Hugging Face's SDPA attention output before o_proj).

#bcast = affine_map<(d0, d1, d2) -> (d1, d2)>
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @linear_after_sdpa(
// CHECK-SAME:    %[[A:[a-z0-9]+]]: tensor<2x256x1024xf16>, %[[W:[a-z0-9]+]]: tensor<1024x512xf16>)
// CHECK-NOT:     linalg.batch_matmul
// CHECK:         %[[FLAT:.+]] = tensor.collapse_shape %[[A]] {{\[\[}}0, 1], [2]] : tensor<2x256x1024xf16> into tensor<512x1024xf16>
// CHECK:         %[[ACC:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<512x512xf32>)
// CHECK:         %[[MM:.+]] = linalg.matmul ins(%[[FLAT]], %[[W]] : tensor<512x1024xf16>, tensor<1024x512xf16>) outs(%[[ACC]] : tensor<512x512xf32>)
// CHECK:         %[[OUT:.+]] = tensor.expand_shape %[[MM]] {{\[\[}}0, 1], [2]] output_shape [2, 256, 512] : tensor<512x512xf32> into tensor<2x256x512xf32>
// CHECK:         return %[[OUT]]
func.func @linear_after_sdpa(%a: tensor<2x256x1024xf16>, %w: tensor<1024x512xf16>) -> tensor<2x256x512xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x1024x512xf16>
  %b = linalg.generic {indexing_maps = [#bcast, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%w : tensor<1024x512xf16>) outs(%e : tensor<2x1024x512xf16>) {
  ^bb0(%in: f16, %out: f16):
    linalg.yield %in : f16
  } -> tensor<2x1024x512xf16>
  %oe = tensor.empty() : tensor<2x256x512xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x256x512xf32>) -> tensor<2x256x512xf32>
  %c = linalg.batch_matmul ins(%a, %b : tensor<2x256x1024xf16>, tensor<2x1024x512xf16>) outs(%acc : tensor<2x256x512xf32>) -> tensor<2x256x512xf32>
  return %c : tensor<2x256x512xf32>
}

// -----

// Near miss: the RHS varies per batch entry (a real batch matmul, e.g. Q.K^T): left alone.
// CHECK-LABEL: func.func @real_batch_matmul(
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     linalg.matmul
func.func @real_batch_matmul(%a: tensor<2x8x16xf32>, %b: tensor<2x16x8xf32>) -> tensor<2x8x8xf32> {
  %zero = arith.constant 0.0 : f32
  %oe = tensor.empty() : tensor<2x8x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %c = linalg.batch_matmul ins(%a, %b : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%acc : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  return %c : tensor<2x8x8xf32>
}

// -----

#bcast = affine_map<(d0, d1, d2) -> (d1, d2)>
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// Near miss: the "broadcast" scales W (not a plain copy): left alone.
// CHECK-LABEL: func.func @scaled_broadcast(
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     linalg.matmul
func.func @scaled_broadcast(%a: tensor<2x8x16xf32>, %w: tensor<16x8xf32>) -> tensor<2x8x8xf32> {
  %zero = arith.constant 0.0 : f32
  %two = arith.constant 2.0 : f32
  %e = tensor.empty() : tensor<2x16x8xf32>
  %b = linalg.generic {indexing_maps = [#bcast, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%w : tensor<16x8xf32>) outs(%e : tensor<2x16x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %x = arith.mulf %in, %two : f32
    linalg.yield %x : f32
  } -> tensor<2x16x8xf32>
  %oe = tensor.empty() : tensor<2x8x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %c = linalg.batch_matmul ins(%a, %b : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%acc : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  return %c : tensor<2x8x8xf32>
}
