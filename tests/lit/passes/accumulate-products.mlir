// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-accumulate-products))' | FileCheck %s

// x's gradient over its three readers (q, k and v in a layer's backward):
// the later product of each add accumulates onto the earlier one, through
// the reshapes that flatten the rows.
// CHECK-LABEL: func.func @sums_products(
// CHECK: %[[V:.*]] = weft.matmul %arg0, %arg3 :
// CHECK: %[[K:.*]] = weft.matmul %arg1, %arg4, acc %[[V]] :
// CHECK: %[[Q:.*]] = weft.matmul %arg2, %arg5, acc %[[K]] :
// CHECK-NEXT: %[[R:.*]] = weft.reshape %[[Q]] : tensor<8x16xf32> -> tensor<1x8x16xf32>
// CHECK-NOT: weft.add
// CHECK: return %[[R]]
func.func @sums_products(%gv: tensor<8x4xf32>, %gk: tensor<8x4xf32>, %gq: tensor<8x4xf32>, %wv: tensor<4x16xf32>, %wk: tensor<4x16xf32>, %wq: tensor<4x16xf32>) -> tensor<1x8x16xf32> {
  %v = weft.matmul %gv, %wv : (tensor<8x4xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  %v3 = weft.reshape %v : tensor<8x16xf32> -> tensor<1x8x16xf32>
  %k = weft.matmul %gk, %wk : (tensor<8x4xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  %k3 = weft.reshape %k : tensor<8x16xf32> -> tensor<1x8x16xf32>
  %vk = weft.add %v3, %k3 : tensor<1x8x16xf32>
  %q = weft.matmul %gq, %wq : (tensor<8x4xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  %q3 = weft.reshape %q : tensor<8x16xf32> -> tensor<1x8x16xf32>
  %x = weft.add %vk, %q3 : tensor<1x8x16xf32>
  return %x : tensor<1x8x16xf32>
}

// -----

// A weight's gradient onto an argument made before it (bf16, transposed).
// CHECK-LABEL: func.func @onto_argument(
// CHECK: %[[W:.*]] = weft.matmul %arg0, %arg1, acc %arg2 {transpose_lhs} : (tensor<8x4xbf16>, tensor<8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x16xbf16>
// CHECK-NEXT: return %[[W]]
func.func @onto_argument(%g: tensor<8x4xbf16>, %x: tensor<8x16xbf16>, %acc: tensor<4x16xbf16>) -> tensor<4x16xbf16> {
  %w = weft.matmul %g, %x {transpose_lhs} : (tensor<8x4xbf16>, tensor<8x16xbf16>) -> tensor<4x16xbf16>
  %s = weft.add %acc, %w : tensor<4x16xbf16>
  return %s : tensor<4x16xbf16>
}

// -----

// Left alone: a product read twice, one whose addend is made after it (it
// would have to move), an integer product, and a product added to itself.
// CHECK-LABEL: func.func @left_alone(
// CHECK-NOT: acc
// CHECK-COUNT-4: weft.add
// CHECK-NOT: acc
func.func @left_alone(%a: tensor<4x4xf32>, %b: tensor<4x4xf32>, %i: tensor<4x4xi64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi64>, tensor<4x4xf32>) {
  %p = weft.matmul %a, %b : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %twice = weft.add %p, %a : tensor<4x4xf32>
  %q = weft.matmul %a, %b : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %later = weft.exp %a : tensor<4x4xf32>
  %s = weft.add %q, %later : tensor<4x4xf32>
  %ip = weft.matmul %i, %i : (tensor<4x4xi64>, tensor<4x4xi64>) -> tensor<4x4xi64>
  %is = weft.add %ip, %i : tensor<4x4xi64>
  %r = weft.matmul %b, %b : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %rr = weft.add %r, %r : tensor<4x4xf32>
  return %twice, %p, %s, %is, %rr : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi64>, tensor<4x4xf32>
}
