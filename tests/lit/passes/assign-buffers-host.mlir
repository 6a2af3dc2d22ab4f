// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-assign-buffers{threads=2}))' | FileCheck %s

// An offloaded value lives in host memory from its offload to its reload,
// planned apart from the arena: the arena does not hold it meanwhile. The same
// program keeping %a on the device needs a fourth 128-byte block at the add of
// %b and %c (512 bytes against 384).
// CHECK-LABEL: func.func @offloaded(
// CHECK-SAME: weft.activation_bytes = 384 : i64
// CHECK-SAME: weft.host_bytes = 128 : i64
// CHECK: weft.exp {{.*}}weft.buffers = [#weft.buffer<"arena", [[A:[0-9]+]]>]
// CHECK: weft.offload {{.*}}weft.buffers = [#weft.buffer<"host", 0>], weft.live_bytes = 256
// CHECK: weft.add {{.*}}weft.live_bytes = 384
// CHECK: weft.reload {{.*}}weft.buffers = [#weft.buffer<"arena",
func.func @offloaded(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = weft.exp %x : tensor<4x8xf32>
  %h = weft.offload %a : (tensor<4x8xf32>) -> tensor<4x8xf32, #weft.host>
  %b = weft.tanh %x : tensor<4x8xf32>
  %c = weft.tanh %b : tensor<4x8xf32>
  %d = weft.add %b, %c : tensor<4x8xf32>
  %r = weft.reload %h : (tensor<4x8xf32, #weft.host>) -> tensor<4x8xf32>
  %y = weft.add %r, %d : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// CHECK-LABEL: func.func @kept(
// CHECK-SAME: weft.activation_bytes = 512 : i64
// CHECK-NOT: weft.host_bytes
func.func @kept(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = weft.exp %x : tensor<4x8xf32>
  %b = weft.tanh %x : tensor<4x8xf32>
  %c = weft.tanh %b : tensor<4x8xf32>
  %d = weft.add %b, %c : tensor<4x8xf32>
  %y = weft.add %a, %d : tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
