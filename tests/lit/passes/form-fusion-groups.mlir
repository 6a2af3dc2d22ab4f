// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-form-fusion-groups))' | FileCheck %s

// Residual add + RMSNorm: one group that yields both the sum (the next
// residual) and the normalised value.
// CHECK-LABEL: func.func @residual_norm
// CHECK: %[[G:.*]]:2 = weft.fusion_group(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8xf32>, tensor<2x8xf32>, tensor<8xf32>)
// CHECK-NEXT: ^bb0(%[[A:.*]]: tensor<2x8xf32>, %[[B:.*]]: tensor<2x8xf32>, %[[W:.*]]: tensor<8xf32>):
// CHECK-NEXT: %[[S:.*]] = weft.add %[[A]], %[[B]]
// CHECK-NEXT: %[[N:.*]] = weft.rms_norm %[[S]], %[[W]]
// CHECK-NEXT: weft.yield %[[S]], %[[N]]
// CHECK: %[[L:.*]] = weft.linear %[[G]]#1
// CHECK: weft.fusion_group(%[[G]]#0, %[[L]] :
func.func @residual_norm(%h: tensor<2x8xf32>, %o: tensor<2x8xf32>, %w: tensor<8xf32>, %m: tensor<8x8xf32>) -> tensor<2x8xf32> {
  %0 = weft.add %h, %o : tensor<2x8xf32>
  %1 = weft.rms_norm %0, %w epsilon 1.0e-05 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %2 = weft.linear %1, %m : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %3 = weft.add %0, %2 : tensor<2x8xf32>
  return %3 : tensor<2x8xf32>
}

// -----

// SwiGLU: silu(gate) waits for the up projection and fuses with the product;
// the group takes the place of the multiply, after both projections.
// CHECK-LABEL: func.func @swiglu
// CHECK: %[[GATE:.*]] = weft.linear
// CHECK-NEXT: %[[UP:.*]] = weft.linear
// CHECK-NEXT: %[[G:.*]] = weft.fusion_group(%[[GATE]], %[[UP]] :
// CHECK: weft.silu
// CHECK-NEXT: weft.mul
// CHECK-NEXT: weft.yield
// CHECK: weft.linear %[[G]]
func.func @swiglu(%x: tensor<2x8xf32>, %wg: tensor<16x8xf32>, %wu: tensor<16x8xf32>, %wd: tensor<8x16xf32>) -> tensor<2x8xf32> {
  %g = weft.linear %x, %wg : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
  %s = weft.silu %g : tensor<2x16xf32>
  %u = weft.linear %x, %wu : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
  %m = weft.mul %s, %u : tensor<2x16xf32>
  %d = weft.linear %m, %wd : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
  return %d : tensor<2x8xf32>
}

// -----

// A group may not move past a use of its value: the linear reads the exp
// before the add, so the add starts a group of its own.
// CHECK-LABEL: func.func @blocked
// CHECK: %[[E:.*]] = weft.fusion_group
// CHECK: weft.exp
// CHECK: %[[L:.*]] = weft.linear %[[E]]
// CHECK: weft.fusion_group(%[[E]], %[[L]]
// CHECK: weft.add
func.func @blocked(%x: tensor<2x8xf32>, %w: tensor<8x8xf32>) -> tensor<2x8xf32> {
  %e = weft.exp %x : tensor<2x8xf32>
  %l = weft.linear %e, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %a = weft.add %e, %l : tensor<2x8xf32>
  return %a : tensor<2x8xf32>
}

// -----

// Different shapes never share a group; softmax fuses only along the last
// dimension.
// CHECK-LABEL: func.func @shapes
// CHECK: weft.fusion_group
// CHECK-NEXT: ^bb0
// CHECK-NEXT: weft.exp
// CHECK-NEXT: weft.yield
// CHECK: weft.softmax %{{.*}} dim 0
// CHECK: weft.fusion_group
// CHECK: weft.softmax %{{.*}} dim 1
func.func @shapes(%x: tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>) {
  %e = weft.exp %x : tensor<2x8xf32>
  %s0 = weft.softmax %e dim 0 : tensor<2x8xf32>
  %s1 = weft.softmax %s0 dim 1 : tensor<2x8xf32>
  return %s0, %s1 : tensor<2x8xf32>, tensor<2x8xf32>
}

// -----

