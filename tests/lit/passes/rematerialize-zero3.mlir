// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-optimizer,weft-data-parallel{dp=2 zero=3},func.func(weft-rematerialize{policy=full}))' | FileCheck %s
// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-optimizer,weft-data-parallel{dp=2 zero=3},func.func(weft-rematerialize{policy=none}))' | FileCheck %s --check-prefix=NONE

// ZeRO-3 under full rematerialisation: the layer's recomputation in the
// backward gathers the projection's weight again (as DeepSpeed's does), so
// the forward's gathered copy dies at the forward's linear instead of being
// saved for the backward (so is the norm's weight). The layer saves what it
// saves without ZeRO (rematerialize.mlir, nothing), not also the 544 bytes
// of the gathered weights. The gathers it adds are prefetched as
// weft-data-parallel's are: each starts where the gather before it did.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: weft.saved_bytes = 0
// CHECK: %[[W:.*]] = weft.all_gather %arg2 on #mesh ["dp"] dim 0 {weft.prefetch} : (tensor<64xf32>) -> tensor<128xf32>
// CHECK: %[[W2:.*]] = weft.reshape %[[W]] : tensor<128xf32> -> tensor<16x8xf32>
// CHECK: weft.linear %{{.*}}, %[[W2]]
// CHECK: weft.reduce sum
// CHECK-NOT: %[[W2]]{{[^0-9]}}
// CHECK: %[[AGAIN:.*]] = weft.all_gather %arg2 on #mesh ["dp"] dim 0 {weft.prefetch} : (tensor<64xf32>) -> tensor<128xf32>
// CHECK: %[[AGAIN2:.*]] = weft.reshape %[[AGAIN]] : tensor<128xf32> -> tensor<16x8xf32>
// CHECK: weft.linear %{{.*}}, %[[AGAIN2]]
// CHECK-NOT: %[[W2]]{{[^0-9]}}
// CHECK: return

// Without rematerialisation the backward reads what the forward computed,
// and saves what it saves without ZeRO.
// NONE-LABEL: func.func @train_step(
// NONE-SAME: weft.saved_bytes = 384
func.func @layer(%x: tensor<4x8xf32> {weft.input = "x"},
                 %g: tensor<8xf32> {weft.param = "model.layers.0.norm.weight"},
                 %w: tensor<16x8xf32> {weft.param = "model.layers.0.proj.weight"})
    -> (tensor<f32> {weft.output = "loss"}) {
  %n = weft.rms_norm %x, %g epsilon 1.0e-5 : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32> loc("model.layers.0.norm")
  %y = weft.linear %n, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32> loc("model.layers.0.proj")
  %s = weft.silu %y : tensor<4x16xf32> loc("model.layers.0.act")
  %l = weft.reduce sum %s dims [0, 1] : (tensor<4x16xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
