// RUN: attn-opt --split-input-file --raise-attention %s | FileCheck %s
// RUN: attn-opt --split-input-file --raise-attention --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
//
// raise-attention on the linalg that torch-mlir emits. Positive cases check the exact
// attention op (maps, scale, mask operand); near-misses check the IR is untouched and
// the reason reported.

// softmax(Q K^T / sqrt(d)) V on 4-D (B, H, S, D) f32, as torch.matmul emits it: transpose + collapsed batch dims.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d4)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d3)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @attention_4d_f32(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 0.353553385 : f32
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]] : tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, f32)
// CHECK-SAME:      outs(%{{.+}} : tensor<2x2x4x8xf32>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @attention_4d_f32(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 2.8284271247461903 : f64
    %0 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_2 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_2 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %4 = tensor.empty() : tensor<2x2x4x4xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %20 = arith.truncf %cst_1 : f64 to f32
      %21 = arith.divf %in, %20 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %6 = tensor.empty() : tensor<2x2x4xi64>
    %7 = linalg.fill ins(%c0_i64 : i64) outs(%6 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %8 = tensor.empty() : tensor<2x2x4xf32>
    %9 = linalg.fill ins(%cst_0 : f32) outs(%8 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %10:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%5 : tensor<2x2x4x4xf32>) outs(%9, %7 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_7: i64):
      %20 = linalg.index 3 : index
      %21 = arith.index_cast %20 : index to i64
      %22 = arith.maximumf %in, %out : f32
      %23 = arith.cmpf ogt, %in, %out : f32
      %24 = arith.select %23, %21, %out_7 : i64
      linalg.yield %22, %24 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_3 = tensor.expand_shape %10#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%5, %expanded_3 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %20 = arith.subf %in, %in_7 : f32
      linalg.yield %20 : f32
    } -> tensor<2x2x4x4xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%11 : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %20 = math.exp %in : f32
      linalg.yield %20 : f32
    } -> tensor<2x2x4x4xf32>
    %13 = tensor.empty() : tensor<2x2x4x1xf32>
    %14 = linalg.fill ins(%cst : f32) outs(%13 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%12 : tensor<2x2x4x4xf32>) outs(%14 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %20 = arith.addf %in, %out : f32
      linalg.yield %20 : f32
    } -> tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12, %15 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %20 = arith.divf %in, %in_7 : f32
      linalg.yield %20 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_4 = tensor.collapse_shape %16 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_5 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %17 = tensor.empty() : tensor<4x4x8xf32>
    %18 = linalg.fill ins(%cst : f32) outs(%17 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %19 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%18 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_6 = tensor.expand_shape %19 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_6 : tensor<2x2x4x8xf32>
  }
}

// -----

// 3-D (B*H, S, D) f32 cross-attention (Sq=4, Skv=6).
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d3)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @attention_3d_f32(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 0.353553385 : f32
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]] : tensor<4x4x8xf32>, tensor<4x6x8xf32>, tensor<4x6x8xf32>, f32)
// CHECK-SAME:      outs(%{{.+}} : tensor<4x4x8xf32>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @attention_3d_f32(%arg0: tensor<4x4x8xf32>, %arg1: tensor<4x6x8xf32>, %arg2: tensor<4x6x8xf32>) -> tensor<4x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 2.8284271247461903 : f64
    %0 = tensor.empty() : tensor<4x8x6xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<4x6x8xf32>) outs(%0 : tensor<4x8x6xf32>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<4x4x6xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x6xf32>) -> tensor<4x4x6xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<4x4x8xf32>, tensor<4x8x6xf32>) outs(%2 : tensor<4x4x6xf32>) -> tensor<4x4x6xf32>
    %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<4x4x6xf32>) outs(%1 : tensor<4x4x6xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.truncf %cst_1 : f64 to f32
      %20 = arith.divf %in, %19 : f32
      linalg.yield %20 : f32
    } -> tensor<4x4x6xf32>
    %5 = tensor.empty() : tensor<4x4xi64>
    %6 = linalg.fill ins(%c0_i64 : i64) outs(%5 : tensor<4x4xi64>) -> tensor<4x4xi64>
    %7 = tensor.empty() : tensor<4x4xf32>
    %8 = linalg.fill ins(%cst_0 : f32) outs(%7 : tensor<4x4xf32>) -> tensor<4x4xf32>
    %9:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<4x4x6xf32>) outs(%8, %6 : tensor<4x4xf32>, tensor<4x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_2: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_2 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<4x4xf32>, tensor<4x4xi64>)
    %expanded = tensor.expand_shape %9#0 [[0], [1, 2]] output_shape [4, 4, 1] : tensor<4x4xf32> into tensor<4x4x1xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%4, %expanded : tensor<4x4x6xf32>, tensor<4x4x1xf32>) outs(%1 : tensor<4x4x6xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %19 = arith.subf %in, %in_2 : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x6xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<4x4x6xf32>) outs(%1 : tensor<4x4x6xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x6xf32>
    %12 = tensor.empty() : tensor<4x4x1xf32>
    %13 = linalg.fill ins(%cst : f32) outs(%12 : tensor<4x4x1xf32>) -> tensor<4x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%11 : tensor<4x4x6xf32>) outs(%13 : tensor<4x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<4x4x6xf32>, tensor<4x4x1xf32>) outs(%1 : tensor<4x4x6xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %19 = arith.divf %in, %in_2 : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x6xf32>
    %16 = tensor.empty() : tensor<4x4x8xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %18 = linalg.batch_matmul ins(%15, %arg2 : tensor<4x4x6xf32>, tensor<4x6x8xf32>) outs(%17 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    return %18 : tensor<4x4x8xf32>
  }
}

// -----