// A splat constant is copied into the group that reads it (the kernel has
// the value as a literal): the group takes it as no input, and the constant
// outside, read by no one else, is gone. One that a GEMM reads stays.
// CHECK-LABEL: func.func @splat_constants
// CHECK-NEXT: %[[K:.*]] = weft.constant dense<2.000000e+00> : tensor<8x8xf32>
// CHECK-NEXT: %[[G:.*]] = weft.fusion_group(%{{.*}} : tensor<2x8xf32>)
// CHECK-NEXT: ^bb0(%[[X:.*]]: tensor<2x8xf32>):
// CHECK-NEXT: %[[ONE:.*]] = weft.constant dense<1.000000e+00> : tensor<2x8xf32>
// CHECK-NEXT: %[[TWO:.*]] = weft.constant dense<2.000000e+00> : tensor<2x8xf32>
// CHECK-NEXT: %[[S:.*]] = weft.sub %[[ONE]], %[[X]]
// CHECK-NEXT: %[[M:.*]] = weft.mul %[[S]], %[[X]]
// CHECK-NEXT: weft.add %[[M]], %[[TWO]]
// CHECK: weft.linear %[[G]], %[[K]]
// CHECK-NOT: weft.constant
func.func @splat_constants(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %one = weft.constant dense<1.0> : tensor<2x8xf32>
  %two = weft.constant dense<2.0> : tensor<2x8xf32>
  %k = weft.constant dense<2.0> : tensor<8x8xf32>
  %s = weft.sub %one, %x : tensor<2x8xf32>
  %d = weft.mul %s, %x : tensor<2x8xf32>
  %e = weft.add %d, %two : tensor<2x8xf32>
  %l = weft.linear %e, %k : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  return %l : tensor<2x8xf32>
}

// -----

// Row producers: the one-hot of each token's label (an iota along the last
// dimension compared with the labels broadcast along it) and a vector
// broadcast to every row are computed inside the group that reads them; no
// [2, 8] tensor of theirs is materialised. An iota along another dimension
// used outside a group stays.
// CHECK-LABEL: func.func @row_producers
// CHECK-NOT: weft.iota dim 1 : tensor<2x8xi64>
// CHECK-NOT: weft.broadcast
// CHECK: %[[KEEP:.*]] = weft.iota dim 0 : tensor<2x8xi64>
// CHECK: weft.fusion_group(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2xi64>, tensor<2x8xf32>, tensor<8xf32>)
// CHECK-NEXT: ^bb0(%[[L:.*]]: tensor<2xi64>, %{{.*}}: tensor<2x8xf32>, %[[C:.*]]: tensor<8xf32>):
// CHECK-NEXT: %[[I:.*]] = weft.iota dim 1 : tensor<2x8xi64>
// CHECK-NEXT: %[[B:.*]] = weft.broadcast %[[L]] dims [0] : tensor<2xi64> -> tensor<2x8xi64>
// CHECK-NEXT: %[[COL:.*]] = weft.broadcast %[[C]] dims [1] : tensor<8xf32> -> tensor<2x8xf32>
// CHECK-NEXT: weft.compare eq, %[[I]], %[[B]]
// CHECK: weft.mul %{{.*}}, %[[COL]]
// CHECK: weft.fusion_group(%[[KEEP]] : tensor<2x8xi64>)
func.func @row_producers(%labels: tensor<2xi64>, %p: tensor<2x8xf32>, %c: tensor<8xf32>) -> (tensor<2x8xf32>, tensor<2x8xi64>) {
  %iota = weft.iota dim 1 : tensor<2x8xi64>
  %rows = weft.broadcast %labels dims [0] : tensor<2xi64> -> tensor<2x8xi64>
  %col = weft.broadcast %c dims [1] : tensor<8xf32> -> tensor<2x8xf32>
  %keep = weft.iota dim 0 : tensor<2x8xi64>
  %hot = weft.compare eq, %iota, %rows : tensor<2x8xi64>
  %f = weft.convert %hot : tensor<2x8xi1> -> tensor<2x8xf32>
  %d = weft.sub %p, %f : tensor<2x8xf32>
  %e = weft.mul %d, %col : tensor<2x8xf32>
  %k = weft.add %keep, %keep : tensor<2x8xi64>
  return %e, %k : tensor<2x8xf32>, tensor<2x8xi64>
}

// -----

