// RUN: attn-opt --split-input-file --externalize-parameters %s | FileCheck %s
//
// externalize-parameters: the importer's data-less weight handles
// (dense_resource<"flashlift_param.NAME">) become IREE parameter globals, one per NAME, read
// with util.global.load; other constants (inline blobs, splats) are left as they are.

// CHECK-LABEL: util.global private @__param_0 = #stream.parameter.named<"model"::"layer.0.weight"> : tensor<16x8xf32>
// CHECK-NEXT:  util.global private @__param_1 = #stream.parameter.named<"model"::"layer.0.bias"> : tensor<16xf32>
// CHECK-LABEL: func.func @linear
// CHECK:         %[[W:.+]] = util.global.load immutable @__param_0 : tensor<16x8xf32>
// CHECK:         %[[B:.+]] = util.global.load immutable @__param_1 : tensor<16xf32>
// CHECK:         linalg.transpose ins(%[[W]] : tensor<16x8xf32>)
// CHECK-NOT:     flashlift_param
func.func @linear(%x: tensor<4x8xf32>) -> (tensor<8x16xf32>, tensor<16xf32>) {
  %w = arith.constant dense_resource<"flashlift_param.layer.0.weight"> : tensor<16x8xf32>
  %b = arith.constant dense_resource<"flashlift_param.layer.0.bias"> : tensor<16xf32>
  %e = tensor.empty() : tensor<8x16xf32>
  %t = linalg.transpose ins(%w : tensor<16x8xf32>) outs(%e : tensor<8x16xf32>) permutation = [1, 0]
  return %t, %b : tensor<8x16xf32>, tensor<16xf32>
}

// -----

// A weight read twice (a tied embedding and output layer) is one parameter; inline blobs and
// splats stay constants.
// CHECK-LABEL: util.global private @__param_0 = #stream.parameter.named<"model"::"emb.weight"> : tensor<10x4xf32>
// CHECK-NOT:   util.global
// CHECK-LABEL: func.func @tied
// CHECK:         util.global.load immutable @__param_0
// CHECK:         util.global.load immutable @__param_0
// CHECK:         arith.constant dense_resource<torch_tensor_4_i8> : tensor<4xi8>
// CHECK:         arith.constant dense<1.000000e+00> : tensor<4xf32>
func.func @tied() -> (tensor<10x4xf32>, tensor<10x4xf32>, tensor<4xi8>, tensor<4xf32>) {
  %a = arith.constant dense_resource<"flashlift_param.emb.weight"> : tensor<10x4xf32>
  %b = arith.constant dense_resource<"flashlift_param.emb.weight"> : tensor<10x4xf32>
  %m = arith.constant dense_resource<torch_tensor_4_i8> : tensor<4xi8>
  %s = arith.constant dense<1.0> : tensor<4xf32>
  return %a, %b, %m, %s : tensor<10x4xf32>, tensor<10x4xf32>, tensor<4xi8>, tensor<4xf32>
}

{-#
  dialect_resources: {
    builtin: {
      torch_tensor_4_i8: "0x0100000001000100"
    }
  }
#-}