// 3-D f16: f32 accumulation, f16 scale, the softmax upcast to f32; the op yields f16 directly (the P.V truncation folds in).
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d3)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @attention_3d_f16(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 3.535160e-01 : f16
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]] : tensor<4x4x8xf16>, tensor<4x4x8xf16>, tensor<4x4x8xf16>, f16)
// CHECK-SAME:      outs(%{{.+}} : tensor<4x4x8xf16>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK-NOT:     arith.truncf
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @attention_3d_f16(%arg0: tensor<4x4x8xf16>, %arg1: tensor<4x4x8xf16>, %arg2: tensor<4x4x8xf16>) -> tensor<4x4x8xf16> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 2.8284271247461903 : f64
    %0 = tensor.empty() : tensor<4x8x4xf16>
    %transposed = linalg.transpose ins(%arg1 : tensor<4x4x8xf16>) outs(%0 : tensor<4x8x4xf16>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<4x4x8xf16>, tensor<4x8x4xf16>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %4 = tensor.empty() : tensor<4x4x4xf16>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<4x4x4xf32>) outs(%4 : tensor<4x4x4xf16>) {
    ^bb0(%in: f32, %out: f16):
      %25 = arith.truncf %in : f32 to f16
      linalg.yield %25 : f16
    } -> tensor<4x4x4xf16>
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%5 : tensor<4x4x4xf16>) outs(%4 : tensor<4x4x4xf16>) {
    ^bb0(%in: f16, %out: f16):
      %25 = arith.truncf %cst_1 : f64 to f16
      %26 = arith.divf %in, %25 : f16
      linalg.yield %26 : f16
    } -> tensor<4x4x4xf16>
    %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<4x4x4xf16>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f16, %out: f32):
      %25 = arith.extf %in : f16 to f32
      linalg.yield %25 : f32
    } -> tensor<4x4x4xf32>
    %8 = tensor.empty() : tensor<4x4xi64>
    %9 = linalg.fill ins(%c0_i64 : i64) outs(%8 : tensor<4x4xi64>) -> tensor<4x4xi64>
    %10 = tensor.empty() : tensor<4x4xf32>
    %11 = linalg.fill ins(%cst_0 : f32) outs(%10 : tensor<4x4xf32>) -> tensor<4x4xf32>
    %12:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%7 : tensor<4x4x4xf32>) outs(%11, %9 : tensor<4x4xf32>, tensor<4x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_2: i64):
      %25 = linalg.index 2 : index
      %26 = arith.index_cast %25 : index to i64
      %27 = arith.maximumf %in, %out : f32
      %28 = arith.cmpf ogt, %in, %out : f32
      %29 = arith.select %28, %26, %out_2 : i64
      linalg.yield %27, %29 : f32, i64
    } -> (tensor<4x4xf32>, tensor<4x4xi64>)
    %expanded = tensor.expand_shape %12#0 [[0], [1, 2]] output_shape [4, 4, 1] : tensor<4x4xf32> into tensor<4x4x1xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7, %expanded : tensor<4x4x4xf32>, tensor<4x4x1xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %25 = arith.subf %in, %in_2 : f32
      linalg.yield %25 : f32
    } -> tensor<4x4x4xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%13 : tensor<4x4x4xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %25 = math.exp %in : f32
      linalg.yield %25 : f32
    } -> tensor<4x4x4xf32>
    %15 = tensor.empty() : tensor<4x4x1xf32>
    %16 = linalg.fill ins(%cst : f32) outs(%15 : tensor<4x4x1xf32>) -> tensor<4x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%14 : tensor<4x4x4xf32>) outs(%16 : tensor<4x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %25 = arith.addf %in, %out : f32
      linalg.yield %25 : f32
    } -> tensor<4x4x1xf32>
    %18 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%14, %17 : tensor<4x4x4xf32>, tensor<4x4x1xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %25 = arith.divf %in, %in_2 : f32
      linalg.yield %25 : f32
    } -> tensor<4x4x4xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%18 : tensor<4x4x4xf32>) outs(%4 : tensor<4x4x4xf16>) {
    ^bb0(%in: f32, %out: f16):
      %25 = arith.truncf %in : f32 to f16
      linalg.yield %25 : f16
    } -> tensor<4x4x4xf16>
    %20 = tensor.empty() : tensor<4x4x8xf32>
    %21 = linalg.fill ins(%cst : f32) outs(%20 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %22 = linalg.batch_matmul ins(%19, %arg2 : tensor<4x4x4xf16>, tensor<4x4x8xf16>) outs(%21 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %23 = tensor.empty() : tensor<4x4x8xf16>
    %24 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%22 : tensor<4x4x8xf32>) outs(%23 : tensor<4x4x8xf16>) {
    ^bb0(%in: f32, %out: f16):
      %25 = arith.truncf %in : f32 to f16
      linalg.yield %25 : f16
    } -> tensor<4x4x8xf16>
    return %24 : tensor<4x4x8xf16>
  }
}

// -----

