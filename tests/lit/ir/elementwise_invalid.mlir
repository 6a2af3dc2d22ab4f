// Constraints of the elementwise ops.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @binary_c1(%x: tensor<4x16xf32>, %y: tensor<4x8xf32>) {
  // expected-error@+1 {{requires the same type for all operands and results}}
  %0 = "weft.add"(%x, %y) : (tensor<4x16xf32>, tensor<4x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @unary_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{requires the same type for all operands and results}}
  %0 = "weft.exp"(%x) : (tensor<4x16xf32>) -> tensor<4x16xbf16>
  return
}

// -----

func.func @gelu_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{requires the same type for all operands and results}}
  %0 = "weft.gelu"(%x) : (tensor<4x16xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @float_only(%x: tensor<4x16xi64>) {
  // expected-error@+1 {{operand #0 must be ranked tensor of floating-point values}}
  %0 = weft.exp %x : tensor<4x16xi64>
  return
}

// -----

func.func @compare_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{requires all operands to have the same type}}
  %0 = "weft.compare"(%x, %y) {direction = 2 : i32} : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xi1>
  return
}

// -----

func.func @select_c1(%m: tensor<4x16xi1>, %x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{all of {on_true, on_false, result} have same type}}
  %0 = "weft.select"(%m, %x, %y) : (tensor<4x16xi1>, tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @select_c2(%m: tensor<4x8xi1>, %x: tensor<4x16xf32>, %y: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.select' op all non-scalar operands/results must have the same shape}}
  %0 = weft.select %m, %x, %y : tensor<4x8xi1>, tensor<4x16xf32>
  return
}

// -----

func.func @convert_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.convert' op all non-scalar operands/results must have the same shape}}
  %0 = weft.convert %x : tensor<4x16xf32> -> tensor<4x8xbf16>
  return
}
