// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff{all-arguments=true}))' | FileCheck %s

// The vector-Jacobian product of each op, one function per rule or family
// (attention, RoPE, linear, gather, transpose, broadcast and mean are in
// autodiff.mlir). %[[G]] is the seed broadcast to the op's shape.

// CHECK-LABEL: func.func @silu(
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK: %[[S:.*]] = weft.sigmoid %arg0
// CHECK: %[[ONE_MINUS:.*]] = weft.sub %{{.*}}, %[[S]]
// CHECK: %[[YS:.*]] = weft.mul %0, %[[ONE_MINUS]]
// CHECK: %[[D:.*]] = weft.add %[[S]], %[[YS]]
// CHECK: weft.mul %[[G]], %[[D]]
func.func @silu(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.silu %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// CHECK-LABEL: func.func @sigmoid(
// CHECK: %[[ONE_MINUS:.*]] = weft.sub %{{.*}}, %0
// CHECK: weft.mul %0, %[[ONE_MINUS]]
func.func @sigmoid(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.sigmoid %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// CHECK-LABEL: func.func @tanh(
// CHECK: %[[SQ:.*]] = weft.mul %0, %0
// CHECK: weft.sub %{{.*}}, %[[SQ]]
func.func @tanh(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.tanh %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// CHECK-LABEL: func.func @exp(
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK-NEXT: %[[D:.*]] = weft.mul %[[G]], %0
// CHECK: return %{{.*}}, %[[D]]
func.func @exp(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.exp %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// CHECK-LABEL: func.func @log(
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK-NEXT: weft.div %[[G]], %arg0
func.func @log(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.log %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// rsqrt: −y³/2; sqrt: g / 2y.
// CHECK-LABEL: func.func @roots(
// CHECK-DAG: weft.constant dense<-5.000000e-01>
// CHECK-DAG: %[[TWICE:.*]] = weft.add %0, %0
// CHECK-DAG: weft.div %{{.*}}, %[[TWICE]]
func.func @roots(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.sqrt %x : tensor<4xf32>
  %b = weft.rsqrt %x : tensor<4xf32>
  %c = weft.add %a, %b : tensor<4xf32>
  %l = weft.reduce sum %c dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// sin → cos; cos → −sin.
// CHECK-LABEL: func.func @trig(
// CHECK: weft.broadcast
// CHECK: %[[S:.*]] = weft.sin %arg0
// CHECK-NEXT: weft.neg %[[S]]
// CHECK: weft.cos %arg0
func.func @trig(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.sin %x : tensor<4xf32>
  %b = weft.cos %x : tensor<4xf32>
  %c = weft.add %a, %b : tensor<4xf32>
  %l = weft.reduce sum %c dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// abs: g·sign(x), 0 at 0.
// CHECK-LABEL: func.func @abs(
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK: %[[POS:.*]] = weft.compare gt, %arg0
// CHECK: %[[NEG:.*]] = weft.compare lt, %arg0
// CHECK: %[[MINUS:.*]] = weft.neg %[[G]]
// CHECK: %[[LOW:.*]] = weft.select %[[NEG]], %[[MINUS]]
// CHECK: weft.select %[[POS]], %[[G]], %[[LOW]]
func.func @abs(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.abs %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// erf: 2/√π·e^(−x²).
// CHECK-LABEL: func.func @erf(
// CHECK: %[[SQ:.*]] = weft.mul %arg0, %arg0
// CHECK: weft.constant dense<1.12837923>
// CHECK: %[[N:.*]] = weft.neg %[[SQ]]
// CHECK: weft.exp %[[N]]
func.func @erf(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.erf %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// floor passes no gradient: the argument's is zeros.
// CHECK-LABEL: func.func @floor(
// CHECK: %[[Z:.*]] = weft.constant dense<0.000000e+00> : tensor<4xf32>
// CHECK: return %{{.*}}, %[[Z]]
func.func @floor(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.floor %x : tensor<4xf32>
  %l = weft.reduce sum %a dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// convert: the gradient converted back.
// CHECK-LABEL: func.func @convert(
// CHECK: %[[G:.*]] = weft.broadcast %{{.*}} : tensor<bf16> -> tensor<4xbf16>
// CHECK: weft.convert %[[G]] : tensor<4xbf16> -> tensor<4xf32>
func.func @convert(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.convert %x : tensor<4xf32> -> tensor<4xbf16>
  %s = weft.reduce sum %a dims [0] : (tensor<4xbf16>) -> tensor<bf16>
  %l = weft.convert %s : tensor<bf16> -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// sub: g and −g; div: g/b and −(g/b)·y.
// CHECK-LABEL: func.func @sub_div(
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK: %[[GB:.*]] = weft.div %[[G]], %arg1
// CHECK: %[[T:.*]] = weft.mul %[[GB]], %1
// CHECK: %[[DB:.*]] = weft.neg %[[T]]
// CHECK: %[[DS:.*]] = weft.neg %[[GB]]
// CHECK: weft.add %[[DB]], %[[DS]]
func.func @sub_div(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<f32> {
  %s = weft.sub %a, %b : tensor<4xf32>
  %d = weft.div %s, %b : tensor<4xf32>
  %l = weft.reduce sum %d dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// pow: e·a^(e−1) and y·ln a; min and max route the gradient by a compare
// (ties to lhs).
// CHECK-LABEL: func.func @max_min_pow(
// CHECK: %[[E1:.*]] = weft.sub %arg0, %{{.*}}
// CHECK: weft.pow %1, %[[E1]]
// CHECK: %[[LN:.*]] = weft.log %1
// CHECK: weft.mul %2, %[[LN]]
// CHECK: %[[LE:.*]] = weft.compare le, %0, %arg1
// CHECK: weft.select %[[LE]]
// CHECK: %[[GE:.*]] = weft.compare ge, %arg0, %arg1
// CHECK: weft.select %[[GE]]
func.func @max_min_pow(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<f32> {
  %m = weft.max %a, %b : tensor<4xf32>
  %n = weft.min %m, %b : tensor<4xf32>
  %p = weft.pow %n, %a : tensor<4xf32>
  %l = weft.reduce sum %p dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// gelu (tanh): (1 + t)/2 + x(1 − t²)·k(1 + 3·0.044715x²)/2; gelu (exact):
// Φ(x) + x·φ(x).
// CHECK-LABEL: func.func @gelu(
// CHECK: weft.tanh
// CHECK: weft.constant dense<1.341450e-01>
// CHECK: weft.constant dense<0.707106769>
// CHECK: weft.erf
// CHECK: weft.constant dense<0.398942292>
func.func @gelu(%x: tensor<4xf32>) -> tensor<f32> {
  %a = weft.gelu %x : tensor<4xf32>
  %b = weft.gelu %a approximation tanh : tensor<4xf32>
  %l = weft.reduce sum %b dims [0] : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// concat: slices of the gradient; a strided slice: its gradient added back
// at the taken positions into zeros; select: each side where it was chosen.
// CHECK-LABEL: func.func @select_slice_concat(
// CHECK: %[[PART:.*]] = weft.slice %[[G:.*]] [0, 0] [2, 3] [1, 1]
// CHECK: %[[REST:.*]] = weft.slice %[[G]] [0, 3] [2, 9] [1, 1]
// CHECK: %[[AT:.*]] = weft.constant dense<[1, 3, 5]> : tensor<3xi64>
// CHECK: %[[BACK:.*]] = weft.scatter_add %{{.*}}[%[[AT]]], %[[PART]] axis 1
// CHECK: %[[DX:.*]] = weft.select %arg0, %[[BACK]], %{{.*}}
// CHECK: %[[DY:.*]] = weft.select %arg0, %{{.*}}, %[[BACK]]
// CHECK: weft.add %[[REST]], %[[DX]]
func.func @select_slice_concat(%p: tensor<2x6xi1>, %x: tensor<2x6xf32>, %y: tensor<2x6xf32>) -> tensor<f32> {
  %s = weft.select %p, %x, %y : tensor<2x6xi1>, tensor<2x6xf32>
  %a = weft.slice %s [0, 1] [2, 6] [1, 2] : (tensor<2x6xf32>) -> tensor<2x3xf32>
  %c = weft.concat %a, %x dim 1 : (tensor<2x3xf32>, tensor<2x6xf32>) -> tensor<2x9xf32>
  %l = weft.reduce sum %c dims [0, 1] : (tensor<2x9xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// log_softmax: g − e^y·Σg; softmax: y·(g − Σ g·y).
// CHECK-LABEL: func.func @softmaxes(
// CHECK: %[[P:.*]] = weft.exp %1
// CHECK: %[[SG:.*]] = weft.reduce sum %[[G:.*]] dims [1]
// CHECK: %[[DQ:.*]] = weft.sub %[[G]], %{{.*}}
// CHECK: %[[GY:.*]] = weft.mul %[[DQ]], %0
// CHECK: weft.reduce sum %[[GY]] dims [1]
// CHECK: %[[IN:.*]] = weft.sub %[[DQ]], %{{.*}}
// CHECK: weft.mul %0, %[[IN]]
func.func @softmaxes(%x: tensor<2x5xf32>) -> tensor<f32> {
  %p = weft.softmax %x dim 1 : tensor<2x5xf32>
  %q = weft.log_softmax %p dim 1 : tensor<2x5xf32>
  %l = weft.reduce sum %q dims [0, 1] : (tensor<2x5xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// rms_norm: weft.rms_norm_grad (r·(g·w) − x·r³·mean(g·w·x)), its weight
// Σ g·rms_norm(x, 1) over rows; layer_norm: weft.layer_norm_grad
// (r·(gw − mean(gw) − x̂·mean(gw·x̂))), its weight Σ g·layer_norm(x, 1) and
// bias Σ g over rows.
// CHECK-LABEL: func.func @norms(
// CHECK: %[[N:.*]] = weft.layer_norm %arg0, %arg1, %arg2
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK: %[[DN:.*]] = weft.rms_norm_grad %[[N]], %arg1, %[[G]] epsilon 9.99999974E-6 : (tensor<2x8xf32>, tensor<8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK: %[[ONES:.*]] = weft.constant dense<1.000000e+00> : tensor<8xf32>
// CHECK: %[[NN:.*]] = weft.rms_norm %[[N]], %[[ONES]]
// CHECK: %[[GN:.*]] = weft.mul %[[G]], %[[NN]]
// CHECK: weft.reduce sum %[[GN]] dims [0] : (tensor<2x8xf32>) -> tensor<8xf32>
// CHECK: weft.layer_norm_grad %arg0, %arg1, %[[DN]] epsilon 9.99999974E-6 : (tensor<2x8xf32>, tensor<8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK: %[[ONES2:.*]] = weft.constant dense<1.000000e+00> : tensor<8xf32>
// CHECK: %[[XHAT:.*]] = weft.layer_norm %arg0, %[[ONES2]] epsilon
// CHECK: %[[GX:.*]] = weft.mul %[[DN]], %[[XHAT]]
// CHECK: weft.reduce sum %[[GX]] dims [0] : (tensor<2x8xf32>) -> tensor<8xf32>
// CHECK: weft.reduce sum %[[DN]] dims [0] : (tensor<2x8xf32>) -> tensor<8xf32>
func.func @norms(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<f32> {
  %n = weft.layer_norm %x, %w, %b epsilon 1.0e-5 : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %r = weft.rms_norm %n, %w epsilon 1.0e-5 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %l = weft.reduce sum %r dims [0, 1] : (tensor<2x8xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// cross_entropy (mean): (softmax − onehot(label)) · valid / max(count, 1).
// CHECK-LABEL: func.func @cross_entropy(
// CHECK: %[[P:.*]] = weft.softmax %arg0 dim 1
// CHECK: %[[COL:.*]] = weft.iota dim 1
// CHECK: %[[HIT:.*]] = weft.compare eq, %[[COL]]
// CHECK: weft.constant dense<-100>
// CHECK: %[[VALID:.*]] = weft.compare ne, %arg1
// CHECK: %[[COUNT:.*]] = weft.reduce sum
// CHECK: weft.max %[[COUNT]]
// CHECK: %[[DIFF:.*]] = weft.sub %[[P]], %{{.*}}
// CHECK: weft.mul %[[DIFF]]
func.func @cross_entropy(%x: tensor<3x5xf32>, %t: tensor<3xi64>) -> tensor<f32> {
  %l = weft.cross_entropy %x, %t ignore_index -100 reduction mean : (tensor<3x5xf32>, tensor<3xi64>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// matmul: dA = g·Bᵀ; a shared rank-2 B sums over the batch (rows flattened).
// CHECK-LABEL: func.func @matmul(
// CHECK: weft.matmul %[[G:.*]], %arg1 {transpose_rhs} : (tensor<2x3x5xf32>, tensor<4x5xf32>) -> tensor<2x3x4xf32>
// CHECK: %[[A2:.*]] = weft.reshape %arg0 : tensor<2x3x4xf32> -> tensor<6x4xf32>
// CHECK: %[[G2:.*]] = weft.reshape %[[G]] : tensor<2x3x5xf32> -> tensor<6x5xf32>
// CHECK: weft.matmul %[[A2]], %[[G2]] {transpose_lhs} : (tensor<6x4xf32>, tensor<6x5xf32>) -> tensor<4x5xf32>
func.func @matmul(%a: tensor<2x3x4xf32>, %b: tensor<4x5xf32>) -> tensor<f32> {
  %p = weft.matmul %a, %b : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
  %l = weft.reduce sum %p dims [0, 1, 2] : (tensor<2x3x5xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// matmul with an accumulator: acc's gradient is g itself.
// CHECK-LABEL: func.func @matmul_acc(
// CHECK: %[[G:.*]] = weft.broadcast
// CHECK-DAG: weft.matmul %[[G]], %arg1 {transpose_rhs} : (tensor<3x5xf32>, tensor<4x5xf32>) -> tensor<3x4xf32>
// CHECK-DAG: weft.matmul %arg0, %[[G]] {transpose_lhs} : (tensor<3x4xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}}, %[[G]] :
func.func @matmul_acc(%a: tensor<3x4xf32>, %b: tensor<4x5xf32>, %c: tensor<3x5xf32>) -> tensor<f32> {
  %p = weft.matmul %a, %b, acc %c : (tensor<3x4xf32>, tensor<4x5xf32>, tensor<3x5xf32>) -> tensor<3x5xf32>
  %l = weft.reduce sum %p dims [0, 1] : (tensor<3x5xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
// -----
// MoE: combine's rows gradient dispatched as single-slot tokens, its weights'
// from the rows put back in pair order; grouped_linear by the transposed
// weights and, per expert, a product over the rows masked to its group;
// dispatch's through a combine with weights 1; the gate's through a one-hot
// of the chosen experts and softmax.
// CHECK-LABEL: func.func @moe(
// CHECK: %[[PE:.*]] = weft.reshape %experts : tensor<4x2xi64> -> tensor<8x1xi64>
// CHECK: %[[DROWS:.*]], %{{.*}} = weft.moe_dispatch %{{.*}}, %[[PE]] num_experts 3
// CHECK: weft.moe_combine %0, %{{.*}}, %{{.*}} num_experts 3 : (tensor<8x5xf32>, tensor<8x1xf32>, tensor<8x1xi64>) -> tensor<8x5xf32>
// CHECK: %[[T0:.*]] = weft.transpose %arg2 [1, 0]
// CHECK: weft.grouped_linear %[[DROWS]], %offsets, %[[T0]]
// CHECK: weft.slice %offsets [1] [2] [1]
// CHECK: weft.matmul %[[DROWS]], %{{.*}} {transpose_lhs} : (tensor<8x5xf32>, tensor<8x6xf32>) -> tensor<5x6xf32>
// CHECK: weft.moe_combine %{{.*}}, %{{.*}}, %experts num_experts 3 : (tensor<8x6xf32>, tensor<4x2xf32>, tensor<4x2xi64>) -> tensor<4x6xf32>
// CHECK: weft.softmax %arg1 dim 1
// CHECK: weft.compare eq
func.func @moe(%x: tensor<4x6xf32>, %logits: tensor<4x3xf32>, %w0: tensor<5x6xf32>, %w1: tensor<5x6xf32>, %w2: tensor<5x6xf32>) -> tensor<f32> {
  %g:2 = weft.moe_gate %logits top_k 2 normalize : (tensor<4x3xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  %d:2 = weft.moe_dispatch %x, %g#1 num_experts 3 : (tensor<4x6xf32>, tensor<4x2xi64>) -> (tensor<8x6xf32>, tensor<4xi64>)
  %h = weft.grouped_linear %d#0, %d#1, %w0, %w1, %w2 : (tensor<8x6xf32>, tensor<4xi64>, tensor<5x6xf32>, tensor<5x6xf32>, tensor<5x6xf32>) -> tensor<8x5xf32>
  %y = weft.moe_combine %h, %g#0, %g#1 num_experts 3 : (tensor<8x5xf32>, tensor<4x2xf32>, tensor<4x2xi64>) -> tensor<4x5xf32>
  %l = weft.reduce sum %y dims [0, 1] : (tensor<4x5xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
