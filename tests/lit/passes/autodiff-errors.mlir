// RUN: not weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff))' 2>&1 | FileCheck %s

// An op on the loss's path without a rule is named at its location.
// CHECK: error: has no gradient rule; the loss cannot be differentiated through it
// CHECK-NEXT: weft.moe_gate
func.func @no_rule(%x: tensor<4xf32> {weft.param = "x"}) -> tensor<f32> {
  %y:2 = weft.moe_gate %x top_k 1 : (tensor<4xf32>) -> (tensor<1xf32>, tensor<1xi64>)
  %l = weft.reduce sum %y#0 dims [0] : (tensor<1xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The first result must be a scalar loss.
// CHECK: error: needs a rank-0 float loss as its first result to be differentiated
func.func @no_loss(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
