// RUN: attn-opt --split-input-file --causal-split %s | FileCheck %s
//
// causal-split (CPU): a causal attention op becomes one op per chunk of 32 query rows, each
// reading only the keys its rows can see (the mask is evaluated at compile time), joined by
// tensor.concat. Anything not provably causal is left alone.

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
#id = affine_map<(i, j) -> (i, j)>

// Top-left causal (key j hidden from query i iff j > i), 64 queries: the first chunk reads
// keys [0, 32) and its [32, 32] mask block, the second every key.
// CHECK-LABEL: func.func @top_left(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x64x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x64x8xf32>, %[[V:[a-z0-9]+]]: tensor<2x64x8xf32>
// CHECK:         %[[MASK:.+]] = linalg.generic
// CHECK-DAG:     %[[Q0:.+]] = tensor.extract_slice %[[Q]][0, 0, 0] [2, 32, 8] [1, 1, 1]
// CHECK-DAG:     %[[K0:.+]] = tensor.extract_slice %[[K]][0, 0, 0] [2, 32, 8] [1, 1, 1]
// CHECK-DAG:     %[[V0:.+]] = tensor.extract_slice %[[V]][0, 0, 0] [2, 32, 8] [1, 1, 1]
// CHECK-DAG:     %[[M0:.+]] = tensor.extract_slice %[[MASK]][0, 0] [32, 32] [1, 1]
// CHECK:         %[[A0:.+]] = iree_linalg_ext.attention {{.*}} ins(%[[Q0]], %[[K0]], %[[V0]], %{{.+}}, %[[M0]] : {{.*}}) outs(%{{.+}} : tensor<2x32x8xf32>)
// CHECK-DAG:     %[[Q1:.+]] = tensor.extract_slice %[[Q]][0, 32, 0] [2, 32, 8] [1, 1, 1]
// CHECK-DAG:     %[[M1:.+]] = tensor.extract_slice %[[MASK]][32, 0] [32, 64] [1, 1]
// CHECK:         %[[A1:.+]] = iree_linalg_ext.attention {{.*}} ins(%[[Q1]], %[[K]], %[[V]], %{{.+}}, %[[M1]] : {{.*}}) outs(%{{.+}} : tensor<2x32x8xf32>)
// CHECK:         %[[J:.+]] = tensor.concat dim(1) %[[A0]], %[[A1]] : (tensor<2x32x8xf32>, tensor<2x32x8xf32>) -> tensor<2x64x8xf32>
// CHECK:         return %[[J]]
func.func @top_left(%q: tensor<2x64x8xf32>, %k: tensor<2x64x8xf32>, %v: tensor<2x64x8xf32>) -> tensor<2x64x8xf32> {
  %scale = arith.constant 0.35 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<64x64xf32>
  %mask = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<64x64xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c = arith.cmpi ugt, %j, %i : index
    %x = arith.select %c, %ninf, %zero : f32
    linalg.yield %x : f32
  } -> tensor<64x64xf32>
  %init = tensor.empty() : tensor<2x64x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x64x8xf32>, tensor<2x64x8xf32>, tensor<2x64x8xf32>, f32, tensor<64x64xf32>) outs(%init : tensor<2x64x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x64x8xf32>
  return %r : tensor<2x64x8xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#kt = affine_map<(b, m, n, k1, k2) -> (b, k1, k2)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (b, m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
#id = affine_map<(b, i, j) -> (b, i, j)>

// Bottom-right causal with more keys than queries (key j hidden iff j > i + 16), K given
// as (b, k1, k2) like pretranspose_keys leaves it, the mask repeated over the batch dim:
// chunk 0 sees keys [0, 48), chunk 1 every key; K is sliced along its last dim.
// CHECK-LABEL: func.func @bottom_right_kt(
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<2x64x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x8x80xf32>, %[[V:[a-z0-9]+]]: tensor<2x80x8xf32>
// CHECK-DAG:     tensor.extract_slice %[[Q]][0, 0, 0] [2, 32, 8] [1, 1, 1]
// CHECK-DAG:     %[[K0:.+]] = tensor.extract_slice %[[K]][0, 0, 0] [2, 8, 48] [1, 1, 1]
// CHECK-DAG:     %[[V0:.+]] = tensor.extract_slice %[[V]][0, 0, 0] [2, 48, 8] [1, 1, 1]
// CHECK-DAG:     %[[M0:.+]] = tensor.extract_slice %{{.+}}[0, 0, 0] [2, 32, 48] [1, 1, 1]
// CHECK:         iree_linalg_ext.attention {{.*}} ins(%{{.+}}, %[[K0]], %[[V0]], %{{.+}}, %[[M0]] : {{.*}}) outs(%{{.+}} : tensor<2x32x8xf32>)
// CHECK-DAG:     %[[M1:.+]] = tensor.extract_slice %{{.+}}[0, 32, 0] [2, 32, 80] [1, 1, 1]
// CHECK:         iree_linalg_ext.attention {{.*}} ins(%{{.+}}, %[[K]], %[[V]], %{{.+}}, %[[M1]] : {{.*}}) outs(%{{.+}} : tensor<2x32x8xf32>)
// CHECK:         tensor.concat dim(1)
func.func @bottom_right_kt(%q: tensor<2x64x8xf32>, %k: tensor<2x8x80xf32>, %v: tensor<2x80x8xf32>) -> tensor<2x64x8xf32> {
  %scale = arith.constant 0.35 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant -3.4e38 : f32
  %c16 = arith.constant 16 : index
  %e = tensor.empty() : tensor<2x64x80xf32>
  %mask = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel", "parallel"]} outs(%e : tensor<2x64x80xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %i16 = arith.addi %i, %c16 : index
    %c = arith.cmpi ugt, %j, %i16 : index
    %x = arith.select %c, %ninf, %zero : f32
    linalg.yield %x : f32
  } -> tensor<2x64x80xf32>
  %init = tensor.empty() : tensor<2x64x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #kt, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x64x8xf32>, tensor<2x8x80xf32>, tensor<2x80x8xf32>, f32, tensor<2x64x80xf32>) outs(%init : tensor<2x64x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x64x8xf32>
  return %r : tensor<2x64x8xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>

// Near-miss: the mask is a function argument (known only at run time).
// CHECK-LABEL: func.func @runtime_mask(
// CHECK-NOT:     tensor.extract_slice
// CHECK-NOT:     tensor.concat
// CHECK:         iree_linalg_ext.attention {{.*}} outs(%{{.+}} : tensor<2x64x8xf32>)
func.func @runtime_mask(%q: tensor<2x64x8xf32>, %k: tensor<2x64x8xf32>, %v: tensor<2x64x8xf32>, %mask: tensor<64x64xf32>) -> tensor<2x64x8xf32> {
  %scale = arith.constant 0.35 : f32
  %init = tensor.empty() : tensor<2x64x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x64x8xf32>, tensor<2x64x8xf32>, tensor<2x64x8xf32>, f32, tensor<64x64xf32>) outs(%init : tensor<2x64x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x64x8xf32>
  return %r : tensor<2x64x8xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
#id = affine_map<(i, j) -> (i, j)>

// Near-miss: a causal pattern that also adds a bias (-1.0 on the diagonal) is not a
// causal mask: the hidden keys are right, but the visible ones are not all 0.
// CHECK-LABEL: func.func @causal_plus_bias(
// CHECK-NOT:     tensor.concat
// CHECK:         iree_linalg_ext.attention {{.*}} outs(%{{.+}} : tensor<2x64x8xf32>)
// CHECK-NOT:     tensor.concat
func.func @causal_plus_bias(%q: tensor<2x64x8xf32>, %k: tensor<2x64x8xf32>, %v: tensor<2x64x8xf32>) -> tensor<2x64x8xf32> {
  %scale = arith.constant 0.35 : f32
  %zero = arith.constant 0.0 : f32
  %one = arith.constant -1.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<64x64xf32>
  %mask = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<64x64xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c = arith.cmpi ugt, %j, %i : index
    %d = arith.cmpi eq, %j, %i : index
    %b = arith.select %d, %one, %zero : f32
    %x = arith.select %c, %ninf, %b : f32
    linalg.yield %x : f32
  } -> tensor<64x64xf32>
  %init = tensor.empty() : tensor<2x64x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x64x8xf32>, tensor<2x64x8xf32>, tensor<2x64x8xf32>, f32, tensor<64x64xf32>) outs(%init : tensor<2x64x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x64x8xf32>
  return %r : tensor<2x64x8xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
#id = affine_map<(i, j) -> (i, j)>

// Near-miss: the transposed pattern (key j hidden iff j < i, "see the future") is not causal.
// CHECK-LABEL: func.func @anti_causal(
// CHECK-NOT:     tensor.concat
// CHECK:         iree_linalg_ext.attention {{.*}} outs(%{{.+}} : tensor<2x64x8xf32>)
// CHECK-NOT:     tensor.concat
func.func @anti_causal(%q: tensor<2x64x8xf32>, %k: tensor<2x64x8xf32>, %v: tensor<2x64x8xf32>) -> tensor<2x64x8xf32> {
  %scale = arith.constant 0.35 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<64x64xf32>
  %mask = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<64x64xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c = arith.cmpi ult, %j, %i : index
    %x = arith.select %c, %ninf, %zero : f32
    linalg.yield %x : f32
  } -> tensor<64x64xf32>
  %init = tensor.empty() : tensor<2x64x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x64x8xf32>, tensor<2x64x8xf32>, tensor<2x64x8xf32>, f32, tensor<64x64xf32>) outs(%init : tensor<2x64x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x64x8xf32>
  return %r : tensor<2x64x8xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
#id = affine_map<(i, j) -> (i, j)>

// Near-miss: causal, but only 32 queries: one chunk, nothing to skip.
// CHECK-LABEL: func.func @one_chunk(
// CHECK-NOT:     tensor.extract_slice
// CHECK:         iree_linalg_ext.attention {{.*}} outs(%{{.+}} : tensor<2x32x8xf32>)
// CHECK-NOT:     tensor.concat
func.func @one_chunk(%q: tensor<2x32x8xf32>, %k: tensor<2x32x8xf32>, %v: tensor<2x32x8xf32>) -> tensor<2x32x8xf32> {
  %scale = arith.constant 0.35 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<32x32xf32>
  %mask = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<32x32xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c = arith.cmpi ugt, %j, %i : index
    %x = arith.select %c, %ninf, %zero : f32
    linalg.yield %x : f32
  } -> tensor<32x32xf32>
  %init = tensor.empty() : tensor<2x32x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x32x8xf32>, tensor<2x32x8xf32>, tensor<2x32x8xf32>, f32, tensor<32x32xf32>) outs(%init : tensor<2x32x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x32x8xf32>
  return %r : tensor<2x32x8xf32>
}

// -----

#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#mask = affine_map<(b, m, n, k1, k2) -> (b, m, k2)>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
#id = affine_map<(b, i, j) -> (b, i, j)>

// Near-miss: causal for batch entry 0, all visible for batch entry 1 (the mask differs
// between batch entries).
// CHECK-LABEL: func.func @per_batch(
// CHECK-NOT:     tensor.concat
// CHECK:         iree_linalg_ext.attention {{.*}} outs(%{{.+}} : tensor<2x64x8xf32>)
// CHECK-NOT:     tensor.concat
func.func @per_batch(%q: tensor<2x64x8xf32>, %k: tensor<2x64x8xf32>, %v: tensor<2x64x8xf32>) -> tensor<2x64x8xf32> {
  %scale = arith.constant 0.35 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %c0 = arith.constant 0 : index
  %e = tensor.empty() : tensor<2x64x64xf32>
  %mask = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel", "parallel"]} outs(%e : tensor<2x64x64xf32>) {
  ^bb0(%out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c = arith.cmpi ugt, %j, %i : index
    %first = arith.cmpi eq, %b, %c0 : index
    %h = arith.andi %c, %first : i1
    %x = arith.select %h, %ninf, %zero : f32
    linalg.yield %x : f32
  } -> tensor<2x64x64xf32>
  %init = tensor.empty() : tensor<2x64x8xf32>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #mask, #o]}> ins(%q, %k, %v, %scale, %mask : tensor<2x64x8xf32>, tensor<2x64x8xf32>, tensor<2x64x8xf32>, f32, tensor<2x64x64xf32>) outs(%init : tensor<2x64x8xf32>) {
  ^bb0(%x: f32):
    iree_linalg_ext.yield %x : f32
  } -> tensor<2x64x8xf32>
  return %r : tensor<2x64x8xf32>
}
