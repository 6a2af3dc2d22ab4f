// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-check-static-shapes))' -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @static
func.func @static(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = weft.exp %x : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// expected-error@+1 {{argument 0 of @dynamic_arg has the dynamic type 'tensor<?x8xf32>'; give the input's static shape at import}}
func.func @dynamic_arg(%x: tensor<?x8xf32>) {
  return
}

// -----

func.func @dynamic_result(%x: tensor<4x8xf32>) {
  // expected-error@+1 {{result 0 has the dynamic type 'tensor<?x8xf32>'; every shape must be static after import-cleanup}}
  %0 = weft.reshape %x : tensor<4x8xf32> -> tensor<?x8xf32>
  return
}
