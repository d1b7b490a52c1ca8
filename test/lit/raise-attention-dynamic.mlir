// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(unify-dims,fold-reshapes,fold-broadcasts,raise-attention,canonicalize,cse)' %s | FileCheck %s
//
// Dynamic batch and sequence sizes: the linalg torch-mlir emits for torch.export dynamic
// shapes (regenerate with flashlift.import_model(..., dynamic_shapes=...)). Its reshapes by
// computed shapes and gather-style broadcasts are folded first, then the attention is raised.

// torch.matmul(q, k^T) / sqrt(d), softmax, @ v with (b, 4, s, 8) inputs: the op reads the
// arguments themselves, and its output is sized from q.
// CHECK-LABEL: func.func @plain_dynamic(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<?x4x?x8xf32>, %[[K:[a-z0-9]+]]: tensor<?x4x?x8xf32>, %[[V:[a-z0-9]+]]: tensor<?x4x?x8xf32>
// CHECK-DAG:     %[[B:.+]] = tensor.dim %[[Q]], %c0
// CHECK-DAG:     %[[S:.+]] = tensor.dim %[[Q]], %c2
// CHECK:         %[[E:.+]] = tensor.empty(%[[B]], %[[S]]) : tensor<?x4x?x8xf32>
// CHECK:         %[[O:.+]] = iree_linalg_ext.attention
// CHECK-SAME:      ins(%[[Q]], %[[K]], %[[V]], %{{.+}} : tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>, f32) outs(%[[E]]
// CHECK-NOT:     linalg.batch_matmul
// CHECK-NOT:     linalg.softmax
// CHECK:         return %[[O]]
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<()[s0] -> (s0 * 4)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @plain_dynamic(%arg0: tensor<?x4x?x8xf32>, %arg1: tensor<?x4x?x8xf32>, %arg2: tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32> attributes {flashlift.input_dims = [["s33", 4, "s0", 8], ["s33", 4, "s0", 8], ["s33", 4, "s0", 8]]} {
    %c0_i64 = arith.constant 0 : i64
    %c4_i64 = arith.constant 4 : i64
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c8_i64 = arith.constant 8 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %c1_i64 = arith.constant 1 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 2.8284271247461903 : f64
    %dim = tensor.dim %arg0, %c2 : tensor<?x4x?x8xf32>
    %0 = arith.index_cast %dim : index to i64
    %dim_2 = tensor.dim %arg2, %c0 : tensor<?x4x?x8xf32>
    %1 = arith.index_cast %dim_2 : index to i64
    %dim_3 = tensor.dim %arg1, %c0 : tensor<?x4x?x8xf32>
    %dim_4 = tensor.dim %arg1, %c2 : tensor<?x4x?x8xf32>
    %2 = tensor.empty(%dim_3, %dim_4) : tensor<?x4x8x?xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<?x4x?x8xf32>) outs(%2 : tensor<?x4x8x?xf32>) permutation = [0, 1, 3, 2] 
    %3 = arith.cmpi sge, %1, %c0_i64 : i64
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %4 = arith.cmpi sge, %0, %c0_i64 : i64
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %5 = tensor.empty(%dim_2, %dim) : tensor<?x4x?x8xf32>
    %6 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%5 : tensor<?x4x?x8xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %dim_10 = tensor.dim %arg0, %c0 : tensor<?x4x?x8xf32>
      %64 = arith.cmpi eq, %dim_10, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %66 = arith.cmpi eq, %dim, %c1 : index
      %67 = arith.select %66, %c0, %62 : index
      %extracted = tensor.extract %arg0[%65, %61, %67, %63] : tensor<?x4x?x8xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x8xf32>
    %collapsed = tensor.collapse_shape %6 [[0, 1], [2], [3]] : tensor<?x4x?x8xf32> into tensor<?x?x8xf32>
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %7 = tensor.empty(%dim_2, %dim) : tensor<?x4x8x?xf32>
    %8 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%7 : tensor<?x4x8x?xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %64 = arith.cmpi eq, %dim_3, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %66 = arith.cmpi eq, %dim_4, %c1 : index
      %67 = arith.select %66, %c0, %63 : index
      %extracted = tensor.extract %transposed[%65, %61, %62, %67] : tensor<?x4x8x?xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x8x?xf32>
    %collapsed_5 = tensor.collapse_shape %8 [[0, 1], [2], [3]] : tensor<?x4x8x?xf32> into tensor<?x8x?xf32>
    %9 = affine.apply #map1()[%dim_2]
    %10 = arith.index_cast %9 : index to i64
    %11 = tensor.empty(%9, %dim, %dim) : tensor<?x?x?xf32>
    %12 = linalg.fill ins(%cst : f32) outs(%11 : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
    %13 = linalg.batch_matmul ins(%collapsed, %collapsed_5 : tensor<?x?x8xf32>, tensor<?x8x?xf32>) outs(%12 : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
    %14 = arith.cmpi slt, %1, %c0_i64 : i64
    %15 = arith.select %14, %c1_i64, %1 : i64
    %16 = arith.extui %14 : i1 to i64
    %17 = arith.muli %15, %c4_i64 : i64
    %18 = arith.muli %17, %0 : i64
    %19 = arith.addi %16, %c1_i64 : i64
    %20 = arith.cmpi slt, %0, %c0_i64 : i64
    %21 = arith.select %20, %17, %18 : i64
    %22 = arith.select %20, %19, %16 : i64
    %23 = arith.muli %21, %0 : i64
    %24 = arith.addi %22, %c1_i64 : i64
    %25 = arith.select %20, %17, %23 : i64
    %26 = arith.select %20, %24, %16 : i64
    %27 = arith.cmpi sle, %26, %c1_i64 : i64
    cf.assert %27, "must have at most one inferred (negative) dimension"
    %28 = arith.muli %10, %0 : i64
    %29 = arith.muli %28, %0 : i64
    %30 = arith.divsi %29, %25 : i64
    %31 = arith.select %14, %30, %1 : i64
    %32 = arith.select %20, %30, %0 : i64
    %from_elements = tensor.from_elements %31, %c4_i64, %32, %32 : tensor<4xi64>
    %reshape = tensor.reshape %13(%from_elements) : (tensor<?x?x?xf32>, tensor<4xi64>) -> tensor<?x4x?x?xf32>
    %33 = arith.index_cast %31 : i64 to index
    %34 = arith.index_cast %32 : i64 to index
    %35 = tensor.empty(%33, %34, %34) : tensor<?x4x?x?xf32>
    %36 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%reshape : tensor<?x4x?x?xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      %60 = arith.truncf %cst_1 : f64 to f32
      %61 = arith.divf %in, %60 : f32
      linalg.yield %61 : f32
    } -> tensor<?x4x?x?xf32>
    %37 = tensor.empty(%33, %34) : tensor<?x4x?xi64>
    %38 = linalg.fill ins(%c0_i64 : i64) outs(%37 : tensor<?x4x?xi64>) -> tensor<?x4x?xi64>
    %39 = tensor.empty(%33, %34) : tensor<?x4x?xf32>
    %40 = linalg.fill ins(%cst_0 : f32) outs(%39 : tensor<?x4x?xf32>) -> tensor<?x4x?xf32>
    %41:2 = linalg.generic {indexing_maps = [#map, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%36 : tensor<?x4x?x?xf32>) outs(%40, %38 : tensor<?x4x?xf32>, tensor<?x4x?xi64>) {
    ^bb0(%in: f32, %out: f32, %out_10: i64):
      %60 = linalg.index 3 : index
      %61 = arith.index_cast %60 : index to i64
      %62 = arith.maximumf %in, %out : f32
      %63 = arith.cmpf ogt, %in, %out : f32
      %64 = arith.select %63, %61, %out_10 : i64
      linalg.yield %62, %64 : f32, i64
    } -> (tensor<?x4x?xf32>, tensor<?x4x?xi64>)
    %expanded = tensor.expand_shape %41#0 [[0], [1], [2, 3]] output_shape [%33, 4, %34, 1] : tensor<?x4x?xf32> into tensor<?x4x?x1xf32>
    %42 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%36, %expanded : tensor<?x4x?x?xf32>, tensor<?x4x?x1xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %60 = arith.subf %in, %in_10 : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x?xf32>
    %43 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%42 : tensor<?x4x?x?xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      %60 = math.exp %in : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x?xf32>
    %44 = tensor.empty(%33, %34) : tensor<?x4x?x1xf32>
    %45 = linalg.fill ins(%cst : f32) outs(%44 : tensor<?x4x?x1xf32>) -> tensor<?x4x?x1xf32>
    %46 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%43 : tensor<?x4x?x?xf32>) outs(%45 : tensor<?x4x?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %60 = arith.addf %in, %out : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x1xf32>
    %47 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%43, %46 : tensor<?x4x?x?xf32>, tensor<?x4x?x1xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %60 = arith.divf %in, %in_10 : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x?xf32>
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %48 = tensor.empty(%dim_2, %dim, %dim) : tensor<?x4x?x?xf32>
    %49 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%48 : tensor<?x4x?x?xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %64 = arith.cmpi eq, %33, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %66 = arith.cmpi eq, %34, %c1 : index
      %67 = arith.select %66, %c0, %62 : index
      %68 = arith.select %66, %c0, %63 : index
      %extracted = tensor.extract %47[%65, %61, %67, %68] : tensor<?x4x?x?xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x?xf32>
    %collapsed_6 = tensor.collapse_shape %49 [[0, 1], [2], [3]] : tensor<?x4x?x?xf32> into tensor<?x?x?xf32>
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %50 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%5 : tensor<?x4x?x8xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %64 = arith.cmpi eq, %dim_2, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %dim_10 = tensor.dim %arg2, %c2 : tensor<?x4x?x8xf32>
      %66 = arith.cmpi eq, %dim_10, %c1 : index
      %67 = arith.select %66, %c0, %62 : index
      %extracted = tensor.extract %arg2[%65, %61, %67, %63] : tensor<?x4x?x8xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x8xf32>
    %collapsed_7 = tensor.collapse_shape %50 [[0, 1], [2], [3]] : tensor<?x4x?x8xf32> into tensor<?x?x8xf32>
    %51 = tensor.empty(%9, %dim) : tensor<?x?x8xf32>
    %52 = linalg.fill ins(%cst : f32) outs(%51 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
    %53 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<?x?x?xf32>, tensor<?x?x8xf32>) outs(%52 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
    %54 = arith.muli %21, %c8_i64 : i64
    %55 = arith.cmpi sle, %22, %c1_i64 : i64
    cf.assert %55, "must have at most one inferred (negative) dimension"
    %56 = arith.muli %28, %c8_i64 : i64
    %57 = arith.divsi %56, %54 : i64
    %58 = arith.select %14, %57, %1 : i64
    %59 = arith.select %20, %57, %0 : i64
    %from_elements_8 = tensor.from_elements %58, %c4_i64, %59, %c8_i64 : tensor<4xi64>
    %reshape_9 = tensor.reshape %53(%from_elements_8) : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
    return %reshape_9 : tensor<?x4x?x8xf32>
  }
}

// -----

// Grouped-query attention (repeat_kv: expand + reshape of 2 key/value heads to 4): the
// broadcast becomes an indexing map; K and V are read unrepeated, q's heads split (2, 2).
// CHECK-LABEL: func.func @gqa_dynamic(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<?x4x?x16xf32>, %[[K:[a-z0-9]+]]: tensor<?x2x?x16xf32>, %[[V:[a-z0-9]+]]: tensor<?x2x?x16xf32>
// CHECK:         %[[QX:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0], [1, 2], [3], [4]] output_shape [%{{.+}}, 2, 2, %{{.+}}, 16]
// CHECK:         iree_linalg_ext.attention
// CHECK-SAME:      ins(%[[QX]], %[[K]], %[[V]], %{{.+}} : tensor<?x2x2x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>, f32)
// CHECK-NOT:     linalg.batch_matmul
#map = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map2 = affine_map<()[s0] -> (s0 * 4)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @gqa_dynamic(%arg0: tensor<?x4x?x16xf32>, %arg1: tensor<?x2x?x16xf32>, %arg2: tensor<?x2x?x16xf32>) -> tensor<?x4x?x16xf32> attributes {flashlift.input_dims = [["s21", 4, "s40", 16], ["s21", 2, "s40", 16], ["s21", 2, "s40", 16]]} {
    %c0_i64 = arith.constant 0 : i64
    %c4_i64 = arith.constant 4 : i64
    %c0 = arith.constant 0 : index
    %c2 = arith.constant 2 : index
    %c1 = arith.constant 1 : index
    %c16_i64 = arith.constant 16 : i64
    %c1_i64 = arith.constant 1 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 4.000000e+00 : f32
    %dim = tensor.dim %arg2, %c0 : tensor<?x2x?x16xf32>
    %0 = arith.index_cast %dim : index to i64
    %dim_2 = tensor.dim %arg2, %c2 : tensor<?x2x?x16xf32>
    %1 = arith.index_cast %dim_2 : index to i64
    %dim_3 = tensor.dim %arg1, %c0 : tensor<?x2x?x16xf32>
    %dim_4 = tensor.dim %arg1, %c2 : tensor<?x2x?x16xf32>
    %expanded = tensor.expand_shape %arg1 [[0], [1], [2, 3], [4]] output_shape [%dim_3, 2, 1, %dim_4, 16] : tensor<?x2x?x16xf32> into tensor<?x2x1x?x16xf32>
    %2 = arith.cmpi sge, %0, %c0_i64 : i64
    cf.assert %2, "unimplemented: dynamic negative broadcast sizes"
    %3 = arith.cmpi sge, %1, %c0_i64 : i64
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %4 = tensor.empty(%dim, %dim_2) : tensor<?x2x2x?x16xf32>
    %5 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} outs(%4 : tensor<?x2x2x?x16xf32>) {
    ^bb0(%out: f32):
      %71 = linalg.index 0 : index
      %72 = linalg.index 1 : index
      %73 = linalg.index 3 : index
      %74 = linalg.index 4 : index
      %75 = arith.cmpi eq, %dim_3, %c1 : index
      %76 = arith.select %75, %c0, %71 : index
      %77 = arith.cmpi eq, %dim_4, %c1 : index
      %78 = arith.select %77, %c0, %73 : index
      %extracted = tensor.extract %expanded[%76, %72, %c0, %78, %74] : tensor<?x2x1x?x16xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x2x2x?x16xf32>
    %6 = arith.cmpi slt, %0, %c0_i64 : i64
    %7 = arith.select %6, %c1_i64, %0 : i64
    %8 = arith.extui %6 : i1 to i64
    %9 = arith.muli %7, %c4_i64 : i64
    %10 = arith.muli %9, %1 : i64
    %11 = arith.addi %8, %c1_i64 : i64
    %12 = arith.cmpi slt, %1, %c0_i64 : i64
    %13 = arith.select %12, %9, %10 : i64
    %14 = arith.select %12, %11, %8 : i64
    %15 = arith.muli %13, %c16_i64 : i64
    %16 = arith.cmpi sle, %14, %c1_i64 : i64
    cf.assert %16, "must have at most one inferred (negative) dimension"
    %17 = arith.muli %0, %c4_i64 : i64
    %18 = arith.muli %17, %1 : i64
    %19 = arith.muli %18, %c16_i64 : i64
    %20 = arith.divsi %19, %15 : i64
    %21 = arith.select %6, %20, %0 : i64
    %22 = arith.select %12, %20, %1 : i64
    %from_elements = tensor.from_elements %21, %c4_i64, %22, %c16_i64 : tensor<4xi64>
    %reshape = tensor.reshape %5(%from_elements) : (tensor<?x2x2x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
    %expanded_5 = tensor.expand_shape %arg2 [[0], [1], [2, 3], [4]] output_shape [%dim, 2, 1, %dim_2, 16] : tensor<?x2x?x16xf32> into tensor<?x2x1x?x16xf32>
    cf.assert %2, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %23 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} outs(%4 : tensor<?x2x2x?x16xf32>) {
    ^bb0(%out: f32):
      %71 = linalg.index 0 : index
      %72 = linalg.index 1 : index
      %73 = linalg.index 3 : index
      %74 = linalg.index 4 : index
      %75 = arith.cmpi eq, %dim, %c1 : index
      %76 = arith.select %75, %c0, %71 : index
      %77 = arith.cmpi eq, %dim_2, %c1 : index
      %78 = arith.select %77, %c0, %73 : index
      %extracted = tensor.extract %expanded_5[%76, %72, %c0, %78, %74] : tensor<?x2x1x?x16xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x2x2x?x16xf32>
    cf.assert %16, "must have at most one inferred (negative) dimension"
    %reshape_6 = tensor.reshape %23(%from_elements) : (tensor<?x2x2x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
    %24 = arith.index_cast %21 : i64 to index
    %25 = arith.index_cast %22 : i64 to index
    %26 = tensor.empty(%24, %25) : tensor<?x4x16x?xf32>
    %transposed = linalg.transpose ins(%reshape : tensor<?x4x?x16xf32>) outs(%26 : tensor<?x4x16x?xf32>) permutation = [0, 1, 3, 2] 
    cf.assert %2, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %27 = tensor.empty(%dim, %dim_2) : tensor<?x4x?x16xf32>
    %28 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%27 : tensor<?x4x?x16xf32>) {
    ^bb0(%out: f32):
      %71 = linalg.index 0 : index
      %72 = linalg.index 1 : index
      %73 = linalg.index 2 : index
      %74 = linalg.index 3 : index
      %dim_15 = tensor.dim %arg0, %c0 : tensor<?x4x?x16xf32>
      %75 = arith.cmpi eq, %dim_15, %c1 : index
      %76 = arith.select %75, %c0, %71 : index
      %dim_16 = tensor.dim %arg0, %c2 : tensor<?x4x?x16xf32>
      %77 = arith.cmpi eq, %dim_16, %c1 : index
      %78 = arith.select %77, %c0, %73 : index
      %extracted = tensor.extract %arg0[%76, %72, %78, %74] : tensor<?x4x?x16xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x16xf32>
    %collapsed = tensor.collapse_shape %28 [[0, 1], [2], [3]] : tensor<?x4x?x16xf32> into tensor<?x?x16xf32>
    cf.assert %2, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %29 = tensor.empty(%dim, %dim_2) : tensor<?x4x16x?xf32>
    %30 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%29 : tensor<?x4x16x?xf32>) {
    ^bb0(%out: f32):
      %71 = linalg.index 0 : index
      %72 = linalg.index 1 : index
      %73 = linalg.index 2 : index
      %74 = linalg.index 3 : index
      %75 = arith.cmpi eq, %24, %c1 : index
      %76 = arith.select %75, %c0, %71 : index
      %77 = arith.cmpi eq, %25, %c1 : index
      %78 = arith.select %77, %c0, %74 : index
      %extracted = tensor.extract %transposed[%76, %72, %73, %78] : tensor<?x4x16x?xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x16x?xf32>
    %collapsed_7 = tensor.collapse_shape %30 [[0, 1], [2], [3]] : tensor<?x4x16x?xf32> into tensor<?x16x?xf32>
    %31 = affine.apply #map2()[%dim]
    %32 = arith.index_cast %31 : index to i64
    %33 = tensor.empty(%31, %dim_2, %dim_2) : tensor<?x?x?xf32>
    %34 = linalg.fill ins(%cst : f32) outs(%33 : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
    %35 = linalg.batch_matmul ins(%collapsed, %collapsed_7 : tensor<?x?x16xf32>, tensor<?x16x?xf32>) outs(%34 : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
    %36 = arith.muli %13, %1 : i64
    %37 = arith.addi %14, %c1_i64 : i64
    %38 = arith.select %12, %9, %36 : i64
    %39 = arith.select %12, %37, %8 : i64
    %40 = arith.cmpi sle, %39, %c1_i64 : i64
    cf.assert %40, "must have at most one inferred (negative) dimension"
    %41 = arith.muli %32, %1 : i64
    %42 = arith.muli %41, %1 : i64
    %43 = arith.divsi %42, %38 : i64
    %44 = arith.select %6, %43, %0 : i64
    %45 = arith.select %12, %43, %1 : i64
    %from_elements_8 = tensor.from_elements %44, %c4_i64, %45, %45 : tensor<4xi64>
    %reshape_9 = tensor.reshape %35(%from_elements_8) : (tensor<?x?x?xf32>, tensor<4xi64>) -> tensor<?x4x?x?xf32>
    %46 = arith.index_cast %44 : i64 to index
    %47 = arith.index_cast %45 : i64 to index
    %48 = tensor.empty(%46, %47, %47) : tensor<?x4x?x?xf32>
    %49 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%reshape_9 : tensor<?x4x?x?xf32>) outs(%48 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      %71 = arith.divf %in, %cst_1 : f32
      linalg.yield %71 : f32
    } -> tensor<?x4x?x?xf32>
    %50 = tensor.empty(%46, %47) : tensor<?x4x?xi64>
    %51 = linalg.fill ins(%c0_i64 : i64) outs(%50 : tensor<?x4x?xi64>) -> tensor<?x4x?xi64>
    %52 = tensor.empty(%46, %47) : tensor<?x4x?xf32>
    %53 = linalg.fill ins(%cst_0 : f32) outs(%52 : tensor<?x4x?xf32>) -> tensor<?x4x?xf32>
    %54:2 = linalg.generic {indexing_maps = [#map1, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%49 : tensor<?x4x?x?xf32>) outs(%53, %51 : tensor<?x4x?xf32>, tensor<?x4x?xi64>) {
    ^bb0(%in: f32, %out: f32, %out_15: i64):
      %71 = linalg.index 3 : index
      %72 = arith.index_cast %71 : index to i64
      %73 = arith.maximumf %in, %out : f32
      %74 = arith.cmpf ogt, %in, %out : f32
      %75 = arith.select %74, %72, %out_15 : i64
      linalg.yield %73, %75 : f32, i64
    } -> (tensor<?x4x?xf32>, tensor<?x4x?xi64>)
    %expanded_10 = tensor.expand_shape %54#0 [[0], [1], [2, 3]] output_shape [%46, 4, %47, 1] : tensor<?x4x?xf32> into tensor<?x4x?x1xf32>
    %55 = linalg.generic {indexing_maps = [#map1, #map4, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%49, %expanded_10 : tensor<?x4x?x?xf32>, tensor<?x4x?x1xf32>) outs(%48 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %in_15: f32, %out: f32):
      %71 = arith.subf %in, %in_15 : f32
      linalg.yield %71 : f32
    } -> tensor<?x4x?x?xf32>
    %56 = linalg.generic {indexing_maps = [#map1, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%55 : tensor<?x4x?x?xf32>) outs(%48 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      %71 = math.exp %in : f32
      linalg.yield %71 : f32
    } -> tensor<?x4x?x?xf32>
    %57 = tensor.empty(%46, %47) : tensor<?x4x?x1xf32>
    %58 = linalg.fill ins(%cst : f32) outs(%57 : tensor<?x4x?x1xf32>) -> tensor<?x4x?x1xf32>
    %59 = linalg.generic {indexing_maps = [#map1, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%56 : tensor<?x4x?x?xf32>) outs(%58 : tensor<?x4x?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %71 = arith.addf %in, %out : f32
      linalg.yield %71 : f32
    } -> tensor<?x4x?x1xf32>
    %60 = linalg.generic {indexing_maps = [#map1, #map4, #map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%56, %59 : tensor<?x4x?x?xf32>, tensor<?x4x?x1xf32>) outs(%48 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %in_15: f32, %out: f32):
      %71 = arith.divf %in, %in_15 : f32
      linalg.yield %71 : f32
    } -> tensor<?x4x?x?xf32>
    cf.assert %2, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %61 = tensor.empty(%dim, %dim_2, %dim_2) : tensor<?x4x?x?xf32>
    %62 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%61 : tensor<?x4x?x?xf32>) {
    ^bb0(%out: f32):
      %71 = linalg.index 0 : index
      %72 = linalg.index 1 : index
      %73 = linalg.index 2 : index
      %74 = linalg.index 3 : index
      %75 = arith.cmpi eq, %46, %c1 : index
      %76 = arith.select %75, %c0, %71 : index
      %77 = arith.cmpi eq, %47, %c1 : index
      %78 = arith.select %77, %c0, %73 : index
      %79 = arith.select %77, %c0, %74 : index
      %extracted = tensor.extract %60[%76, %72, %78, %79] : tensor<?x4x?x?xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x?xf32>
    %collapsed_11 = tensor.collapse_shape %62 [[0, 1], [2], [3]] : tensor<?x4x?x?xf32> into tensor<?x?x?xf32>
    cf.assert %2, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %63 = linalg.generic {indexing_maps = [#map1], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%27 : tensor<?x4x?x16xf32>) {
    ^bb0(%out: f32):
      %71 = linalg.index 0 : index
      %72 = linalg.index 1 : index
      %73 = linalg.index 2 : index
      %74 = linalg.index 3 : index
      %75 = arith.cmpi eq, %24, %c1 : index
      %76 = arith.select %75, %c0, %71 : index
      %77 = arith.cmpi eq, %25, %c1 : index
      %78 = arith.select %77, %c0, %73 : index
      %extracted = tensor.extract %reshape_6[%76, %72, %78, %74] : tensor<?x4x?x16xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x16xf32>
    %collapsed_12 = tensor.collapse_shape %63 [[0, 1], [2], [3]] : tensor<?x4x?x16xf32> into tensor<?x?x16xf32>
    %64 = tensor.empty(%31, %dim_2) : tensor<?x?x16xf32>
    %65 = linalg.fill ins(%cst : f32) outs(%64 : tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
    %66 = linalg.batch_matmul ins(%collapsed_11, %collapsed_12 : tensor<?x?x?xf32>, tensor<?x?x16xf32>) outs(%65 : tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
    cf.assert %16, "must have at most one inferred (negative) dimension"
    %67 = arith.muli %41, %c16_i64 : i64
    %68 = arith.divsi %67, %15 : i64
    %69 = arith.select %6, %68, %0 : i64
    %70 = arith.select %12, %68, %1 : i64
    %from_elements_13 = tensor.from_elements %69, %c4_i64, %70, %c16_i64 : tensor<4xi64>
    %reshape_14 = tensor.reshape %66(%from_elements_13) : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
    return %reshape_14 : tensor<?x4x?x16xf32>
  }
}

// -----

// Without the importer's symbols nothing says q's and k's sizes agree: the broadcasts may
// really broadcast, so they stay and the attention reads their results.
// CHECK-LABEL: func.func @no_symbols(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<?x4x?x8xf32>
// CHECK:         %[[QB:.+]] = linalg.generic
// CHECK:           tensor.extract %[[Q]]
// CHECK:         iree_linalg_ext.attention
// CHECK-SAME:      ins(%[[QB]],
#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map1 = affine_map<()[s0] -> (s0 * 4)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
module {
  func.func @no_symbols(%arg0: tensor<?x4x?x8xf32>, %arg1: tensor<?x4x?x8xf32>, %arg2: tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32> {
    %c0_i64 = arith.constant 0 : i64
    %c4_i64 = arith.constant 4 : i64
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c8_i64 = arith.constant 8 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %c1_i64 = arith.constant 1 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant 2.8284271247461903 : f64
    %dim = tensor.dim %arg0, %c2 : tensor<?x4x?x8xf32>
    %0 = arith.index_cast %dim : index to i64
    %dim_2 = tensor.dim %arg2, %c0 : tensor<?x4x?x8xf32>
    %1 = arith.index_cast %dim_2 : index to i64
    %dim_3 = tensor.dim %arg1, %c0 : tensor<?x4x?x8xf32>
    %dim_4 = tensor.dim %arg1, %c2 : tensor<?x4x?x8xf32>
    %2 = tensor.empty(%dim_3, %dim_4) : tensor<?x4x8x?xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<?x4x?x8xf32>) outs(%2 : tensor<?x4x8x?xf32>) permutation = [0, 1, 3, 2] 
    %3 = arith.cmpi sge, %1, %c0_i64 : i64
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    %4 = arith.cmpi sge, %0, %c0_i64 : i64
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %5 = tensor.empty(%dim_2, %dim) : tensor<?x4x?x8xf32>
    %6 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%5 : tensor<?x4x?x8xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %dim_10 = tensor.dim %arg0, %c0 : tensor<?x4x?x8xf32>
      %64 = arith.cmpi eq, %dim_10, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %66 = arith.cmpi eq, %dim, %c1 : index
      %67 = arith.select %66, %c0, %62 : index
      %extracted = tensor.extract %arg0[%65, %61, %67, %63] : tensor<?x4x?x8xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x8xf32>
    %collapsed = tensor.collapse_shape %6 [[0, 1], [2], [3]] : tensor<?x4x?x8xf32> into tensor<?x?x8xf32>
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %7 = tensor.empty(%dim_2, %dim) : tensor<?x4x8x?xf32>
    %8 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%7 : tensor<?x4x8x?xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %64 = arith.cmpi eq, %dim_3, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %66 = arith.cmpi eq, %dim_4, %c1 : index
      %67 = arith.select %66, %c0, %63 : index
      %extracted = tensor.extract %transposed[%65, %61, %62, %67] : tensor<?x4x8x?xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x8x?xf32>
    %collapsed_5 = tensor.collapse_shape %8 [[0, 1], [2], [3]] : tensor<?x4x8x?xf32> into tensor<?x8x?xf32>
    %9 = affine.apply #map1()[%dim_2]
    %10 = arith.index_cast %9 : index to i64
    %11 = tensor.empty(%9, %dim, %dim) : tensor<?x?x?xf32>
    %12 = linalg.fill ins(%cst : f32) outs(%11 : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
    %13 = linalg.batch_matmul ins(%collapsed, %collapsed_5 : tensor<?x?x8xf32>, tensor<?x8x?xf32>) outs(%12 : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
    %14 = arith.cmpi slt, %1, %c0_i64 : i64
    %15 = arith.select %14, %c1_i64, %1 : i64
    %16 = arith.extui %14 : i1 to i64
    %17 = arith.muli %15, %c4_i64 : i64
    %18 = arith.muli %17, %0 : i64
    %19 = arith.addi %16, %c1_i64 : i64
    %20 = arith.cmpi slt, %0, %c0_i64 : i64
    %21 = arith.select %20, %17, %18 : i64
    %22 = arith.select %20, %19, %16 : i64
    %23 = arith.muli %21, %0 : i64
    %24 = arith.addi %22, %c1_i64 : i64
    %25 = arith.select %20, %17, %23 : i64
    %26 = arith.select %20, %24, %16 : i64
    %27 = arith.cmpi sle, %26, %c1_i64 : i64
    cf.assert %27, "must have at most one inferred (negative) dimension"
    %28 = arith.muli %10, %0 : i64
    %29 = arith.muli %28, %0 : i64
    %30 = arith.divsi %29, %25 : i64
    %31 = arith.select %14, %30, %1 : i64
    %32 = arith.select %20, %30, %0 : i64
    %from_elements = tensor.from_elements %31, %c4_i64, %32, %32 : tensor<4xi64>
    %reshape = tensor.reshape %13(%from_elements) : (tensor<?x?x?xf32>, tensor<4xi64>) -> tensor<?x4x?x?xf32>
    %33 = arith.index_cast %31 : i64 to index
    %34 = arith.index_cast %32 : i64 to index
    %35 = tensor.empty(%33, %34, %34) : tensor<?x4x?x?xf32>
    %36 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%reshape : tensor<?x4x?x?xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      %60 = arith.truncf %cst_1 : f64 to f32
      %61 = arith.divf %in, %60 : f32
      linalg.yield %61 : f32
    } -> tensor<?x4x?x?xf32>
    %37 = tensor.empty(%33, %34) : tensor<?x4x?xi64>
    %38 = linalg.fill ins(%c0_i64 : i64) outs(%37 : tensor<?x4x?xi64>) -> tensor<?x4x?xi64>
    %39 = tensor.empty(%33, %34) : tensor<?x4x?xf32>
    %40 = linalg.fill ins(%cst_0 : f32) outs(%39 : tensor<?x4x?xf32>) -> tensor<?x4x?xf32>
    %41:2 = linalg.generic {indexing_maps = [#map, #map2, #map2], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%36 : tensor<?x4x?x?xf32>) outs(%40, %38 : tensor<?x4x?xf32>, tensor<?x4x?xi64>) {
    ^bb0(%in: f32, %out: f32, %out_10: i64):
      %60 = linalg.index 3 : index
      %61 = arith.index_cast %60 : index to i64
      %62 = arith.maximumf %in, %out : f32
      %63 = arith.cmpf ogt, %in, %out : f32
      %64 = arith.select %63, %61, %out_10 : i64
      linalg.yield %62, %64 : f32, i64
    } -> (tensor<?x4x?xf32>, tensor<?x4x?xi64>)
    %expanded = tensor.expand_shape %41#0 [[0], [1], [2, 3]] output_shape [%33, 4, %34, 1] : tensor<?x4x?xf32> into tensor<?x4x?x1xf32>
    %42 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%36, %expanded : tensor<?x4x?x?xf32>, tensor<?x4x?x1xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %60 = arith.subf %in, %in_10 : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x?xf32>
    %43 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%42 : tensor<?x4x?x?xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      %60 = math.exp %in : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x?xf32>
    %44 = tensor.empty(%33, %34) : tensor<?x4x?x1xf32>
    %45 = linalg.fill ins(%cst : f32) outs(%44 : tensor<?x4x?x1xf32>) -> tensor<?x4x?x1xf32>
    %46 = linalg.generic {indexing_maps = [#map, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%43 : tensor<?x4x?x?xf32>) outs(%45 : tensor<?x4x?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %60 = arith.addf %in, %out : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x1xf32>
    %47 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%43, %46 : tensor<?x4x?x?xf32>, tensor<?x4x?x1xf32>) outs(%35 : tensor<?x4x?x?xf32>) {
    ^bb0(%in: f32, %in_10: f32, %out: f32):
      %60 = arith.divf %in, %in_10 : f32
      linalg.yield %60 : f32
    } -> tensor<?x4x?x?xf32>
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %48 = tensor.empty(%dim_2, %dim, %dim) : tensor<?x4x?x?xf32>
    %49 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%48 : tensor<?x4x?x?xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %64 = arith.cmpi eq, %33, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %66 = arith.cmpi eq, %34, %c1 : index
      %67 = arith.select %66, %c0, %62 : index
      %68 = arith.select %66, %c0, %63 : index
      %extracted = tensor.extract %47[%65, %61, %67, %68] : tensor<?x4x?x?xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x?xf32>
    %collapsed_6 = tensor.collapse_shape %49 [[0, 1], [2], [3]] : tensor<?x4x?x?xf32> into tensor<?x?x?xf32>
    cf.assert %3, "unimplemented: dynamic negative broadcast sizes"
    cf.assert %4, "unimplemented: dynamic negative broadcast sizes"
    %50 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%5 : tensor<?x4x?x8xf32>) {
    ^bb0(%out: f32):
      %60 = linalg.index 0 : index
      %61 = linalg.index 1 : index
      %62 = linalg.index 2 : index
      %63 = linalg.index 3 : index
      %64 = arith.cmpi eq, %dim_2, %c1 : index
      %65 = arith.select %64, %c0, %60 : index
      %dim_10 = tensor.dim %arg2, %c2 : tensor<?x4x?x8xf32>
      %66 = arith.cmpi eq, %dim_10, %c1 : index
      %67 = arith.select %66, %c0, %62 : index
      %extracted = tensor.extract %arg2[%65, %61, %67, %63] : tensor<?x4x?x8xf32>
      linalg.yield %extracted : f32
    } -> tensor<?x4x?x8xf32>
    %collapsed_7 = tensor.collapse_shape %50 [[0, 1], [2], [3]] : tensor<?x4x?x8xf32> into tensor<?x?x8xf32>
    %51 = tensor.empty(%9, %dim) : tensor<?x?x8xf32>
    %52 = linalg.fill ins(%cst : f32) outs(%51 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
    %53 = linalg.batch_matmul ins(%collapsed_6, %collapsed_7 : tensor<?x?x?xf32>, tensor<?x?x8xf32>) outs(%52 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
    %54 = arith.muli %21, %c8_i64 : i64
    %55 = arith.cmpi sle, %22, %c1_i64 : i64
    cf.assert %55, "must have at most one inferred (negative) dimension"
    %56 = arith.muli %28, %c8_i64 : i64
    %57 = arith.divsi %56, %54 : i64
    %58 = arith.select %14, %57, %1 : i64
    %59 = arith.select %20, %57, %0 : i64
    %from_elements_8 = tensor.from_elements %58, %c4_i64, %59, %c8_i64 : tensor<4xi64>
    %reshape_9 = tensor.reshape %53(%from_elements_8) : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
    return %reshape_9 : tensor<?x4x?x8xf32>
  }
}