// A norm weight's broadcast to every row (its backward reads it so) is a
// column vector the group reads, not a materialised tensor; in a square group,
// where a vector along the last dimension could read as a value per row, it
// stays.
// CHECK-LABEL: func.func @column_producers
// CHECK: weft.fusion_group(%{{.*}}, %{{.*}} : tensor<2x8xf32>, tensor<8xf32>)
// CHECK-NEXT: ^bb0(%{{.*}}: tensor<2x8xf32>, %[[W:.*]]: tensor<8xf32>):
// CHECK-NEXT: %[[B:.*]] = weft.broadcast %[[W]] dims [1] : tensor<8xf32> -> tensor<2x8xf32>
// CHECK-NEXT: weft.mul %{{.*}}, %[[B]]
// CHECK: %[[SQ:.*]] = weft.broadcast %{{.*}} dims [1] : tensor<8xf32> -> tensor<8x8xf32>
// CHECK: weft.fusion_group(%{{.*}}, %[[SQ]] : tensor<8x8xf32>, tensor<8x8xf32>)
func.func @column_producers(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %s: tensor<8x8xf32>) -> (tensor<2x8xf32>, tensor<8x8xf32>) {
  %b = weft.broadcast %w dims [1] : tensor<8xf32> -> tensor<2x8xf32>
  %y = weft.mul %x, %b : tensor<2x8xf32>
  %sq = weft.broadcast %w dims [1] : tensor<8xf32> -> tensor<8x8xf32>
  %z = weft.mul %s, %sq : tensor<8x8xf32>
  return %y, %z : tensor<2x8xf32>, tensor<8x8xf32>
}

// -----

// A broadcast of a splat constant is a splat constant too: the group holds
// a literal of its shape (a bf16 embedding gradient's zeros widened to f32
// are computed in f32 directly, never written in bf16 first); the broadcast
// and the constant it read are gone.
// CHECK-LABEL: func.func @broadcast_splat
// CHECK-NOT: weft.broadcast
// CHECK: weft.fusion_group {
// CHECK-NEXT: %[[Z:.*]] = weft.constant dense<0.000000e+00> : tensor<4x8xbf16>
// CHECK-NEXT: weft.convert %[[Z]] : tensor<4x8xbf16> -> tensor<4x8xf32>
// CHECK-NOT: weft.constant
// CHECK: return
func.func @broadcast_splat() -> tensor<4x8xf32> {
  %zero = weft.constant dense<0.0> : tensor<bf16>
  %zeros = weft.broadcast %zero dims [] : tensor<bf16> -> tensor<4x8xbf16>
  %wide = weft.convert %zeros : tensor<4x8xbf16> -> tensor<4x8xf32>
  return %wide : tensor<4x8xf32>
}

// -----

// An op reading two groups joins them into one (a loss's gradient: the
// softmax and the one-hot in one kernel, neither [2, 8] result written).
// CHECK-LABEL: func.func @joins_groups
// CHECK: weft.fusion_group(%{{.*}}, %{{.*}} : tensor<2x8xf32>, tensor<2xi64>)
// CHECK: weft.softmax
// CHECK: weft.compare
// CHECK: weft.sub
// CHECK-NEXT: weft.yield
// CHECK-NOT: weft.fusion_group
func.func @joins_groups(%x: tensor<2x8xf32>, %labels: tensor<2xi64>) -> tensor<2x8xf32> {
  %s = weft.softmax %x dim 1 : tensor<2x8xf32>
  %iota = weft.iota dim 1 : tensor<2x8xi64>
  %rows = weft.broadcast %labels dims [0] : tensor<2xi64> -> tensor<2x8xi64>
  %hot = weft.compare eq, %iota, %rows : tensor<2x8xi64>
  %f = weft.convert %hot : tensor<2x8xi1> -> tensor<2x8xf32>
  %d = weft.sub %s, %f : tensor<2x8xf32>
  return %d : tensor<2x8xf32>
}

// -----

// No join that keeps more input alive than it saves writing: the sum's two
// inputs, read by nothing else, would live on past the linear to the
// subtraction to save writing one tensor of their size, and the exp cannot
// move up to the sum (its input comes later); the subtraction joins the exp.
// CHECK-LABEL: func.func @keeps_memory
// CHECK: %[[A:.*]] = weft.fusion_group(%{{.*}}, %{{.*}} : tensor<2x8xf32>, tensor<2x8xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: weft.add
// CHECK-NEXT: weft.yield
// CHECK: %[[L:.*]] = weft.linear
// CHECK: weft.fusion_group(%[[L]], %[[A]] :
// CHECK-NEXT: ^bb0
// CHECK-NEXT: weft.exp
// CHECK-NEXT: weft.sub
func.func @keeps_memory(%x1: tensor<2x8xf32>, %x2: tensor<2x8xf32>, %y: tensor<2x8xf32>, %w: tensor<8x8xf32>) -> tensor<2x8xf32> {
  %a = weft.add %x1, %x2 : tensor<2x8xf32>
  %l = weft.linear %y, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %b = weft.exp %l : tensor<2x8xf32>
  %d = weft.sub %a, %b : tensor<2x8xf32>
  return %d : tensor<2x8xf32>
}

// -----

