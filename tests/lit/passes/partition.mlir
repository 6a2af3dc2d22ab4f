// RUN: weft-opt %s --weft-partition='sp=2' | FileCheck %s
// RUN: weft-opt %s --weft-partition='sp=4' | FileCheck %s --check-prefix=GQA
// RUN: weft-opt %s --weft-optimizer --weft-partition='dp=2 sp=2' --weft-data-parallel='dp=2' | FileCheck %s --check-prefix=DPSP
// RUN: weft-opt %s --weft-optimizer --weft-partition='dp=2 sp=2' --weft-data-parallel='dp=2 zero=1' | FileCheck %s --check-prefix=ZERO
// RUN: not weft-opt %s --weft-partition='sp=8' 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: not weft-opt %s --weft-partition='sp=3' 2>&1 | FileCheck %s --check-prefix=SEQ
// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-partition{sp=2})' | FileCheck %s --check-prefix=LSE

// Embedding, rotary positions, attention with 4 query and 2 key/value
// heads, a projection whose weight gradient sums over the tokens, and the
// token-mean loss: the global step weft-partition splits over sp.
func.func @forward(%ids: tensor<1x8xi64> {weft.input = "input_ids"},
                   %labels: tensor<1x8xi64> {weft.input = "labels"},
                   %table: tensor<16x8xf32> {weft.param = "embed"},
                   %w: tensor<16x8xf32> {weft.param = "head"})
    -> (tensor<f32> {weft.output = "loss"},
        tensor<16x8xf32> {weft.output = "grad.head"}) {
  %x = weft.gather %table[%ids] axis 0 : (tensor<16x8xf32>, tensor<1x8xi64>) -> tensor<1x8x8xf32>
  %positions = weft.iota dim 1 : tensor<1x8xi64>
  %q = weft.reshape %x : tensor<1x8x8xf32> -> tensor<1x8x4x2xf32>
  %qr = weft.rope %q, %positions theta 1.000000e+04 : (tensor<1x8x4x2xf32>, tensor<1x8xi64>) -> tensor<1x8x4x2xf32>
  %kv = weft.slice %qr [0, 0, 0, 0] [1, 8, 2, 2] [1, 1, 1, 1] : (tensor<1x8x4x2xf32>) -> tensor<1x8x2x2xf32>
  %a = weft.attention causal %qr, %kv, %kv : (tensor<1x8x4x2xf32>, tensor<1x8x2x2xf32>, tensor<1x8x2x2xf32>) -> tensor<1x8x4x2xf32>
  %h = weft.reshape %a : tensor<1x8x4x2xf32> -> tensor<1x8x8xf32>
  %logits = weft.linear %h, %w : (tensor<1x8x8xf32>, tensor<16x8xf32>) -> tensor<1x8x16xf32>
  %loss = weft.cross_entropy %logits, %labels ignore_index -100 reduction mean : (tensor<1x8x16xf32>, tensor<1x8xi64>) -> tensor<f32>
  %flat = weft.reshape %logits : tensor<1x8x16xf32> -> tensor<8x16xf32>
  %hidden = weft.reshape %h : tensor<1x8x8xf32> -> tensor<8x8xf32>
  %gw = weft.matmul %flat, %hidden {transpose_lhs} : (tensor<8x16xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
  return %loss, %gw : tensor<f32>, tensor<16x8xf32>
}

// Each rank slices its 4 tokens and their global positions; q, k, v go to
// heads by all-to-all and the output comes back; the loss is the group's
// sum over the group's count of targets; the weight gradient, a sum over
// tokens, is all-reduced.
// CHECK: #mesh = #weft.mesh<["sp"=2]>
// CHECK: %[[IDS:.*]] = weft.all_slice %arg0 on #mesh ["sp"] dim 1 : (tensor<1x8xi64>) -> tensor<1x4xi64>
// CHECK: weft.gather %arg2[%[[IDS]]] axis 0 : (tensor<16x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
// CHECK: %[[POS:.*]] = weft.iota dim 1 : tensor<1x8xi64>
// CHECK: weft.all_slice %[[POS]] on #mesh ["sp"] dim 1 : (tensor<1x8xi64>) -> tensor<1x4xi64>
// CHECK: weft.all_to_all %{{.*}} on #mesh ["sp"] split 2 concat 1 : (tensor<1x4x4x2xf32>) -> tensor<1x8x2x2xf32>
// CHECK: weft.all_to_all %{{.*}} on #mesh ["sp"] split 2 concat 1 : (tensor<1x4x2x2xf32>) -> tensor<1x8x1x2xf32>
// CHECK: %[[LOCAL:.*]] = weft.attention causal {{.*}} : (tensor<1x8x2x2xf32>, tensor<1x8x1x2xf32>, tensor<1x8x1x2xf32>) -> tensor<1x8x2x2xf32>
// CHECK: weft.all_to_all %[[LOCAL]] on #mesh ["sp"] split 1 concat 2 : (tensor<1x8x2x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK: %[[SUM:.*]] = weft.cross_entropy {{.*}} reduction sum : (tensor<1x4x16xf32>, tensor<1x4xi64>) -> tensor<f32>
// CHECK: %[[TOTAL:.*]] = weft.all_reduce sum %[[SUM]] on #mesh ["sp"] : tensor<f32>
// CHECK: %[[COUNT:.*]] = weft.all_reduce sum %{{.*}} on #mesh ["sp"] : tensor<f32>
// CHECK: %[[AT_LEAST_1:.*]] = weft.max %[[COUNT]]
// CHECK: %[[LOSS:.*]] = weft.div %[[TOTAL]], %[[AT_LEAST_1]] : tensor<f32>
// CHECK: %[[PART:.*]] = weft.matmul {{.*}} {transpose_lhs} : (tensor<4x16xf32>, tensor<4x8xf32>) -> tensor<16x8xf32>
// CHECK: %[[GW:.*]] = weft.all_reduce sum %[[PART]] on #mesh ["sp"] : tensor<16x8xf32>
// CHECK: return %[[LOSS]], %[[GW]]

// sp = 4 > 2 key/value heads: each is repeated twice before its all-to-all.
// GQA: weft.broadcast %{{.*}} dims [0, 1, 2, 4] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2x2xf32>
// GQA: weft.all_to_all %{{.*}} split 2 concat 1 : (tensor<1x2x4x2xf32>) -> tensor<1x8x1x2xf32>

// With dp: the partial weight gradient is summed over dp × sp at once (its
// sp-only sum dropped), the update scaled by 1/dp; the loss, summed over
// sp, is the mean over dp.
// DPSP: #mesh = #weft.mesh<["dp"=2, "sp"=2]>
// DPSP-NOT: weft.all_reduce sum %{{.*}} on #mesh ["sp"] : tensor<16x8xf32>
// DPSP: %[[G:.*]] = weft.all_reduce sum %{{.*}} on #mesh ["dp", "sp"] : tensor<16x8xf32>
// DPSP: weft.grad_norm %[[G]] {grad_scale = 5.000000e-01 : f32}
// DPSP: weft.all_reduce mean %{{.*}} on #mesh ["dp"] : tensor<f32>

// ZeRO shards over dp × sp: a quarter of the 128 elements per rank.
// ZERO: weft.reduce_scatter sum %{{.*}} on #mesh ["dp", "sp"] dim 0 : (tensor<128xf32>) -> tensor<32xf32>
// ZERO: weft.grad_norm %{{.*}} over #mesh ["dp", "sp"] {grad_scale = 5.000000e-01 : f32}

// HEADS: error: has 4 attention heads, not a multiple of sp = 8
// SEQ: error: the sequence of 8 tokens does not split over sp = 3 ranks

// The forward's log-sum-exp stays where each rank computed it (its heads,
// the whole sequence): the gradient's local attention reads it as it is,
// with no exchange.
// LSE: %[[O:[a-z0-9_]+]], %[[L:[a-z0-9_]+]] = weft.attention causal {{.*}} with_lse : {{.*}} -> (tensor<1x8x2x2xf32>, tensor<1x2x8xf32>)
// LSE-NOT: weft.all_to_all %[[L]]
// LSE: weft.attention_grad causal {{.*}} lse(%[[L]])