// 4-D f16.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d4)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d3)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @attention_4d_f16(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 3.535160e-01 : f16
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]] : tensor<2x2x4x8xf16>, tensor<2x2x4x8xf16>, tensor<2x2x4x8xf16>, f16)
// CHECK-SAME:      outs(%{{.+}} : tensor<2x2x4x8xf16>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @attention_4d_f16(%arg0: tensor<2x2x4x8xf16>, %arg1: tensor<2x2x4x8xf16>, %arg2: tensor<2x2x4x8xf16>) -> tensor<2x2x4x8xf16> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 2.8284271247461903 : f64
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
      %27 = arith.truncf %in : f32 to f16
      linalg.yield %27 : f16
    } -> tensor<4x4x4xf16>
    %expanded = tensor.expand_shape %5 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf16> into tensor<2x2x4x4xf16>
    %6 = tensor.empty() : tensor<2x2x4x4xf16>
    %7 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf16>) outs(%6 : tensor<2x2x4x4xf16>) {
    ^bb0(%in: f16, %out: f16):
      %27 = arith.truncf %cst_1 : f64 to f16
      %28 = arith.divf %in, %27 : f16
      linalg.yield %28 : f16
    } -> tensor<2x2x4x4xf16>
    %8 = tensor.empty() : tensor<2x2x4x4xf32>
    %9 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%7 : tensor<2x2x4x4xf16>) outs(%8 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f16, %out: f32):
      %27 = arith.extf %in : f16 to f32
      linalg.yield %27 : f32
    } -> tensor<2x2x4x4xf32>
    %10 = tensor.empty() : tensor<2x2x4xi64>
    %11 = linalg.fill ins(%c0_i64 : i64) outs(%10 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %12 = tensor.empty() : tensor<2x2x4xf32>
    %13 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %14:2 = linalg.generic {indexing_maps = [#map1, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%9 : tensor<2x2x4x4xf32>) outs(%13, %11 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_7: i64):
      %27 = linalg.index 3 : index
      %28 = arith.index_cast %27 : index to i64
      %29 = arith.maximumf %in, %out : f32
      %30 = arith.cmpf ogt, %in, %out : f32
      %31 = arith.select %30, %28, %out_7 : i64
      linalg.yield %29, %31 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_3 = tensor.expand_shape %14#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map1, #map3, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%9, %expanded_3 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%8 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %27 = arith.subf %in, %in_7 : f32
      linalg.yield %27 : f32
    } -> tensor<2x2x4x4xf32>
    %16 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%15 : tensor<2x2x4x4xf32>) outs(%8 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %27 = math.exp %in : f32
      linalg.yield %27 : f32
    } -> tensor<2x2x4x4xf32>
    %17 = tensor.empty() : tensor<2x2x4x1xf32>
    %18 = linalg.fill ins(%cst : f32) outs(%17 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %19 = linalg.generic {indexing_maps = [#map1, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%16 : tensor<2x2x4x4xf32>) outs(%18 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %27 = arith.addf %in, %out : f32
      linalg.yield %27 : f32
    } -> tensor<2x2x4x1xf32>
    %20 = linalg.generic {indexing_maps = [#map1, #map3, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16, %19 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%8 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %27 = arith.divf %in, %in_7 : f32
      linalg.yield %27 : f32
    } -> tensor<2x2x4x4xf32>
    %21 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%20 : tensor<2x2x4x4xf32>) outs(%6 : tensor<2x2x4x4xf16>) {
    ^bb0(%in: f32, %out: f16):
      %27 = arith.truncf %in : f32 to f16
      linalg.yield %27 : f16
    } -> tensor<2x2x4x4xf16>
    %collapsed_4 = tensor.collapse_shape %21 [[0, 1], [2], [3]] : tensor<2x2x4x4xf16> into tensor<4x4x4xf16>
    %collapsed_5 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf16> into tensor<4x4x8xf16>
    %22 = tensor.empty() : tensor<4x4x8xf32>
    %23 = linalg.fill ins(%cst : f32) outs(%22 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %24 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x4x4xf16>, tensor<4x4x8xf16>) outs(%23 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %25 = tensor.empty() : tensor<4x4x8xf16>
    %26 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%24 : tensor<4x4x8xf32>) outs(%25 : tensor<4x4x8xf16>) {
    ^bb0(%in: f32, %out: f16):
      %27 = arith.truncf %in : f32 to f16
      linalg.yield %27 : f16
    } -> tensor<4x4x8xf16>
    %expanded_6 = tensor.expand_shape %26 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf16> into tensor<2x2x4x8xf16>
    return %expanded_6 : tensor<2x2x4x8xf16>
  }
}

// -----

// torch.bmm with an explicit K transpose and a multiplied scale.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d3)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @bmm_3d_mul_scale(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 5.000000e-01 : f32
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]]
// CHECK-SAME:      outs(%{{.+}} : tensor<4x4x8xf32>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @bmm_3d_mul_scale(%arg0: tensor<4x4x8xf32>, %arg1: tensor<4x4x8xf32>, %arg2: tensor<4x4x8xf32>) -> tensor<4x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 5.000000e-01 : f32
    %0 = tensor.empty() : tensor<4x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<4x4x8xf32>) outs(%0 : tensor<4x8x4xf32>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<4x4x4xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.mulf %in, %cst_1 : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x4xf32>
    %5 = tensor.empty() : tensor<4x4xi64>
    %6 = linalg.fill ins(%c0_i64 : i64) outs(%5 : tensor<4x4xi64>) -> tensor<4x4xi64>
    %7 = tensor.empty() : tensor<4x4xf32>
    %8 = linalg.fill ins(%cst_0 : f32) outs(%7 : tensor<4x4xf32>) -> tensor<4x4xf32>
    %9:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<4x4x4xf32>) outs(%8, %6 : tensor<4x4xf32>, tensor<4x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_2: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_2 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<4x4xf32>, tensor<4x4xi64>)
    %expanded = tensor.expand_shape %9#0 [[0], [1, 2]] output_shape [4, 4, 1] : tensor<4x4xf32> into tensor<4x4x1xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%4, %expanded : tensor<4x4x4xf32>, tensor<4x4x1xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %19 = arith.subf %in, %in_2 : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x4xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<4x4x4xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x4xf32>
    %12 = tensor.empty() : tensor<4x4x1xf32>
    %13 = linalg.fill ins(%cst : f32) outs(%12 : tensor<4x4x1xf32>) -> tensor<4x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%11 : tensor<4x4x4xf32>) outs(%13 : tensor<4x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<4x4x4xf32>, tensor<4x4x1xf32>) outs(%1 : tensor<4x4x4xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %19 = arith.divf %in, %in_2 : f32
      linalg.yield %19 : f32
    } -> tensor<4x4x4xf32>
    %16 = tensor.empty() : tensor<4x4x8xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %18 = linalg.batch_matmul ins(%15, %arg2 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%17 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    return %18 : tensor<4x4x8xf32>
  }
}

// -----

