// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-rematerialize{policy=full}))' | FileCheck %s --check-prefix=FULL
// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-rematerialize{policy=selective}))' | FileCheck %s --check-prefix=SELECTIVE
// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-rematerialize{policy=mincut}))' | FileCheck %s --check-prefix=MINCUT
// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-rematerialize{policy=none}))' | FileCheck %s --check-prefix=NONE
// RUN: not weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-autodiff,weft-rematerialize{policy=some}))' 2>&1 | FileCheck %s --check-prefix=BAD

// One layer (norm, linear, SiLU) under a loss. The backward of the SiLU
// reads the linear's output (128 floats, also read by its sigmoid) and its
// own, which every policy recomputes there from the linear's output (an
// elementwise op whose input is saved anyway, read by elementwise ops: the
// copy joins their kernel); the linear's weight gradient reads the norm's
// (32 floats). full recomputes the layer from its input %x in the
// backward; selective and mincut keep the linear's output (heavy) and
// recompute the norm.
// NONE-LABEL: func.func @layer(
// NONE-SAME: weft.saved_bytes = 384
// NONE-COUNT-1: weft.rms_norm %arg0, %arg1
// NONE-NOT: weft.rms_norm %arg0, %arg1
// NONE: %[[Y:.*]] = weft.linear
// NONE: weft.reduce sum
// NONE: weft.sigmoid %[[Y]]
// NONE: weft.silu %[[Y]]
// NONE: return

// FULL-LABEL: func.func @layer(
// FULL-SAME: weft.saved_bytes = 0
// FULL: %[[N:.*]] = weft.rms_norm %arg0
// FULL: %[[Y:.*]] = weft.linear %[[N]], %arg2
// FULL: weft.silu %[[Y]]
// FULL: weft.reduce sum
// FULL: %[[N2:.*]] = weft.rms_norm %arg0
// FULL: %[[Y2:.*]] = weft.linear %[[N2]], %arg2
// FULL: weft.sigmoid %[[Y2]]
// FULL: weft.matmul %{{.*}}, %[[N2]] {transpose_lhs}

// SELECTIVE-LABEL: func.func @layer(
// SELECTIVE-SAME: weft.saved_bytes = 256
// SELECTIVE: %[[Y:.*]] = weft.linear
// SELECTIVE: weft.reduce sum
// SELECTIVE-NOT: weft.linear
// SELECTIVE: %[[N2:.*]] = weft.rms_norm %arg0
// SELECTIVE: weft.matmul %{{.*}}, %[[N2]] {transpose_lhs}

// MINCUT-LABEL: func.func @layer(
// MINCUT-SAME: weft.saved_bytes = 256
// MINCUT: weft.reduce sum
// MINCUT-NOT: weft.linear
// MINCUT: %[[N2:.*]] = weft.rms_norm %arg0
// MINCUT: weft.matmul %{{.*}}, %[[N2]] {transpose_lhs}

// BAD: error: weft-rematerialize: policy is 'some'; expected none, full, selective, mincut or auto
func.func @layer(%x: tensor<4x8xf32>, %g: tensor<8xf32> {weft.param = "model.layers.0.norm.weight"}, %w: tensor<16x8xf32> {weft.param = "model.layers.0.proj.weight"}) -> tensor<f32> {
  %n = weft.rms_norm %x, %g epsilon 1.0e-5 : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32> loc("model.layers.0.norm")
  %y = weft.linear %n, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32> loc("model.layers.0.proj")
  %s = weft.silu %y : tensor<4x16xf32> loc("model.layers.0.act")
  %l = weft.reduce sum %s dims [0, 1] : (tensor<4x16xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
