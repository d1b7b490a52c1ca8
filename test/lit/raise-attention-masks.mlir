// RUN: attn-opt --split-input-file --raise-attention %s | FileCheck %s
// RUN: attn-opt --split-input-file --raise-attention --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
//
// Masks and fully masked rows (passes/masks.py), on the IR torch-mlir emits for
// F.scaled_dot_product_attention's decomposition (torch's _safe_softmax included) and for
// hand-written masks. The op's mask is the model's additive mask, encoded: finite values
// clamped at FLOOR (-2^126 = -8.50705917E+37, finite after the op's * log2(e)), scores a
// select() replaced by a finite fill, or absorbed by the model's rounding, set to FLOOR,
// -inf kept. After _safe_softmax, rows whose every key is -inf are zeroed from the mask.
// REMARK lines name each candidate by this file's line:col (the python FileCheck has no @LINE).

// SDPA without a mask: the _safe_softmax guard alone is a no-op (no score is -inf).
// CHECK-LABEL: func.func @sdpa_no_mask(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x2x4x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x2x4x8xf32>, %[[V:[a-z0-9]+]]: tensor<2x2x4x8xf32>)
// CHECK:         %[[SCALE:.+]] = arith.constant 0.353553385 : f32
// CHECK:         %[[O:.+]] = iree_linalg_ext.attention
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]] : tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, f32)
// CHECK-NOT:     arith.select
// CHECK-NOT:     linalg.softmax
// CHECK:         tensor.collapse_shape %[[O]]
// REMARK: raise-attention-masks.mlir:88:11: remark: raised to iree_linalg_ext.attention ({{.*}}scale=0.35355339059327373, mask=none)

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_no_mask(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<2x2x4x4xf32>
    %cst_2 = arith.constant 0xFFF0000000000000 : f64
    %cst_3 = arith.constant 0.59460355750136051 : f64
    %0 = tensor.empty() : tensor<2x2x4x8xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %28 = arith.truncf %cst_3 : f64 to f32
      %29 = arith.mulf %in, %28 : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x8xf32>
    %2 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%2 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<2x2x8x4xf32>) outs(%2 : tensor<2x2x8x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %28 = arith.truncf %cst_3 : f64 to f32
      %29 = arith.mulf %in, %28 : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x8x4xf32>
    %collapsed = tensor.collapse_shape %1 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_4 = tensor.collapse_shape %3 [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %4 = tensor.empty() : tensor<4x4x4xf32>
    %5 = linalg.fill ins(%cst : f32) outs(%4 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %6 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%5 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %6 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %7 = tensor.empty() : tensor<2x2x4xi64>
    %8 = linalg.fill ins(%c0_i64 : i64) outs(%7 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %9 = tensor.empty() : tensor<2x2x4xf32>
    %10 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %11:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%10, %8 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_9: i64):
      %28 = linalg.index 3 : index
      %29 = arith.index_cast %28 : index to i64
      %30 = arith.maximumf %in, %out : f32
      %31 = arith.cmpf ogt, %in, %out : f32
      %32 = arith.select %31, %29, %out_9 : i64
      linalg.yield %30, %32 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_5 = tensor.expand_shape %11#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %12 = tensor.empty() : tensor<2x2x4x4xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %expanded_5 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%12 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %28 = arith.subf %in, %in_9 : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13 : tensor<2x2x4x4xf32>) outs(%12 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %28 = math.exp %in : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %15 = tensor.empty() : tensor<2x2x4x1xf32>
    %16 = linalg.fill ins(%cst : f32) outs(%15 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%14 : tensor<2x2x4x4xf32>) outs(%16 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %28 = arith.addf %in, %out : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x1xf32>
    %18 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%14, %17 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%12 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %28 = arith.divf %in, %in_9 : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %19 = tensor.empty() : tensor<2x2x4x4xi1>
    %20 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%19 : tensor<2x2x4x4xi1>) {
    ^bb0(%in: f32, %out: i1):
      %28 = arith.extf %in : f32 to f64
      %29 = arith.cmpf oeq, %28, %cst_2 : f64
      linalg.yield %29 : i1
    } -> tensor<2x2x4x4xi1>
    %21 = tensor.empty() : tensor<2x2x4x1xi1>
    %22 = linalg.fill ins(%true : i1) outs(%21 : tensor<2x2x4x1xi1>) -> tensor<2x2x4x1xi1>
    %23 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%20 : tensor<2x2x4x4xi1>) outs(%22 : tensor<2x2x4x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %28 = arith.andi %in, %out : i1
      linalg.yield %28 : i1
    } -> tensor<2x2x4x1xi1>
    %24 = linalg.generic {indexing_maps = [#map2, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%23, %cst_1, %18 : tensor<2x2x4x1xi1>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) outs(%12 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_9: f32, %in_10: f32, %out: f32):
      %28 = arith.select %in, %in_9, %in_10 : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_6 = tensor.collapse_shape %24 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_7 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %25 = tensor.empty() : tensor<4x4x8xf32>
    %26 = linalg.fill ins(%cst : f32) outs(%25 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %27 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%26 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_8 = tensor.expand_shape %27 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_8 : tensor<2x2x4x8xf32>
  }
}

// -----

// SDPA with a boolean [B, 1, 1, S] mask: select(m, 0, -inf) + S, _safe_softmax. The op
// gets the encoded [B, K2] mask; rows of a batch entry whose every key is hidden give 0.
// CHECK-LABEL: func.func @sdpa_bool_padding(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x2x4x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x2x4x8xf32>, %[[V:[a-z0-9]+]]: tensor<2x2x4x8xf32>, %[[M:[a-z0-9]+]]: tensor<2x1x1x4xi1>)
// CHECK:         %[[BIAS:.+]] = linalg.generic {{.*}} ins(%[[M]], {{.*}}) outs({{.*}} : tensor<2x1x1x4xf32>)
// CHECK:         %[[MASK:.+]] = linalg.generic {{.*}} ins(%[[BIAS]] : tensor<2x1x1x4xf32>) outs({{.*}} : tensor<2x4xf32>)
// CHECK:           %[[B:.+]] = arith.addf %{{.*}}, %[[IN:.+]] : f32
// CHECK:           %[[FLOOR:.+]] = arith.constant -8.50705917E+37 : f32
// CHECK:           %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK:           %[[CLAMPED:.+]] = arith.maximumf %[[B]], %[[FLOOR]] : f32
// CHECK:           %[[LIMIT:.+]] = arith.constant 0xCD000000 : f32
// CHECK:           %[[ABSORBED:.+]] = arith.cmpf ole, %[[B]], %[[LIMIT]] : f32
// CHECK:           %[[ENC:.+]] = arith.select %[[ABSORBED]], %[[FLOOR]], %[[CLAMPED]] : f32
// CHECK:           %[[ISNEGINF:.+]] = arith.cmpf oeq, %[[B]], %[[NEGINF]] : f32
// CHECK:           %[[OUT:.+]] = arith.select %[[ISNEGINF]], %[[NEGINF]], %[[ENC]] : f32
// CHECK:           linalg.yield %[[OUT]] : f32
// CHECK:         %[[O:.+]] = iree_linalg_ext.attention
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %{{.+}}, %[[MASK]] : {{.*}}, tensor<2x4xf32>)
// CHECK:         %[[ALL:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]} ins(%[[MASK]] : tensor<2x4xf32>) outs(%{{.+}} : tensor<2xi1>)
// CHECK:           arith.cmpf oeq
// CHECK:           arith.andi
// CHECK:         %[[ZEROED:.+]] = linalg.generic {{.*}} ins(%[[ALL]], %[[O]] : tensor<2xi1>, tensor<2x2x4x8xf32>)
// CHECK:           arith.select
// CHECK:         tensor.collapse_shape %[[ZEROED]]
// CHECK-NOT:     linalg.softmax
// REMARK: raise-attention-masks.mlir:231:11: remark: raised to iree_linalg_ext.attention ({{.*}}mask=[2, 4])

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> ()>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_bool_padding(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>, %arg3: tensor<2x1x1x4xi1>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<2x2x4x4xf32>
    %cst_2 = arith.constant 0.59460355750136051 : f64
    %cst_3 = arith.constant 0xFFF0000000000000 : f64
    %cst_4 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_5 = arith.constant dense<0.000000e+00> : tensor<f32>
    %0 = tensor.empty() : tensor<2x1x1x4xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map1, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg3, %cst_5, %cst_4 : tensor<2x1x1x4xi1>, tensor<f32>, tensor<f32>) outs(%0 : tensor<2x1x1x4xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<2x1x1x4xf32>
    %2 = tensor.empty() : tensor<2x2x4x8xf32>
    %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x2x4x8xf32>) outs(%2 : tensor<2x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.truncf %cst_2 : f64 to f32
      %32 = arith.mulf %in, %31 : f32
      linalg.yield %32 : f32
    } -> tensor<2x2x4x8xf32>
    %4 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%4 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<2x2x8x4xf32>) outs(%4 : tensor<2x2x8x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.truncf %cst_2 : f64 to f32
      %32 = arith.mulf %in, %31 : f32
      linalg.yield %32 : f32
    } -> tensor<2x2x8x4xf32>
    %collapsed = tensor.collapse_shape %3 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_6 = tensor.collapse_shape %5 [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %6 = tensor.empty() : tensor<4x4x4xf32>
    %7 = linalg.fill ins(%cst : f32) outs(%6 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %8 = linalg.batch_matmul ins(%collapsed, %collapsed_6 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%7 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %8 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %9 = tensor.empty() : tensor<2x2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %1 : tensor<2x2x4x4xf32>, tensor<2x1x1x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.addf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %11 = tensor.empty() : tensor<2x2x4xi64>
    %12 = linalg.fill ins(%c0_i64 : i64) outs(%11 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %13 = tensor.empty() : tensor<2x2x4xf32>
    %14 = linalg.fill ins(%cst_0 : f32) outs(%13 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %15:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%14, %12 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %31 = linalg.index 3 : index
      %32 = arith.index_cast %31 : index to i64
      %33 = arith.maximumf %in, %out : f32
      %34 = arith.cmpf ogt, %in, %out : f32
      %35 = arith.select %34, %32, %out_11 : i64
      linalg.yield %33, %35 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_7 = tensor.expand_shape %15#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10, %expanded_7 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.subf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16 : tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = math.exp %in : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %18 = tensor.empty() : tensor<2x2x4x1xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<2x2x4x4xf32>) outs(%19 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.addf %in, %out : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x1xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %20 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.divf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %22 = tensor.empty() : tensor<2x2x4x4xi1>
    %23 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%22 : tensor<2x2x4x4xi1>) {
    ^bb0(%in: f32, %out: i1):
      %31 = arith.extf %in : f32 to f64
      %32 = arith.cmpf oeq, %31, %cst_3 : f64
      linalg.yield %32 : i1
    } -> tensor<2x2x4x4xi1>
    %24 = tensor.empty() : tensor<2x2x4x1xi1>
    %25 = linalg.fill ins(%true : i1) outs(%24 : tensor<2x2x4x1xi1>) -> tensor<2x2x4x1xi1>
    %26 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%23 : tensor<2x2x4x4xi1>) outs(%25 : tensor<2x2x4x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %31 = arith.andi %in, %out : i1
      linalg.yield %31 : i1
    } -> tensor<2x2x4x1xi1>
    %27 = linalg.generic {indexing_maps = [#map4, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%26, %cst_1, %21 : tensor<2x2x4x1xi1>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_8 = tensor.collapse_shape %27 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %28 = tensor.empty() : tensor<4x4x8xf32>
    %29 = linalg.fill ins(%cst : f32) outs(%28 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %30 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%29 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_10 = tensor.expand_shape %30 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_10 : tensor<2x2x4x8xf32>
  }
}

// -----

// SDPA with a float [B, 1, Sq, Skv] mask: a [B, M, K2] mask operand, rows guarded per (b, m).
// CHECK-LABEL: func.func @sdpa_float_mask(
// CHECK-SAME:    %[[M:[a-z0-9]+]]: tensor<2x1x4x4xf32>)
// CHECK:         %[[MASK:.+]] = linalg.generic {{.*}} ins(%[[M]] : tensor<2x1x4x4xf32>) outs({{.*}} : tensor<2x4x4xf32>)
// CHECK:         %[[O:.+]] = iree_linalg_ext.attention
// CHECK-SAME:      %[[MASK]] : {{.*}}, tensor<2x4x4xf32>)
// CHECK:         %[[ALL:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[MASK]] : tensor<2x4x4xf32>) outs(%{{.+}} : tensor<2x4xi1>)
// CHECK:         linalg.generic {{.*}} ins(%[[ALL]], %[[O]] : tensor<2x4xi1>, tensor<2x2x4x8xf32>)
// REMARK: raise-attention-masks.mlir:348:11: remark: raised to iree_linalg_ext.attention ({{.*}}mask=[2, 4, 4])

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, 0, d2, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_float_mask(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>, %arg3: tensor<2x1x4x4xf32>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<2x2x4x4xf32>
    %cst_2 = arith.constant 0xFFF0000000000000 : f64
    %cst_3 = arith.constant 0.59460355750136051 : f64
    %0 = tensor.empty() : tensor<2x2x4x8xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.truncf %cst_3 : f64 to f32
      %30 = arith.mulf %in, %29 : f32
      linalg.yield %30 : f32
    } -> tensor<2x2x4x8xf32>
    %2 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%2 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<2x2x8x4xf32>) outs(%2 : tensor<2x2x8x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.truncf %cst_3 : f64 to f32
      %30 = arith.mulf %in, %29 : f32
      linalg.yield %30 : f32
    } -> tensor<2x2x8x4xf32>
    %collapsed = tensor.collapse_shape %1 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_4 = tensor.collapse_shape %3 [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %4 = tensor.empty() : tensor<4x4x4xf32>
    %5 = linalg.fill ins(%cst : f32) outs(%4 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %6 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%5 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %6 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %7 = tensor.empty() : tensor<2x2x4x4xf32>
    %8 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %arg3 : tensor<2x2x4x4xf32>, tensor<2x1x4x4xf32>) outs(%7 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %29 = arith.addf %in, %in_9 : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x4xf32>
    %9 = tensor.empty() : tensor<2x2x4xi64>
    %10 = linalg.fill ins(%c0_i64 : i64) outs(%9 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %11 = tensor.empty() : tensor<2x2x4xf32>
    %12 = linalg.fill ins(%cst_0 : f32) outs(%11 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %13:2 = linalg.generic {indexing_maps = [#map, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%8 : tensor<2x2x4x4xf32>) outs(%12, %10 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_9: i64):
      %29 = linalg.index 3 : index
      %30 = arith.index_cast %29 : index to i64
      %31 = arith.maximumf %in, %out : f32
      %32 = arith.cmpf ogt, %in, %out : f32
      %33 = arith.select %32, %30, %out_9 : i64
      linalg.yield %31, %33 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_5 = tensor.expand_shape %13#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%8, %expanded_5 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%7 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %29 = arith.subf %in, %in_9 : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x4xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%14 : tensor<2x2x4x4xf32>) outs(%7 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = math.exp %in : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x4xf32>
    %16 = tensor.empty() : tensor<2x2x4x1xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %18 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%15 : tensor<2x2x4x4xf32>) outs(%17 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %29 = arith.addf %in, %out : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x1xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15, %18 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%7 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_9: f32, %out: f32):
      %29 = arith.divf %in, %in_9 : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x4xf32>
    %20 = tensor.empty() : tensor<2x2x4x4xi1>
    %21 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%8 : tensor<2x2x4x4xf32>) outs(%20 : tensor<2x2x4x4xi1>) {
    ^bb0(%in: f32, %out: i1):
      %29 = arith.extf %in : f32 to f64
      %30 = arith.cmpf oeq, %29, %cst_2 : f64
      linalg.yield %30 : i1
    } -> tensor<2x2x4x4xi1>
    %22 = tensor.empty() : tensor<2x2x4x1xi1>
    %23 = linalg.fill ins(%true : i1) outs(%22 : tensor<2x2x4x1xi1>) -> tensor<2x2x4x1xi1>
    %24 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%21 : tensor<2x2x4x4xi1>) outs(%23 : tensor<2x2x4x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %29 = arith.andi %in, %out : i1
      linalg.yield %29 : i1
    } -> tensor<2x2x4x1xi1>
    %25 = linalg.generic {indexing_maps = [#map3, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%24, %cst_1, %19 : tensor<2x2x4x1xi1>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) outs(%7 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_9: f32, %in_10: f32, %out: f32):
      %29 = arith.select %in, %in_9, %in_10 : f32
      linalg.yield %29 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_6 = tensor.collapse_shape %25 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_7 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %26 = tensor.empty() : tensor<4x4x8xf32>
    %27 = linalg.fill ins(%cst : f32) outs(%26 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %28 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%27 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_8 = tensor.expand_shape %28 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_8 : tensor<2x2x4x8xf32>
  }
}

// -----

// SDPA is_causal=True with Sq=2 < Skv=4: torch's top-left tril as a [M, K2] mask.
// CHECK-LABEL: func.func @sdpa_causal_cross(
// CHECK:         %[[MASK:.+]] = linalg.generic {{.*}} ins(%{{.+}} : tensor<2x4xf32>) outs(%{{.+}} : tensor<2x4xf32>)
// CHECK:         %[[O:.+]] = iree_linalg_ext.attention
// CHECK-SAME:      %[[MASK]] : {{.*}}, tensor<2x4xf32>) outs(%{{.+}} : tensor<2x2x2x8xf32>)
// CHECK:         linalg.generic {{.*}} ins(%[[MASK]] : tensor<2x4xf32>) outs(%{{.+}} : tensor<2xi1>)
// REMARK: raise-attention-masks.mlir:510:11: remark: raised to iree_linalg_ext.attention (batch=[2, 2], m=2, k2=4{{.*}}mask=[2, 4])

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (0, d1)>
#map3 = affine_map<(d0, d1) -> (d0, 0)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1) -> ()>
#map6 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_causal_cross(%arg0: tensor<2x2x2x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x2x2x8xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<2x2x2x4xf32>
    %cst_2 = arith.constant dense<0.000000e+00> : tensor<f32>
    %cst_3 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_4 = arith.constant dense<true> : tensor<2x4xi1>
    %cst_5 = arith.constant 0xFFF0000000000000 : f64
    %cst_6 = arith.constant 0.59460355750136051 : f64
    %0 = tensor.empty() : tensor<2x2x2x8xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x2x2x8xf32>) outs(%0 : tensor<2x2x2x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %40 = arith.truncf %cst_6 : f64 to f32
      %41 = arith.mulf %in, %40 : f32
      linalg.yield %41 : f32
    } -> tensor<2x2x2x8xf32>
    %2 = tensor.empty() : tensor<4xi64>
    %3 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%2 : tensor<4xi64>) {
    ^bb0(%out: i64):
      %40 = linalg.index 0 : index
      %41 = arith.index_cast %40 : index to i64
      linalg.yield %41 : i64
    } -> tensor<4xi64>
    %expanded = tensor.expand_shape %3 [[0, 1]] output_shape [1, 4] : tensor<4xi64> into tensor<1x4xi64>
    %4 = tensor.empty() : tensor<2xi64>
    %5 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%4 : tensor<2xi64>) {
    ^bb0(%out: i64):
      %40 = linalg.index 0 : index
      %41 = arith.index_cast %40 : index to i64
      linalg.yield %41 : i64
    } -> tensor<2xi64>
    %expanded_7 = tensor.expand_shape %5 [[0, 1]] output_shape [2, 1] : tensor<2xi64> into tensor<2x1xi64>
    %6 = tensor.empty() : tensor<2x4xi64>
    %7 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded, %expanded_7 : tensor<1x4xi64>, tensor<2x1xi64>) outs(%6 : tensor<2x4xi64>) {
    ^bb0(%in: i64, %in_14: i64, %out: i64):
      %40 = arith.subi %in, %in_14 : i64
      linalg.yield %40 : i64
    } -> tensor<2x4xi64>
    %8 = tensor.empty() : tensor<2x4xi1>
    %9 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%7 : tensor<2x4xi64>) outs(%8 : tensor<2x4xi1>) {
    ^bb0(%in: i64, %out: i1):
      %40 = arith.cmpi sle, %in, %c0_i64 : i64
      linalg.yield %40 : i1
    } -> tensor<2x4xi1>
    %10 = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9, %cst_4 : tensor<2x4xi1>, tensor<2x4xi1>) outs(%8 : tensor<2x4xi1>) {
    ^bb0(%in: i1, %in_14: i1, %out: i1):
      %40 = arith.andi %in, %in_14 : i1
      linalg.yield %40 : i1
    } -> tensor<2x4xi1>
    %11 = tensor.empty() : tensor<2x4xf32>
    %12 = linalg.generic {indexing_maps = [#map4, #map5, #map5, #map4], iterator_types = ["parallel", "parallel"]} ins(%10, %cst_2, %cst_3 : tensor<2x4xi1>, tensor<f32>, tensor<f32>) outs(%11 : tensor<2x4xf32>) {
    ^bb0(%in: i1, %in_14: f32, %in_15: f32, %out: f32):
      %40 = arith.select %in, %in_14, %in_15 : f32
      linalg.yield %40 : f32
    } -> tensor<2x4xf32>
    %13 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%13 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %14 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<2x2x8x4xf32>) outs(%13 : tensor<2x2x8x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %40 = arith.truncf %cst_6 : f64 to f32
      %41 = arith.mulf %in, %40 : f32
      linalg.yield %41 : f32
    } -> tensor<2x2x8x4xf32>
    %collapsed = tensor.collapse_shape %1 [[0, 1], [2], [3]] : tensor<2x2x2x8xf32> into tensor<4x2x8xf32>
    %collapsed_8 = tensor.collapse_shape %14 [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %15 = tensor.empty() : tensor<4x2x4xf32>
    %16 = linalg.fill ins(%cst : f32) outs(%15 : tensor<4x2x4xf32>) -> tensor<4x2x4xf32>
    %17 = linalg.batch_matmul ins(%collapsed, %collapsed_8 : tensor<4x2x8xf32>, tensor<4x8x4xf32>) outs(%16 : tensor<4x2x4xf32>) -> tensor<4x2x4xf32>
    %expanded_9 = tensor.expand_shape %17 [[0, 1], [2], [3]] output_shape [2, 2, 2, 4] : tensor<4x2x4xf32> into tensor<2x2x2x4xf32>
    %18 = tensor.empty() : tensor<2x2x2x4xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map6, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded_9, %12 : tensor<2x2x2x4xf32>, tensor<2x4xf32>) outs(%18 : tensor<2x2x2x4xf32>) {
    ^bb0(%in: f32, %in_14: f32, %out: f32):
      %40 = arith.addf %in, %in_14 : f32
      linalg.yield %40 : f32
    } -> tensor<2x2x2x4xf32>
    %20 = tensor.empty() : tensor<2x2x2xi64>
    %21 = linalg.fill ins(%c0_i64 : i64) outs(%20 : tensor<2x2x2xi64>) -> tensor<2x2x2xi64>
    %22 = tensor.empty() : tensor<2x2x2xf32>
    %23 = linalg.fill ins(%cst_0 : f32) outs(%22 : tensor<2x2x2xf32>) -> tensor<2x2x2xf32>
    %24:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%19 : tensor<2x2x2x4xf32>) outs(%23, %21 : tensor<2x2x2xf32>, tensor<2x2x2xi64>) {
    ^bb0(%in: f32, %out: f32, %out_14: i64):
      %40 = linalg.index 3 : index
      %41 = arith.index_cast %40 : index to i64
      %42 = arith.maximumf %in, %out : f32
      %43 = arith.cmpf ogt, %in, %out : f32
      %44 = arith.select %43, %41, %out_14 : i64
      linalg.yield %42, %44 : f32, i64
    } -> (tensor<2x2x2xf32>, tensor<2x2x2xi64>)
    %expanded_10 = tensor.expand_shape %24#0 [[0], [1], [2, 3]] output_shape [2, 2, 2, 1] : tensor<2x2x2xf32> into tensor<2x2x2x1xf32>
    %25 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%19, %expanded_10 : tensor<2x2x2x4xf32>, tensor<2x2x2x1xf32>) outs(%18 : tensor<2x2x2x4xf32>) {
    ^bb0(%in: f32, %in_14: f32, %out: f32):
      %40 = arith.subf %in, %in_14 : f32
      linalg.yield %40 : f32
    } -> tensor<2x2x2x4xf32>
    %26 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%25 : tensor<2x2x2x4xf32>) outs(%18 : tensor<2x2x2x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %40 = math.exp %in : f32
      linalg.yield %40 : f32
    } -> tensor<2x2x2x4xf32>
    %27 = tensor.empty() : tensor<2x2x2x1xf32>
    %28 = linalg.fill ins(%cst : f32) outs(%27 : tensor<2x2x2x1xf32>) -> tensor<2x2x2x1xf32>
    %29 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%26 : tensor<2x2x2x4xf32>) outs(%28 : tensor<2x2x2x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %40 = arith.addf %in, %out : f32
      linalg.yield %40 : f32
    } -> tensor<2x2x2x1xf32>
    %30 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%26, %29 : tensor<2x2x2x4xf32>, tensor<2x2x2x1xf32>) outs(%18 : tensor<2x2x2x4xf32>) {
    ^bb0(%in: f32, %in_14: f32, %out: f32):
      %40 = arith.divf %in, %in_14 : f32
      linalg.yield %40 : f32
    } -> tensor<2x2x2x4xf32>
    %31 = tensor.empty() : tensor<2x2x2x4xi1>
    %32 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%19 : tensor<2x2x2x4xf32>) outs(%31 : tensor<2x2x2x4xi1>) {
    ^bb0(%in: f32, %out: i1):
      %40 = arith.extf %in : f32 to f64
      %41 = arith.cmpf oeq, %40, %cst_5 : f64
      linalg.yield %41 : i1
    } -> tensor<2x2x2x4xi1>
    %33 = tensor.empty() : tensor<2x2x2x1xi1>
    %34 = linalg.fill ins(%true : i1) outs(%33 : tensor<2x2x2x1xi1>) -> tensor<2x2x2x1xi1>
    %35 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%32 : tensor<2x2x2x4xi1>) outs(%34 : tensor<2x2x2x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %40 = arith.andi %in, %out : i1
      linalg.yield %40 : i1
    } -> tensor<2x2x2x1xi1>
    %36 = linalg.generic {indexing_maps = [#map8, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%35, %cst_1, %30 : tensor<2x2x2x1xi1>, tensor<2x2x2x4xf32>, tensor<2x2x2x4xf32>) outs(%18 : tensor<2x2x2x4xf32>) {
    ^bb0(%in: i1, %in_14: f32, %in_15: f32, %out: f32):
      %40 = arith.select %in, %in_14, %in_15 : f32
      linalg.yield %40 : f32
    } -> tensor<2x2x2x4xf32>
    %collapsed_11 = tensor.collapse_shape %36 [[0, 1], [2], [3]] : tensor<2x2x2x4xf32> into tensor<4x2x4xf32>
    %collapsed_12 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %37 = tensor.empty() : tensor<4x2x8xf32>
    %38 = linalg.fill ins(%cst : f32) outs(%37 : tensor<4x2x8xf32>) -> tensor<4x2x8xf32>
    %39 = linalg.batch_matmul ins(%collapsed_11, %collapsed_12 : tensor<4x2x4xf32>, tensor<4x4x8xf32>) outs(%38 : tensor<4x2x8xf32>) -> tensor<4x2x8xf32>
    %expanded_13 = tensor.expand_shape %39 [[0, 1], [2], [3]] output_shape [2, 2, 2, 8] : tensor<4x2x8xf32> into tensor<2x2x2x8xf32>
    return %expanded_13 : tensor<2x2x2x8xf32>
  }
}

