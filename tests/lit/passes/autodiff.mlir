// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff{all-arguments=true}))' | FileCheck %s
// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff{frozen=norm}))' | FileCheck %s --check-prefix=FROZEN

// Products: each operand gets the gradient times the other; a value used
// twice sums its gradients.
// CHECK-LABEL: func.func @square(
// CHECK-SAME: -> (tensor<f32>, tensor<4xf32> {weft.output = "grad.arg0"})
// CHECK: %[[SEED:.*]] = weft.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[G:.*]] = weft.broadcast %[[SEED]] dims [] : tensor<f32> -> tensor<4xf32>
// CHECK: %[[A:.*]] = weft.mul %[[G]], %arg0
// CHECK: %[[B:.*]] = weft.mul %[[G]], %arg0
// CHECK: %[[S:.*]] = weft.add %[[A]], %[[B]]
// CHECK: return %{{.*}}, %[[S]]
func.func @square(%x: tensor<4xf32>) -> tensor<f32> {
  %y = weft.mul %x, %x : tensor<4xf32>
  %l = weft.reduce sum %y dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// linear: dx = g·W, dW = gᵀ·x over rows, db = Σ_rows g.
// CHECK-LABEL: func.func @linear(
// CHECK: %[[G2:.*]] = weft.reshape %{{.*}} : tensor<2x3x5xf32> -> tensor<6x5xf32>
// CHECK: %[[X2:.*]] = weft.reshape %arg0 : tensor<2x3x8xf32> -> tensor<6x8xf32>
// CHECK: %[[DX:.*]] = weft.matmul %[[G2]], %arg1 : (tensor<6x5xf32>, tensor<5x8xf32>) -> tensor<6x8xf32>
// CHECK: weft.reshape %[[DX]] : tensor<6x8xf32> -> tensor<2x3x8xf32>
// CHECK: weft.matmul %[[G2]], %[[X2]] {transpose_lhs} : (tensor<6x5xf32>, tensor<6x8xf32>) -> tensor<5x8xf32>
// CHECK: weft.reduce sum %[[G2]] dims [0] : (tensor<6x5xf32>) -> tensor<5xf32>
func.func @linear(%x: tensor<2x3x8xf32>, %w: tensor<5x8xf32>, %b: tensor<5xf32>) -> tensor<f32> {
  %y = weft.linear %x, %w, %b : (tensor<2x3x8xf32>, tensor<5x8xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
  %l = weft.reduce sum %y dims [0, 1, 2] : (tensor<2x3x5xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// gather scatters its gradient into zeros, written by a broadcast rather than
// held as a constant of the table's size (repeated rows add up); the
// integer indices get none. transpose takes the inverse permutation,
// broadcast sums what it spread, mean divides by the count.
// CHECK-LABEL: func.func @shapes(
// CHECK-SAME: -> (tensor<f32>, tensor<10x4xf32> {weft.output = "grad.arg0"}, tensor<6xf32> {weft.output = "grad.arg2"})
// CHECK-DAG: weft.constant dense<0.0416666679> : tensor<4x6xf32>
// CHECK-DAG: weft.reduce sum %{{.*}} dims [1] : (tensor<6x4xf32>) -> tensor<6xf32>
// CHECK-DAG: weft.transpose %{{.*}} [1, 0] : (tensor<4x6xf32>) -> tensor<6x4xf32>
// CHECK-DAG: %[[Z0:.*]] = weft.constant dense<0.000000e+00> : tensor<f32>
// CHECK-DAG: %[[Z:.*]] = weft.broadcast %[[Z0]] dims [] : tensor<f32> -> tensor<10x4xf32>
// CHECK-DAG: weft.scatter_add %[[Z]][%arg1], %{{.*}} axis 0
func.func @shapes(%t: tensor<10x4xf32>, %i: tensor<6xi64>, %v: tensor<6xf32>) -> tensor<f32> {
  %e = weft.gather %t[%i] axis 0 : (tensor<10x4xf32>, tensor<6xi64>) -> tensor<6x4xf32>
  %b = weft.broadcast %v dims [0] : tensor<6xf32> -> tensor<6x4xf32>
  %m = weft.mul %e, %b : tensor<6x4xf32>
  %tr = weft.transpose %m [1, 0] : (tensor<6x4xf32>) -> tensor<4x6xf32>
  %r = weft.reduce mean %tr dims [0, 1] : (tensor<4x6xf32>) -> tensor<f32>
  return %r : tensor<f32>
}

// -----

// Only weft.param arguments are differentiated by default, and a frozen one
// (by name) gets no gradient.
// FROZEN-LABEL: func.func @params(
// FROZEN-SAME: -> (tensor<f32>, tensor<8x8xf32> {weft.output = "grad.layer.weight"})
// FROZEN-NOT: grad.layer.norm
func.func @params(%x: tensor<2x8xf32>, %w: tensor<8x8xf32> {weft.param = "layer.weight"}, %g: tensor<8xf32> {weft.param = "layer.norm.weight"}) -> tensor<f32> {
  %n = weft.rms_norm %x, %g epsilon 1.0e-5 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %y = weft.linear %n, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %l = weft.reduce sum %y dims [0, 1] : (tensor<2x8xf32>) -> tensor<f32>
  return %l : tensor<f32>
}


// -----

// rope turns back: the same rotation at the negated positions. attention's
// gradients come from one weft.attention_grad with the forward's output and
// each row's log-sum-exp, which the forward now returns (with_lse; the
// attention without it is left unused).
// CHECK-LABEL: func.func @rope_attention(
// CHECK: %[[Q:.*]] = weft.rope %arg0, %arg3 theta
// CHECK: %[[O:[a-z0-9_]+]], %[[L:[a-z0-9_]+]] = weft.attention causal %[[Q]], %arg1, %arg2 window 2 with_lse : {{.*}} -> (tensor<1x4x2x8xf32>, tensor<1x2x4xf32>)
// CHECK: %dq, %dk, %dv = weft.attention_grad causal %[[Q]], %arg1, %arg2, %[[O]], %{{.*}} lse(%[[L]]) window 2
// CHECK: %[[NEG:.*]] = weft.neg %arg3 : tensor<1x4xi64>
// CHECK: %[[DQ:.*]] = weft.rope %dq, %[[NEG]] theta
// CHECK: return %{{.*}}, %[[DQ]], %dk, %dv
func.func @rope_attention(%q: tensor<1x4x2x8xf32>, %k: tensor<1x4x1x8xf32>, %v: tensor<1x4x1x8xf32>, %pos: tensor<1x4xi64>) -> tensor<f32> {
  %r = weft.rope %q, %pos theta 1.0e+04 : (tensor<1x4x2x8xf32>, tensor<1x4xi64>) -> tensor<1x4x2x8xf32>
  %o = weft.attention causal %r, %k, %v window 2 : (tensor<1x4x2x8xf32>, tensor<1x4x1x8xf32>, tensor<1x4x1x8xf32>) -> tensor<1x4x2x8xf32>
  %l = weft.reduce sum %o dims [0, 1, 2, 3] : (tensor<1x4x2x8xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
