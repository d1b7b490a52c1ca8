// REQUIRES: cpu-kernel
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(dispatch-attention{target=cpu:x86-64-v3 kernels=on})' %s | FileCheck %s
//
// dispatch-attention moves the model's head transpose (B, S, H, D) -> (B, H, S, D) below the
// rotary embedding between it and Q or K (compiler/head_transposes.py): the embedding's
// elementwise ops, slices and concat then compute in (B, S, H, D), and the kernel reads
// their result in place, so no transpose runs. Chains with an op the rewrite does not take,
// or read outside the chain, stay as written (the kernel then reads Q head-major).

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#cs = affine_map<(d0, d1, d2, d3) -> (d2, d3)>

// LLaMA's rotate-half rotary embedding on Q: q * cos + concat(-q[..., 32:], q[..., :32]) * sin.
// CHECK-DAG:   #[[ID:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[CS:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d1, d3)>
// CHECK-LABEL: func.func @rotary_q(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<2x40x4x64xf32>, %[[COS:[a-z0-9]+]]: tensor<40x64xf32>, %[[SIN:[a-z0-9]+]]: tensor<40x64xf32>, %[[K:[a-z0-9]+]]: tensor<2x4x40x64xf32>, %[[V:[a-z0-9]+]]: tensor<2x4x40x64xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[A:.+]] = linalg.generic {indexing_maps = [#[[ID]], #[[CS]], #[[ID]]]
// CHECK-SAME:      ins(%[[X]], %[[COS]] : tensor<2x40x4x64xf32>, tensor<40x64xf32>) outs(%{{.+}} : tensor<2x40x4x64xf32>)
// CHECK-DAG:     %[[LO:.+]] = tensor.extract_slice %[[X]][0, 0, 0, 0] [2, 40, 4, 32] [1, 1, 1, 1]
// CHECK-DAG:     %[[HI:.+]] = tensor.extract_slice %[[X]][0, 0, 0, 32] [2, 40, 4, 32] [1, 1, 1, 1]
// CHECK:         %[[NEG:.+]] = linalg.generic {{.+}} ins(%[[HI]] : tensor<2x40x4x32xf32>)
// CHECK:         %[[ROT:.+]] = tensor.concat dim(3) %[[NEG]], %[[LO]] : ({{.+}}) -> tensor<2x40x4x64xf32>
// CHECK:         %[[B:.+]] = linalg.generic {{.+}} ins(%[[ROT]], %[[SIN]] :
// CHECK:         %[[RQ:.+]] = linalg.generic {{.+}} ins(%[[A]], %[[B]] : {{.+}}) outs(%{{.+}} : tensor<2x40x4x64xf32>)
// CHECK-NOT:     linalg.transpose
// CHECK:         call @{{flashlift_fa_cpu_avx2_[0-9a-f]+}}_call(%[[RQ]], %[[K]], %[[V]])
func.func @rotary_q(%x: tensor<2x40x4x64xf32>, %cos: tensor<40x64xf32>, %sin: tensor<40x64xf32>, %k: tensor<2x4x40x64xf32>, %v: tensor<2x4x40x64xf32>) -> tensor<2x4x40x64xf32> {
  %e = tensor.empty() : tensor<2x4x40x64xf32>
  %t = linalg.transpose ins(%x : tensor<2x40x4x64xf32>) outs(%e : tensor<2x4x40x64xf32>) permutation = [0, 2, 1, 3]
  %a = linalg.generic {indexing_maps = [#id, #cs, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%t, %cos : tensor<2x4x40x64xf32>, tensor<40x64xf32>) outs(%e : tensor<2x4x40x64xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x64xf32>
  %lo = tensor.extract_slice %t[0, 0, 0, 0] [2, 4, 40, 32] [1, 1, 1, 1] : tensor<2x4x40x64xf32> to tensor<2x4x40x32xf32>
  %hi = tensor.extract_slice %t[0, 0, 0, 32] [2, 4, 40, 32] [1, 1, 1, 1] : tensor<2x4x40x64xf32> to tensor<2x4x40x32xf32>
  %eh = tensor.empty() : tensor<2x4x40x32xf32>
  %n = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%hi : tensor<2x4x40x32xf32>) outs(%eh : tensor<2x4x40x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.negf %in : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x32xf32>
  %r = tensor.concat dim(3) %n, %lo : (tensor<2x4x40x32xf32>, tensor<2x4x40x32xf32>) -> tensor<2x4x40x64xf32>
  %b = linalg.generic {indexing_maps = [#id, #cs, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%r, %sin : tensor<2x4x40x64xf32>, tensor<40x64xf32>) outs(%e : tensor<2x4x40x64xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x64xf32>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%a, %b : tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>) outs(%e : tensor<2x4x40x64xf32>) {
  ^bb0(%in: f32, %in2: f32, %out: f32):
    %0 = arith.addf %in, %in2 : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x64xf32>
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x4x40x64xf32>
  %res = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>, f32) outs(%init : tensor<2x4x40x64xf32>) {
  ^bb0(%x0: f32):
    iree_linalg_ext.yield %x0 : f32
  } -> tensor<2x4x40x64xf32>
  return %res : tensor<2x4x40x64xf32>
}

// -----

#q = affine_map<(b, g, r, m, n, k1, k2) -> (b, g, r, m, k1)>
#k = affine_map<(b, g, r, m, n, k1, k2) -> (b, g, k2, k1)>
#v = affine_map<(b, g, r, m, n, k1, k2) -> (b, g, k2, n)>
#s = affine_map<(b, g, r, m, n, k1, k2) -> ()>
#o = affine_map<(b, g, r, m, n, k1, k2) -> (b, g, r, m, n)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#cs = affine_map<(d0, d1, d2, d3) -> (d2, d3)>

// Grouped-query: Q's heads split into (kv heads, heads per kv head) after the embedding, and
// K scaled by cos behind its own transpose. Both are read in place: Q as (B, S, G, R, D).
// CHECK-LABEL: func.func @grouped_q_and_k(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<2x40x4x64xf32>, %[[COS:[a-z0-9]+]]: tensor<40x64xf32>, %[[XK:[a-z0-9]+]]: tensor<2x40x2x64xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[RQ:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[COS]] : {{.+}}) outs(%{{.+}} : tensor<2x40x4x64xf32>)
// CHECK:         %[[RK:.+]] = linalg.generic {{.+}} ins(%[[XK]], %[[COS]] : {{.+}}) outs(%{{.+}} : tensor<2x40x2x64xf32>)
// CHECK:         %[[GQ:.+]] = tensor.expand_shape %[[RQ]] {{\[}}[0], [1], [2, 3], [4]] output_shape [2, 40, 2, 2, 64]
// CHECK-NOT:     linalg.transpose
// CHECK:         call @{{flashlift_fa_cpu_avx2_[0-9a-f]+}}_call(%[[GQ]], %[[RK]],
func.func @grouped_q_and_k(%x: tensor<2x40x4x64xf32>, %cos: tensor<40x64xf32>, %xk: tensor<2x40x2x64xf32>, %v: tensor<2x2x40x64xf32>) -> tensor<2x2x2x40x64xf32> {
  %e = tensor.empty() : tensor<2x4x40x64xf32>
  %t = linalg.transpose ins(%x : tensor<2x40x4x64xf32>) outs(%e : tensor<2x4x40x64xf32>) permutation = [0, 2, 1, 3]
  %rq = linalg.generic {indexing_maps = [#id, #cs, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%t, %cos : tensor<2x4x40x64xf32>, tensor<40x64xf32>) outs(%e : tensor<2x4x40x64xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x64xf32>
  %ek = tensor.empty() : tensor<2x2x40x64xf32>
  %tk = linalg.transpose ins(%xk : tensor<2x40x2x64xf32>) outs(%ek : tensor<2x2x40x64xf32>) permutation = [0, 2, 1, 3]
  %rk = linalg.generic {indexing_maps = [#id, #cs, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%tk, %cos : tensor<2x2x40x64xf32>, tensor<40x64xf32>) outs(%ek : tensor<2x2x40x64xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x2x40x64xf32>
  %gq = tensor.expand_shape %rq [[0], [1, 2], [3], [4]] output_shape [2, 2, 2, 40, 64] : tensor<2x4x40x64xf32> into tensor<2x2x2x40x64xf32>
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x2x2x40x64xf32>
  %res = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%gq, %rk, %v, %scale : tensor<2x2x2x40x64xf32>, tensor<2x2x40x64xf32>, tensor<2x2x40x64xf32>, f32) outs(%init : tensor<2x2x2x40x64xf32>) {
  ^bb0(%x0: f32):
    iree_linalg_ext.yield %x0 : f32
  } -> tensor<2x2x2x40x64xf32>
  return %res : tensor<2x2x2x40x64xf32>
}

// -----

#q = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, k1)>
#k = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, k1)>
#v = affine_map<(b, h, m, n, k1, k2) -> (b, h, k2, n)>
#s = affine_map<(b, h, m, n, k1, k2) -> ()>
#o = affine_map<(b, h, m, n, k1, k2) -> (b, h, m, n)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#cs = affine_map<(d0, d1, d2, d3) -> (d2, d3)>

// Near misses, left as written: the embedded Q is also returned (read outside the chain), and
// K's elementwise op reads its loop indices (linalg.index: they would move with the layout).
// CHECK-LABEL: func.func @read_outside_or_indexed(
// CHECK:         %[[T:.+]] = linalg.transpose
// CHECK:         %[[RQ:.+]] = linalg.generic {{.+}} ins(%[[T]], {{.+}}) outs(%{{.+}} : tensor<2x4x40x64xf32>)
// CHECK:         %[[TK:.+]] = linalg.transpose
// CHECK:         %[[RK:.+]] = linalg.generic {{.+}} ins(%[[TK]] : {{.+}}) outs(%{{.+}} : tensor<2x4x40x64xf32>)
// CHECK:         %[[O:.+]] = call @{{flashlift_fa_cpu_avx2_[0-9a-f]+}}_call(%[[RQ]], %[[RK]],
// CHECK:         return %[[O]], %[[RQ]]
func.func @read_outside_or_indexed(%x: tensor<2x40x4x64xf32>, %cos: tensor<40x64xf32>, %xk: tensor<2x40x4x64xf32>, %v: tensor<2x4x40x64xf32>) -> (tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>) {
  %e = tensor.empty() : tensor<2x4x40x64xf32>
  %t = linalg.transpose ins(%x : tensor<2x40x4x64xf32>) outs(%e : tensor<2x4x40x64xf32>) permutation = [0, 2, 1, 3]
  %rq = linalg.generic {indexing_maps = [#id, #cs, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%t, %cos : tensor<2x4x40x64xf32>, tensor<40x64xf32>) outs(%e : tensor<2x4x40x64xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x64xf32>
  %tk = linalg.transpose ins(%xk : tensor<2x40x4x64xf32>) outs(%e : tensor<2x4x40x64xf32>) permutation = [0, 2, 1, 3]
  %rk = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%tk : tensor<2x4x40x64xf32>) outs(%e : tensor<2x4x40x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i32
    %f = arith.sitofp %ii : i32 to f32
    %0 = arith.mulf %in, %f : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x40x64xf32>
  %scale = arith.constant 0.125 : f32
  %init = tensor.empty() : tensor<2x4x40x64xf32>
  %res = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%rq, %rk, %v, %scale : tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>, f32) outs(%init : tensor<2x4x40x64xf32>) {
  ^bb0(%x0: f32):
    iree_linalg_ext.yield %x0 : f32
  } -> tensor<2x4x40x64xf32>
  return %res, %rq : tensor<2x4x40x64xf32>, tensor<2x4x40x64xf32>
}
