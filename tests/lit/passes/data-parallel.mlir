// RUN: weft-opt %s --weft-optimizer --weft-data-parallel='dp=2' | FileCheck %s
// RUN: weft-opt %s --weft-optimizer='accumulation=2' --weft-data-parallel='dp=4' | FileCheck %s --check-prefix=ACC
// RUN: not weft-opt %s --weft-data-parallel='dp=2' 2>&1 | FileCheck %s --check-prefix=NOSTEP

// One f32 and one bf16 parameter, as weft-autodiff leaves them.
func.func @forward(%x: tensor<4xf32> {weft.input = "x"},
                   %w: tensor<4xf32> {weft.param = "model.w"},
                   %n: tensor<4xbf16> {weft.param = "model.norm.weight"})
    -> (tensor<f32> {weft.output = "loss"},
        tensor<4xf32> {weft.output = "grad.model.w"},
        tensor<4xbf16> {weft.output = "grad.model.norm.weight"}) {
  %c = weft.convert %n : tensor<4xbf16> -> tensor<4xf32>
  %p = weft.mul %x, %w : tensor<4xf32>
  %q = weft.mul %p, %c : tensor<4xf32>
  %l = weft.reduce sum %q dims [0] : (tensor<4xf32>) -> tensor<f32>
  %gn = weft.convert %p : tensor<4xf32> -> tensor<4xbf16>
  return %l, %c, %gn : tensor<f32>, tensor<4xf32>, tensor<4xbf16>
}

// The mesh is recorded; each gradient is summed over dp (a bf16 one in f32)
// before the norm and AdamW read it, both scaling by 1/dp; the loss is the
// group's mean.
// CHECK: #mesh = #weft.mesh<["dp"=2]>
// CHECK: module attributes {weft.mesh = #mesh
// CHECK: %[[G0:[a-z_0-9]+]] = weft.all_reduce sum %[[W:[a-z_0-9]+]] on #mesh ["dp"] : tensor<4xf32>
// CHECK: %[[WIDE:[a-z_0-9]+]] = weft.convert %{{.*}} : tensor<4xbf16> -> tensor<4xf32>
// CHECK: %[[G1:[a-z_0-9]+]] = weft.all_reduce sum %[[WIDE]] on #mesh ["dp"] : tensor<4xf32>
// CHECK: %[[NORM:[a-z_0-9]+]] = weft.grad_norm %[[G0]], %[[G1]] {grad_scale = 5.000000e-01 : f32}
// CHECK: weft.adamw_update %{{.*}}, %[[G0]], {{.*}}grad_scale = 5.000000e-01 : f32
// CHECK: weft.adamw_update %{{.*}}, %[[G1]], {{.*}}grad_scale = 5.000000e-01 : f32
// CHECK: %[[LOSS:[a-z_0-9]+]] = weft.all_reduce mean %{{.*}} on #mesh ["dp"] : tensor<f32>
// CHECK: return %[[LOSS]], %[[NORM]]

// Under accumulation the accumulators are summed once per optimizer step,
// in @optimizer_step; the micro-batches stay local.
// ACC: #mesh = #weft.mesh<["dp"=4]>
// ACC-LABEL: func.func @train_step(
// ACC-NOT: weft.all_reduce sum
// ACC: weft.all_reduce mean
// ACC-LABEL: func.func @optimizer_step(
// ACC: weft.all_reduce sum %arg2 on #mesh ["dp"]
// ACC: weft.all_reduce sum %arg3 on #mesh ["dp"]
// ACC: weft.grad_norm {{.*}}grad_scale = 1.250000e-01 : f32

// NOSTEP: error: data parallelism needs a training step with its optimizer (weft-optimizer), whose gradients it sums over the ranks

// ZeRO-2: each rank keeps a quarter of every parameter's moments and master
// weights (flattened blocks, marked for checkpoints), gets its block of the
// summed gradients by reduce-scatter, adds the blocks' squares over the
// group for the norm, updates its block and all-gathers the new weights
// (bf16 ones in bf16) into the replicated parameter.
// RUN: weft-opt %s --weft-optimizer --weft-data-parallel='dp=4 zero=2' | FileCheck %s --check-prefix=ZERO2
// ZERO2-LABEL: func.func @train_step(
// ZERO2-SAME: %[[W:[a-z_0-9]+]]: tensor<4xf32> {weft.param = "model.w"}
// ZERO2-SAME: %[[M:[a-z_0-9]+]]: tensor<1xf32> {weft.state = "model.w.exp_avg", weft.state_shard = {axes = ["dp"], elements = 4 : i64}}
// ZERO2-SAME: %[[MASTER:[a-z_0-9]+]]: tensor<1xf32> {weft.state = "model.norm.weight.master", weft.state_shard = {axes = ["dp"], elements = 4 : i64}}
// ZERO2-SAME: tensor<1xf32> {weft.update = "model.w.exp_avg"}
// ZERO2-SAME: tensor<4xbf16> {weft.update = "model.norm.weight"}, tensor<1xf32> {weft.update = "model.norm.weight.master"}
// ZERO2: %[[B0:[a-z_0-9]+]] = weft.reduce_scatter sum %{{.*}} on #mesh ["dp"] dim 0 : (tensor<4xf32>) -> tensor<1xf32>
// ZERO2: %[[B1:[a-z_0-9]+]] = weft.reduce_scatter sum %{{.*}} on #mesh ["dp"] dim 0 : (tensor<4xf32>) -> tensor<1xf32>
// ZERO2: %[[NORM:[a-z_0-9]+]] = weft.grad_norm %[[B0]], %[[B1]] over #mesh ["dp"] {grad_scale = 2.500000e-01 : f32}
// ZERO2: %[[WB:[a-z_0-9]+]] = weft.all_slice %{{.*}} on #mesh ["dp"] dim 0 : (tensor<4xf32>) -> tensor<1xf32>
// ZERO2: %[[P:[a-z_0-9]+]], %{{.*}}, %{{.*}} = weft.adamw_update %[[WB]], %[[B0]], %[[M]], %{{.*}} lr %{{.*}} step %{{.*}} norm %[[NORM]]
// ZERO2-SAME: grad_scale = 2.500000e-01 : f32
// ZERO2: %[[Q:[a-z_0-9]+]], %{{.*}}, %{{.*}} = weft.adamw_update %[[MASTER]], %[[B1]]
// ZERO2: %[[QB:[a-z_0-9]+]] = weft.convert %[[Q]] : tensor<1xf32> -> tensor<1xbf16>
// ZERO2: weft.all_gather %[[QB]] on #mesh ["dp"] dim 0 : (tensor<1xbf16>) -> tensor<4xbf16>
// ZERO2: weft.all_gather %[[P]] on #mesh ["dp"] dim 0 : (tensor<1xf32>) -> tensor<4xf32>

