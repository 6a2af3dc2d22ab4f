// RUN: weft-opt %s --weft-partition='tp=2' | FileCheck %s

// A product onto an accumulator whose contraction tensor parallelism splits
// (o_proj's inputs): each rank's partial product is summed over tp first,
// and the accumulator added once, to the sum — not once on every rank.
// CHECK-LABEL: func.func @forward(
// CHECK: %[[Q:.*]] = weft.linear %arg0, %arg1 : (tensor<1x4x8xf32>, tensor<4x8xf32>) -> tensor<1x4x4xf32>
// CHECK: %[[Q2:.*]] = weft.reshape %[[Q]]
// CHECK: %[[X2:.*]] = weft.reshape %arg0
// CHECK: %[[P:.*]] = weft.matmul %[[Q2]], %arg2 {transpose_rhs} : (tensor<4x4xf32>, tensor<8x4xf32>) -> tensor<4x8xf32>
// CHECK-NEXT: %[[S:.*]] = weft.all_reduce sum %[[P]]
// CHECK-NEXT: %[[Y:.*]] = weft.add %[[S]], %[[X2]] : tensor<4x8xf32>
// CHECK-NEXT: return %[[Y]]
func.func @forward(%x: tensor<1x4x8xf32> {weft.input = "x"},
                   %wq: tensor<8x8xf32> {weft.param = "layers.0.self_attn.q_proj.weight"},
                   %wo: tensor<8x8xf32> {weft.param = "layers.0.self_attn.o_proj.weight"})
    -> (tensor<4x8xf32> {weft.output = "y"}) {
  %q = weft.linear %x, %wq : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %q2 = weft.reshape %q : tensor<1x4x8xf32> -> tensor<4x8xf32>
  %x2 = weft.reshape %x : tensor<1x4x8xf32> -> tensor<4x8xf32>
  %o = weft.matmul %q2, %wo, acc %x2 {transpose_rhs} : (tensor<4x8xf32>, tensor<8x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}
