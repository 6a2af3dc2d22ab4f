// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-offload-activations))' | FileCheck %s
// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-offload-activations{min-bytes=1024}))' | FileCheck %s --check-prefix=LARGE

// What the backward reads of the forward (the two tanh results: tanh's
// gradient is 1 − y², the second linear's weight gradient reads the first
// tanh) goes to host memory after its last forward use; the backward reads
// the reloaded values. The backward first reads %a2, then %a1: both reloads
// come before the first read of %a2 (%a1's one value ahead of its use).
// CHECK-LABEL: func.func @two_layers(
// CHECK: %[[A1:.*]] = weft.tanh %arg0
// CHECK: %[[H1:.*]] = weft.offload %[[A1]] : (tensor<4x8xf32>) -> tensor<4x8xf32, #weft.host>
// CHECK: %[[A2:.*]] = weft.tanh
// CHECK: weft.reduce sum %[[A2]]
// CHECK: %[[H2:.*]] = weft.offload %[[A2]]
// CHECK: %[[R2:.*]] = weft.reload %[[H2]] : (tensor<4x8xf32, #weft.host>) -> tensor<4x8xf32>
// CHECK-NEXT: %[[R1:.*]] = weft.reload %[[H1]]
// CHECK-NOT: %[[A2]]
// CHECK: weft.mul %[[R2]], %[[R2]]
// CHECK-NOT: %[[A1]]
// CHECK: %[[R1]]
// CHECK: return
// LARGE-LABEL: func.func @two_layers(
// LARGE-SAME: weft.offloaded_bytes = 0
// LARGE-NOT: weft.offload
func.func @two_layers(%x: tensor<4x8xf32>, %w: tensor<8x8xf32> {weft.param = "w"}) -> tensor<f32> {
  %a1 = weft.tanh %x : tensor<4x8xf32>
  %m = weft.linear %a1, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
  %a2 = weft.tanh %m : tensor<4x8xf32>
  %l = weft.reduce sum %a2 dims [0, 1] : (tensor<4x8xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