// No scale at all: scale operand 1.0.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d3)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @no_scale(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]]
// CHECK-SAME:      outs(%{{.+}} : tensor<2x4x8xf32>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @no_scale(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x4x8xf32>, %arg2: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x4x8xf32>) outs(%0 : tensor<2x8x4xf32>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<2x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<2x4x8xf32>, tensor<2x8x4xf32>) outs(%2 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %4 = tensor.empty() : tensor<2x4xi64>
    %5 = linalg.fill ins(%c0_i64 : i64) outs(%4 : tensor<2x4xi64>) -> tensor<2x4xi64>
    %6 = tensor.empty() : tensor<2x4xf32>
    %7 = linalg.fill ins(%cst_0 : f32) outs(%6 : tensor<2x4xf32>) -> tensor<2x4xf32>
    %8:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%3 : tensor<2x4x4xf32>) outs(%7, %5 : tensor<2x4xf32>, tensor<2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_1: i64):
      %18 = linalg.index 2 : index
      %19 = arith.index_cast %18 : index to i64
      %20 = arith.maximumf %in, %out : f32
      %21 = arith.cmpf ogt, %in, %out : f32
      %22 = arith.select %21, %19, %out_1 : i64
      linalg.yield %20, %22 : f32, i64
    } -> (tensor<2x4xf32>, tensor<2x4xi64>)
    %expanded = tensor.expand_shape %8#0 [[0], [1, 2]] output_shape [2, 4, 1] : tensor<2x4xf32> into tensor<2x4x1xf32>
    %9 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %expanded : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %18 = arith.subf %in, %in_1 : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%9 : tensor<2x4x4xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %18 = math.exp %in : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x4xf32>
    %11 = tensor.empty() : tensor<2x4x1xf32>
    %12 = linalg.fill ins(%cst : f32) outs(%11 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%10 : tensor<2x4x4xf32>) outs(%12 : tensor<2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %18 = arith.addf %in, %out : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10, %13 : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %18 = arith.divf %in, %in_1 : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x4xf32>
    %15 = tensor.empty() : tensor<2x4x8xf32>
    %16 = linalg.fill ins(%cst : f32) outs(%15 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %17 = linalg.batch_matmul ins(%14, %arg2 : tensor<2x4x4xf32>, tensor<2x4x8xf32>) outs(%16 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %17 : tensor<2x4x8xf32>
  }
}

// -----

// The scale applied to Q before the matmul folds into the scale operand; Q is read unscaled.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d3)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @scale_on_q(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 5.000000e-01 : f32
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]]
// CHECK-SAME:      outs(%{{.+}} : tensor<2x4x8xf32>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @scale_on_q(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x4x8xf32>, %arg2: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 5.000000e-01 : f32
    %0 = tensor.empty() : tensor<2x4x8xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x4x8xf32>) outs(%0 : tensor<2x4x8xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.mulf %in, %cst_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x8xf32>
    %2 = tensor.empty() : tensor<2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x4x8xf32>) outs(%2 : tensor<2x8x4xf32>) permutation = [0, 2, 1] 
    %3 = tensor.empty() : tensor<2x4x4xf32>
    %4 = linalg.fill ins(%cst : f32) outs(%3 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %5 = linalg.batch_matmul ins(%1, %transposed : tensor<2x4x8xf32>, tensor<2x8x4xf32>) outs(%4 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %6 = tensor.empty() : tensor<2x4xi64>
    %7 = linalg.fill ins(%c0_i64 : i64) outs(%6 : tensor<2x4xi64>) -> tensor<2x4xi64>
    %8 = tensor.empty() : tensor<2x4xf32>
    %9 = linalg.fill ins(%cst_0 : f32) outs(%8 : tensor<2x4xf32>) -> tensor<2x4xf32>
    %10:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%5 : tensor<2x4x4xf32>) outs(%9, %7 : tensor<2x4xf32>, tensor<2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_2: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_2 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<2x4xf32>, tensor<2x4xi64>)
    %expanded = tensor.expand_shape %10#0 [[0], [1, 2]] output_shape [2, 4, 1] : tensor<2x4xf32> into tensor<2x4x1xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%5, %expanded : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%3 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %19 = arith.subf %in, %in_2 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x4xf32>) outs(%3 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %13 = tensor.empty() : tensor<2x4x1xf32>
    %14 = linalg.fill ins(%cst : f32) outs(%13 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%12 : tensor<2x4x4xf32>) outs(%14 : tensor<2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%12, %15 : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%3 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_2: f32, %out: f32):
      %19 = arith.divf %in, %in_2 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%0 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %18 = linalg.batch_matmul ins(%16, %arg2 : tensor<2x4x4xf32>, tensor<2x4x8xf32>) outs(%17 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %18 : tensor<2x4x8xf32>
  }
}

// -----

// (B, S, H, D) inputs permuted to (B, H, S, D) around the core: no transposes are materialised, the maps read the original layout.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d2, d1, d4)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d5, d1, d4)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d5, d1, d3)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @bshd_layout(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         %[[SCALE:.+]] = arith.constant 2.500000e-01 : f32
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %[[SCALE]] : tensor<2x4x2x16xf32>, tensor<2x4x2x16xf32>, tensor<2x4x2x16xf32>, f32)
// CHECK-SAME:      outs(%{{.+}} : tensor<2x2x4x16xf32>)
// CHECK:           iree_linalg_ext.yield
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @bshd_layout(%arg0: tensor<2x4x2x16xf32>, %arg1: tensor<2x4x2x16xf32>, %arg2: tensor<2x4x2x16xf32>) -> tensor<2x4x2x16xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 4.000000e+00 : f32
    %0 = tensor.empty() : tensor<2x2x4x16xf32>
    %transposed = linalg.transpose ins(%arg0 : tensor<2x4x2x16xf32>) outs(%0 : tensor<2x2x4x16xf32>) permutation = [0, 2, 1, 3] 
    %transposed_2 = linalg.transpose ins(%arg2 : tensor<2x4x2x16xf32>) outs(%0 : tensor<2x2x4x16xf32>) permutation = [0, 2, 1, 3] 
    %1 = tensor.empty() : tensor<2x2x16x4xf32>
    %transposed_3 = linalg.transpose ins(%arg1 : tensor<2x4x2x16xf32>) outs(%1 : tensor<2x2x16x4xf32>) permutation = [0, 2, 3, 1] 
    %collapsed = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x4x16xf32> into tensor<4x4x16xf32>
    %collapsed_4 = tensor.collapse_shape %transposed_3 [[0, 1], [2], [3]] : tensor<2x2x16x4xf32> into tensor<4x16x4xf32>
    %2 = tensor.empty() : tensor<4x4x4xf32>
    %3 = linalg.fill ins(%cst : f32) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %4 = linalg.batch_matmul ins(%collapsed, %collapsed_4 : tensor<4x4x16xf32>, tensor<4x16x4xf32>) outs(%3 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %4 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %5 = tensor.empty() : tensor<2x2x4x4xf32>
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%5 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %22 = arith.divf %in, %cst_1 : f32
      linalg.yield %22 : f32
    } -> tensor<2x2x4x4xf32>
    %7 = tensor.empty() : tensor<2x2x4xi64>
    %8 = linalg.fill ins(%c0_i64 : i64) outs(%7 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %9 = tensor.empty() : tensor<2x2x4xf32>
    %10 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %11:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%6 : tensor<2x2x4x4xf32>) outs(%10, %8 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_10: i64):
      %22 = linalg.index 3 : index
      %23 = arith.index_cast %22 : index to i64
      %24 = arith.maximumf %in, %out : f32
      %25 = arith.cmpf ogt, %in, %out : f32
      %26 = arith.select %25, %23, %out_10 : i64
      linalg.yield %24, %26 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_5 = tensor.expand_shape %11#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%6, %expanded_5 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%5 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %22 = arith.subf %in, %in_10 : f32
      linalg.yield %22 : f32
    } -> tensor<2x2x4x4xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12 : tensor<2x2x4x4xf32>) outs(%5 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %22 = math.exp %in : f32
      linalg.yield %22 : f32
    } -> tensor<2x2x4x4xf32>
    %14 = tensor.empty() : tensor<2x2x4x1xf32>
    %15 = linalg.fill ins(%cst : f32) outs(%14 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%13 : tensor<2x2x4x4xf32>) outs(%15 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %22 = arith.addf %in, %out : f32
      linalg.yield %22 : f32
    } -> tensor<2x2x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %16 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%5 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %22 = arith.divf %in, %in_10 : f32
      linalg.yield %22 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_6 = tensor.collapse_shape %17 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_7 = tensor.collapse_shape %transposed_2 [[0, 1], [2], [3]] : tensor<2x2x4x16xf32> into tensor<4x4x16xf32>
    %18 = tensor.empty() : tensor<4x4x16xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
    %20 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<4x4x4xf32>, tensor<4x4x16xf32>) outs(%19 : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
    %expanded_8 = tensor.expand_shape %20 [[0, 1], [2], [3]] output_shape [2, 2, 4, 16] : tensor<4x4x16xf32> into tensor<2x2x4x16xf32>
    %21 = tensor.empty() : tensor<2x4x2x16xf32>
    %transposed_9 = linalg.transpose ins(%expanded_8 : tensor<2x2x4x16xf32>) outs(%21 : tensor<2x4x2x16xf32>) permutation = [0, 2, 1, 3] 
    return %transposed_9 : tensor<2x4x2x16xf32>
  }
}

