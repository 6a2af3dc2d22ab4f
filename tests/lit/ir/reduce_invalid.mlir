// Constraints of the reductions.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @reduce_c1_range(%x: tensor<4x16xf32>) {
  // expected-error@+2 {{'weft.reduce' needs dims strictly increasing in [0, 2), found 2 at position 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reduce sum %x dims [2] : (tensor<4x16xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @reduce_c1_order(%x: tensor<4x16xf32>) {
  // expected-error@+2 {{'weft.reduce' needs dims strictly increasing in [0, 2), found 0 at position 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reduce sum %x dims [1, 0] : (tensor<4x16xf32>) -> tensor<f32>
  return
}

// -----

func.func @reduce_c2(%x: tensor<4x16xi64>) {
  // expected-error@+2 {{'weft.reduce' takes the mean of floating-point tensors only, found 'i64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reduce mean %x dims [1] : (tensor<4x16xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @softmax_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.softmax' normalises along dim 2, outside [0, 2)}}
  %0 = weft.softmax %x dim 2 : tensor<4x16xf32>
  return
}

// -----

func.func @log_softmax_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.log_softmax' normalises along dim -1, outside [0, 2)}}
  %0 = weft.log_softmax %x dim -1 : tensor<4x16xf32>
  return
}
