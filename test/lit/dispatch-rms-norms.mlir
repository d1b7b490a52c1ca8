// REQUIRES: cpu-kernel
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-norms{target=cpu})' %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-norms{target=cpu})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-norms{target=cuda:sm_90})' %s | FileCheck %s --check-prefix=CUDA
//
// dispatch-norms on RMSNorms: torch-mlir's decomposition of an RMSNorm over the last dim
// (x.pow(2).mean(-1), rsqrt(. + eps), x * that, the weight; imported from LLaMA's
// LlamaRMSNorm on a residual sum) becomes one dispatch of flashlift's norm kernel with
// rms = 1; near misses stay as written with the reason as the remark.

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// LLaMA's RMSNorm in f16 (`weight * y.to(f16)`: the weight multiplies in f16, after the
// rounding) of a residual sum only the norm reads: one kernel on (a, x, weight); its flags
// (residual, weight, bias, rms, weight_rounded) = 1, 1, 0, 1, 1.
// CHECK-LABEL: func.func @add_rms_f16(
// CHECK-SAME:    %[[A:[a-z0-9]+]]: tensor<2x4x16xf16>, %[[X:[a-z0-9]+]]: tensor<2x4x16xf16>, %[[W:[a-z0-9]+]]: tensor<16xf16>
// CHECK-NOT:     linalg.generic
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_norm_cpu_avx2_[0-9a-f]+]]_call(%[[A]], %[[X]], %[[W]])
// CHECK-NEXT:    return %[[R]]
// CHECK:       hal.executable.source private @[[EXE]]
// CHECK:         call @flashlift_norm_f16_f16_avx2({{.*}}, %{{c8[_0-9]*}}, %{{c16[_0-9]*}}, %cst, %{{c1[_0-9]*}}, %{{c1[_0-9]*}}, %{{c0[_0-9]*}}, %{{c1[_0-9]*}}, %{{c1[_0-9]*}})
// REMARK:      dispatch-rms-norms.mlir:{{[0-9]+}}:{{[0-9]+}}: remark: norm takes flashlift-cpu avx2
// CUDA-LABEL:  func.func @add_rms_f16(
// CUDA:          call @{{flashlift_norm_sm90_[0-9a-f]+}}_call(
func.func @add_rms_f16(%a: tensor<2x4x16xf16>, %x: tensor<2x4x16xf16>, %w: tensor<16xf16>) -> tensor<2x4x16xf16> {
  %c2_i64 = arith.constant 2 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x16xf16>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf16>, tensor<2x4x16xf16>) outs(%0 : tensor<2x4x16xf16>) {
  ^bb0(%in: f16, %in_3: f16, %out: f16):
    %14 = arith.addf %in, %in_3 : f16
    linalg.yield %14 : f16
  } -> tensor<2x4x16xf16>
  %2 = tensor.empty() : tensor<2x4x16xf32>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf16>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f16, %out: f32):
    %14 = arith.extf %in : f16 to f32
    linalg.yield %14 : f32
  } -> tensor<2x4x16xf32>
  %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<2x4x16xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = math.fpowi %in, %c2_i64 : f32, i64
    linalg.yield %14 : f32
  } -> tensor<2x4x16xf32>
  %5 = tensor.empty() : tensor<2x4x1xf32>
  %6 = linalg.fill ins(%cst : f32) outs(%5 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %7 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<2x4x16xf32>) outs(%6 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = arith.addf %in, %out : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x1xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = arith.divf %in, %cst_2 : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x1xf32>
  %9 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = arith.truncf %cst_1 : f64 to f32
    %15 = arith.addf %in, %14 : f32
    linalg.yield %15 : f32
  } -> tensor<2x4x1xf32>
  %10 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%9 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = math.rsqrt %in : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x1xf32>
  %11 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %10 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %14 = arith.mulf %in, %in_3 : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x16xf32>
  %12 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf16>) {
  ^bb0(%in: f32, %out: f16):
    %14 = arith.truncf %in : f32 to f16
    linalg.yield %14 : f16
  } -> tensor<2x4x16xf16>
  %13 = linalg.generic {indexing_maps = [#map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %12 : tensor<16xf16>, tensor<2x4x16xf16>) outs(%0 : tensor<2x4x16xf16>) {
  ^bb0(%in: f16, %in_3: f16, %out: f16):
    %14 = arith.mulf %in, %in_3 : f16
    linalg.yield %14 : f16
  } -> tensor<2x4x16xf16>
  return %13 : tensor<2x4x16xf16>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// Pre-norm (LLaMA's decoder layers): the sum is also returned, the next layer's residual. The
// add stays (IREE computes it once) and the kernel reads the sum: residual flag 0.
// CHECK-LABEL: func.func @keep_f16(
// CHECK-SAME:    %[[A:[a-z0-9]+]]: tensor<2x4x16xf16>, %[[X:[a-z0-9]+]]: tensor<2x4x16xf16>, %[[W:[a-z0-9]+]]: tensor<16xf16>
// CHECK:         %[[SUM:.+]] = linalg.generic {{.*}} ins(%[[A]], %[[X]]
// CHECK-NOT:     linalg.generic
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_norm_cpu_avx2_[0-9a-f]+]]_call(%[[SUM]], %[[W]])
// CHECK-NEXT:    return %[[SUM]], %[[R]]
// CHECK:         call @flashlift_norm_f16_f16_avx2({{.*}}, %cst, %{{c0[_0-9]*}}, %{{c1[_0-9]*}}, %{{c0[_0-9]*}}, %{{c1[_0-9]*}}, %{{c1[_0-9]*}})
// REMARK:      remark: norm takes flashlift-cpu avx2
func.func @keep_f16(%a: tensor<2x4x16xf16>, %x: tensor<2x4x16xf16>, %w: tensor<16xf16>) -> (tensor<2x4x16xf16>, tensor<2x4x16xf16>) {
  %c2_i64 = arith.constant 2 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x16xf16>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf16>, tensor<2x4x16xf16>) outs(%0 : tensor<2x4x16xf16>) {
  ^bb0(%in: f16, %in_3: f16, %out: f16):
    %14 = arith.addf %in, %in_3 : f16
    linalg.yield %14 : f16
  } -> tensor<2x4x16xf16>
  %2 = tensor.empty() : tensor<2x4x16xf32>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf16>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f16, %out: f32):
    %14 = arith.extf %in : f16 to f32
    linalg.yield %14 : f32
  } -> tensor<2x4x16xf32>
  %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<2x4x16xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = math.fpowi %in, %c2_i64 : f32, i64
    linalg.yield %14 : f32
  } -> tensor<2x4x16xf32>
  %5 = tensor.empty() : tensor<2x4x1xf32>
  %6 = linalg.fill ins(%cst : f32) outs(%5 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %7 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<2x4x16xf32>) outs(%6 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = arith.addf %in, %out : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x1xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = arith.divf %in, %cst_2 : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x1xf32>
  %9 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = arith.truncf %cst_1 : f64 to f32
    %15 = arith.addf %in, %14 : f32
    linalg.yield %15 : f32
  } -> tensor<2x4x1xf32>
  %10 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%9 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %14 = math.rsqrt %in : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x1xf32>
  %11 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %10 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %14 = arith.mulf %in, %in_3 : f32
    linalg.yield %14 : f32
  } -> tensor<2x4x16xf32>
  %12 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11 : tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf16>) {
  ^bb0(%in: f32, %out: f16):
    %14 = arith.truncf %in : f32 to f16
    linalg.yield %14 : f16
  } -> tensor<2x4x16xf16>
  %13 = linalg.generic {indexing_maps = [#map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %12 : tensor<16xf16>, tensor<2x4x16xf16>) outs(%0 : tensor<2x4x16xf16>) {
  ^bb0(%in: f16, %in_3: f16, %out: f16):
    %14 = arith.mulf %in, %in_3 : f16
    linalg.yield %14 : f16
  } -> tensor<2x4x16xf16>
  return %1, %13 : tensor<2x4x16xf16>, tensor<2x4x16xf16>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// f32: no casts; the weight multiplies in f32 (weight_rounded 0).
// CHECK-LABEL: func.func @rms_f32(
// CHECK:         call @flashlift_norm_f32_f32_avx2({{.*}}, %cst, %{{c1[_0-9]*}}, %{{c1[_0-9]*}}, %{{c0[_0-9]*}}, %{{c1[_0-9]*}}, %{{c0[_0-9]*}})
// REMARK:      remark: norm takes flashlift-cpu avx2
func.func @rms_f32(%a: tensor<2x4x16xf32>, %x: tensor<2x4x16xf32>, %w: tensor<16xf32>) -> tensor<2x4x16xf32> {
  %c2_i64 = arith.constant 2 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x16xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.addf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  %2 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = math.fpowi %in, %c2_i64 : f32, i64
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  %3 = tensor.empty() : tensor<2x4x1xf32>
  %4 = linalg.fill ins(%cst : f32) outs(%3 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %5 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%2 : tensor<2x4x16xf32>) outs(%4 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.addf %in, %out : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x1xf32>
  %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%5 : tensor<2x4x1xf32>) outs(%3 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.divf %in, %cst_2 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x1xf32>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x4x1xf32>) outs(%3 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.truncf %cst_1 : f64 to f32
    %12 = arith.addf %in, %11 : f32
    linalg.yield %12 : f32
  } -> tensor<2x4x1xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7 : tensor<2x4x1xf32>) outs(%3 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = math.rsqrt %in : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x1xf32>
  %9 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %8 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.mulf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  %10 = linalg.generic {indexing_maps = [#map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %9 : tensor<16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.mulf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  return %10 : tensor<2x4x16xf32>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// Near miss: the mean of cubes (x.pow(3)), not of squares.
// CHECK-LABEL: func.func @cubes(
// CHECK-NOT:     call @
// CHECK:         math.rsqrt
// REMARK:      remark: norm takes iree-codegen: not an RMSNorm over the last dim: the mean is not of squares
func.func @cubes(%a: tensor<2x4x16xf32>, %x: tensor<2x4x16xf32>, %w: tensor<16xf32>) -> tensor<2x4x16xf32> {
  %c3_i64 = arith.constant 3 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x4x16xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.addf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  %2 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = math.fpowi %in, %c3_i64 : f32, i64
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  %3 = tensor.empty() : tensor<2x4x1xf32>
  %4 = linalg.fill ins(%cst : f32) outs(%3 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %5 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%2 : tensor<2x4x16xf32>) outs(%4 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.addf %in, %out : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x1xf32>
  %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%5 : tensor<2x4x1xf32>) outs(%3 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.divf %in, %cst_2 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x1xf32>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x4x1xf32>) outs(%3 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.truncf %cst_1 : f64 to f32
    %12 = arith.addf %in, %11 : f32
    linalg.yield %12 : f32
  } -> tensor<2x4x1xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7 : tensor<2x4x1xf32>) outs(%3 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = math.rsqrt %in : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x1xf32>
  %9 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %8 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.mulf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  %10 = linalg.generic {indexing_maps = [#map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %9 : tensor<16xf32>, tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.mulf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x4x16xf32>
  return %10 : tensor<2x4x16xf32>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, 0, d2)>
#map2 = affine_map<(d0, d1, d2) -> (d2)>

// Near miss: an RMSNorm over dim 1 of [2, 16, 16], not the last.
// CHECK-LABEL: func.func @dim1(
// CHECK-NOT:     call @
// REMARK:      remark: norm takes iree-codegen: not an RMSNorm over the last dim: the arith.mulf broadcasts along another dim than the last
func.func @dim1(%a: tensor<2x16x16xf32>, %x: tensor<2x16x16xf32>, %w: tensor<16xf32>) -> tensor<2x16x16xf32> {
  %c2_i64 = arith.constant 2 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 1.600000e+01 : f32
  %0 = tensor.empty() : tensor<2x16x16xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x16x16xf32>, tensor<2x16x16xf32>) outs(%0 : tensor<2x16x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.addf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x16x16xf32>
  %2 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x16x16xf32>) outs(%0 : tensor<2x16x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = math.fpowi %in, %c2_i64 : f32, i64
    linalg.yield %11 : f32
  } -> tensor<2x16x16xf32>
  %3 = tensor.empty() : tensor<2x1x16xf32>
  %4 = linalg.fill ins(%cst : f32) outs(%3 : tensor<2x1x16xf32>) -> tensor<2x1x16xf32>
  %5 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "reduction", "parallel"]} ins(%2 : tensor<2x16x16xf32>) outs(%4 : tensor<2x1x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.addf %in, %out : f32
    linalg.yield %11 : f32
  } -> tensor<2x1x16xf32>
  %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%5 : tensor<2x1x16xf32>) outs(%3 : tensor<2x1x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.divf %in, %cst_2 : f32
    linalg.yield %11 : f32
  } -> tensor<2x1x16xf32>
  %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%6 : tensor<2x1x16xf32>) outs(%3 : tensor<2x1x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = arith.truncf %cst_1 : f64 to f32
    %12 = arith.addf %in, %11 : f32
    linalg.yield %12 : f32
  } -> tensor<2x1x16xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7 : tensor<2x1x16xf32>) outs(%3 : tensor<2x1x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %11 = math.rsqrt %in : f32
    linalg.yield %11 : f32
  } -> tensor<2x1x16xf32>
  %9 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1, %8 : tensor<2x16x16xf32>, tensor<2x1x16xf32>) outs(%0 : tensor<2x16x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.mulf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x16x16xf32>
  %10 = linalg.generic {indexing_maps = [#map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %9 : tensor<16xf32>, tensor<2x16x16xf32>) outs(%0 : tensor<2x16x16xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %11 = arith.mulf %in, %in_3 : f32
    linalg.yield %11 : f32
  } -> tensor<2x16x16xf32>
  return %10 : tensor<2x16x16xf32>
}

// -----

#map = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#map2 = affine_map<(d0) -> (d0)>
#map3 = affine_map<(d0, d1, d2) -> (d2)>

// Gemma's RMSNorm: bf16 input, the weight (1 + w) in f32: the kernel reads the weight in the
// input's type, so IREE keeps it.
// CHECK-LABEL: func.func @gemma_bf16(
// CHECK-NOT:     call @
// REMARK:      remark: norm takes iree-codegen: weight in f32, the input in bf16
func.func @gemma_bf16(%a: tensor<2x4x16xbf16>, %x: tensor<2x4x16xbf16>, %w: tensor<16xbf16>) -> tensor<2x4x16xbf16> {
  %c2_i64 = arith.constant 2 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 1.600000e+01 : f32
  %cst_3 = arith.constant 1.000000e+00 : f32
  %0 = tensor.empty() : tensor<2x4x16xbf16>
  %1 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%a, %x : tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) outs(%0 : tensor<2x4x16xbf16>) {
  ^bb0(%in: bf16, %in_4: bf16, %out: bf16):
    %17 = arith.addf %in, %in_4 : bf16
    linalg.yield %17 : bf16
  } -> tensor<2x4x16xbf16>
  %2 = tensor.empty() : tensor<2x4x16xf32>
  %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%1 : tensor<2x4x16xbf16>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %17 = arith.extf %in : bf16 to f32
    linalg.yield %17 : f32
  } -> tensor<2x4x16xf32>
  %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3 : tensor<2x4x16xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %17 = math.fpowi %in, %c2_i64 : f32, i64
    linalg.yield %17 : f32
  } -> tensor<2x4x16xf32>
  %5 = tensor.empty() : tensor<2x4x1xf32>
  %6 = linalg.fill ins(%cst : f32) outs(%5 : tensor<2x4x1xf32>) -> tensor<2x4x1xf32>
  %7 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "reduction"]} ins(%4 : tensor<2x4x16xf32>) outs(%6 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %17 = arith.addf %in, %out : f32
    linalg.yield %17 : f32
  } -> tensor<2x4x1xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%7 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %17 = arith.divf %in, %cst_2 : f32
    linalg.yield %17 : f32
  } -> tensor<2x4x1xf32>
  %9 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%8 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %17 = arith.truncf %cst_1 : f64 to f32
    %18 = arith.addf %in, %17 : f32
    linalg.yield %18 : f32
  } -> tensor<2x4x1xf32>
  %10 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%9 : tensor<2x4x1xf32>) outs(%5 : tensor<2x4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %17 = math.rsqrt %in : f32
    linalg.yield %17 : f32
  } -> tensor<2x4x1xf32>
  %11 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%3, %10 : tensor<2x4x16xf32>, tensor<2x4x1xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_4: f32, %out: f32):
    %17 = arith.mulf %in, %in_4 : f32
    linalg.yield %17 : f32
  } -> tensor<2x4x16xf32>
  %12 = tensor.empty() : tensor<16xf32>
  %13 = linalg.generic {indexing_maps = [#map2, #map2], iterator_types = ["parallel"]} ins(%w : tensor<16xbf16>) outs(%12 : tensor<16xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %17 = arith.extf %in : bf16 to f32
    linalg.yield %17 : f32
  } -> tensor<16xf32>
  %14 = linalg.generic {indexing_maps = [#map2, #map2], iterator_types = ["parallel"]} ins(%13 : tensor<16xf32>) outs(%12 : tensor<16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %17 = arith.addf %in, %cst_3 : f32
    linalg.yield %17 : f32
  } -> tensor<16xf32>
  %15 = linalg.generic {indexing_maps = [#map, #map3, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%11, %14 : tensor<2x4x16xf32>, tensor<16xf32>) outs(%2 : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %in_4: f32, %out: f32):
    %17 = arith.mulf %in, %in_4 : f32
    linalg.yield %17 : f32
  } -> tensor<2x4x16xf32>
  %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel"]} ins(%15 : tensor<2x4x16xf32>) outs(%0 : tensor<2x4x16xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %17 = arith.truncf %in : f32 to bf16
    linalg.yield %17 : bf16
  } -> tensor<2x4x16xbf16>
  return %16 : tensor<2x4x16xbf16>
}
