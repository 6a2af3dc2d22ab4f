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

func.func @sub_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{'weft.sub' op requires the same type for all operands and results}}
  %0 = "weft.sub"(%x, %y) : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @mul_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{'weft.mul' op requires the same type for all operands and results}}
  %0 = "weft.mul"(%x, %y) : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @div_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{'weft.div' op requires the same type for all operands and results}}
  %0 = "weft.div"(%x, %y) : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @max_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{'weft.max' op requires the same type for all operands and results}}
  %0 = "weft.max"(%x, %y) : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @min_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{'weft.min' op requires the same type for all operands and results}}
  %0 = "weft.min"(%x, %y) : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @pow_c1(%x: tensor<4x16xf32>, %y: tensor<4x16xbf16>) {
  // expected-error@+1 {{'weft.pow' op requires the same type for all operands and results}}
  %0 = "weft.pow"(%x, %y) : (tensor<4x16xf32>, tensor<4x16xbf16>) -> tensor<4x16xf32>
  return
}

// -----

func.func @neg_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.neg' op requires the same type for all operands and results}}
  %0 = "weft.neg"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @abs_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.abs' op requires the same type for all operands and results}}
  %0 = "weft.abs"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @log_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.log' op requires the same type for all operands and results}}
  %0 = "weft.log"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @tanh_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.tanh' op requires the same type for all operands and results}}
  %0 = "weft.tanh"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @sigmoid_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.sigmoid' op requires the same type for all operands and results}}
  %0 = "weft.sigmoid"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @silu_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.silu' op requires the same type for all operands and results}}
  %0 = "weft.silu"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @rsqrt_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.rsqrt' op requires the same type for all operands and results}}
  %0 = "weft.rsqrt"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @sqrt_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.sqrt' op requires the same type for all operands and results}}
  %0 = "weft.sqrt"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @erf_c1(%x: tensor<4x16xf32>) {
  // expected-error@+1 {{'weft.erf' op requires the same type for all operands and results}}
  %0 = "weft.erf"(%x) : (tensor<4x16xf32>) -> tensor<4x8xf32>
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
