// RUN: not weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-assign-buffers))' 2>&1 | FileCheck %s

// Host memory is read by weft.reload alone: kernels run on device memory.
// CHECK: error: reads a tensor in host memory; only weft.reload does (bring it back first)
// CHECK-NEXT: weft.exp
func.func @read_on_host(%x: tensor<4xf32>) -> tensor<4xf32, #weft.host> {
  %h = weft.offload %x : (tensor<4xf32>) -> tensor<4xf32, #weft.host>
  %y = weft.exp %h : tensor<4xf32, #weft.host>
  return %y : tensor<4xf32, #weft.host>
}

// -----

// A program's results and arguments are in device memory.
// CHECK: error: reads a tensor in host memory; only weft.reload does (bring it back first)
// CHECK-NEXT: return
func.func @returned(%x: tensor<4xf32>) -> tensor<4xf32, #weft.host> {
  %h = weft.offload %x : (tensor<4xf32>) -> tensor<4xf32, #weft.host>
  return %h : tensor<4xf32, #weft.host>
}

// -----

// CHECK: error: argument 0 is in host memory; a program's arguments are in device memory (weft.offload moves values out)
func.func @host_argument(%h: tensor<4xf32, #weft.host>) -> tensor<4xf32> {
  %x = weft.reload %h : (tensor<4xf32, #weft.host>) -> tensor<4xf32>
  return %x : tensor<4xf32>
}
