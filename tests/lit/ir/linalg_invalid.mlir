// Each Constraint of weft.matmul and weft.linear has its diagnostic.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @matmul_c1(%a: tensor<16xf32>, %b: tensor<16x4xf32>) {
  // expected-error@+2 {{'weft.matmul' needs operands of rank at least 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b : (tensor<16xf32>, tensor<16x4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @matmul_c2(%a: tensor<2x3x16x8xf32>, %b: tensor<3x8x4xf32>) {
  // expected-error@+2 {{'weft.matmul' needs rhs of rank 4 or 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b : (tensor<2x3x16x8xf32>, tensor<3x8x4xf32>) -> tensor<2x3x16x4xf32>
  return
}

// -----

func.func @matmul_c3(%a: tensor<2x16x8xf32>, %b: tensor<3x8x4xf32>) {
  // expected-error@+2 {{'weft.matmul' has different batch dimensions}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b : (tensor<2x16x8xf32>, tensor<3x8x4xf32>) -> tensor<2x16x4xf32>
  return
}

// -----

func.func @matmul_c4(%a: tensor<16x8xf32>, %b: tensor<4x8xf32>) {
  // expected-error@+2 {{'weft.matmul' contracts a dimension of size 8 with one of size 4}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b : (tensor<16x8xf32>, tensor<4x8xf32>) -> tensor<16x8xf32>
  return
}

// -----

func.func @matmul_c5(%a: tensor<16x8xf32>, %b: tensor<8x4xbf16>) {
  // expected-error@+2 {{'weft.matmul' needs equal element types, found 'f32' and 'bf16'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b : (tensor<16x8xf32>, tensor<8x4xbf16>) -> tensor<16x4xf32>
  return
}

// -----

func.func @matmul_c6(%a: tensor<16x8xf32>, %b: tensor<8x4xf32>, %acc: tensor<16x4xbf16>) {
  // expected-error@+2 {{'weft.matmul' needs acc of the result's type 'tensor<16x4xf32>', found 'tensor<16x4xbf16>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b, acc %acc : (tensor<16x8xf32>, tensor<8x4xf32>, tensor<16x4xbf16>) -> tensor<16x4xf32>
  return
}

// -----

func.func @matmul_c6_shape(%a: tensor<16x8xf32>, %b: tensor<8x4xf32>, %acc: tensor<4x16xf32>) {
  // expected-error@+2 {{'weft.matmul' needs acc of the result's type 'tensor<16x4xf32>', found 'tensor<4x16xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b, acc %acc : (tensor<16x8xf32>, tensor<8x4xf32>, tensor<4x16xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @matmul_result(%a: tensor<16x8xf32>, %b: tensor<8x4xf32>) {
  // expected-error@+2 {{inferred type(s) 'tensor<16x4xf32>' are incompatible with return type(s) of operation 'tensor<16x5xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.matmul %a, %b : (tensor<16x8xf32>, tensor<8x4xf32>) -> tensor<16x5xf32>
  return
}

// -----

func.func @linear_c1(%x: tensor<4x32xf32>, %w: tensor<16x32x1xf32>) {
  // expected-error@+2 {{'weft.linear' needs x of rank >= 1 and a weight of rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.linear %x, %w : (tensor<4x32xf32>, tensor<16x32x1xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @linear_c2(%x: tensor<4x32xf32>, %w: tensor<16x31xf32>) {
  // expected-error@+2 {{'weft.linear' has 32 input features in x but weight 'tensor<16x31xf32>' expects 31}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.linear %x, %w : (tensor<4x32xf32>, tensor<16x31xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @linear_c3(%x: tensor<4x32xf32>, %w: tensor<16x32xf32>, %b: tensor<15xf32>) {
  // expected-error@+2 {{'weft.linear' needs a bias of shape [16], found 'tensor<15xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.linear %x, %w, %b : (tensor<4x32xf32>, tensor<16x32xf32>, tensor<15xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @linear_c4(%x: tensor<4x32xf32>, %w: tensor<16x32xbf16>) {
  // expected-error@+2 {{'weft.linear' needs equal element types, found 'f32' and 'bf16'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.linear %x, %w : (tensor<4x32xf32>, tensor<16x32xbf16>) -> tensor<4x16xf32>
  return
}
