// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-legalize-cpu-types))' | FileCheck %s

// Rope on bf16 runs as it is (its kernel widens each element as it reads it
// and rounds each result once); so does attention on bf16 q, k and v (its
// kernel widens while it packs).
// CHECK-LABEL: func.func @widened(
// CHECK-NOT: weft.convert
// CHECK: %[[R:.*]] = weft.rope %arg0, %arg3 {{.*}} -> tensor<1x8x4x16xbf16>
// CHECK-NOT: weft.convert
// CHECK: %[[A:.*]] = weft.attention causal %[[R]], %arg1, %arg2 : {{.*}} -> tensor<1x8x4x16xbf16>
// CHECK-NEXT: return %[[A]]
func.func @widened(%q: tensor<1x8x4x16xbf16>, %k: tensor<1x8x2x16xbf16>, %v: tensor<1x8x2x16xbf16>, %pos: tensor<1x8xi64>) -> tensor<1x8x4x16xbf16> {
  %r = weft.rope %q, %pos theta 1.0e4 : (tensor<1x8x4x16xbf16>, tensor<1x8xi64>) -> tensor<1x8x4x16xbf16>
  %a = weft.attention causal %r, %k, %v : (tensor<1x8x4x16xbf16>, tensor<1x8x2x16xbf16>, tensor<1x8x2x16xbf16>) -> tensor<1x8x4x16xbf16>
  return %a : tensor<1x8x4x16xbf16>
}

// -----

// Row kernels, an all-bf16 linear, gather and reshape keep bf16; f32 ops are
// left alone.
// CHECK-LABEL: func.func @kept(
// CHECK-NOT: weft.convert
// CHECK: weft.gather
// CHECK-NOT: weft.convert
// CHECK: weft.rms_norm
// CHECK-NOT: weft.convert
// CHECK: weft.linear
// CHECK-NOT: weft.convert
// CHECK: weft.reshape
// CHECK-NOT: weft.convert
// CHECK: weft.silu
// CHECK-NOT: weft.convert
// CHECK: weft.softmax
// CHECK-NOT: weft.convert
// CHECK: return
func.func @kept(%table: tensor<16x8xbf16>, %ids: tensor<4xi64>, %g: tensor<8xbf16>, %w: tensor<6x8xbf16>, %f: tensor<4x6xf32>) -> (tensor<2x12xbf16>, tensor<4x6xf32>) {
  %e = weft.gather %table[%ids] axis 0 : (tensor<16x8xbf16>, tensor<4xi64>) -> tensor<4x8xbf16>
  %n = weft.rms_norm %e, %g epsilon 1.0e-5 : (tensor<4x8xbf16>, tensor<8xbf16>) -> tensor<4x8xbf16>
  %l = weft.linear %n, %w : (tensor<4x8xbf16>, tensor<6x8xbf16>) -> tensor<4x6xbf16>
  %r = weft.reshape %l : tensor<4x6xbf16> -> tensor<2x12xbf16>
  %s = weft.silu %r : tensor<2x12xbf16>
  %p = weft.softmax %f dim 1 : tensor<4x6xf32>
  return %s, %p : tensor<2x12xbf16>, tensor<4x6xf32>
}

// -----

// A softmax along another dimension than the last is a library call, so it
// computes in f32 too.
// CHECK-LABEL: func.func @softmax_columns(
// CHECK: %[[X:.*]] = weft.convert %arg0 : tensor<4x6xbf16> -> tensor<4x6xf32>
// CHECK: %[[S:.*]] = weft.softmax %[[X]] dim 0 : tensor<4x6xf32>
// CHECK: weft.convert %[[S]] : tensor<4x6xf32> -> tensor<4x6xbf16>
func.func @softmax_columns(%x: tensor<4x6xbf16>) -> tensor<4x6xbf16> {
  %s = weft.softmax %x dim 0 : tensor<4x6xbf16>
  return %s : tensor<4x6xbf16>
}