// -----

// An additive [B, 1, 1, S] padding mask becomes a [B, K2] mask operand, broadcast by its map.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d4)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d3)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[$M:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d5)>
// CHECK-LABEL: func.func @padding_mask(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[PAD:[a-zA-Z0-9_]+]]:
// CHECK:         %[[MASK:.+]] = linalg.generic
// CHECK-SAME:      ins(%[[PAD]] : tensor<2x1x1x4xf32>)
// CHECK:           arith.addf
// CHECK:         } -> tensor<2x4xf32>
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$M]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %{{.+}}, %[[MASK]] : {{.*}}, f32, tensor<2x4xf32>)
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, 0, 0, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @padding_mask(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>, %arg3: tensor<2x1x1x4xf32>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 1.250000e-01 : f32
    %0 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_2 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_2 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %4 = tensor.empty() : tensor<2x2x4x4xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.mulf %in, %cst_1 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %6 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%5, %arg3 : tensor<2x2x4x4xf32>, tensor<2x1x1x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %21 = arith.addf %in, %in_7 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %7 = tensor.empty() : tensor<2x2x4xi64>
    %8 = linalg.fill ins(%c0_i64 : i64) outs(%7 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %9 = tensor.empty() : tensor<2x2x4xf32>
    %10 = linalg.fill ins(%cst_0 : f32) outs(%9 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %11:2 = linalg.generic {indexing_maps = [#map, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%6 : tensor<2x2x4x4xf32>) outs(%10, %8 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_7: i64):
      %21 = linalg.index 3 : index
      %22 = arith.index_cast %21 : index to i64
      %23 = arith.maximumf %in, %out : f32
      %24 = arith.cmpf ogt, %in, %out : f32
      %25 = arith.select %24, %22, %out_7 : i64
      linalg.yield %23, %25 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_3 = tensor.expand_shape %11#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%6, %expanded_3 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %21 = arith.subf %in, %in_7 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%12 : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = math.exp %in : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %14 = tensor.empty() : tensor<2x2x4x1xf32>
    %15 = linalg.fill ins(%cst : f32) outs(%14 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%13 : tensor<2x2x4x4xf32>) outs(%15 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %21 = arith.addf %in, %out : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %16 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %21 = arith.divf %in, %in_7 : f32
      linalg.yield %21 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_4 = tensor.collapse_shape %17 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_5 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %18 = tensor.empty() : tensor<4x4x8xf32>
    %19 = linalg.fill ins(%cst : f32) outs(%18 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %20 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%19 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_6 = tensor.expand_shape %20 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_6 : tensor<2x2x4x8xf32>
  }
}

// -----

// A causal mask from index comparisons (masked_fill with -inf) becomes an [M, K2] mask operand.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d4)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d3)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[$M:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d2, d5)>
// CHECK-LABEL: func.func @causal_index(
// CHECK-SAME:    %[[Q:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[K:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[V:[a-zA-Z0-9_]+]]:
// CHECK:         %[[MASK:.+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<4x4xf32>)
// CHECK:           arith.select
// CHECK:         } -> tensor<4x4xf32>
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$M]], #[[$O]]]>
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %{{.+}}, %[[MASK]] : {{.*}}, f32, tensor<4x4xf32>)
// CHECK-NOT:     linalg.softmax
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0) -> (d0)>
#map2 = affine_map<(d0, d1) -> (d0, 0)>
#map3 = affine_map<(d0, d1) -> (0, d1)>
#map4 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map6 = affine_map<(d0, d1, d2, d3) -> ()>
#map7 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map8 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @causal_index(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
    %c0_i64 = arith.constant 0 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant 1.250000e-01 : f32
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
      %26 = arith.mulf %in, %cst_2 : f32
      linalg.yield %26 : f32
    } -> tensor<2x2x4x4xf32>
    %6 = tensor.empty() : tensor<4xi64>
    %7 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel"]} outs(%6 : tensor<4xi64>) {
    ^bb0(%out: i64):
      %26 = linalg.index 0 : index
      %27 = arith.index_cast %26 : index to i64
      linalg.yield %27 : i64
    } -> tensor<4xi64>
    %expanded_4 = tensor.expand_shape %7 [[0, 1]] output_shape [4, 1] : tensor<4xi64> into tensor<4x1xi64>
    %expanded_5 = tensor.expand_shape %7 [[0, 1]] output_shape [1, 4] : tensor<4xi64> into tensor<1x4xi64>
    %8 = tensor.empty() : tensor<4x4xi1>
    %9 = linalg.generic {indexing_maps = [#map2, #map3, #map4], iterator_types = ["parallel", "parallel"]} ins(%expanded_4, %expanded_5 : tensor<4x1xi64>, tensor<1x4xi64>) outs(%8 : tensor<4x4xi1>) {
    ^bb0(%in: i64, %in_10: i64, %out: i1):
      %26 = arith.cmpi sge, %in, %in_10 : i64
      linalg.yield %26 : i1
    } -> tensor<4x4xi1>
    %10 = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel"]} ins(%9 : tensor<4x4xi1>) outs(%8 : tensor<4x4xi1>) {
    ^bb0(%in: i1, %out: i1):
      %26 = arith.xori %in, %true : i1
      linalg.yield %26 : i1
    } -> tensor<4x4xi1>
    %11 = linalg.generic {indexing_maps = [#map5, #map6, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10, %cst_1, %5 : tensor<4x4xi1>, tensor<f32>, tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: i1, %in_10: f32, %in_11: f32, %out: f32):
      %26 = arith.select %in, %in_10, %in_11 : f32
      linalg.yield %26 : f32
    } -> tensor<2x2x4x4xf32>
    %12 = tensor.empty() : tensor<2x2x4xi64>
    %13 = linalg.fill ins(%c0_i64 : i64) outs(%12 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %14 = tensor.empty() : tensor<2x2x4xf32>
    %15 = linalg.fill ins(%cst_0 : f32) outs(%14 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %16:2 = linalg.generic {indexing_maps = [#map, #map7, #map7], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%11 : tensor<2x2x4x4xf32>) outs(%15, %13 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_10: i64):
      %26 = linalg.index 3 : index
      %27 = arith.index_cast %26 : index to i64
      %28 = arith.maximumf %in, %out : f32
      %29 = arith.cmpf ogt, %in, %out : f32
      %30 = arith.select %29, %27, %out_10 : i64
      linalg.yield %28, %30 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_6 = tensor.expand_shape %16#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%11, %expanded_6 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %26 = arith.subf %in, %in_10 : f32
      linalg.yield %26 : f32
    } -> tensor<2x2x4x4xf32>
    %18 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%17 : tensor<2x2x4x4xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %26 = math.exp %in : f32
      linalg.yield %26 : f32
    } -> tensor<2x2x4x4xf32>
    %19 = tensor.empty() : tensor<2x2x4x1xf32>
    %20 = linalg.fill ins(%cst : f32) outs(%19 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %21 = linalg.generic {indexing_maps = [#map, #map8], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%18 : tensor<2x2x4x4xf32>) outs(%20 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %26 = arith.addf %in, %out : f32
      linalg.yield %26 : f32
    } -> tensor<2x2x4x1xf32>
    %22 = linalg.generic {indexing_maps = [#map, #map8, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%18, %21 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%4 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %26 = arith.divf %in, %in_10 : f32
      linalg.yield %26 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_7 = tensor.collapse_shape %22 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_8 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %23 = tensor.empty() : tensor<4x4x8xf32>
    %24 = linalg.fill ins(%cst : f32) outs(%23 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %25 = linalg.batch_matmul ins(%collapsed_7, %collapsed_8 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%24 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_9 = tensor.expand_shape %25 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_9 : tensor<2x2x4x8xf32>
  }
}

// -----

// A full [B, M, K2] additive bias is passed as the mask operand.
// CHECK-DAG:   #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d3)>
// CHECK-DAG:   #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2)>
// CHECK-DAG:   #[[$S:.+]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG:   #[[$O:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// CHECK-DAG:   #[[$M:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d4)>
// CHECK-LABEL: func.func @full_bias(
// CHECK:         iree_linalg_ext.attention <indexing_maps = [#[[$Q]], #[[$K]], #[[$V]], #[[$S]], #[[$M]], #[[$O]]]>
// CHECK-SAME:      tensor<2x4x6xf32>)
// REMARK: remark: raised to iree_linalg_ext.attention

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @full_bias(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x6x8xf32>, %arg2: tensor<2x6x8xf32>, %arg3: tensor<2x4x6xf32>) -> tensor<2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x8x6xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x6x8xf32>) outs(%0 : tensor<2x8x6xf32>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<2x4x6xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x4x6xf32>) -> tensor<2x4x6xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<2x4x8xf32>, tensor<2x8x6xf32>) outs(%2 : tensor<2x4x6xf32>) -> tensor<2x4x6xf32>
    %4 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %arg3 : tensor<2x4x6xf32>, tensor<2x4x6xf32>) outs(%1 : tensor<2x4x6xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.addf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x6xf32>
    %5 = tensor.empty() : tensor<2x4xi64>
    %6 = linalg.fill ins(%c0_i64 : i64) outs(%5 : tensor<2x4xi64>) -> tensor<2x4xi64>
    %7 = tensor.empty() : tensor<2x4xf32>
    %8 = linalg.fill ins(%cst_0 : f32) outs(%7 : tensor<2x4xf32>) -> tensor<2x4xf32>
    %9:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<2x4x6xf32>) outs(%8, %6 : tensor<2x4xf32>, tensor<2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_1: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_1 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<2x4xf32>, tensor<2x4xi64>)
    %expanded = tensor.expand_shape %9#0 [[0], [1, 2]] output_shape [2, 4, 1] : tensor<2x4xf32> into tensor<2x4x1xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%4, %expanded : tensor<2x4x6xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x6xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.subf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x6xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<2x4x6xf32>) outs(%1 : tensor<2x4x6xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x6xf32>
    %12 = tensor.empty() : tensor<2x4x1xf32>
    %13 = linalg.fill ins(%cst : f32) outs(%12 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%11 : tensor<2x4x6xf32>) outs(%13 : tensor<2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<2x4x6xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x6xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.divf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x6xf32>
    %16 = tensor.empty() : tensor<2x4x8xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %18 = linalg.batch_matmul ins(%15, %arg2 : tensor<2x4x6xf32>, tensor<2x6x8xf32>) outs(%17 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %18 : tensor<2x4x8xf32>
  }
}

// -----

// Near-miss: softmax over dim -2 (the query dim): not attention.
// CHECK-LABEL: func.func @softmax_dim2(
// CHECK:         linalg.softmax
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     iree_linalg_ext.attention
// REMARK: remark: attention not raised: softmax is over dim 2 of the scores, but the second matmul contracts another dim

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, 0, d3)>
module {
  func.func @softmax_dim2(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_1 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_1 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %4 = tensor.empty() : tensor<2x2x4xi64>
    %5 = linalg.fill ins(%c0_i64 : i64) outs(%4 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %6 = tensor.empty() : tensor<2x2x4xf32>
    %7 = linalg.fill ins(%cst_0 : f32) outs(%6 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %8:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction", "parallel"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%7, %5 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_6: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_6 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_2 = tensor.expand_shape %8#0 [[0], [1, 2], [3]] output_shape [2, 2, 1, 4] : tensor<2x2x4xf32> into tensor<2x2x1x4xf32>
    %9 = tensor.empty() : tensor<2x2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %expanded_2 : tensor<2x2x4x4xf32>, tensor<2x2x1x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_6: f32, %out: f32):
      %19 = arith.subf %in, %in_6 : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x4xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x4xf32>
    %12 = tensor.empty() : tensor<2x2x1x4xf32>
    %13 = linalg.fill ins(%cst : f32) outs(%12 : tensor<2x2x1x4xf32>) -> tensor<2x2x1x4xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction", "parallel"]} ins(%11 : tensor<2x2x4x4xf32>) outs(%13 : tensor<2x2x1x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x1x4xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<2x2x4x4xf32>, tensor<2x2x1x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_6: f32, %out: f32):
      %19 = arith.divf %in, %in_6 : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x4xf32>
    %collapsed_3 = tensor.collapse_shape %15 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_4 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %16 = tensor.empty() : tensor<4x4x8xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %18 = linalg.batch_matmul ins(%collapsed_3, %collapsed_4 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%17 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_5 = tensor.expand_shape %18 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_5 : tensor<2x2x4x8xf32>
  }
}

// -----

// Near-miss: P^T V: the second matmul contracts the query dim.
// CHECK-LABEL: func.func @wrong_contraction(
// CHECK:         linalg.softmax
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     iree_linalg_ext.attention
// REMARK: remark: attention not raised: softmax is over dim 3 of the scores, but the second matmul contracts another dim

#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @wrong_contraction(%arg0: tensor<2x2x4x8xf32>, %arg1: tensor<2x2x4x8xf32>, %arg2: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x2x4x8xf32>) outs(%0 : tensor<2x2x8x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %collapsed_1 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<2x2x8x4xf32> into tensor<4x8x4xf32>
    %1 = tensor.empty() : tensor<4x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_1 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) outs(%2 : tensor<4x4x4xf32>) -> tensor<4x4x4xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [2, 2, 4, 4] : tensor<4x4x4xf32> into tensor<2x2x4x4xf32>
    %4 = tensor.empty() : tensor<2x2x4xi64>
    %5 = linalg.fill ins(%c0_i64 : i64) outs(%4 : tensor<2x2x4xi64>) -> tensor<2x2x4xi64>
    %6 = tensor.empty() : tensor<2x2x4xf32>
    %7 = linalg.fill ins(%cst_0 : f32) outs(%6 : tensor<2x2x4xf32>) -> tensor<2x2x4xf32>
    %8:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%expanded : tensor<2x2x4x4xf32>) outs(%7, %5 : tensor<2x2x4xf32>, tensor<2x2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_7: i64):
      %19 = linalg.index 3 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_7 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<2x2x4xf32>, tensor<2x2x4xi64>)
    %expanded_2 = tensor.expand_shape %8#0 [[0], [1], [2, 3]] output_shape [2, 2, 4, 1] : tensor<2x2x4xf32> into tensor<2x2x4x1xf32>
    %9 = tensor.empty() : tensor<2x2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%expanded, %expanded_2 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %19 = arith.subf %in, %in_7 : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x4xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10 : tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x4xf32>
    %12 = tensor.empty() : tensor<2x2x4x1xf32>
    %13 = linalg.fill ins(%cst : f32) outs(%12 : tensor<2x2x4x1xf32>) -> tensor<2x2x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%11 : tensor<2x2x4x4xf32>) outs(%13 : tensor<2x2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<2x2x4x4xf32>, tensor<2x2x4x1xf32>) outs(%9 : tensor<2x2x4x4xf32>) {
    ^bb0(%in: f32, %in_7: f32, %out: f32):
      %19 = arith.divf %in, %in_7 : f32
      linalg.yield %19 : f32
    } -> tensor<2x2x4x4xf32>
    %transposed_3 = linalg.transpose ins(%15 : tensor<2x2x4x4xf32>) outs(%9 : tensor<2x2x4x4xf32>) permutation = [0, 1, 3, 2] 
    %collapsed_4 = tensor.collapse_shape %transposed_3 [[0, 1], [2], [3]] : tensor<2x2x4x4xf32> into tensor<4x4x4xf32>
    %collapsed_5 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<2x2x4x8xf32> into tensor<4x4x8xf32>
    %16 = tensor.empty() : tensor<4x4x8xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %18 = linalg.batch_matmul ins(%collapsed_4, %collapsed_5 : tensor<4x4x4xf32>, tensor<4x4x8xf32>) outs(%17 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
    %expanded_6 = tensor.expand_shape %18 [[0, 1], [2], [3]] output_shape [2, 2, 4, 8] : tensor<4x4x8xf32> into tensor<2x2x4x8xf32>
    return %expanded_6 : tensor<2x2x4x8xf32>
  }
}

