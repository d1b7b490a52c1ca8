// REQUIRES: cpu-kernel
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-norms{target=cpu})' %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-norms{target=cpu})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-norms{target=cuda:sm_90})' %s | FileCheck %s --check-prefix=CUDA
//
// dispatch-norms: torch-mlir's decomposition of LayerNorm(a + x) over the last dim (mean in
// f32, the variance in f64, rsqrt, weight, bias: reduced from nn.LayerNorm(16) of a sum)
// becomes one dispatch of flashlift's residual add + LayerNorm kernel on (a, x, weight, bias);
// near misses stay as written with the reason as the remark.

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// CHECK-LABEL: func.func @add_layer_norm(
// CHECK-SAME:    %[[A:[a-z0-9]+]]: tensor<2x4x16xf32>, %[[X:[a-z0-9]+]]: tensor<2x4x16xf32>, %[[W:[a-z0-9]+]]: tensor<16xf32>, %[[B:[a-z0-9]+]]: tensor<16xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_norm_cpu_avx2_[0-9a-f]+]]_call(%[[A]], %[[X]], %[[W]], %[[B]])
// CHECK-NEXT:    return %[[R]]
// CHECK:       hal.executable.source private @[[EXE]] <objects =
// CHECK-SAME:    #hal.executable.object<{path = "{{.*}}flashlift_norm_avx2-{{[0-9a-f]+}}.o"}>
// CHECK:         func.func private @flashlift_norm_f32_f32_avx2(memref<128xf32>, memref<128xf32>, memref<16xf32>, memref<16xf32>, memref<128xf32>
// CHECK:       func.func private @[[EXE]]_call(
// CHECK:         flow.dispatch @[[EXE]]::@[[EXE]](
// REMARK:      dispatch-norms.mlir:{{[0-9]+}}:{{[0-9]+}}: remark: norm takes flashlift-cpu avx2
// CUDA-LABEL:  func.func @add_layer_norm(
// CUDA:          call @{{flashlift_norm_sm90_[0-9a-f]+}}_call(
func.func @add_layer_norm(%a: tensor<2x4x16xf32>, %x: tensor<2x4x16xf32>, %w: tensor<16xf32>, %b: tensor<16xf32>) -> tensor<2x4x16xf32> {
  %cst = arith.constant 0.000000e+00 : f64
  %cst_0 = arith.constant 0.000000e+00 : f32
  %cst_3 = arith.constant 1.000000e-05 : f64
  %cst_4 = arith.constant 1.600000e+01 : f64
  %cst_5 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x16xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %2 = tensor.empty() : tensor<2x4x16xf64>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf32>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f32, %out: f64):
    %23 = arith.extf %in : f32 to f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %4 = tensor.empty() : tensor<2x4x1xf64>
  %5 = linalg.fill ins(%cst : f64) outs(%4 : tensor<2x4x1xf64>) -> tensor<2x4x1xf64>
  %6 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%3 : tensor<2x4x16xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %8 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %7 : tensor<2x4x16xf64>, tensor<2x4x1xf64>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.subf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %9 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8, %8 : tensor<2x4x16xf64>, tensor<2x4x16xf64>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.mulf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %10 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%9 : tensor<2x4x16xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %12 = tensor.empty() : tensor<2x4x1xf32>
  %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x1xf64>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f64, %out: f32):
    %23 = arith.truncf %in : f64 to f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %14 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %15 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%1 : tensor<2x4x16xf32>) outs(%14 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.addf %in, %out : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%15 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.divf %in, %cst_5 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%13 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.truncf %cst_3 : f64 to f32
    %24 = arith.addf %in, %23 : f32
    linalg.yield %24 : f32
  } -> tensor<2x4x1xf32>
  %18 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%17 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = math.rsqrt %in : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %19 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %16 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.subf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %20 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%19, %18 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %21 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%20, %w : tensor<2x4x16xf32>, tensor<16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %22 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%21, %b : tensor<2x4x16xf32>, tensor<16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  return %22 : tensor<2x4x16xf32>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// The sum is returned too (a pre-LN residual stream): the add stays, the kernel reads its result.
