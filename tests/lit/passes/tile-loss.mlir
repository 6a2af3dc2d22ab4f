// RUN: weft-opt %s --weft-tile-loss='tiles=3' | FileCheck %s
// RUN: weft-opt %s -pass-pipeline='builtin.module(weft-tile-loss{tiles=2},func.func(weft-autodiff),canonicalize,cse,func.func(weft-offload-activations,weft-interleave-loss-tiles))' | FileCheck %s --check-prefix=BACKWARD
// RUN: weft-opt %s -pass-pipeline='builtin.module(weft-tile-loss{tiles=2},func.func(weft-autodiff),canonicalize,cse,weft-optimizer,weft-data-parallel{dp=2},func.func(weft-interleave-loss-tiles))' | FileCheck %s --check-prefix=DP

// A model's loss over 2 × 4 tokens in 3 tiles (2, 3 and 3 tokens): each
// tile's projection and summed loss, the total over the count of
// non-ignored tokens; the logits are no longer returned.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: -> (tensor<f32> {weft.output = "loss"})
// CHECK: %[[H:.*]] = weft.reshape %arg0 : tensor<2x4x8xf32> -> tensor<8x8xf32>
// CHECK: %[[L:.*]] = weft.reshape %arg1 : tensor<2x4xi64> -> tensor<8xi64>
// CHECK: %[[H0:.*]] = weft.slice %[[H]] [0, 0] [2, 8] [1, 1] {weft.loss_tile = 0 : i64}
// CHECK: %[[L0:.*]] = weft.slice %[[L]] [0] [2] [1] {weft.loss_tile = 0 : i64}
// CHECK: %[[Z0:.*]] = weft.linear %[[H0]], %arg2 {weft.loss_tile = 0 : i64} : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
// CHECK: %[[S0:.*]] = weft.cross_entropy %[[Z0]], %[[L0]] ignore_index -100 reduction sum {weft.loss_tile = 0 : i64}
// CHECK: weft.slice %[[H]] [2, 0] [5, 8] [1, 1] {weft.loss_tile = 1 : i64}
// CHECK: %[[S1:.*]] = weft.cross_entropy {{.*}} {weft.loss_tile = 1 : i64}
// CHECK: %[[T1:.*]] = weft.add %[[S0]], %[[S1]] {weft.loss_sum}
// CHECK: weft.slice %[[H]] [5, 0] [8, 8] [1, 1] {weft.loss_tile = 2 : i64} : (tensor<8x8xf32>) -> tensor<3x8xf32>
// CHECK: %[[S2:.*]] = weft.cross_entropy {{.*}} {weft.loss_tile = 2 : i64}
// CHECK: %[[T2:.*]] = weft.add %[[T1]], %[[S2]] {weft.loss_sum}
// CHECK: weft.compare ne, %[[L]]
// CHECK: %[[N:.*]] = weft.reduce sum
// CHECK: %[[M:.*]] = weft.max %[[N]]
// CHECK: %[[LOSS:.*]] = weft.div %[[T2]], %[[M]] {weft.loss_sum}
// CHECK-NOT: weft.cross_entropy
// CHECK: return %[[LOSS]] : tensor<f32>

// After the backward is built, each tile's forward runs right before its
// gradient (the last tile first, as the backward visits them) and the
// loss's sum at the end; the markers are gone.
// BACKWARD-LABEL: func.func @forward(
// BACKWARD-NOT: weft.loss_
// BACKWARD: %[[Z1:.*]] = weft.linear {{.*}} -> tensor<4x16xf32>
// BACKWARD-NEXT: %[[S1:.*]] = weft.cross_entropy %[[Z1]]
// BACKWARD-NEXT: weft.softmax %[[Z1]]
// BACKWARD-NOT: weft.linear
// BACKWARD: weft.matmul {{.*}}{transpose_lhs} : (tensor<4x16xf32>, tensor<4x8xf32>) -> tensor<16x8xf32>
// BACKWARD: %[[Z0:.*]] = weft.linear {{.*}} -> tensor<4x16xf32>
// BACKWARD-NEXT: %[[S0:.*]] = weft.cross_entropy %[[Z0]]
// BACKWARD-NEXT: weft.softmax %[[Z0]]
// BACKWARD: weft.add %[[S0]], %[[S1]]
// BACKWARD-NEXT: weft.div
// BACKWARD-NEXT: return

// Data parallel: the loss's mean over the ranks moves to the end with the
// sum it reads, after the optimizer step.
// DP: %[[Z1:.*]] = weft.linear {{.*}} -> tensor<4x16xf32>
// DP-NEXT: %[[S1:.*]] = weft.cross_entropy %[[Z1]]
// DP-NEXT: weft.softmax %[[Z1]]
// DP: %[[Z0:.*]] = weft.linear {{.*}} -> tensor<4x16xf32>
// DP-NEXT: %[[S0:.*]] = weft.cross_entropy %[[Z0]]
// DP-NEXT: weft.softmax %[[Z0]]
// DP: weft.adamw_update
// DP-NEXT: %[[T:.*]] = weft.add %[[S0]], %[[S1]]
// DP-NEXT: %[[L:.*]] = weft.div %[[T]]
// DP-NEXT: %[[M:.*]] = weft.all_reduce mean %[[L]]
// DP-NEXT: return %[[M]]

func.func @forward(%h: tensor<2x4x8xf32> {weft.input = "h"},
                   %labels: tensor<2x4xi64> {weft.input = "labels"},
                   %w: tensor<16x8xf32> {weft.param = "lm_head.weight"})
    -> (tensor<f32> {weft.output = "loss"}, tensor<2x4x16xf32> {weft.output = "logits"}) {
  %logits = weft.linear %h, %w : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = weft.cross_entropy %logits, %labels ignore_index -100 reduction mean : (tensor<2x4x16xf32>, tensor<2x4xi64>) -> tensor<f32>
  return %loss, %logits : tensor<f32>, tensor<2x4x16xf32>
}
