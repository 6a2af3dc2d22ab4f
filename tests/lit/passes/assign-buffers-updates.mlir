// RUN: weft-opt %s -split-input-file -pass-pipeline='builtin.module(func.func(weft-assign-buffers{threads=2}))' -verify-diagnostics | FileCheck %s

// A training step's update: the new weights take the parameter's memory and
// the new moments the state's (laid out by name when the plan is built), so
// AdamW runs in place; nothing of them is in the arena.
// CHECK-LABEL: func.func @in_place(
// CHECK-SAME: {weft.buffer = #weft.buffer<"parameters", 0>, weft.param = "w"}
// CHECK-SAME: {weft.buffer = #weft.buffer<"state", 0>, weft.state = "w.exp_avg"}
// CHECK: weft.adamw_update {{.*}}weft.buffers = [#weft.buffer<"parameters", 0>, #weft.buffer<"state", 0>, #weft.buffer<"state", 0>]
func.func @in_place(%w: tensor<16xf32> {weft.param = "w"}, %g: tensor<16xf32>,
                    %m: tensor<16xf32> {weft.state = "w.exp_avg"},
                    %v: tensor<16xf32> {weft.state = "w.exp_avg_sq"},
                    %lr: tensor<f64> {weft.input = "lr"}, %s: tensor<i64> {weft.input = "step"})
    -> (tensor<16xf32> {weft.output = "y"}, tensor<16xf32> {weft.update = "w"}, tensor<16xf32> {weft.update = "w.exp_avg"},
        tensor<16xf32> {weft.update = "w.exp_avg_sq"}) {
  %y = weft.mul %w, %g : tensor<16xf32>
  %n = weft.grad_norm %y : (tensor<16xf32>) -> tensor<f32>
  %p, %pm, %pv = weft.adamw_update %w, %y, %m, %v lr %lr step %s norm %n {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0}
      : (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<f64>, tensor<i64>, tensor<f32>) -> (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>)
  return %y, %p, %pm, %pv : tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>
}

// -----

// One value returned as two updates (zeroed accumulators CSE'd into one) is
// copied for the second, so each state gets its own write.
// CHECK-LABEL: func.func @copies(
// CHECK: %[[Z:.*]] = weft.broadcast %{{.*}} dims [] {weft.buffers = [#weft.buffer<"state", 0>]
// CHECK: %[[C:.*]] = weft.broadcast %[[Z]] dims [0] {weft.buffers = [#weft.buffer<"state", 0>]
// CHECK: return %[[Z]], %[[C]]
func.func @copies(%a: tensor<16xf32> {weft.state = "a"}, %b: tensor<16xf32> {weft.state = "b"})
    -> (tensor<16xf32> {weft.update = "a"}, tensor<16xf32> {weft.update = "b"}) {
  %z = weft.constant dense<0.0> : tensor<f32>
  %zeros = weft.broadcast %z dims [] : tensor<f32> -> tensor<16xf32>
  return %zeros, %zeros : tensor<16xf32>, tensor<16xf32>
}

// -----

// A read of the parameter after its update would see the new weights: the
// update cannot be in place, and the bufferizer says which op reads it.
func.func @read_after_update(%w: tensor<16xf32> {weft.param = "w"}, %g: tensor<16xf32>,
                             %m: tensor<16xf32> {weft.state = "m"}, %v: tensor<16xf32> {weft.state = "v"},
                             %lr: tensor<f64>, %s: tensor<i64>, %n: tensor<f32>)
    -> (tensor<16xf32>, tensor<16xf32> {weft.update = "w"}) {
  // expected-error@+1 {{updates 'w' in place, but weft.mul at}}
  %p, %pm, %pv = weft.adamw_update %w, %g, %m, %v lr %lr step %s norm %n {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.0}
      : (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<f64>, tensor<i64>, tensor<f32>) -> (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>)
  %late = weft.mul %w, %g : tensor<16xf32>
  return %late, %p : tensor<16xf32>, tensor<16xf32>
}

// -----

// expected-error@+1 {{result 0 updates 'missing', which is no parameter or state argument}}
func.func @unknown_target(%a: tensor<16xf32>) -> (tensor<16xf32> {weft.update = "missing"}) {
  %b = weft.exp %a : tensor<16xf32>
  return %b : tensor<16xf32>
}
