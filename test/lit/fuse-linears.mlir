// RUN: attn-opt --split-input-file --fuse-linears %s | FileCheck %s
// RUN: attn-opt --split-input-file --fuse-linears --remarks %s 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: attn-opt --split-input-file --pass-pipeline='builtin.module(fuse-linears{reads=attention})' %s | FileCheck %s --check-prefix=ATTN
//
// With reads=attention (the GPU default) only groups whose results attention ops alone read
// are fused; no layer here feeds an attention op, so nothing is (the positive case:
// test_fuse_linears.py, test_gpu_default_fuses_only_what_the_attention_reads_in_place).
// ATTN-NOT:    tensor.concat
// ATTN-NOT:    tensor.extract_slice
//
// fuse-linears: linear layers (torch-mlir's matmul(X, transpose(W)) into a zero fill, maybe
// a bias add and, in half precision, the extensions and the rounding around it) that read
// the same X become one such chain over the concatenated weights and biases, sliced after.

#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>

// Q, K, V in f32, K and V narrower (grouped-query): one GEMM [8 x 16] x [16 x 32], one bias add.
// CHECK-LABEL: func.func @qkv(
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<8x16xf32>
// CHECK-DAG:     %[[WQ:.+]] = arith.constant dense<1.000000e+00> : tensor<16x16xf32>
// CHECK-DAG:     %[[WK:.+]] = arith.constant dense<2.000000e+00> : tensor<8x16xf32>
// CHECK-DAG:     %[[WV:.+]] = arith.constant dense<3.000000e+00> : tensor<8x16xf32>
// CHECK-DAG:     %[[BQ:.+]] = arith.constant dense<4.000000e+00> : tensor<16xf32>
// CHECK-DAG:     %[[BK:.+]] = arith.constant dense<5.000000e+00> : tensor<8xf32>
// CHECK-DAG:     %[[BV:.+]] = arith.constant dense<6.000000e+00> : tensor<8xf32>
// CHECK:         %[[W:.+]] = tensor.concat dim(0) %[[WQ]], %[[WK]], %[[WV]] : (tensor<16x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<32x16xf32>
// CHECK:         %[[WT:.+]] = linalg.transpose ins(%[[W]] : tensor<32x16xf32>) outs(%{{.+}} : tensor<16x32xf32>) permutation = [1, 0]
// CHECK:         %[[ACC:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<8x32xf32>)
// CHECK:         %[[MM:.+]] = linalg.matmul ins(%[[X]], %[[WT]] : tensor<8x16xf32>, tensor<16x32xf32>) outs(%[[ACC]] : tensor<8x32xf32>)
// CHECK:         %[[B:.+]] = tensor.concat dim(0) %[[BQ]], %[[BK]], %[[BV]] : (tensor<16xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<32xf32>
// CHECK:         %[[Y:.+]] = linalg.generic {{.*}} ins(%[[MM]], %[[B]] : tensor<8x32xf32>, tensor<32xf32>)
// CHECK:         %[[Q:.+]] = tensor.extract_slice %[[Y]][0, 0] [8, 16] [1, 1]
// CHECK:         %[[K:.+]] = tensor.extract_slice %[[Y]][0, 16] [8, 8] [1, 1]
// CHECK:         %[[V:.+]] = tensor.extract_slice %[[Y]][0, 24] [8, 8] [1, 1]
// CHECK-NOT:     linalg.matmul
// CHECK:         return %[[Q]], %[[K]], %[[V]]
// REMARK:      fuse-linears.mlir:51:9: remark: 3 linear layers fused into one GEMM [8 x 16] x [16 x 32] (widths 16, 8, 8)
func.func @qkv(%x: tensor<8x16xf32>) -> (tensor<8x16xf32>, tensor<8x8xf32>, tensor<8x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %wq = arith.constant dense<1.0> : tensor<16x16xf32>
  %wk = arith.constant dense<2.0> : tensor<8x16xf32>
  %wv = arith.constant dense<3.0> : tensor<8x16xf32>
  %bq = arith.constant dense<4.0> : tensor<16xf32>
  %bk = arith.constant dense<5.0> : tensor<8xf32>
  %bv = arith.constant dense<6.0> : tensor<8xf32>
  %e16 = tensor.empty() : tensor<16x16xf32>
  %tq = linalg.transpose ins(%wq : tensor<16x16xf32>) outs(%e16 : tensor<16x16xf32>) permutation = [1, 0]
  %eq = tensor.empty() : tensor<8x16xf32>
  %aq = linalg.fill ins(%zero : f32) outs(%eq : tensor<8x16xf32>) -> tensor<8x16xf32>
  %mq = linalg.matmul ins(%x, %tq : tensor<8x16xf32>, tensor<16x16xf32>) outs(%aq : tensor<8x16xf32>) -> tensor<8x16xf32>
  %q = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]} ins(%mq, %bq : tensor<8x16xf32>, tensor<16xf32>) outs(%eq : tensor<8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<8x16xf32>
  %e8 = tensor.empty() : tensor<16x8xf32>
  %tk = linalg.transpose ins(%wk : tensor<8x16xf32>) outs(%e8 : tensor<16x8xf32>) permutation = [1, 0]
  %ek = tensor.empty() : tensor<8x8xf32>
  %ak = linalg.fill ins(%zero : f32) outs(%ek : tensor<8x8xf32>) -> tensor<8x8xf32>
  %mk = linalg.matmul ins(%x, %tk : tensor<8x16xf32>, tensor<16x8xf32>) outs(%ak : tensor<8x8xf32>) -> tensor<8x8xf32>
  %k = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]} ins(%mk, %bk : tensor<8x8xf32>, tensor<8xf32>) outs(%ek : tensor<8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<8x8xf32>
  %tv = linalg.transpose ins(%wv : tensor<8x16xf32>) outs(%e8 : tensor<16x8xf32>) permutation = [1, 0]
  %mv = linalg.matmul ins(%x, %tv : tensor<8x16xf32>, tensor<16x8xf32>) outs(%ak : tensor<8x8xf32>) -> tensor<8x8xf32>
  %v = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]} ins(%mv, %bv : tensor<8x8xf32>, tensor<8xf32>) outs(%ek : tensor<8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<8x8xf32>
  return %q, %k, %v : tensor<8x16xf32>, tensor<8x8xf32>, tensor<8x8xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>

// Near-misses: another input (%y), a bias add on one layer only, a weight that is not a
// constant (%w): nothing is fused.
// CHECK-LABEL: func.func @near_misses(
// CHECK-NOT:     tensor.concat
// CHECK-COUNT-4: linalg.matmul
// CHECK-NOT:     tensor.concat
// REMARK-NOT:  remark
func.func @near_misses(%x: tensor<8x16xf32>, %y: tensor<8x16xf32>, %w: tensor<8x16xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %wa = arith.constant dense<1.0> : tensor<8x16xf32>
  %wb = arith.constant dense<2.0> : tensor<8x16xf32>
  %bb = arith.constant dense<5.0> : tensor<8xf32>
  %e = tensor.empty() : tensor<16x8xf32>
  %o = tensor.empty() : tensor<8x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%o : tensor<8x8xf32>) -> tensor<8x8xf32>
  %ta = linalg.transpose ins(%wa : tensor<8x16xf32>) outs(%e : tensor<16x8xf32>) permutation = [1, 0]
  %a = linalg.matmul ins(%x, %ta : tensor<8x16xf32>, tensor<16x8xf32>) outs(%acc : tensor<8x8xf32>) -> tensor<8x8xf32>
  %tb = linalg.transpose ins(%wb : tensor<8x16xf32>) outs(%e : tensor<16x8xf32>) permutation = [1, 0]
  %mb = linalg.matmul ins(%x, %tb : tensor<8x16xf32>, tensor<16x8xf32>) outs(%acc : tensor<8x8xf32>) -> tensor<8x8xf32>
  %b = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]} ins(%mb, %bb : tensor<8x8xf32>, tensor<8xf32>) outs(%o : tensor<8x8xf32>) {
  ^bb0(%p: f32, %r: f32, %s: f32):
    %t = arith.addf %p, %r : f32
    linalg.yield %t : f32
  } -> tensor<8x8xf32>
  %c = linalg.matmul ins(%y, %ta : tensor<8x16xf32>, tensor<16x8xf32>) outs(%acc : tensor<8x8xf32>) -> tensor<8x8xf32>
  %tw = linalg.transpose ins(%w : tensor<8x16xf32>) outs(%e : tensor<16x8xf32>) permutation = [1, 0]
  %d = linalg.matmul ins(%y, %tw : tensor<8x16xf32>, tensor<16x8xf32>) outs(%acc : tensor<8x8xf32>) -> tensor<8x8xf32>
  return %a, %b, %c, %d : tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>
}