// CHECK-LABEL: func.func @sum_used_twice(
// CHECK-SAME:    %[[A:[a-z0-9]+]]: tensor<2x4x16xf32>, %[[X:[a-z0-9]+]]: tensor<2x4x16xf32>, %[[W:[a-z0-9]+]]: tensor<16xf32>, %[[B:[a-z0-9]+]]: tensor<16xf32>
// CHECK:         %[[SUM:.+]] = linalg.generic {{.*}} ins(%[[A]], %[[X]]
// CHECK:           arith.addf
// CHECK-NOT:     linalg.generic
// CHECK:         %[[R:.+]] = call @{{flashlift_norm_cpu_avx2_[0-9a-f]+}}_call(%[[SUM]], %[[W]], %[[B]])
// CHECK-NEXT:    return %[[R]], %[[SUM]]
// REMARK:      remark: norm takes flashlift-cpu avx2
func.func @sum_used_twice(%a: tensor<2x4x16xf32>, %x: tensor<2x4x16xf32>, %w: tensor<16xf32>, %b: tensor<16xf32>) -> (tensor<2x4x16xf32>, tensor<2x4x16xf32>) {
  %cst = arith.constant 0.000000e+00 : f64
  %cst_0 = arith.constant 0.000000e+00 : f32
  %cst_3 = arith.constant 1.000000e-05 : f64
  %cst_4 = arith.constant 1.600000e+01 : f64
  %cst_5 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x16xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %2 = tensor.empty() : tensor<2x4x16xf64>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf32>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f32, %out: f64):
    %23 = arith.extf %in : f32 to f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %4 = tensor.empty() : tensor<2x4x1xf64>
  %5 = linalg.fill ins(%cst : f64) outs(%4 : tensor<2x4x1xf64>) -> tensor<2x4x1xf64>
  %6 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%3 : tensor<2x4x16xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %8 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %7 : tensor<2x4x16xf64>, tensor<2x4x1xf64>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.subf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %9 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8, %8 : tensor<2x4x16xf64>, tensor<2x4x16xf64>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.mulf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %10 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%9 : tensor<2x4x16xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %12 = tensor.empty() : tensor<2x4x1xf32>
  %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x1xf64>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f64, %out: f32):
    %23 = arith.truncf %in : f64 to f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %14 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %15 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%1 : tensor<2x4x16xf32>) outs(%14 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.addf %in, %out : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%15 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.divf %in, %cst_5 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%13 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.truncf %cst_3 : f64 to f32
    %24 = arith.addf %in, %23 : f32
    linalg.yield %24 : f32
  } -> tensor<2x4x1xf32>
  %18 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%17 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = math.rsqrt %in : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %19 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %16 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.subf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %20 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%19, %18 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %21 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%20, %w : tensor<2x4x16xf32>, tensor<16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %22 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%21, %b : tensor<2x4x16xf32>, tensor<16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  return %22, %1 : tensor<2x4x16xf32>, tensor<2x4x16xf32>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// Near miss: the "mean" divides the row's sum by 8, not by its 16 elements.
// CHECK-LABEL: func.func @mean_of_half_the_row(
// CHECK-NOT:     call
// CHECK:         math.rsqrt
// REMARK:      remark: norm takes iree-codegen: not a LayerNorm over the last dim: divides by 8.0, not the row length 16
func.func @mean_of_half_the_row(%a: tensor<2x4x16xf32>, %x: tensor<2x4x16xf32>, %w: tensor<16xf32>, %b: tensor<16xf32>) -> tensor<2x4x16xf32> {
  %cst = arith.constant 0.000000e+00 : f64
  %cst_0 = arith.constant 0.000000e+00 : f32
  %cst_3 = arith.constant 1.000000e-05 : f64
  %cst_4 = arith.constant 1.600000e+01 : f64
  %cst_5 = arith.constant 8.000000e+00 : f32
  %0 = tensor.empty() : tensor<2x4x16xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %2 = tensor.empty() : tensor<2x4x16xf64>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf32>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f32, %out: f64):
    %23 = arith.extf %in : f32 to f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %4 = tensor.empty() : tensor<2x4x1xf64>
  %5 = linalg.fill ins(%cst : f64) outs(%4 : tensor<2x4x1xf64>) -> tensor<2x4x1xf64>
  %6 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%3 : tensor<2x4x16xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %8 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %7 : tensor<2x4x16xf64>, tensor<2x4x1xf64>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.subf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %9 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8, %8 : tensor<2x4x16xf64>, tensor<2x4x16xf64>) outs(%2 : tensor<2x4x16xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.mulf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x16xf64>
  %10 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%9 : tensor<2x4x16xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %12 = tensor.empty() : tensor<2x4x1xf32>
  %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x1xf64>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f64, %out: f32):
    %23 = arith.truncf %in : f64 to f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %14 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %15 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%1 : tensor<2x4x16xf32>) outs(%14 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.addf %in, %out : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%15 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.divf %in, %cst_5 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%13 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.truncf %cst_3 : f64 to f32
    %24 = arith.addf %in, %23 : f32
    linalg.yield %24 : f32
  } -> tensor<2x4x1xf32>
  %18 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%17 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = math.rsqrt %in : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %19 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %16 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.subf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %20 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%19, %18 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %21 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%20, %w : tensor<2x4x16xf32>, tensor<16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  %22 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%21, %b : tensor<2x4x16xf32>, tensor<16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x16xf32>
  return %22 : tensor<2x4x16xf32>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// Rows of 12 elements: a LayerNorm, but not one the CPU kernel takes (rows a multiple of 8).
