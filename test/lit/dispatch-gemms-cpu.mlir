// REQUIRES: cpu-kernel
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-gemms{target=cpu:sapphirerapids})' %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-gemms{target=cpu:sapphirerapids})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-gemms{target=cpu:x86-64-v4})' %s | FileCheck %s --check-prefix=NOAMX
//
// dispatch-gemms on a CPU with AMX: torch-mlir's bf16 linear layers (matmul of extended bf16
// operands into a zero f32 accumulator, maybe a bias add, maybe a truncf) become one dispatch
// of flashlift's CPU GEMM kernel (AMX build) on A, W packed in blocks of 32 columns as pairs of
// K (N / 32, K / 2, 32, 2), and
// the bias. Other layers keep their linalg ops and say why; a CPU without AMX keeps them all.

#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>
#vec = affine_map<(d0) -> (d0)>
// nn.Linear(64, 96) in bf16, as torch-mlir lowers it (M = 40: a whole 32 and 8 rows).
// CHECK-LABEL: func.func @linear_bias
// CHECK-SAME:    (%[[X:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[W:[a-zA-Z0-9_]+]]: {{[^,]+}}, %[[B:[a-zA-Z0-9_]+]]:
// CHECK-NOT:     linalg.matmul
// CHECK:         %[[PAIRS:.+]] = tensor.expand_shape %[[W]] {{\[}}[0, 1], [2, 3]] output_shape [3, 32, 32, 2] : tensor<96x64xbf16> into tensor<3x32x32x2xbf16>
// CHECK:         %[[WP:.+]] = linalg.transpose ins(%[[PAIRS]] : tensor<3x32x32x2xbf16>) outs(%{{.+}} : tensor<3x32x32x2xbf16>) permutation = [0, 2, 1, 3]
// CHECK:         %[[R:.+]] = call @[[HELPER:flashlift_gemm_cpu_avx512amx_[0-9a-f]+_call]](%[[X]], %[[WP]], %[[B]]) : (tensor<40x64xbf16>, tensor<3x32x32x2xbf16>, tensor<96xbf16>) -> tensor<40x96xbf16>
// CHECK-NEXT:    return %[[R]]
// CHECK:       hal.executable.source private @[[EXE:flashlift_gemm_cpu_avx512amx_[0-9a-f]+]] <objects =
// CHECK-SAME:    #hal.executable.object<{path = "{{.*}}flashlift_gemm_avx512amx-{{[0-9a-f]+}}.o"}>
// CHECK-DAG:       %[[GX:.+]] = arith.constant 2 : index
// CHECK-DAG:       %[[GY:.+]] = arith.constant 1 : index
// CHECK:           hal.return %[[GX]], %[[GY]]
// CHECK:         func.func private @flashlift_gemm_bf16_bf16_avx512amx(memref<2560xbf16>, memref<6144xbf16>, memref<96xbf16>, memref<3840xbf16>, index, index, index, index, index, index)
// CHECK:       func.func private @[[HELPER]](
// CHECK:         flow.dispatch @[[EXE]]::@[[EXE]](
// REMARK:      dispatch-gemms-cpu.mlir:59:9: remark: gemm takes flashlift-cpu avx512amx
// NOAMX-LABEL: func.func @linear_bias
// NOAMX:         linalg.matmul
// NOAMX-NOT:     flow.dispatch
func.func @linear_bias(%x: tensor<40x64xbf16>, %w: tensor<96x64xbf16>, %b: tensor<96xbf16>) -> tensor<40x96xbf16> {
  %zero = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<64x96xbf16>
  %wt = linalg.transpose ins(%w : tensor<96x64xbf16>) outs(%e0 : tensor<64x96xbf16>) permutation = [1, 0]
  %e1 = tensor.empty() : tensor<96xf32>
  %b32 = linalg.generic {indexing_maps = [#vec, #vec], iterator_types = ["parallel"]} ins(%b : tensor<96xbf16>) outs(%e1 : tensor<96xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<96xf32>
  %e2 = tensor.empty() : tensor<40x64xf32>
  %x32 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<40x64xbf16>) outs(%e2 : tensor<40x64xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<40x64xf32>
  %e3 = tensor.empty() : tensor<64x96xf32>
  %wt32 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%wt : tensor<64x96xbf16>) outs(%e3 : tensor<64x96xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<64x96xf32>
  %e4 = tensor.empty() : tensor<40x96xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e4 : tensor<40x96xf32>) -> tensor<40x96xf32>
  %mm = linalg.matmul ins(%x32, %wt32 : tensor<40x64xf32>, tensor<64x96xf32>) outs(%acc : tensor<40x96xf32>) -> tensor<40x96xf32>
  %biased = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]} ins(%mm, %b32 : tensor<40x96xf32>, tensor<96xf32>) outs(%e4 : tensor<40x96xf32>) {
  ^bb0(%in: f32, %in_1: f32, %out: f32):
    %0 = arith.addf %in, %in_1 : f32
    linalg.yield %0 : f32
  } -> tensor<40x96xf32>
  %e5 = tensor.empty() : tensor<40x96xbf16>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%biased : tensor<40x96xf32>) outs(%e5 : tensor<40x96xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %0 = arith.truncf %in : f32 to bf16
    linalg.yield %0 : bf16
  } -> tensor<40x96xbf16>
  return %r : tensor<40x96xbf16>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
// A bf16 x @ w by a K x N weight with K = 48 (not a multiple of 32: the kernel's tiles), and
// the same in f32: both stay as written.
// CHECK-LABEL: func.func @near_misses
// CHECK-COUNT-2: linalg.matmul
// CHECK-NOT:     flow.dispatch
// REMARK:      dispatch-gemms-cpu.mlir:100:9: remark: gemm takes iree-codegen: K 48, N 64: not multiples of 32 (the CPU GEMM kernel's tiles)
// REMARK:      dispatch-gemms-cpu.mlir:101:9: remark: gemm takes iree-codegen: element type f32 (the CPU GEMM kernel: bf16)
func.func @near_misses(%x: tensor<32x48xbf16>, %w: tensor<48x64xbf16>, %xf: tensor<32x64xf32>, %wf: tensor<64x64xf32>) -> (tensor<32x64xf32>, tensor<32x64xf32>) {
  %zero = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<32x48xf32>
  %x32 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<32x48xbf16>) outs(%e2 : tensor<32x48xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<32x48xf32>
  %e3 = tensor.empty() : tensor<48x64xf32>
  %w32 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%w : tensor<48x64xbf16>) outs(%e3 : tensor<48x64xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<48x64xf32>
  %e4 = tensor.empty() : tensor<32x64xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e4 : tensor<32x64xf32>) -> tensor<32x64xf32>
  %mm = linalg.matmul ins(%x32, %w32 : tensor<32x48xf32>, tensor<48x64xf32>) outs(%acc : tensor<32x64xf32>) -> tensor<32x64xf32>
  %mf = linalg.matmul ins(%xf, %wf : tensor<32x64xf32>, tensor<64x64xf32>) outs(%acc : tensor<32x64xf32>) -> tensor<32x64xf32>
  return %mm, %mf : tensor<32x64xf32>, tensor<32x64xf32>
}
