// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cuda:sm_90 kernels=on})' %s | FileCheck %s
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cuda:sm_90 kernels=on})' --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cuda:sm_90 kernels=off})' %s | FileCheck %s --check-prefix=OFF
//
// dispatch-attention (CUDA): an attention op flashlift's FlashAttention kernel covers becomes a
// flow.dispatch of that kernel (its cubin embedded in a hal.executable.source); anything else
// stays an iree_linalg_ext.attention for IREE's codegen. Each site's path is a remark.
// kernels=off leaves every op to IREE.

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// Static f16, Sq = 16 != Skv = 128: a call of the kernel's wrapper, then the kernel's
// executable (its cubin inline), then the wrapper's flow.dispatch.
// CHECK-LABEL: func.func @covered(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<4x16x64xf16>, %[[K:[a-z0-9]+]]: tensor<4x128x64xf16>, %[[V:[a-z0-9]+]]: tensor<4x128x64xf16>
// CHECK-NOT:     iree_linalg_ext.attention
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_fa_sm90_[0-9a-f]+]]_call(%[[Q]], %[[K]], %[[V]])
// CHECK:         return %[[R]]
// CHECK:       hal.executable.source private @[[EXE]] <objects =
// CHECK-SAME:    #hal.executable.object<{path = "[[EXE]].cubin", data = dense<"0x7F454C46
// CHECK:       func.func private @[[EXE]]_call(
// CHECK:         flow.dispatch @[[EXE]]::@_fa_fwd_kernel(
// REMARK:      dispatch-attention.mlir:34:8: remark: attention takes triton-fa sm_90
// OFF-LABEL:   func.func @covered(
// OFF-NOT:       flow.dispatch
// OFF:           iree_linalg_ext.attention
func.func @covered(%q: tensor<4x16x64xf16>, %k: tensor<4x128x64xf16>, %v: tensor<4x128x64xf16>) -> tensor<4x16x64xf16> {
  %scale = arith.constant 0.125 : f16
  %init = tensor.empty() : tensor<4x16x64xf16>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x16x64xf16>, tensor<4x128x64xf16>, tensor<4x128x64xf16>, f16) outs(%init : tensor<4x16x64xf16>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x16x64xf16>
  return %r : tensor<4x16x64xf16>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// A dynamic key length: left to IREE, and the remark says why.
// CHECK-LABEL: func.func @dynamic_keys(
// CHECK-NOT:     flow.dispatch
// CHECK:         iree_linalg_ext.attention
// REMARK:      dispatch-attention.mlir:57:8: remark: attention takes iree-codegen: dynamic shape of K (tensor<4x?x64xf16>)
func.func @dynamic_keys(%q: tensor<4x16x64xf16>, %k: tensor<4x?x64xf16>, %v: tensor<4x?x64xf16>) -> tensor<4x16x64xf16> {
  %scale = arith.constant 0.125 : f16
  %init = tensor.empty() : tensor<4x16x64xf16>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x16x64xf16>, tensor<4x?x64xf16>, tensor<4x?x64xf16>, f16) outs(%init : tensor<4x16x64xf16>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x16x64xf16>
  return %r : tensor<4x16x64xf16>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// f32 (the kernel takes f16 and bf16): left to IREE.
// CHECK-LABEL: func.func @f32(
// CHECK-NOT:     flow.dispatch
// CHECK:         iree_linalg_ext.attention
// REMARK:      dispatch-attention.mlir:80:8: remark: attention takes iree-codegen: {{.*}}f32
func.func @f32(%q: tensor<4x16x64xf32>, %k: tensor<4x128x64xf32>, %v: tensor<4x128x64xf32>) -> tensor<4x16x64xf32> {
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<4x16x64xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x16x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>, f32) outs(%init : tensor<4x16x64xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x16x64xf32>
  return %r : tensor<4x16x64xf32>
}

// -----

#q4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s4 = affine_map<(b, h, m, n, k1, k2) -> ()>
#o4 = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>
// A fused QKV projection's f16 result [B*S, 3*H*D] = [256, 384] whose column slices, expanded
// to (B, S, H, D) and transposed, are Q, K and V; the output transposed back. The kernel reads
// the projection's result at columns 0, 128 and 256 (fa_layouts.py) and writes (B, S, H, D):
// no slice copy and no transpose is left, the one tensor is bound as Q, K and V.
// CHECK-LABEL: func.func @fused_qkv_columns(
// CHECK-SAME:    %[[QKV:[a-z0-9]+]]: tensor<256x384xf16>
// CHECK-NOT:     tensor.extract_slice
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[R:.+]] = call @[[EXE:flashlift_fa_sm90_[0-9a-f]+]]_call(%[[QKV]], %[[QKV]], %[[QKV]]) : ({{.*}}) -> tensor<2x128x2x64xf16>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[R]]
// CHECK-NEXT:    return %[[C]]
// REMARK:      dispatch-attention.mlir:{{[0-9]+}}:8: remark: attention takes triton-fa sm_90
func.func @fused_qkv_columns(%qkv: tensor<256x384xf16>) -> tensor<256x128xf16> {
  %scale = arith.constant 0.125 : f16
  %qs = tensor.extract_slice %qkv[0, 0] [256, 128] [1, 1] : tensor<256x384xf16> to tensor<256x128xf16>
  %ks = tensor.extract_slice %qkv[0, 128] [256, 128] [1, 1] : tensor<256x384xf16> to tensor<256x128xf16>
  %vs = tensor.extract_slice %qkv[0, 256] [256, 128] [1, 1] : tensor<256x384xf16> to tensor<256x128xf16>
  %qe = tensor.expand_shape %qs [[0, 1], [2, 3]] output_shape [2, 128, 2, 64] : tensor<256x128xf16> into tensor<2x128x2x64xf16>
  %ke = tensor.expand_shape %ks [[0, 1], [2, 3]] output_shape [2, 128, 2, 64] : tensor<256x128xf16> into tensor<2x128x2x64xf16>
  %ve = tensor.expand_shape %vs [[0, 1], [2, 3]] output_shape [2, 128, 2, 64] : tensor<256x128xf16> into tensor<2x128x2x64xf16>
  %e = tensor.empty() : tensor<2x2x128x64xf16>
  %q = linalg.transpose ins(%qe : tensor<2x128x2x64xf16>) outs(%e : tensor<2x2x128x64xf16>) permutation = [0, 2, 1, 3]
  %k = linalg.transpose ins(%ke : tensor<2x128x2x64xf16>) outs(%e : tensor<2x2x128x64xf16>) permutation = [0, 2, 1, 3]
  %v = linalg.transpose ins(%ve : tensor<2x128x2x64xf16>) outs(%e : tensor<2x2x128x64xf16>) permutation = [0, 2, 1, 3]
  %a = iree_linalg_ext.attention <{indexing_maps = [#q4, #k4, #v4, #s4, #o4]}> ins(%q, %k, %v, %scale : tensor<2x2x128x64xf16>, tensor<2x2x128x64xf16>, tensor<2x2x128x64xf16>, f16) outs(%e : tensor<2x2x128x64xf16>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x128x64xf16>
  %e2 = tensor.empty() : tensor<2x128x2x64xf16>
  %t = linalg.transpose ins(%a : tensor<2x2x128x64xf16>) outs(%e2 : tensor<2x128x2x64xf16>) permutation = [0, 2, 1, 3]
  %c = tensor.collapse_shape %t [[0, 1], [2, 3]] : tensor<2x128x2x64xf16> into tensor<256x128xf16>
  return %c : tensor<256x128xf16>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#m = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k2)>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>

// A run-time mask with a row per head (ALiBi's bias plus padding): the kernel reads it whole,
// as the fourth binding, each (batch, head) program at its own rows.
// CHECK-LABEL: func.func @runtime_mask_per_head(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x2x128x64xf16>, %[[K:[a-z0-9]+]]: tensor<2x2x128x64xf16>, %[[V:[a-z0-9]+]]: tensor<2x2x128x64xf16>, %[[M:[a-z0-9]+]]: tensor<2x2x128x128xf16>
// CHECK-NOT:     iree_linalg_ext.attention
// CHECK:         call @{{flashlift_fa_sm90_[0-9a-f]+}}_call(%[[Q]], %[[K]], %[[V]], %[[M]]) : (tensor<2x2x128x64xf16>, tensor<2x2x128x64xf16>, tensor<2x2x128x64xf16>, tensor<2x2x128x128xf16>) -> tensor<2x2x128x64xf16>
// REMARK:      dispatch-attention.mlir:{{[0-9]+}}:8: remark: attention takes triton-fa sm_90
func.func @runtime_mask_per_head(%q: tensor<2x2x128x64xf16>, %k: tensor<2x2x128x64xf16>, %v: tensor<2x2x128x64xf16>, %mask: tensor<2x2x128x128xf16>) -> tensor<2x2x128x64xf16> {
  %scale = arith.constant 0.125 : f16
  %init = tensor.empty() : tensor<2x2x128x64xf16>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #m, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x2x128x64xf16>, tensor<2x2x128x64xf16>, tensor<2x2x128x64xf16>, f16, tensor<2x2x128x128xf16>) outs(%init : tensor<2x2x128x64xf16>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x2x128x64xf16>
  return %r : tensor<2x2x128x64xf16>
}
