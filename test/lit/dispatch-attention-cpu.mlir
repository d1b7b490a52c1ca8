// REQUIRES: cpu-kernel
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cpu:x86-64-v3 kernels=on})' %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cpu:x86-64-v3 kernels=on})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cpu:x86-64-v4 kernels=on})' %s | FileCheck %s --check-prefix=AVX512
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cpu:generic kernels=on})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=GENERIC
//
// dispatch-attention (CPU): an attention op flashlift's CPU kernel covers (f32, f16, bf16) becomes a
// flow.dispatch of an executable that links the kernel's object (by path) and calls it from a
// shim, once per (query block, batch * head) workgroup; anything else stays an
// iree_linalg_ext.attention for IREE's codegen, and the remark says why. A target that does
// not promise AVX2, FMA and F16C (cpu:generic) keeps IREE's codegen for every op. The build of
// the kernel is the best the target promises: avx2 for cpu:x86-64-v3, avx512 for -v4 (AVX512).

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// f32, Sq = 40 != Skv = 100: two query blocks of 32 rows per (batch * head), 4 of those.
// CHECK-LABEL: func.func @covered(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<4x40x64xf32>, %[[K:[a-z0-9]+]]: tensor<4x100x64xf32>, %[[V:[a-z0-9]+]]: tensor<4x100x64xf32>
// CHECK-NOT:     iree_linalg_ext.attention
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_fa_cpu_avx2_[0-9a-f]+]]_call(%[[Q]], %[[K]], %[[V]])
// CHECK:         return %[[R]]
// CHECK:       hal.executable.source private @[[EXE]] <objects =
// CHECK-SAME:    #hal.executable.object<{path = "{{.*}}flashlift_attention_avx2-{{[0-9a-f]+}}.o"}>
// CHECK:         hal.executable.export public @[[EXE]]
// CHECK-DAG:       %[[X:.+]] = arith.constant 2 : index
// CHECK-DAG:       %[[Y:.+]] = arith.constant 4 : index
// CHECK:           hal.return %[[X]], %[[Y]]
// CHECK:         func.func private @flashlift_attention_f32_f32_avx2(memref<10240xf32>, memref<25600xf32>, memref<25600xf32>, memref<10240xf32>, memref<10240xf32>
// CHECK-SAME:      attributes {hal.import.static}
// CHECK:         call @flashlift_attention_f32_f32_avx2(
// CHECK:       func.func private @[[EXE]]_call(
// CHECK:         flow.dispatch @[[EXE]]::@[[EXE]](
// AVX512-LABEL: func.func @covered(
// AVX512:         call @[[EXE:flashlift_fa_cpu_avx512_[0-9a-f]+]]_call(
// AVX512:         #hal.executable.object<{path = "{{.*}}flashlift_attention_avx512-{{[0-9a-f]+}}.o"}>
// AVX512:         call @flashlift_attention_f32_f32_avx512(
// REMARK:      dispatch-attention-cpu.mlir:46:8: remark: attention takes flashlift-cpu avx2
// GENERIC:     dispatch-attention-cpu.mlir:46:8: remark: attention takes iree-codegen: target cpu:generic does not promise AVX2, FMA and F16C
func.func @covered(%q: tensor<4x40x64xf32>, %k: tensor<4x100x64xf32>, %v: tensor<4x100x64xf32>) -> tensor<4x40x64xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<4x40x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x40x64xf32>, tensor<4x100x64xf32>, tensor<4x100x64xf32>, f32) outs(%init : tensor<4x40x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x40x64xf32>
  return %r : tensor<4x40x64xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// f64: the CPU kernel reads f32, f16 and bf16.
// CHECK-LABEL: func.func @double(
// CHECK-NOT:     flow.dispatch
// CHECK:         iree_linalg_ext.attention
// REMARK:      dispatch-attention-cpu.mlir:69:8: remark: attention takes iree-codegen: element type f64 (kernel: f32, f16, bf16)
func.func @double(%q: tensor<4x16x64xf64>, %k: tensor<4x128x64xf64>, %v: tensor<4x128x64xf64>) -> tensor<4x16x64xf64> {
  %scale = arith.constant 0.125 : f64
  %init = tensor.empty() : tensor<4x16x64xf64>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x16x64xf64>, tensor<4x128x64xf64>, tensor<4x128x64xf64>, f64) outs(%init : tensor<4x16x64xf64>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x16x64xf64>
  return %r : tensor<4x16x64xf64>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// Head dim 40: not a multiple of 16.
// CHECK-LABEL: func.func @head_dim_40(
// CHECK-NOT:     flow.dispatch
// CHECK:         iree_linalg_ext.attention
// REMARK:      dispatch-attention-cpu.mlir:92:8: remark: attention takes iree-codegen: head dim 40 (kernel: a multiple of 16 up to 128)
func.func @head_dim_40(%q: tensor<4x16x40xf32>, %k: tensor<4x128x40xf32>, %v: tensor<4x128x40xf32>) -> tensor<4x16x40xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<4x16x40xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x16x40xf32>, tensor<4x128x40xf32>, tensor<4x128x40xf32>, f32) outs(%init : tensor<4x16x40xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x16x40xf32>
  return %r : tensor<4x16x40xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#m = affine_map<(b, h, m, n, k1, k2) -> (b, k2)>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// A run-time [B, K2] key-padding mask (a function argument): the kernel reads it, as the
// fourth of five bindings.
// CHECK-LABEL: func.func @runtime_mask(
// CHECK-SAME:    %[[M:[a-z0-9]+]]: tensor<2x128xf32>
// CHECK:         call @[[EXE:flashlift_fa_cpu_avx2_[0-9a-f]+]]_call(%{{.+}}, %{{.+}}, %{{.+}}, %[[M]])
// CHECK:         func.func private @flashlift_attention_f32_f32_avx2(memref<4096xf32>, memref<32768xf32>, memref<32768xf32>, memref<256xf32>, memref<4096xf32>
// REMARK:      dispatch-attention-cpu.mlir:118:8: remark: attention takes flashlift-cpu avx2
func.func @runtime_mask(%q: tensor<2x2x16x64xf32>, %k: tensor<2x2x128x64xf32>, %v: tensor<2x2x128x64xf32>, %mask: tensor<2x128xf32>) -> tensor<2x2x16x64xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x2x16x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #m, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x2x16x64xf32>, tensor<2x2x128x64xf32>, tensor<2x2x128x64xf32>, f32, tensor<2x128xf32>) outs(%init : tensor<2x2x16x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x16x64xf32>
  return %r : tensor<2x2x16x64xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#m = affine_map<(b, h, m, n, k1, k2) -> (b, k2)>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// The same mask in f16: the kernel reads f32 masks only.
// CHECK-LABEL: func.func @runtime_mask_f16(
// CHECK-NOT:     flow.dispatch
// CHECK:         iree_linalg_ext.attention
// REMARK:      dispatch-attention-cpu.mlir:142:8: remark: attention takes iree-codegen: run-time mask in f16 (the CPU kernel reads f32 masks)
func.func @runtime_mask_f16(%q: tensor<2x2x16x64xf32>, %k: tensor<2x2x128x64xf32>, %v: tensor<2x2x128x64xf32>, %mask: tensor<2x128xf16>) -> tensor<2x2x16x64xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x2x16x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #m, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x2x16x64xf32>, tensor<2x2x128x64xf32>, tensor<2x2x128x64xf32>, f32, tensor<2x128xf16>) outs(%init : tensor<2x2x16x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x16x64xf32>
  return %r : tensor<2x2x16x64xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// bf16 inputs with an f32 result: the kernel's bf16 -> f32 entry point, bindings in those types.
// CHECK-LABEL: func.func @bf16_in_f32_out(
// CHECK:         call @[[EXE:flashlift_fa_cpu_avx2_[0-9a-f]+]]_call(
// AVX512-LABEL: func.func @bf16_in_f32_out(
// AVX512:         func.func private @flashlift_attention_bf16_f32_avx512(memref<2048xbf16>
// CHECK:         func.func private @flashlift_attention_bf16_f32_avx2(memref<2048xbf16>, memref<8192xbf16>, memref<8192xbf16>, memref<2048xbf16>, memref<2048xf32>
func.func @bf16_in_f32_out(%q: tensor<2x16x64xbf16>, %k: tensor<2x64x64xbf16>, %v: tensor<2x64x64xbf16>) -> tensor<2x16x64xf32> {
  %scale = arith.constant 0.125 : bf16
  %init = tensor.empty() : tensor<2x16x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<2x16x64xbf16>, tensor<2x64x64xbf16>, tensor<2x64x64xbf16>, bf16) outs(%init : tensor<2x16x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x16x64xf32>
  return %r : tensor<2x16x64xf32>
}

// -----

#q4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s4 = affine_map<(b, h, m, n, k1, k2) -> ()>
#o4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>
// A fused QKV projection's result [B*S, 3*H*D] = [16, 96] whose column slices, expanded to
// (B, S, H, D) and transposed, are Q, K and V; the output transposed back. The kernel reads
// the projection's result at columns 0, 32 and 64 of its 96 (the widths and columns of Q, K,
// V, then O's: 32 wide from 0; then 0: empty rows stay NaN) and writes (B, S, H, D): no slice
// copy, no transpose is left.
// CHECK-LABEL: func.func @fused_qkv_columns(
// CHECK-SAME:    %[[QKV:[a-z0-9]+]]: tensor<16x96xf32>
// CHECK-NOT:     tensor.extract_slice
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_fa_cpu_avx2_[0-9a-f]+]]_call(%[[QKV]], %[[QKV]], %[[QKV]]) : ({{.*}}) -> tensor<2x8x2x16xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[R]]
// CHECK-NEXT:    return %[[C]]
// CHECK:         func.func private @flashlift_attention_f32_f32_avx2(memref<1536xf32>, memref<1536xf32>, memref<1536xf32>, memref<1536xf32>, memref<512xf32>
// CHECK:           call @flashlift_attention_f32_f32_avx2({{.*}}, %cst, %{{c96[_0-9]*}}, %{{c0[_0-9]*}}, %{{c96[_0-9]*}}, %{{c32[_0-9]*}}, %{{c96[_0-9]*}}, %{{c64[_0-9]*}}, %{{c32[_0-9]*}}, %{{c0[_0-9]*}}, %{{c0[_0-9]*}})
// REMARK:      dispatch-attention-cpu.mlir:{{[0-9]+}}:8: remark: attention takes flashlift-cpu avx2
func.func @fused_qkv_columns(%qkv: tensor<16x96xf32>) -> tensor<16x32xf32> {
  %scale = arith.constant 0.25 : f32
  %qs = tensor.extract_slice %qkv[0, 0] [16, 32] [1, 1] : tensor<16x96xf32> to tensor<16x32xf32>
  %ks = tensor.extract_slice %qkv[0, 32] [16, 32] [1, 1] : tensor<16x96xf32> to tensor<16x32xf32>
  %vs = tensor.extract_slice %qkv[0, 64] [16, 32] [1, 1] : tensor<16x96xf32> to tensor<16x32xf32>
  %qe = tensor.expand_shape %qs [[0, 1], [2, 3]] output_shape [2, 8, 2, 16] : tensor<16x32xf32> into tensor<2x8x2x16xf32>
  %ke = tensor.expand_shape %ks [[0, 1], [2, 3]] output_shape [2, 8, 2, 16] : tensor<16x32xf32> into tensor<2x8x2x16xf32>
  %ve = tensor.expand_shape %vs [[0, 1], [2, 3]] output_shape [2, 8, 2, 16] : tensor<16x32xf32> into tensor<2x8x2x16xf32>
  %e = tensor.empty() : tensor<2x2x8x16xf32>
  %q = linalg.transpose ins(%qe : tensor<2x8x2x16xf32>) outs(%e : tensor<2x2x8x16xf32>) permutation = [0, 2, 1, 3]
  %k = linalg.transpose ins(%ke : tensor<2x8x2x16xf32>) outs(%e : tensor<2x2x8x16xf32>) permutation = [0, 2, 1, 3]
  %v = linalg.transpose ins(%ve : tensor<2x8x2x16xf32>) outs(%e : tensor<2x2x8x16xf32>) permutation = [0, 2, 1, 3]
  %a = iree_linalg_ext.attention <{indexing_maps = [#q4, #k4, #v4, #s4, #o4]}> ins(%q, %k, %v, %scale : tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, f32) outs(%e : tensor<2x2x8x16xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x8x16xf32>
  %e2 = tensor.empty() : tensor<2x8x2x16xf32>
  %t = linalg.transpose ins(%a : tensor<2x2x8x16xf32>) outs(%e2 : tensor<2x8x2x16xf32>) permutation = [0, 2, 1, 3]
  %c = tensor.collapse_shape %t [[0, 1], [2, 3]] : tensor<2x8x2x16xf32> into tensor<16x32xf32>
  return %c : tensor<16x32xf32>
}

// -----

#q4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s4 = affine_map<(b, h, m, n, k1, k2) -> ()>
#o4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>
// Near miss: the slices take 16 of the [24, 96] tensor's rows (Q rows 8..24), so it is not a
// [B*S, width] projection result. The kernel reads Q, K and V where the expand_shapes leave
// them, (B, S, H, D): the slices stay (copies), the transposes go.
// CHECK-LABEL: func.func @row_slice(
// CHECK-SAME:    %[[QKV:[a-z0-9]+]]: tensor<24x96xf32>
// CHECK:         %[[QS:.+]] = tensor.extract_slice %[[QKV]][8, 0] [16, 32] [1, 1]
// CHECK:         %[[KS:.+]] = tensor.extract_slice %[[QKV]][0, 32] [16, 32] [1, 1]
// CHECK:         %[[VS:.+]] = tensor.extract_slice %[[QKV]][0, 64] [16, 32] [1, 1]
// CHECK:         %[[QE:.+]] = tensor.expand_shape %[[QS]]
// CHECK:         %[[KE:.+]] = tensor.expand_shape %[[KS]]
// CHECK:         %[[VE:.+]] = tensor.expand_shape %[[VS]]
// CHECK-NOT:     linalg.transpose
// CHECK:         call @{{flashlift_fa_cpu_avx2_[0-9a-f]+}}_call(%[[QE]], %[[KE]], %[[VE]]) : (tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x2x16xf32>
// REMARK:      dispatch-attention-cpu.mlir:{{[0-9]+}}:8: remark: attention takes flashlift-cpu avx2
func.func @row_slice(%qkv: tensor<24x96xf32>) -> tensor<16x32xf32> {
  %scale = arith.constant 0.25 : f32
  %qs = tensor.extract_slice %qkv[8, 0] [16, 32] [1, 1] : tensor<24x96xf32> to tensor<16x32xf32>
  %ks = tensor.extract_slice %qkv[0, 32] [16, 32] [1, 1] : tensor<24x96xf32> to tensor<16x32xf32>
  %vs = tensor.extract_slice %qkv[0, 64] [16, 32] [1, 1] : tensor<24x96xf32> to tensor<16x32xf32>
  %qe = tensor.expand_shape %qs [[0, 1], [2, 3]] output_shape [2, 8, 2, 16] : tensor<16x32xf32> into tensor<2x8x2x16xf32>
  %ke = tensor.expand_shape %ks [[0, 1], [2, 3]] output_shape [2, 8, 2, 16] : tensor<16x32xf32> into tensor<2x8x2x16xf32>
  %ve = tensor.expand_shape %vs [[0, 1], [2, 3]] output_shape [2, 8, 2, 16] : tensor<16x32xf32> into tensor<2x8x2x16xf32>
  %e = tensor.empty() : tensor<2x2x8x16xf32>
  %q = linalg.transpose ins(%qe : tensor<2x8x2x16xf32>) outs(%e : tensor<2x2x8x16xf32>) permutation = [0, 2, 1, 3]
  %k = linalg.transpose ins(%ke : tensor<2x8x2x16xf32>) outs(%e : tensor<2x2x8x16xf32>) permutation = [0, 2, 1, 3]
  %v = linalg.transpose ins(%ve : tensor<2x8x2x16xf32>) outs(%e : tensor<2x2x8x16xf32>) permutation = [0, 2, 1, 3]
  %a = iree_linalg_ext.attention <{indexing_maps = [#q4, #k4, #v4, #s4, #o4]}> ins(%q, %k, %v, %scale : tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, f32) outs(%e : tensor<2x2x8x16xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x8x16xf32>
  %e2 = tensor.empty() : tensor<2x8x2x16xf32>
  %t = linalg.transpose ins(%a : tensor<2x2x8x16xf32>) outs(%e2 : tensor<2x8x2x16xf32>) permutation = [0, 2, 1, 3]
  %c = tensor.collapse_shape %t [[0, 1], [2, 3]] : tensor<2x8x2x16xf32> into tensor<16x32xf32>
  return %c : tensor<16x32xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#m = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k2)>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// A run-time [B, H, M, K2] mask, a row per head (ALiBi's bias plus padding): the kernel reads
// it whole, as the fourth binding.
// CHECK-LABEL: func.func @runtime_mask_per_head(
// CHECK-SAME:    %[[M:[a-z0-9]+]]: tensor<2x2x16x128xf32>
// CHECK:         call @[[EXE:flashlift_fa_cpu_avx2_[0-9a-f]+]]_call(%{{.+}}, %{{.+}}, %{{.+}}, %[[M]])
// CHECK:         func.func private @flashlift_attention_f32_f32_avx2(memref<4096xf32>, memref<32768xf32>, memref<32768xf32>, memref<8192xf32>, memref<4096xf32>
// REMARK:      dispatch-attention-cpu.mlir:{{[0-9]+}}:8: remark: attention takes flashlift-cpu avx2
func.func @runtime_mask_per_head(%q: tensor<2x2x16x64xf32>, %k: tensor<2x2x128x64xf32>, %v: tensor<2x2x128x64xf32>, %mask: tensor<2x2x16x128xf32>) -> tensor<2x2x16x64xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x2x16x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #m, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x2x16x64xf32>, tensor<2x2x128x64xf32>, tensor<2x2x128x64xf32>, f32, tensor<2x2x16x128xf32>) outs(%init : tensor<2x2x16x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x16x64xf32>
  return %r : tensor<2x2x16x64xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#m = affine_map<(b, h, m, n, k1, k2) -> (h, m, k2)>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// A run-time [H, M, K2] mask, one per head for every batch entry (Swin's relative-position
// bias, a function of the weights): the kernel reads it as it is.
// CHECK-LABEL: func.func @runtime_mask_per_head_shared(
// CHECK-SAME:    %[[M:[a-z0-9]+]]: tensor<2x16x128xf32>
// CHECK:         call @[[EXE:flashlift_fa_cpu_avx2_[0-9a-f]+]]_call(%{{.+}}, %{{.+}}, %{{.+}}, %[[M]])
// CHECK:         func.func private @flashlift_attention_f32_f32_avx2(memref<4096xf32>, memref<32768xf32>, memref<32768xf32>, memref<4096xf32>, memref<4096xf32>
// REMARK:      dispatch-attention-cpu.mlir:{{[0-9]+}}:8: remark: attention takes flashlift-cpu avx2
func.func @runtime_mask_per_head_shared(%q: tensor<2x2x16x64xf32>, %k: tensor<2x2x128x64xf32>, %v: tensor<2x2x128x64xf32>, %mask: tensor<2x16x128xf32>) -> tensor<2x2x16x64xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x2x16x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #m, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x2x16x64xf32>, tensor<2x2x128x64xf32>, tensor<2x2x128x64xf32>, f32, tensor<2x16x128xf32>) outs(%init : tensor<2x2x16x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x16x64xf32>
  return %r : tensor<2x2x16x64xf32>
}
