// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-optimizer,weft-partition{tp=2})' | FileCheck %s
// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-optimizer,weft-partition{dp=2 tp=2},weft-data-parallel{dp=2})' | FileCheck %s --check-prefix=DPTP
// RUN: not weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-optimizer,weft-partition{tp=4})' 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: not weft-opt %s -pass-pipeline='builtin.module(func.func(weft-autodiff),weft-optimizer,weft-partition{tp=2},weft-data-parallel{zero=1})' 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not weft-opt %s --weft-partition='sp=2 tp=2' 2>&1 | FileCheck %s --check-prefix=BOTH

// An attention block of Hugging Face's names: q, k, v column-parallel (4
// query heads, 2 key/value heads), o row-parallel with a bias, then a
// replicated head and the loss (no residual, so the embedding's gradient
// is the sum of q, k and v's input gradients).
func.func @forward(%ids: tensor<1x4xi64> {weft.input = "input_ids"},
                   %labels: tensor<1x4xi64> {weft.input = "labels"},
                   %table: tensor<16x8xf32> {weft.param = "embed.weight"},
                   %wq: tensor<8x8xf32> {weft.param = "layers.0.self_attn.q_proj.weight"},
                   %wk: tensor<4x8xf32> {weft.param = "layers.0.self_attn.k_proj.weight"},
                   %wv: tensor<4x8xf32> {weft.param = "layers.0.self_attn.v_proj.weight"},
                   %wo: tensor<8x8xf32> {weft.param = "layers.0.self_attn.o_proj.weight"},
                   %bo: tensor<8xf32> {weft.param = "layers.0.self_attn.o_proj.bias"},
                   %head: tensor<16x8xf32> {weft.param = "lm_head.weight"})
    -> (tensor<f32> {weft.output = "loss"}) {
  %x = weft.gather %table[%ids] axis 0 : (tensor<16x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  %q = weft.linear %x, %wq : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %k = weft.linear %x, %wk : (tensor<1x4x8xf32>, tensor<4x8xf32>) -> tensor<1x4x4xf32>
  %v = weft.linear %x, %wv : (tensor<1x4x8xf32>, tensor<4x8xf32>) -> tensor<1x4x4xf32>
  %qh = weft.reshape %q : tensor<1x4x8xf32> -> tensor<1x4x4x2xf32>
  %kh = weft.reshape %k : tensor<1x4x4xf32> -> tensor<1x4x2x2xf32>
  %vh = weft.reshape %v : tensor<1x4x4xf32> -> tensor<1x4x2x2xf32>
  %a = weft.attention causal %qh, %kh, %vh : (tensor<1x4x4x2xf32>, tensor<1x4x2x2xf32>, tensor<1x4x2x2xf32>) -> tensor<1x4x4x2xf32>
  %h = weft.reshape %a : tensor<1x4x4x2xf32> -> tensor<1x4x8xf32>
  %o = weft.linear %h, %wo, %bo : (tensor<1x4x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  %logits = weft.linear %o, %head : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %loss = weft.cross_entropy %logits, %labels ignore_index -100 reduction mean : (tensor<1x4x16xf32>, tensor<1x4xi64>) -> tensor<f32>
  return %loss : tensor<f32>
}

// Each rank holds half of q, k, v's outputs and of o's inputs (and their
// moments); attention runs on its 2 query heads and 1 key/value head; o's
// partial products are summed over tp before its bias is added once.
// CHECK: #mesh = #weft.mesh<["tp"=2]>
// CHECK: func.func @train_step(
// CHECK-SAME: tensor<4x8xf32> {weft.param = "layers.0.self_attn.q_proj.weight", weft.param_shard = {axes = ["tp"], dim = 0 : i64, elements = 64 : i64, shape = array<i64: 8, 8>}}
// CHECK-SAME: tensor<2x8xf32> {weft.param = "layers.0.self_attn.k_proj.weight", weft.param_shard = {axes = ["tp"], dim = 0 : i64, elements = 32 : i64, shape = array<i64: 4, 8>}}
// CHECK-SAME: tensor<8x4xf32> {weft.param = "layers.0.self_attn.o_proj.weight", weft.param_shard = {axes = ["tp"], dim = 1 : i64, elements = 64 : i64, shape = array<i64: 8, 8>}}
// CHECK-SAME: tensor<8xf32> {weft.param = "layers.0.self_attn.o_proj.bias"}
// CHECK-SAME: tensor<16x8xf32> {weft.param = "lm_head.weight"}
// CHECK-SAME: tensor<4x8xf32> {weft.state = "layers.0.self_attn.q_proj.weight.exp_avg", weft.state_shard = {axes = ["tp"], dim = 0 : i64
// CHECK: weft.attention causal {{.*}} with_lse : (tensor<1x4x2x2xf32>, tensor<1x4x1x2xf32>, tensor<1x4x1x2xf32>) -> (tensor<1x4x2x2xf32>, tensor<1x2x4xf32>)
// CHECK: %[[PART:.*]] = weft.linear %{{.*}}, %arg6 : (tensor<1x4x4xf32>, tensor<8x4xf32>) -> tensor<1x4x8xf32>
// CHECK: %[[SUM:.*]] = weft.all_reduce sum %[[PART]] on #mesh ["tp"] : tensor<1x4x8xf32>
// CHECK: %[[BIAS:.*]] = weft.broadcast %arg7 dims [2] : tensor<8xf32> -> tensor<1x4x8xf32>
// CHECK: weft.add %[[SUM]], %[[BIAS]] : tensor<1x4x8xf32>
// The input gradients of the column-parallel products are partial too:
// added up first, then one all-reduce (Megatron's).
// CHECK: weft.attention_grad
// CHECK-NOT: weft.all_reduce
// CHECK: %[[DKV:.*]] = weft.add %{{.*}}, %{{.*}} : tensor<1x4x8xf32>
// CHECK-NOT: weft.all_reduce
// CHECK: %[[DX:.*]] = weft.add %[[DKV]], %{{.*}} : tensor<1x4x8xf32>
// CHECK-NEXT: weft.all_reduce sum %[[DX]] on #mesh ["tp"] : tensor<1x4x8xf32>
// CHECK-NOT: weft.all_reduce
// The norm adds the split gradients' squares over tp to the whole ones'.
// CHECK: %[[SPLIT:.*]] = weft.grad_norm {{.*}} over #mesh ["tp"] : (tensor<4x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<f32>
// CHECK: %[[WHOLE:.*]] = weft.grad_norm {{.*}} : (tensor<16x8xf32>, tensor<8xf32>, tensor<16x8xf32>) -> tensor<f32>
// CHECK: %[[NORM:.*]] = weft.sqrt
// CHECK: weft.adamw_update %arg3, {{.*}} norm %[[NORM]] {{.*}} -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>)
// The updates of split arguments are returned split.
// CHECK: return {{.*}} : tensor<f32>, tensor<f32>, tensor<16x8xf32>, {{.*}}, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<2x8xf32>

// DPTP: #mesh = #weft.mesh<["dp"=2, "tp"=2]>
// DPTP: weft.all_reduce sum %{{.*}} on #mesh ["tp"] : tensor<1x4x8xf32>
// DPTP: weft.all_reduce sum %{{.*}} on #mesh ["dp"] : tensor<2x8xf32>
// DPTP: weft.all_reduce mean %{{.*}} on #mesh ["dp"] : tensor<f32>

// HEADS: error: has 4 attention heads and 2 key/value heads: tensor parallelism needs both multiples of tp = 4 (each rank takes whole heads)
// ZERO: error: ZeRO-1 with tensor parallelism (tp = 2) is not there yet; use --zero 0 with --tp
// BOTH: error: sp = 2 with tp = 2: sequence and tensor parallelism together are not there yet
