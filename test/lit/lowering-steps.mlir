// RUN: attn-opt --split-input-file --mask-dynamic-keys %s | FileCheck %s --check-prefix=MASK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(annotate-lowering{target=cpu})' %s | FileCheck %s --check-prefix=CPU
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(annotate-lowering{target=cuda:sm_90})' %s | FileCheck %s --check-prefix=GPU
//
// The codegen steps after raising, on ops left to IREE's code generators:
// mask-dynamic-keys (GPU): a mask-less op with a dynamic key length gets a zero f32 mask over
//   k2 (IREE 3.13 pads a dynamic k2 only through a mask); static keys or an existing mask: unchanged.
// annotate-lowering: the lowering configuration chosen for the op (the tuning database, else
//   the heuristics) attached as its compilation_info; IREE's GPU heuristics keep dynamic keys.

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// MASK-LABEL: func.func @dynamic_keys(
// MASK-SAME:    %[[Q:[a-z0-9]+]]: tensor<4x16x64xf16>, %[[K:[a-z0-9]+]]: tensor<4x?x64xf16>, %[[V:[a-z0-9]+]]: tensor<4x?x64xf16>
// MASK:         %[[C1:.+]] = arith.constant 1 : index
// MASK:         %[[S:.+]] = tensor.dim %[[K]], %[[C1]] : tensor<4x?x64xf16>
// MASK:         %[[E:.+]] = tensor.empty(%[[S]]) : tensor<?xf32>
// MASK:         %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// MASK:         %[[M:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[E]] : tensor<?xf32>)
// MASK:         %[[A:.+]] = iree_linalg_ext.attention {{.*}} ins(%[[Q]], %[[K]], %[[V]], %{{.+}}, %[[M]] : tensor<4x16x64xf16>, tensor<4x?x64xf16>, tensor<4x?x64xf16>, f16, tensor<?xf32>)
// MASK:         return %[[A]]
// CPU-LABEL:  func.func @dynamic_keys(
// CPU:          iree_linalg_ext.attention {{.*}} {compilation_info = #{{.+}}}
// GPU-LABEL:  func.func @dynamic_keys(
// GPU-NOT:      compilation_info
// GPU:          return
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

// Static keys, Sq = 16 != Skv = 128: no mask added; both targets attach a configuration.
// MASK-LABEL: func.func @static_keys(
// MASK-NOT:     linalg.fill
// MASK:         iree_linalg_ext.attention <indexing_maps = [#{{.+}}, #{{.+}}, #{{.+}}, #{{.+}}, #{{.+}}]> ins
// CPU-DAG:    #[[CCFG:.+]] = #iree_cpu.lowering_config<distribution = [1, 16, 64, 0, 0]
// CPU-LABEL:  func.func @static_keys(
// CPU:          iree_linalg_ext.attention {{.*}} {compilation_info = #{{.+}}}
// GPU-DAG:    #[[GT:.+]] = #iree_codegen.translation_info<pipeline = #iree_gpu.pipeline<VectorDistribute>
// GPU-LABEL:  func.func @static_keys(
// GPU:          iree_linalg_ext.attention {{.*}}decomposition_config = {{.*}}attention_qk_matmul{{.*}} {compilation_info = #{{.+}}}
func.func @static_keys(%q: tensor<4x16x64xf16>, %k: tensor<4x128x64xf16>, %v: tensor<4x128x64xf16>) -> tensor<4x16x64xf16> {
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
#mask = affine_map<(b, m, n, k1, k2) -> (b, m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// Dynamic keys that already have a mask (a padding mask): left as written.
// MASK-LABEL: func.func @dynamic_keys_masked(
// MASK-SAME:    %[[PAD:[a-z0-9]+]]: tensor<4x16x?xf16>
// MASK-NOT:     linalg.fill
// MASK:         iree_linalg_ext.attention {{.*}} ins(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %[[PAD]] :
func.func @dynamic_keys_masked(%q: tensor<4x16x64xf16>, %k: tensor<4x?x64xf16>, %v: tensor<4x?x64xf16>, %pad: tensor<4x16x?xf16>) -> tensor<4x16x64xf16> {
  %scale = arith.constant 0.125 : f16
  %init = tensor.empty() : tensor<4x16x64xf16>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %pad : tensor<4x16x64xf16>, tensor<4x?x64xf16>, tensor<4x?x64xf16>, f16, tensor<4x16x?xf16>) outs(%init : tensor<4x16x64xf16>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<4x16x64xf16>
  return %r : tensor<4x16x64xf16>
}