// -----

// Near-miss: The probabilities are also returned (need_weights=True style).
// CHECK-LABEL: func.func @probs_returned(
// CHECK:         linalg.softmax
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     iree_linalg_ext.attention
// REMARK: remark: attention not raised: the attention probabilities have 2 uses

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @probs_returned(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x4x8xf32>, %arg2: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>) {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x4x8xf32>) outs(%0 : tensor<2x8x4xf32>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<2x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<2x4x8xf32>, tensor<2x8x4xf32>) outs(%2 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %4 = tensor.empty() : tensor<2x4xi64>
    %5 = linalg.fill ins(%c0_i64 : i64) outs(%4 : tensor<2x4xi64>) -> tensor<2x4xi64>
    %6 = tensor.empty() : tensor<2x4xf32>
    %7 = linalg.fill ins(%cst_0 : f32) outs(%6 : tensor<2x4xf32>) -> tensor<2x4xf32>
    %8:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%3 : tensor<2x4x4xf32>) outs(%7, %5 : tensor<2x4xf32>, tensor<2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_1: i64):
      %18 = linalg.index 2 : index
      %19 = arith.index_cast %18 : index to i64
      %20 = arith.maximumf %in, %out : f32
      %21 = arith.cmpf ogt, %in, %out : f32
      %22 = arith.select %21, %19, %out_1 : i64
      linalg.yield %20, %22 : f32, i64
    } -> (tensor<2x4xf32>, tensor<2x4xi64>)
    %expanded = tensor.expand_shape %8#0 [[0], [1, 2]] output_shape [2, 4, 1] : tensor<2x4xf32> into tensor<2x4x1xf32>
    %9 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %expanded : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %18 = arith.subf %in, %in_1 : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x4xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%9 : tensor<2x4x4xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %18 = math.exp %in : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x4xf32>
    %11 = tensor.empty() : tensor<2x4x1xf32>
    %12 = linalg.fill ins(%cst : f32) outs(%11 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%10 : tensor<2x4x4xf32>) outs(%12 : tensor<2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %18 = arith.addf %in, %out : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10, %13 : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %18 = arith.divf %in, %in_1 : f32
      linalg.yield %18 : f32
    } -> tensor<2x4x4xf32>
    %15 = tensor.empty() : tensor<2x4x8xf32>
    %16 = linalg.fill ins(%cst : f32) outs(%15 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %17 = linalg.batch_matmul ins(%14, %arg2 : tensor<2x4x4xf32>, tensor<2x4x8xf32>) outs(%16 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %17, %14 : tensor<2x4x8xf32>, tensor<2x4x4xf32>
  }
}