// -----

// SDPA enable_gqa=True: 4 query heads over 2 kv heads, K/V read through the maps.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3, d5)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d6, d5)>
// CHECK-LABEL: func.func @sdpa_gqa(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x4x4x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x2x4x8xf32>, %[[V:[a-z0-9]+]]: tensor<2x2x4x8xf32>)
// CHECK:         %[[QG:.+]] = tensor.expand_shape %[[Q]] {{\[\[}}0], [1, 2], [3], [4]]
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]],
// CHECK-SAME:      ins(%[[QG]], %[[K]], %[[V]],
// REMARK: raise-attention-masks.mlir:633:11: remark: raised to iree_linalg_ext.attention (batch=[2, 2, 2]

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>
#map2 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @sdpa_gqa(%arg0: tensor<2x4x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x4x4x8xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<0.000000e+00> : tensor<2x4x4x4xf32>
    %cst_2 = arith.constant 0xFFF0000000000000 : f64
    %cst_3 = arith.constant 0.59460355750136051 : f64
    %0 = tensor.empty() : tensor<2x4x4x8xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x4x4x8xf32>) outs(%0 : tensor<2x4x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.truncf %cst_3 : f64 to f32
      %32 = arith.mulf %in, %31 : f32
      linalg.yield %32 : f32
    } -> tensor<2x4x4x8xf32>
    %2 = tensor.empty() : tensor<2x2x2x4x8xf32>
    %3 = linalg.generic {indexing_maps = [#map1, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%arg1 : tensor<2x2x4x8xf32>) outs(%2 : tensor<2x2x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<2x2x2x4x8xf32>
    %collapsed = tensor.collapse_shape %3 [[0], [1, 2], [3], [4]] : tensor<2x2x2x4x8xf32> into tensor<2x4x4x8xf32>
    %4 = linalg.generic {indexing_maps = [#map1, #map2], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%arg2 : tensor<2x2x4x8xf32>) outs(%2 : tensor<2x2x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<2x2x2x4x8xf32>
    %5 = tensor.empty() : tensor<2x4x8x4xf32>
    %transposed = linalg.transpose ins(%collapsed : tensor<2x4x4x8xf32>) outs(%5 : tensor<2x4x8x4xf32>) permutation = [0, 1, 3, 2] 
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<2x4x8x4xf32>) outs(%5 : tensor<2x4x8x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.truncf %cst_3 : f64 to f32
      %32 = arith.mulf %in, %31 : f32
      linalg.yield %32 : f32
    } -> tensor<2x4x8x4xf32>
    %collapsed_4 = tensor.collapse_shape %1 [[0, 1], [2], [3]] : tensor<2x4x4x8xf32> into tensor<8x4x8xf32>
    %collapsed_5 = tensor.collapse_shape %6 [[0, 1], [2], [3]] : tensor<2x4x8x4xf32> into tensor<8x8x4xf32>
    %7 = tensor.empty() : tensor<8x4x4xf32>
    %8 = linalg.fill ins(%cst : f32) outs(%7 : tensor<8x4x4xf32>) -> tensor<8x4x4xf32>
    %9 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<8x4x8xf32>, tensor<8x8x4xf32>) outs(%8 : tensor<8x4x4xf32>) -> tensor<8x4x4xf32>
    %expanded = tensor.expand_shape %9 [[0, 1], [2], [3]] output_shape [2, 4, 4, 4] : tensor<8x4x4xf32> into tensor<2x4x4x4xf32>
    %10 = tensor.empty() : tensor<2x4x4xi64>
    %11 = linalg.fill ins(%c0_i64 : i64) outs(%10 : tensor<2x4x4xi64>) -> tensor<2x4x4xi64>
    %12 = tensor.empty() : tensor<2x4x4xf32>
    %13 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %14:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%expanded : tensor<2x4x4x4xf32>) outs(%13, %11 : tensor<2x4x4xf32>, tensor<2x4x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_10: i64):
      %31 = linalg.index 3 : index
      %32 = arith.index_cast %31 : index to i64
      %33 = arith.maximumf %in, %out : f32
      %34 = arith.cmpf ogt, %in, %out : f32
      %35 = arith.select %34, %32, %out_10 : i64
      linalg.yield %33, %35 : f32, i64
    } -> (tensor<2x4x4xf32>, tensor<2x4x4xi64>)
    %expanded_6 = tensor.expand_shape %14#0 [[0], [1], [2, 3]] output_shape [2, 4, 4, 1] : tensor<2x4x4xf32> into tensor<2x4x4x1xf32>
    %15 = tensor.empty() : tensor<2x4x4x4xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %expanded_6 : tensor<2x4x4x4xf32>, tensor<2x4x4x1xf32>) outs(%15 : tensor<2x4x4x4xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %31 = arith.subf %in, %in_10 : f32
      linalg.yield %31 : f32
    } -> tensor<2x4x4x4xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16 : tensor<2x4x4x4xf32>) outs(%15 : tensor<2x4x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = math.exp %in : f32
      linalg.yield %31 : f32
    } -> tensor<2x4x4x4xf32>
    %18 = tensor.empty() : tensor<2x4x4x1xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<2x4x4x1xf32>) -> tensor<2x4x4x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<2x4x4x4xf32>) outs(%19 : tensor<2x4x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.addf %in, %out : f32
      linalg.yield %31 : f32
    } -> tensor<2x4x4x1xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %20 : tensor<2x4x4x4xf32>, tensor<2x4x4x1xf32>) outs(%15 : tensor<2x4x4x4xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %31 = arith.divf %in, %in_10 : f32
      linalg.yield %31 : f32
    } -> tensor<2x4x4x4xf32>
    %22 = tensor.empty() : tensor<2x4x4x4xi1>
    %23 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x4x4x4xf32>) outs(%22 : tensor<2x4x4x4xi1>) {
    ^bb0(%in: f32, %out: i1):
      %31 = arith.extf %in : f32 to f64
      %32 = arith.cmpf oeq, %31, %cst_2 : f64
      linalg.yield %32 : i1
    } -> tensor<2x4x4x4xi1>
    %24 = tensor.empty() : tensor<2x4x4x1xi1>
    %25 = linalg.fill ins(%true : i1) outs(%24 : tensor<2x4x4x1xi1>) -> tensor<2x4x4x1xi1>
    %26 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%23 : tensor<2x4x4x4xi1>) outs(%25 : tensor<2x4x4x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %31 = arith.andi %in, %out : i1
      linalg.yield %31 : i1
    } -> tensor<2x4x4x1xi1>
    %27 = linalg.generic {indexing_maps = [#map4, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%26, %cst_1, %21 : tensor<2x4x4x1xi1>, tensor<2x4x4x4xf32>, tensor<2x4x4x4xf32>) outs(%15 : tensor<2x4x4x4xf32>) {
    ^bb0(%in: i1, %in_10: f32, %in_11: f32, %out: f32):
      %31 = arith.select %in, %in_10, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x4x4x4xf32>
    %collapsed_7 = tensor.collapse_shape %27 [[0, 1], [2], [3]] : tensor<2x4x4x4xf32> into tensor<8x4x4xf32>
    %collapsed_8 = tensor.collapse_shape %4 [[0, 1, 2], [3], [4]] : tensor<2x2x2x4x8xf32> into tensor<8x4x8xf32>
    %28 = tensor.empty() : tensor<8x4x8xf32>
    %29 = linalg.fill ins(%cst : f32) outs(%28 : tensor<8x4x8xf32>) -> tensor<8x4x8xf32>
    %30 = linalg.batch_matmul ins(%collapsed_7, %collapsed_8 : tensor<8x4x4xf32>, tensor<8x4x8xf32>) outs(%29 : tensor<8x4x8xf32>) -> tensor<8x4x8xf32>
    %expanded_9 = tensor.expand_shape %30 [[0, 1], [2], [3]] output_shape [2, 4, 4, 8] : tensor<8x4x8xf32> into tensor<2x4x4x8xf32>
    return %expanded_9 : tensor<2x4x4x8xf32>
  }
}