// CHECK-LABEL: func.func @rows_of_12(
// CHECK-NOT:     call
// CHECK:         math.rsqrt
// REMARK:      remark: norm takes iree-codegen: rows of 12 elements (kernel: a multiple of 8 up to 8192)
func.func @rows_of_12(%a: tensor<2x4x12xf32>, %x: tensor<2x4x12xf32>, %w: tensor<12xf32>, %b: tensor<12xf32>) -> tensor<2x4x12xf32> {
  %cst = arith.constant 0.000000e+00 : f64
  %cst_0 = arith.constant 0.000000e+00 : f32
  %cst_3 = arith.constant 1.000000e-05 : f64
  %cst_4 = arith.constant 1.200000e+01 : f64
  %cst_5 = arith.constant 1.200000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x12xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x12xf32>, tensor<2x4x12xf32>) outs(%0 : tensor<2x4x12xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x12xf32>
  %2 = tensor.empty() : tensor<2x4x12xf64>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x12xf32>) outs(%2 : tensor<2x4x12xf64>) {
  ^bb0(%in: f32, %out: f64):
    %23 = arith.extf %in : f32 to f64
    linalg.yield %23 : f64
  } -> tensor<2x4x12xf64>
  %4 = tensor.empty() : tensor<2x4x1xf64>
  %5 = linalg.fill ins(%cst : f64) outs(%4 : tensor<2x4x1xf64>) -> tensor<2x4x1xf64>
  %6 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%3 : tensor<2x4x12xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %8 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %7 : tensor<2x4x12xf64>, tensor<2x4x1xf64>) outs(%2 : tensor<2x4x12xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.subf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x12xf64>
  %9 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8, %8 : tensor<2x4x12xf64>, tensor<2x4x12xf64>) outs(%2 : tensor<2x4x12xf64>) {
  ^bb0(%in: f64, %in_6: f64, %out: f64):
    %23 = arith.mulf %in, %in_6 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x12xf64>
  %10 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%9 : tensor<2x4x12xf64>) outs(%5 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.addf %in, %out : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%10 : tensor<2x4x1xf64>) outs(%4 : tensor<2x4x1xf64>) {
  ^bb0(%in: f64, %out: f64):
    %23 = arith.divf %in, %cst_4 : f64
    linalg.yield %23 : f64
  } -> tensor<2x4x1xf64>
  %12 = tensor.empty() : tensor<2x4x1xf32>
  %13 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x1xf64>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f64, %out: f32):
    %23 = arith.truncf %in : f64 to f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %14 = linalg.fill ins(%cst_0 : f32) outs(%12 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %15 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%1 : tensor<2x4x12xf32>) outs(%14 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.addf %in, %out : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%15 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.divf %in, %cst_5 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %17 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%13 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = arith.truncf %cst_3 : f64 to f32
    %24 = arith.addf %in, %23 : f32
    linalg.yield %24 : f32
  } -> tensor<2x4x1xf32>
  %18 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%17 : tensor<2x4x1xf32>) outs(%12 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %23 = math.rsqrt %in : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x1xf32>
  %19 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %16 : tensor<2x4x12xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x12xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.subf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x12xf32>
  %20 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%19, %18 : tensor<2x4x12xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x12xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x12xf32>
  %21 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%20, %w : tensor<2x4x12xf32>, tensor<12xf32>) outs(%0 : tensor<2x4x12xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.mulf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x12xf32>
  %22 = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%21, %b : tensor<2x4x12xf32>, tensor<12xf32>) outs(%0 : tensor<2x4x12xf32>) {
  ^bb0(%in: f32, %in_6: f32, %out: f32):
    %23 = arith.addf %in, %in_6 : f32
    linalg.yield %23 : f32
  } -> tensor<2x4x12xf32>
  return %22 : tensor<2x4x12xf32>
}