// -----

// Near-miss: The raw scores have another use.
// CHECK-LABEL: func.func @scores_two_uses(
// CHECK:         linalg.softmax
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     iree_linalg_ext.attention
// REMARK: remark: attention not raised: the softmax input has another use

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map3 = affine_map<(d0, d1, d2) -> ()>
module {
  func.func @scores_two_uses(%arg0: tensor<2x4x4xf32>, %arg1: tensor<2x4x4xf32>, %arg2: tensor<2x4x4xf32>) -> tensor<2x4x4xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x4x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x4x4xf32>) outs(%0 : tensor<2x4x4xf32>) permutation = [0, 2, 1] 
    %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %2 = linalg.batch_matmul ins(%arg0, %transposed : tensor<2x4x4xf32>, tensor<2x4x4xf32>) outs(%1 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %3 = tensor.empty() : tensor<2x4xi64>
    %4 = linalg.fill ins(%c0_i64 : i64) outs(%3 : tensor<2x4xi64>) -> tensor<2x4xi64>
    %5 = tensor.empty() : tensor<2x4xf32>
    %6 = linalg.fill ins(%cst_0 : f32) outs(%5 : tensor<2x4xf32>) -> tensor<2x4xf32>
    %7:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%2 : tensor<2x4x4xf32>) outs(%6, %4 : tensor<2x4xf32>, tensor<2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_1: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_1 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<2x4xf32>, tensor<2x4xi64>)
    %expanded = tensor.expand_shape %7#0 [[0], [1, 2]] output_shape [2, 4, 1] : tensor<2x4xf32> into tensor<2x4x1xf32>
    %8 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%2, %expanded : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.subf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %9 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8 : tensor<2x4x4xf32>) outs(%0 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %10 = tensor.empty() : tensor<2x4x1xf32>
    %11 = linalg.fill ins(%cst : f32) outs(%10 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
    %12 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%9 : tensor<2x4x4xf32>) outs(%11 : tensor<2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x1xf32>
    %13 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%9, %12 : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.divf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %14 = linalg.batch_matmul ins(%13, %arg2 : tensor<2x4x4xf32>, tensor<2x4x4xf32>) outs(%1 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %15 = tensor.empty() : tensor<f32>
    %16 = linalg.fill ins(%cst : f32) outs(%15 : tensor<f32>) -> tensor<f32>
    %17 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["reduction", "reduction", "reduction"]} ins(%2 : tensor<2x4x4xf32>) outs(%16 : tensor<f32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<f32>
    %18 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%14, %17 : tensor<2x4x4xf32>, tensor<f32>) outs(%0 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.addf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    return %18 : tensor<2x4x4xf32>
  }
}

// -----

// Near-miss: softmax(tanh(QK^T)): the score function is not scale + bias.
// CHECK-LABEL: func.func @tanh_scores(
// CHECK:         linalg.softmax
// CHECK:         linalg.batch_matmul
// CHECK-NOT:     iree_linalg_ext.attention
// REMARK: remark: attention not raised: the scores go through math.tanh, which is not a scale, bias or mask

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
module {
  func.func @tanh_scores(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x4x8xf32>, %arg2: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
    %cst = arith.constant 0.000000e+00 : f32
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %0 = tensor.empty() : tensor<2x8x4xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<2x4x8xf32>) outs(%0 : tensor<2x8x4xf32>) permutation = [0, 2, 1] 
    %1 = tensor.empty() : tensor<2x4x4xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %3 = linalg.batch_matmul ins(%arg0, %transposed : tensor<2x4x8xf32>, tensor<2x8x4xf32>) outs(%2 : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<2x4x4xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.tanh %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %5 = tensor.empty() : tensor<2x4xi64>
    %6 = linalg.fill ins(%c0_i64 : i64) outs(%5 : tensor<2x4xi64>) -> tensor<2x4xi64>
    %7 = tensor.empty() : tensor<2x4xf32>
    %8 = linalg.fill ins(%cst_0 : f32) outs(%7 : tensor<2x4xf32>) -> tensor<2x4xf32>
    %9:2 = linalg.generic {indexing_maps = [#map, #map1, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<2x4x4xf32>) outs(%8, %6 : tensor<2x4xf32>, tensor<2x4xi64>) {
    ^bb0(%in: f32, %out: f32, %out_1: i64):
      %19 = linalg.index 2 : index
      %20 = arith.index_cast %19 : index to i64
      %21 = arith.maximumf %in, %out : f32
      %22 = arith.cmpf ogt, %in, %out : f32
      %23 = arith.select %22, %20, %out_1 : i64
      linalg.yield %21, %23 : f32, i64
    } -> (tensor<2x4xf32>, tensor<2x4xi64>)
    %expanded = tensor.expand_shape %9#0 [[0], [1, 2]] output_shape [2, 4, 1] : tensor<2x4xf32> into tensor<2x4x1xf32>
    %10 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%4, %expanded : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.subf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<2x4x4xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = math.exp %in : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %12 = tensor.empty() : tensor<2x4x1xf32>
    %13 = linalg.fill ins(%cst : f32) outs(%12 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
    %14 = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "parallel", "reduction"]} ins(%11 : tensor<2x4x4xf32>) outs(%13 : tensor<2x4x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %19 = arith.addf %in, %out : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x1xf32>
    %15 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<2x4x4xf32>, tensor<2x4x1xf32>) outs(%1 : tensor<2x4x4xf32>) {
    ^bb0(%in: f32, %in_1: f32, %out: f32):
      %19 = arith.divf %in, %in_1 : f32
      linalg.yield %19 : f32
    } -> tensor<2x4x4xf32>
    %16 = tensor.empty() : tensor<2x4x8xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %18 = linalg.batch_matmul ins(%15, %arg2 : tensor<2x4x4xf32>, tensor<2x4x8xf32>) outs(%17 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %18 : tensor<2x4x8xf32>
  }
}

// -----

// Near miss: Q and K are i8 (an integer matmul accumulating in f32): the attention op reads
// float tensors, so the site is left alone with that reason.
// CHECK-LABEL: func.func @near_miss_i8_scores(
// CHECK-NOT:     iree_linalg_ext.attention
// CHECK:         linalg.softmax
// REMARK: remark: attention not raised: Q is i8, not a float tensor (the attention op reads floats)

func.func @near_miss_i8_scores(%q: tensor<4x8x16xi8>, %k: tensor<4x16x8xi8>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %k : tensor<4x8x16xi8>, tensor<4x16x8xi8>) outs(%f : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<4x8x8xf32>) outs(%e : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %e2 = tensor.empty() : tensor<4x8x16xf32>
  %f2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%f2 : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}