// -----

// scores.masked_fill(m, -1e4): the select *replaces* the score; a fully masked row is
// uniform in PyTorch. Keys where the fill is taken (m true) get FLOOR.
// CHECK-LABEL: func.func @masked_fill_1e4(
// CHECK-SAME:    %[[M:[a-z0-9]+]]: tensor<2x1x1x4xi1>)
// CHECK:         linalg.generic {{.*}} ins(%[[M]], %{{.+}} : tensor<2x1x1x4xi1>, tensor<f32>) outs({{.*}} : tensor<2x4xf32>)
// CHECK:         ^bb0(%[[HIDE:.+]]: i1, %[[FILL:.+]]: f32, %{{.+}}: f32):
// CHECK:           %[[B:.+]] = arith.select %[[HIDE]], %[[FILL]], %{{.+}} : f32
// CHECK:           %[[ABSORBED:.+]] = arith.cmpf ole, %[[B]]
// CHECK:           %[[FORCED:.+]] = arith.ori %[[ABSORBED]], %[[HIDE]] : i1
// CHECK:           arith.select %[[FORCED]], %{{.+}}, %{{.+}} : f32
// CHECK:         iree_linalg_ext.attention
// REMARK: raise-attention-masks.mlir:744:11: remark: raised to iree_linalg_ext.attention ({{.*}}mask=[2, 4])

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> ()>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @masked_fill_1e4(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>, %arg3: tensor<2x1x1x4xi1>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<-1.000000e+04> : tensor<f32>
    %cst_2 = arith.constant 4.000000e+00 : f32
    %0 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_3 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_3 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %4 = tensor.empty() : tensor<2x2x4x4xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.divf %in, %cst_2 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %6 = linalg.generic {indexing_maps = [#map1, #map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg3, %cst_1, %5 : tensor<2x1x1x4xi1>, tensor<f32>, tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_8: f32, %in_9: f32, %out: f32):
      %21 = arith.select %in, %in_8, %in_9 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %7 = tensor.empty() : tensor<2x2x4xi64>
    %8 = linalg.fill ins(%c0_i64 : i64) outs(%7 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %9 = tensor.empty() : tensor<2x2x4xf32>
    %10 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %11:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%6 : tensor<2x2x4x4xf32>) outs(%10, %8 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_8: i64):
      %21 = linalg.index 3 : index
      %22 = arith.index_cast %21 : index to i64
      %23 = arith.maximumf %in, %out : f32
      %24 = arith.cmpf ogt, %in, %out : f32
      %25 = arith.select %24, %22, %out_8 : i64
      linalg.yield %23, %25 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_4 = tensor.expand_shape %11#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%6, %expanded_4 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %21 = arith.subf %in, %in_8 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12 : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = math.exp %in : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %14 = tensor.empty() : tensor<2x2x4x1xf32>
    %15 = linalg.fill ins(%cst : f32) outs(%14 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%13 : tensor<2x2x4x4xf32>) outs(%15 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.addf %in, %out : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %16 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %21 = arith.divf %in, %in_8 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_5 = tensor.collapse_shape %17 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_6 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %18 = tensor.empty() : tensor<4x4x8xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %20 = linalg.batch_matmul ins(%collapsed_5, %collapsed_6 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%19 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_7 = tensor.expand_shape %20 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_7 : tensor<2x2x4x8xf32>
  }
}

// -----

// An f16 model adding an f16 mask (finfo(f16).min = -65504): fl16(s - 65504) = -65504 for
// |s| < 16, so values at or below -2^14 (f16's absorption limit) become FLOOR.
// CHECK-LABEL: func.func @f16_finfo_min(
// CHECK:         linalg.generic {{.*}} outs({{.*}} : tensor<2x4xf32>)
// CHECK:           %[[B16:.+]] = arith.addf %{{.+}}, %{{.+}} : f16
// CHECK:           %[[B:.+]] = arith.extf %[[B16]] : f16 to f32
// CHECK:           %[[LIMIT:.+]] = arith.constant -1.638400e+04 : f32
// CHECK:           arith.cmpf ole, %[[B]], %[[LIMIT]] : f32
// CHECK:         iree_linalg_ext.attention
// CHECK-SAME:      tensor<2x4xf32>) outs(%{{.+}} : tensor<2x2x4x8xf16>)
// REMARK: raise-attention-masks.mlir:846:11: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @f16_finfo_min(%arg0: tensor<2x2x4x8xf16>, %arg1: tensor<2x2x4x8xf16>, %arg2: tensor<2x2x4x8xf16>, %arg3: tensor<2x1x1x4xf16>) -> tensor<2x2x4x8xf16> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 4.000000e+00 : f16
    %0 = tensor.empty() : tensor<2x2x8x4xf16>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf16>) outs(%0 : tensor<2x2x8x4xf16>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf16> into tensor<4x4x8xf16>
    %collapsed_2 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf16> into tensor<4x8x4xf16>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_2 : tensor<4x4x8xf16>, tensor<4x8x4xf16>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %4 = tensor.empty() : tensor<4x4x4xf16>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<4x4x4xf32>) outs(%4 : tensor<4x4x4xf16>) {
    ^bb0(%in: f32, %out: f16):
      %28 = arith.truncf %in : f32 to f16
      linalg.yield %28 : f16
    } -> tensor<4x4x4xf16>
    %expanded = tensor.expand_shape %5 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf16> into tensor<2x2x4x4xf16>
    %6 = tensor.empty() : tensor<2x2x4x4xf16>
    %7 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf16>) outs(%6 : tensor<2x2x4x4xf16>) {
    ^bb0(%in: f16, %out: f16):
      %28 = arith.divf %in, %cst_1 : f16
      linalg.yield %28 : f16
    } -> tensor<2x2x4x4xf16>
    %8 = linalg.generic {indexing_maps = [#map1, #map2, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%7, %arg3 : tensor<2x2x4x4xf16>, tensor<2x1x1x4xf16>) outs(%6 : tensor<2x2x4x4xf16>) {
    ^bb0(%in: f16, %in_7: f16, %out: f16):
      %28 = arith.addf %in, %in_7 : f16
      linalg.yield %28 : f16
    } -> tensor<2x2x4x4xf16>
    %9 = tensor.empty() : tensor<2x2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%8 : tensor<2x2x4x4xf16>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f16, %out: f32):
      %28 = arith.extf %in : f16 to f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %11 = tensor.empty() : tensor<2x2x4xi64>
    %12 = linalg.fill ins(%c0_i64 : i64) outs(%11 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %13 = tensor.empty() : tensor<2x2x4xf32>
    %14 = linalg.fill ins(%cst_0 : f32) outs(%13 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %15:2 = linalg.generic {indexing_maps = [#map1, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%14, %12 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_7: i64):
      %28 = linalg.index 3 : index
      %29 = arith.index_cast %28 : index to i64
      %30 = arith.maximumf %in, %out : f32
      %31 = arith.cmpf ogt, %in, %out : f32
      %32 = arith.select %31, %29, %out_7 : i64
      linalg.yield %30, %32 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_3 = tensor.expand_shape %15#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map1, #map4, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10, %expanded_3 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %28 = arith.subf %in, %in_7 : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %17 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16 : tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %28 = math.exp %in : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %18 = tensor.empty() : tensor<2x2x4x1xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %20 = linalg.generic {indexing_maps = [#map1, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<2x2x4x4xf32>) outs(%19 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %28 = arith.addf %in, %out : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x1xf32>
    %21 = linalg.generic {indexing_maps = [#map1, #map4, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %20 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %28 = arith.divf %in, %in_7 : f32
      linalg.yield %28 : f32
    } -> tensor<2x2x4x4xf32>
    %22 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%21 : tensor<2x2x4x4xf32>) outs(%6 : tensor<2x2x4x4xf16>) {
    ^bb0(%in: f32, %out: f16):
      %28 = arith.truncf %in : f32 to f16
      linalg.yield %28 : f16
    } -> tensor<2x2x4x4xf16>
    %collapsed_4 = tensor.collapse_shape %22 [[0, 1], [2], [3]] : tensor<2x2x4x4xf16> into tensor<4x4x4xf16>
    %collapsed_5 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf16> into tensor<4x4x8xf16>
    %23 = tensor.empty() : tensor<4x4x8xf32>
    %24 = linalg.fill ins(%cst : f32) outs(%23 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %25 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x4x4xf16>, tensor<4x4x8xf16>) outs(%24 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %26 = tensor.empty() : tensor<4x4x8xf16>
    %27 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%25 : tensor<4x4x8xf32>) outs(%26 : tensor<4x4x8xf16>) {
    ^bb0(%in: f32, %out: f16):
      %28 = arith.truncf %in : f32 to f16
      linalg.yield %28 : f16
    } -> tensor<4x4x8xf16>
    %expanded_6 = tensor.expand_shape %27 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf16> into tensor<2x2x4x8xf16>
    return %expanded_6 : tensor<2x2x4x8xf16>
  }
}

// -----

// Near miss: masked_fill(m, -100.0) is a finite fill a softmax can still see: left alone.
// CHECK-LABEL: func.func @masked_fill_100(
// CHECK-NOT:     iree_linalg_ext.attention
// CHECK:         linalg.softmax
// CHECK:         linalg.batch_matmul
// REMARK: raise-attention-masks.mlir:943:11: remark: attention not raised: a select() replaces scores by something other than -inf / a very negative fill

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> ()>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @masked_fill_100(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>, %arg3: tensor<2x1x1x4xi1>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<-1.000000e+02> : tensor<f32>
    %cst_2 = arith.constant 4.000000e+00 : f32
    %0 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_3 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_3 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %4 = tensor.empty() : tensor<2x2x4x4xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.divf %in, %cst_2 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %6 = linalg.generic {indexing_maps = [#map1, #map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg3, %cst_1, %5 : tensor<2x1x1x4xi1>, tensor<f32>, tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_8: f32, %in_9: f32, %out: f32):
      %21 = arith.select %in, %in_8, %in_9 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %7 = tensor.empty() : tensor<2x2x4xi64>
    %8 = linalg.fill ins(%c0_i64 : i64) outs(%7 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %9 = tensor.empty() : tensor<2x2x4xf32>
    %10 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %11:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%6 : tensor<2x2x4x4xf32>) outs(%10, %8 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_8: i64):
      %21 = linalg.index 3 : index
      %22 = arith.index_cast %21 : index to i64
      %23 = arith.maximumf %in, %out : f32
      %24 = arith.cmpf ogt, %in, %out : f32
      %25 = arith.select %24, %22, %out_8 : i64
      linalg.yield %23, %25 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_4 = tensor.expand_shape %11#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%6, %expanded_4 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %21 = arith.subf %in, %in_8 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12 : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = math.exp %in : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %14 = tensor.empty() : tensor<2x2x4x1xf32>
    %15 = linalg.fill ins(%cst : f32) outs(%14 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%13 : tensor<2x2x4x4xf32>) outs(%15 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.addf %in, %out : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %16 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %21 = arith.divf %in, %in_8 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_5 = tensor.collapse_shape %17 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_6 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %18 = tensor.empty() : tensor<4x4x8xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %20 = linalg.batch_matmul ins(%collapsed_5, %collapsed_6 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%19 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_7 = tensor.expand_shape %20 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_7 : tensor<2x2x4x8xf32>
  }
}

// -----

// Near miss: a _safe_softmax-like guard that writes 1, not 0, on fully masked rows: the
// probabilities are modified before the second matmul, so it is left alone.
// CHECK-LABEL: func.func @near_miss_guard_fills_one(
// CHECK-NOT:     iree_linalg_ext.attention
// CHECK:         linalg.batch_matmul
// REMARK: raise-attention-masks.mlir:1047:11: remark: attention not raised: {{.+}}

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> ()>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @near_miss_guard_fills_one(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>, %arg3: tensor<2x1x1x4xi1>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %cst_1 = arith.constant dense<1.000000e+00> : tensor<2x2x4x4xf32>
    %cst_2 = arith.constant 0.59460355750136051 : f64
    %cst_3 = arith.constant 0xFFF0000000000000 : f64
    %cst_4 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_5 = arith.constant dense<0.000000e+00> : tensor<f32>
    %0 = tensor.empty() : tensor<2x1x1x4xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map1, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg3, %cst_5, %cst_4 : tensor<2x1x1x4xi1>, tensor<f32>, tensor<f32>) outs(%0 : tensor<2x1x1x4xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<2x1x1x4xf32>
    %2 = tensor.empty() : tensor<2x2x4x8xf32>
    %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x2x4x8xf32>) outs(%2 : tensor<2x2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.truncf %cst_2 : f64 to f32
      %32 = arith.mulf %in, %31 : f32
      linalg.yield %32 : f32
    } -> tensor<2x2x4x8xf32>
    %4 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%4 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%transposed : tensor<2x2x8x4xf32>) outs(%4 : tensor<2x2x8x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.truncf %cst_2 : f64 to f32
      %32 = arith.mulf %in, %31 : f32
      linalg.yield %32 : f32
    } -> tensor<2x2x8x4xf32>
    %collapsed = tensor.collapse_shape %3 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_6 = tensor.collapse_shape %5 [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %6 = tensor.empty() : tensor<4x4x4xf32>
    %7 = linalg.fill ins(%cst : f32) outs(%6 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %8 = linalg.batch_matmul ins(%collapsed, %collapsed_6 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%7 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %8 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %9 = tensor.empty() : tensor<2x2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %1 : tensor<2x2x4x4xf32>, tensor<2x1x1x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.addf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %11 = tensor.empty() : tensor<2x2x4xi64>
    %12 = linalg.fill ins(%c0_i64 : i64) outs(%11 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %13 = tensor.empty() : tensor<2x2x4xf32>
    %14 = linalg.fill ins(%cst_0 : f32) outs(%13 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %15:2 = linalg.generic {indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%14, %12 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_11: i64):
      %31 = linalg.index 3 : index
      %32 = arith.index_cast %31 : index to i64
      %33 = arith.maximumf %in, %out : f32
      %34 = arith.cmpf ogt, %in, %out : f32
      %35 = arith.select %34, %32, %out_11 : i64
      linalg.yield %33, %35 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_7 = tensor.expand_shape %15#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10, %expanded_7 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.subf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16 : tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = math.exp %in : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %18 = tensor.empty() : tensor<2x2x4x1xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%17 : tensor<2x2x4x4xf32>) outs(%19 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %31 = arith.addf %in, %out : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x1xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17, %20 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_11: f32, %out: f32):
      %31 = arith.divf %in, %in_11 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %22 = tensor.empty() : tensor<2x2x4x4xi1>
    %23 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%22 : tensor<2x2x4x4xi1>) {
    ^bb0(%in: f32, %out: i1):
      %31 = arith.extf %in : f32 to f64
      %32 = arith.cmpf oeq, %31, %cst_3 : f64
      linalg.yield %32 : i1
    } -> tensor<2x2x4x4xi1>
    %24 = tensor.empty() : tensor<2x2x4x1xi1>
    %25 = linalg.fill ins(%true : i1) outs(%24 : tensor<2x2x4x1xi1>) -> tensor<2x2x4x1xi1>
    %26 = linalg.generic {indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%23 : tensor<2x2x4x4xi1>) outs(%25 : tensor<2x2x4x1xi1>) {
    ^bb0(%in: i1, %out: i1):
      %31 = arith.andi %in, %out : i1
      linalg.yield %31 : i1
    } -> tensor<2x2x4x1xi1>
    %27 = linalg.generic {indexing_maps = [#map4, #map, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%26, %cst_1, %21 : tensor<2x2x4x1xi1>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_11: f32, %in_12: f32, %out: f32):
      %31 = arith.select %in, %in_11, %in_12 : f32
      linalg.yield %31 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_8 = tensor.collapse_shape %27 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_9 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %28 = tensor.empty() : tensor<4x4x8xf32>
    %29 = linalg.fill ins(%cst : f32) outs(%28 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %30 = linalg.batch_matmul ins(%collapsed_8, %collapsed_9 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%29 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_10 = tensor.expand_shape %30 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_10 : tensor<2x2x4x8xf32>
  }
}