// An op whose group cannot move down to it (the reduction reads the exp
// first) moves up to the group instead, where its other input is ready: a
// residual add after a norm gradient's weight-sum rows, one kernel.
// CHECK-LABEL: func.func @hoists_op
// CHECK: %[[G:.*]]:2 = weft.fusion_group(%arg0, %arg1 :
// CHECK-NEXT: ^bb0
// CHECK-NEXT: %[[E:.*]] = weft.exp
// CHECK-NEXT: %[[A:.*]] = weft.add %[[E]],
// CHECK-NEXT: weft.yield %[[E]], %[[A]]
// CHECK: %[[S:.*]] = weft.reduce sum %[[G]]#0
// CHECK: return %[[S]], %[[G]]#1
func.func @hoists_op(%x: tensor<2x8xf32>, %r: tensor<2x8xf32>) -> (tensor<8xf32>, tensor<2x8xf32>) {
  %e = weft.exp %x : tensor<2x8xf32>
  %s = weft.reduce sum %e dims [0] : (tensor<2x8xf32>) -> tensor<8xf32>
  %a = weft.add %e, %r : tensor<2x8xf32>
  return %s, %a : tensor<8xf32>, tensor<2x8xf32>
}

// -----

// SwiGLU's backward: the up gradient g·silu joins its sibling g·up (the
// group just before it, reading g too); the gate gradient's chain, which
// reads only forward values, moves up to them past the linear that reads
// the up gradient: one kernel reads g, up, gate and silu once and writes
// both gradients, instead of three kernels and a product between them.
// CHECK-LABEL: func.func @hoists_groups
// CHECK: %[[G:.*]]:2 = weft.fusion_group(%arg0, %arg1, %arg3, %arg2 :
// CHECK: weft.mul
// CHECK-NEXT: %[[DU:.*]] = weft.mul
// CHECK-NEXT: weft.sigmoid
// CHECK: weft.add
// CHECK-NEXT: %[[DG:.*]] = weft.mul
// CHECK-NEXT: weft.yield %[[DU]], %[[DG]]
// CHECK: %[[X:.*]] = weft.linear %[[G]]#0
// CHECK: return %[[X]], %[[G]]#1
func.func @hoists_groups(%g: tensor<2x16xf32>, %up: tensor<2x16xf32>, %gate: tensor<2x16xf32>, %silu: tensor<2x16xf32>, %w: tensor<8x16xf32>) -> (tensor<2x8xf32>, tensor<2x16xf32>) {
  %t = weft.mul %g, %up : tensor<2x16xf32>
  %du = weft.mul %g, %silu : tensor<2x16xf32>
  %x = weft.linear %du, %w : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
  %one = weft.constant dense<1.0> : tensor<2x16xf32>
  %s = weft.sigmoid %gate : tensor<2x16xf32>
  %1 = weft.sub %one, %s : tensor<2x16xf32>
  %2 = weft.mul %silu, %1 : tensor<2x16xf32>
  %3 = weft.add %s, %2 : tensor<2x16xf32>
  %dg = weft.mul %t, %3 : tensor<2x16xf32>
  return %x, %dg : tensor<2x8xf32>, tensor<2x16xf32>
}

// -----

// An update's convert of its new weights to bf16 (a bf16 parameter's copy of
// its master weights) is folded into the update: one pass over the weights,
// no kernel of its own. A convert to another type stays.
// CHECK-LABEL: func.func @rounded_update
// CHECK: %[[P:.*]], %[[M:.*]], %[[V:.*]], %[[R:.*]] = weft.adamw_update %arg0, %arg1, %arg2, %arg3 lr %arg4 step %arg5 norm %arg6 {{{.*}}round_to_bf16{{.*}}} : {{.*}} -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xbf16>)
// CHECK-NOT: weft.convert %[[P]] : tensor<8xf32> -> tensor<8xbf16>
// CHECK: weft.fusion_group(%[[P]] : tensor<8xf32>)
// CHECK: weft.convert {{.*}} -> tensor<8xf64>
// CHECK: return %[[R]], %[[P]], %[[M]], %[[V]],
func.func @rounded_update(%p: tensor<8xf32>, %g: tensor<8xbf16>, %m: tensor<8xf32>, %v: tensor<8xf32>, %lr: tensor<f64>, %s: tensor<i64>, %n: tensor<f32>) -> (tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf64>) {
  %p1, %m1, %v1 = weft.adamw_update %p, %g, %m, %v lr %lr step %s norm %n {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.01} : (tensor<8xf32>, tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<f64>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  %b = weft.convert %p1 : tensor<8xf32> -> tensor<8xbf16>
  %d = weft.convert %p1 : tensor<8xf32> -> tensor<8xf64>
  return %b, %p1, %m1, %v1, %d : tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf64>
}
