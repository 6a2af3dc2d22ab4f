// RUN: not weft-opt %s -split-input-file --weft-optimizer 2>&1 | FileCheck %s
// RUN: not weft-opt %s -split-input-file --weft-optimizer='accumulation=0' 2>&1 | FileCheck %s --check-prefix=ZERO

// Nothing to update: the backward has not run, or every parameter is frozen.
// CHECK: error: returns no gradients (grad.<parameter>) to update; run weft-autodiff first, with a parameter left unfrozen
// ZERO: error: accumulation is 0; an optimizer step needs at least one micro-batch
func.func @forward(%w: tensor<4xf32> {weft.param = "w"}) -> (tensor<f32> {weft.output = "loss"}) {
  %l = weft.reduce sum %w dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A gradient of a parameter the function does not have.
// CHECK: error: returns 'grad.v' but has no parameter 'v'
func.func @forward(%w: tensor<4xf32> {weft.param = "w"}) -> (tensor<f32> {weft.output = "loss"}, tensor<4xf32> {weft.output = "grad.v"}) {
  %l = weft.reduce sum %w dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l, %w : tensor<f32>, tensor<4xf32>
}
