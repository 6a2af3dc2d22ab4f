// RUN: not weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff))' 2>&1 | FileCheck %s

// An op on the loss's path without a rule is named at its location.
// CHECK: error: has no gradient rule; the loss cannot be differentiated through it
// CHECK-NEXT: weft.scatter_add
func.func @no_rule(%x: tensor<4xf32> {weft.param = "x"}) -> tensor<f32> {
  %i = weft.constant dense<[0, 1]> : tensor<2xi64>
  %u = weft.constant dense<1.0> : tensor<2xf32>
  %y = weft.scatter_add %x[%i], %u axis 0 : (tensor<4xf32>, tensor<2xi64>, tensor<2xf32>) -> tensor<4xf32>
  %l = weft.reduce sum %y dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The first result must be a scalar loss.
// CHECK: error: needs a rank-0 float loss as its first result to be differentiated
func.func @no_loss(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
