// RUN: weft-opt %s --weft-optimizer='no-decay=norm max-grad-norm=1.0' | FileCheck %s --check-prefix=STEP
// RUN: weft-opt %s --weft-optimizer='accumulation=4' | FileCheck %s --check-prefix=ACC

// One f32 and one bf16 parameter (with f32 master weights); the gradients are
// returned by weft-autodiff as grad.<name>.
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

// The settings are kept for the plan.
// STEP: module attributes {weft.optimizer = {accumulation = 1 : i64, {{.*}}kind = "adamw", max_grad_norm = 1.000000e+00 : f64, no_decay = ["norm"], weight_decay = 1.000000e-02 : f64}}
// The update follows the backward in @train_step: state and lr/step come in,
// the new parameters and state go out marked weft.update, the gradients no
// longer do.
// STEP-LABEL: func.func @train_step(
// STEP-SAME: %[[X:[a-z_0-9]+]]: tensor<4xf32> {weft.input = "x"}, %[[W:[a-z_0-9]+]]: tensor<4xf32> {weft.param = "model.w"}, %[[N:[a-z_0-9]+]]: tensor<4xbf16> {weft.param = "model.norm.weight"},
// STEP-SAME: %[[M:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "model.w.exp_avg"}, %[[V:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "model.w.exp_avg_sq"},
// STEP-SAME: %[[NMASTER:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "model.norm.weight.master"}, %[[NM:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "model.norm.weight.exp_avg"}, %[[NV:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "model.norm.weight.exp_avg_sq"},
// STEP-SAME: %[[LR:[a-z_0-9]+]]: tensor<f64> {weft.input = "lr"}, %[[S:[a-z_0-9]+]]: tensor<i64> {weft.input = "step"})
// STEP-SAME: -> (tensor<f32> {weft.output = "loss"}, tensor<f32> {weft.output = "grad_norm"},
// STEP-SAME: tensor<4xf32> {weft.update = "model.w"}, tensor<4xf32> {weft.update = "model.w.exp_avg"}, tensor<4xf32> {weft.update = "model.w.exp_avg_sq"},
// STEP-SAME: tensor<4xbf16> {weft.update = "model.norm.weight"}, tensor<4xf32> {weft.update = "model.norm.weight.master"}, tensor<4xf32> {weft.update = "model.norm.weight.exp_avg"}, tensor<4xf32> {weft.update = "model.norm.weight.exp_avg_sq"})
// STEP: %[[C:[a-z_0-9]+]] = weft.convert %[[N]]
// STEP: %[[GN:[a-z_0-9]+]] = weft.convert
// STEP: %[[NORM:[a-z_0-9]+]] = weft.grad_norm %[[C]], %[[GN]] : (tensor<4xf32>, tensor<4xbf16>) -> tensor<f32>
// STEP: %[[P:[a-z_0-9]+]], %[[PM:[a-z_0-9]+]], %[[PV:[a-z_0-9]+]] = weft.adamw_update %[[W]], %[[C]], %[[M]], %[[V]] lr %[[LR]] step %[[S]] norm %[[NORM]]
// STEP-SAME: max_grad_norm = 1.000000e+00 : f64, weight_decay = 1.000000e-02 : f64
// The norm weight matches no-decay; its update runs on the master weights
// and is rounded into the bf16 parameter.
// STEP: %[[Q:[a-z_0-9]+]], %[[QM:[a-z_0-9]+]], %[[QV:[a-z_0-9]+]] = weft.adamw_update %[[NMASTER]], %[[GN]], %[[NM]], %[[NV]] lr %[[LR]] step %[[S]] norm %[[NORM]]
// STEP-SAME: weight_decay = 0.000000e+00 : f64
// STEP: %[[QB:[a-z_0-9]+]] = weft.convert %[[Q]] : tensor<4xf32> -> tensor<4xbf16>
// STEP: return %{{.*}}, %[[NORM]], %[[P]], %[[PM]], %[[PV]], %[[QB]], %[[Q]], %[[QM]], %[[QV]]

// Under accumulation @train_step adds its (widened) gradients to the
// accumulators ...
// ACC-LABEL: func.func @train_step(
// ACC-SAME: %[[A0:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "grad_acc.model.w"}, %[[A1:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "grad_acc.model.norm.weight"})
// ACC-SAME: -> (tensor<f32> {weft.output = "loss"}, tensor<4xf32> {weft.update = "grad_acc.model.w"}, tensor<4xf32> {weft.update = "grad_acc.model.norm.weight"})
// ACC: %[[S0:[a-z_0-9]+]] = weft.add %[[A0]]
// ACC: %[[WIDE:[a-z_0-9]+]] = weft.convert %{{.*}} : tensor<4xbf16> -> tensor<4xf32>
// ACC: %[[S1:[a-z_0-9]+]] = weft.add %[[A1]], %[[WIDE]]
// ACC: return %{{.*}}, %[[S0]], %[[S1]]
// ... and @optimizer_step, with the same parameter arguments first, updates
// from their mean (each sum times 1/K as it is read) and zeroes them.
// ACC-LABEL: func.func @optimizer_step(
// ACC-SAME: %[[P0:[a-z_0-9]+]]: tensor<4xf32> {weft.param = "model.w"}, %{{.*}}: tensor<4xbf16> {weft.param = "model.norm.weight"},
// ACC-SAME: %[[B0:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "grad_acc.model.w"}, %[[B1:[a-z_0-9]+]]: tensor<4xf32> {weft.state = "grad_acc.model.norm.weight"},
// ACC-SAME: {weft.input = "lr"}, %{{.*}}: tensor<i64> {weft.input = "step"})
// ACC-SAME: -> (tensor<f32> {weft.output = "grad_norm"},
// ACC-SAME: tensor<4xf32> {weft.update = "grad_acc.model.w"}, tensor<4xf32> {weft.update = "grad_acc.model.norm.weight"})
// ACC: %[[NORM:[a-z_0-9]+]] = weft.grad_norm %[[B0]], %[[B1]] {grad_scale = 2.500000e-01 : f32}
// ACC: weft.adamw_update %[[P0]], %[[B0]], {{.*}}grad_scale = 2.500000e-01 : f32
// ACC: %[[Z0:[a-z_0-9]+]] = weft.broadcast
// ACC: %[[Z1:[a-z_0-9]+]] = weft.broadcast
// ACC: return %[[NORM]], {{.*}}, %[[Z0]], %[[Z1]]