// ZeRO-1 reduce-scatters the gradients after the backward (the loss's
// reduction is the backward's last op here); ZeRO-2 right after each is
// computed.
// RUN: weft-opt %s --weft-optimizer --weft-data-parallel='dp=2 zero=1' | FileCheck %s --check-prefix=ZERO1
// ZERO1: weft.reduce sum
// ZERO1: weft.reduce_scatter sum %{{.*}} on #mesh ["dp"] dim 0 : (tensor<4xf32>) -> tensor<2xf32>
// ZERO1-NOT: weft.all_reduce sum
// RUN: weft-opt %s --weft-optimizer --weft-data-parallel='dp=4 zero=2' | FileCheck %s --check-prefix=EARLY
// EARLY: weft.convert %{{.*}} : tensor<4xbf16> -> tensor<4xf32>
// EARLY-NEXT: weft.reshape
// EARLY-NEXT: weft.reduce_scatter sum

// A parameter that does not split evenly: its flat gradient and weights are
// padded with zeros to ranks × block (4 elements over 3 ranks: blocks of
// 2 of 6), the gathered weights cut back to 4.
// RUN: weft-opt %s --weft-optimizer --weft-data-parallel='dp=3 zero=2' | FileCheck %s --check-prefix=UNEVEN
// RUN: weft-opt %s --weft-optimizer --weft-data-parallel='dp=2 zero=3' | FileCheck %s --check-prefix=ZERO3
// UNEVEN: weft.state = "model.w.exp_avg", weft.state_shard = {axes = ["dp"], elements = 4 : i64}
// UNEVEN: %[[ZEROS:.*]] = weft.constant dense<0.000000e+00> : tensor<2xf32>
// UNEVEN: %[[PADDED:.*]] = weft.concat %{{.*}}, %[[ZEROS]] dim 0 : (tensor<4xf32>, tensor<2xf32>) -> tensor<6xf32>
// UNEVEN: weft.reduce_scatter sum %[[PADDED]] on #mesh ["dp"] dim 0 : (tensor<6xf32>) -> tensor<2xf32>
// UNEVEN: %[[ALL:.*]] = weft.all_gather %{{.*}} on #mesh ["dp"] dim 0 : (tensor<2xf32>) -> tensor<6xf32>
// UNEVEN: weft.slice %[[ALL]] [0] [4] [1] : (tensor<6xf32>) -> tensor<4xf32>

// ZeRO-3: the parameters are blocks, each gathered whole for the op that
// reads it — started one gather early (prefetched: the second starts where
// the first did, before the op that reads the first); AdamW updates the f32
// block in place, the bf16 block is its rounding; nothing is gathered after
// the step.
// ZERO3: func.func @train_step(%arg0: tensor<4xf32> {weft.input = "x"}, %arg1: tensor<2xf32> {weft.param = "model.w", weft.param_shard = {axes = ["dp"], elements = 4 : i64, shape = array<i64: 4>}}, %arg2: tensor<2xbf16> {weft.param = "model.norm.weight", weft.param_shard = {axes = ["dp"], elements = 4 : i64, shape = array<i64: 4>}}
// ZERO3: weft.all_gather %arg2 on #mesh ["dp"] dim 0 {weft.prefetch} : (tensor<2xbf16>) -> tensor<4xbf16>
// ZERO3-NEXT: %[[W:.*]] = weft.all_gather %arg1 on #mesh ["dp"] dim 0 {weft.prefetch} : (tensor<2xf32>) -> tensor<4xf32>
// ZERO3-NEXT: weft.convert
// ZERO3: weft.mul %arg0, %[[W]] : tensor<4xf32>
// ZERO3: %[[NEW:.*]], %{{.*}}, %{{.*}} = weft.adamw_update %arg1,
// ZERO3: %[[NEW_BF16:.*]], %{{.*}}, %{{.*}} = weft.adamw_update %arg5,
// ZERO3: %[[ROUNDED:.*]] = weft.convert %[[NEW_BF16]] : tensor<2xf32> -> tensor<2xbf16>
// ZERO3-NOT: weft.all_gather
// ZERO3: return %{{.*}}, %{{.*}}, %[[NEW]], %{{.*}}, %{{.*}}, %[[ROUNDED]],
