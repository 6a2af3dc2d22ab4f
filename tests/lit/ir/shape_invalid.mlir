// Constraints of the shape and data-movement ops.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @reshape_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.reshape' op changes the element type from 'f32' to 'bf16'}}
  %0 = weft.reshape %x : tensor<4x16xf32> -> tensor<64xbf16>
  return
}

// -----

func.func @reshape_c2(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.reshape' op reshapes 64 elements into 60}}
  %0 = weft.reshape %x : tensor<4x16xf32> -> tensor<4x15xf32>
  return
}

// -----

func.func @transpose_c1(%x: tensor<4x16x2xf32>) {
  // expected-error@+2 {{'weft.transpose' needs a permutation of [0, 3), found [0, 2, 2]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.transpose %x [0, 2, 2] : (tensor<4x16x2xf32>) -> tensor<4x2x2xf32>
  return
}

// -----

func.func @slice_c1(%x: tensor<4x16xf32>) {
  // expected-error@+2 {{'weft.slice' needs start, limit and stride with 2 entries each, found 1, 2 and 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.slice %x [0] [4, 16] [1, 1] : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @slice_c2(%x: tensor<4x16xf32>) {
  // expected-error@+2 {{'weft.slice' slices [0, 17) of dimension 1 of size 16}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.slice %x [0, 0] [4, 17] [1, 1] : (tensor<4x16xf32>) -> tensor<4x17xf32>
  return
}

// -----

func.func @slice_c3(%x: tensor<4x16xf32>) {
  // expected-error@+2 {{'weft.slice' needs strides >= 1, found 0 for dimension 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.slice %x [0, 0] [4, 16] [0, 1] : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @concat_c1() {
  // expected-error@+2 {{'weft.concat' needs at least one input}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.concat dim 0 : () -> tensor<4xf32>
  return
}

// -----

func.func @concat_c2(%a: tensor<2x3xf32>, %b: tensor<2x3xbf16>) {
  // expected-error@+2 {{'weft.concat' needs inputs of one rank and element type}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<2x3xbf16>) -> tensor<2x6xf32>
  return
}

// -----

func.func @concat_c3(%a: tensor<2x3xf32>) {
  // expected-error@+2 {{'weft.concat' concatenates along dim 2, outside [0, 2)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.concat %a, %a dim 2 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @concat_c4(%a: tensor<2x3xf32>, %b: tensor<3x3xf32>) {
  // expected-error@+2 {{'weft.concat' inputs 'tensor<2x3xf32>' and 'tensor<3x3xf32>' differ in dimension 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x6xf32>
  return
}

// -----

func.func @broadcast_c1(%x: tensor<16xf32>) {
  // expected-error@+1 {{'weft.broadcast' op changes the element type from 'f32' to 'bf16'}}
  %0 = weft.broadcast %x dims [1] : tensor<16xf32> -> tensor<4x16xbf16>
  return
}

// -----

func.func @broadcast_c2(%x: tensor<16xf32>) {
  // expected-error@+1 {{'weft.broadcast' op needs one entry in dims per operand dimension (1), found 2}}
  %0 = weft.broadcast %x dims [0, 1] : tensor<16xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @broadcast_c3(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.broadcast' op needs dims strictly increasing in [0, 3), found 0 at position 1}}
  %0 = weft.broadcast %x dims [1, 0] : tensor<4x16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @broadcast_c4(%x: tensor<8xf32>) {
  // expected-error@+1 {{'weft.broadcast' op broadcasts operand dimension 0 of size 8 into result dimension 1 of size 16}}
  %0 = weft.broadcast %x dims [1] : tensor<8xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @gather_c1(%t: tensor<512x256xf32>, %i: tensor<1x16xi64>) {
  // expected-error@+2 {{'weft.gather' gathers along axis 2, outside [0, 2)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.gather %t[%i] axis 2 : (tensor<512x256xf32>, tensor<1x16xi64>) -> tensor<1x16x256xf32>
  return
}

// -----

func.func @scatter_add_c1(%t: tensor<512x256xf32>, %i: tensor<1x16xi64>, %u: tensor<1x16x256xf32>) {
  // expected-error@+2 {{'weft.scatter_add' scatters along axis -1, outside [0, 2)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.scatter_add %t[%i], %u axis -1 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xf32>) -> tensor<512x256xf32>
  return
}

// -----

func.func @scatter_add_c2(%t: tensor<512x256xf32>, %i: tensor<1x16xi64>, %u: tensor<1x8x256xf32>) {
  // expected-error@+2 {{'weft.scatter_add' needs updates of shape [1, 16, 256], found 'tensor<1x8x256xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.scatter_add %t[%i], %u axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x8x256xf32>) -> tensor<512x256xf32>
  return
}

// -----

func.func @scatter_add_c3(%t: tensor<512x256xf32>, %i: tensor<1x16xi64>, %u: tensor<1x16x256xbf16>) {
  // expected-error@+2 {{'weft.scatter_add' needs updates of element type 'f32', found 'bf16'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.scatter_add %t[%i], %u axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xbf16>) -> tensor<512x256xf32>
  return
}

// -----

func.func @iota_c1() {
  // expected-error@+1 {{'weft.iota' op counts along dim 2, outside [0, 2)}}
  %0 = weft.iota dim 2 : tensor<1x16xi64>
  return
}

// -----

func.func @constant_c1() {
  // expected-error@+2 {{'weft.constant' needs a statically shaped tensor value, found 'vector<2xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = "weft.constant"() {value = dense<1.0> : vector<2xf32>} : () -> tensor<2xf32>
  return
}
