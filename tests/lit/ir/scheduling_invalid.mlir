// Constraints of weft.fusion_group, weft.yield and #weft.buffer.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @fusion_group_c1(%x: tensor<2x8xf32>) {
  // expected-error@+1 {{'weft.fusion_group' op needs body arguments of the input types}}
  %0 = weft.fusion_group (%x : tensor<2x8xf32>) {
  ^bb0(%a: tensor<2x4xf32>):
    weft.yield %a : tensor<2x4xf32>
  } : tensor<2x4xf32>
  return
}

// -----

func.func @fusion_group_c2(%x: tensor<2x8xf32>) {
  // expected-error@+1 {{'weft.fusion_group' op yields values whose types differ from its results}}
  %0 = weft.fusion_group (%x : tensor<2x8xf32>) {
  ^bb0(%a: tensor<2x8xf32>):
    weft.yield %a : tensor<2x8xf32>
  } : tensor<2x4xf32>
  return
}

// -----

func.func @fusion_group_c3(%x: tensor<2x8xf32>) {
  // expected-error@+1 {{'weft.fusion_group' op needs at least one result}}
  "weft.fusion_group"(%x) ({
  ^bb0(%a: tensor<2x8xf32>):
    weft.yield
  }) : (tensor<2x8xf32>) -> ()
  return
}

// -----

func.func @yield_c1(%x: tensor<2x8xf32>) {
  // expected-error@+1 {{'weft.yield' op expects parent op 'weft.fusion_group'}}
  weft.yield %x : tensor<2x8xf32>
}

// -----

// expected-error@+1 {{unknown memory region "device"; expected arena, parameters, constants or state}}
func.func private @buffer_c1() attributes {b = #weft.buffer<"device", 0>}

// -----

// expected-error@+1 {{buffer offset 100 is not a non-negative multiple of 64}}
func.func private @buffer_c2() attributes {b = #weft.buffer<"arena", 100>}
