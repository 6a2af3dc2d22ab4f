// Passes of the train phase: from a forward function with a loss to the
// functions a training step runs.
#ifndef WEFT_PASSES_TRAIN_PASSES_TD
#define WEFT_PASSES_TRAIN_PASSES_TD

include "mlir/Pass/PassBase.td"

def Autodiff : Pass<"weft-autodiff", "mlir::func::FuncOp"> {
  let summary = "Reverse-mode differentiation of a function's scalar loss";
  let description = [{
    The function's first result must be a rank-0 float tensor (the loss).
    The pass walks the function backwards from a seed of 1, asking each op
    for its vector-Jacobian product (DifferentiableOpInterface), sums the
    gradients of values used more than once, and returns, after the
    function's own results, the gradient of the loss with respect to each
    parameter argument (`weft.param`, named `grad.<param>`) — or, with
    `all-arguments`, to every float argument. An argument the loss does not
    depend on gets zeros; an op on the path without a rule is an error at its
    location. Parameters matching `frozen` (a comma-separated list of
    substrings of their names) get no gradient.

    Example:
    ```mlir
    func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
      %y = weft.mul %x, %x : tensor<4xf32>
      %l = weft.reduce sum %y dims [0] : (tensor<4xf32>) -> tensor<f32>
      return %l : tensor<f32>
    }
    // becomes, with all-arguments, @f(%x) -> (tensor<f32>, tensor<4xf32>)
    // returning %l and 2·%x.
    ```
  }];
  let options = [
    Option<"allArguments", "all-arguments", "bool", "false",
           "differentiate with respect to every float argument">,
    Option<"frozen", "frozen", "std::string", "\"\"",
           "comma-separated substrings of parameter names that get no gradient">,
  ];
}

def Optimizer : Pass<"weft-optimizer", "mlir::ModuleOp"> {
  let summary = "AdamW after the backward: a training step in one function";
  let description = [{
    Runs after weft-autodiff. The entry function, whose `grad.<param>`
    results hold the gradients, becomes `@train_step`: it takes, after its
    own arguments, the optimizer state of each trained parameter as `weft.state`
    arguments (`<param>.exp_avg`, `<param>.exp_avg_sq` and, for a bf16
    parameter, its f32 master weights `<param>.master`) and the learning rate
    (`lr`, tensor<f64>) and step (`step`, tensor<i64>, from 1) as inputs.
    After the backward it takes the global gradient norm (`weft.grad_norm`,
    returned as `grad_norm`) and updates every trained parameter with one
    `weft.adamw_update`; the gradients are no longer returned, the new
    parameters and state are, each marked `weft.update` with the name of the
    argument it replaces (the bufferizer writes it in place), and so are the
    loss and any other output but the logits (a step returns no [batch,
    seq, vocab] tensor to keep alive to its end). Parameters
    whose names contain a `no-decay` substring get no weight decay.

    With `accumulation` K > 1 the update cannot follow every micro-batch:
    `@train_step` adds its gradients (in f32) to accumulators kept as state
    (`grad_acc.<param>`), and a second function, `@optimizer_step`, divides
    them by K, takes the norm, updates the parameters and zeroes the
    accumulators. It takes the same parameter arguments, in the same order.

    Example (K = 1, one f32 parameter):
    ```mlir
    func.func @forward(%w: tensor<4xf32> {weft.param = "w"}, ...)
        -> (tensor<f32> {weft.output = "loss"},
            tensor<4xf32> {weft.output = "grad.w"})
    // becomes
    func.func @train_step(%w: tensor<4xf32> {weft.param = "w"}, ...,
        %m: tensor<4xf32> {weft.state = "w.exp_avg"},
        %v: tensor<4xf32> {weft.state = "w.exp_avg_sq"},
        %lr: tensor<f64> {weft.input = "lr"},
        %step: tensor<i64> {weft.input = "step"})
        -> (tensor<f32> {weft.output = "loss"},
            tensor<f32> {weft.output = "grad_norm"},
            tensor<4xf32> {weft.update = "w"},
            tensor<4xf32> {weft.update = "w.exp_avg"},
            tensor<4xf32> {weft.update = "w.exp_avg_sq"})
    ```
  }];
  let options = [
    Option<"beta1", "beta1", "double", "0.9", "AdamW's β1">,
    Option<"beta2", "beta2", "double", "0.999", "AdamW's β2">,
    Option<"eps", "eps", "double", "1e-8", "AdamW's ε">,
    Option<"weightDecay", "weight-decay", "double", "0.01",
           "decoupled weight decay">,
    Option<"maxGradNorm", "max-grad-norm", "double", "0.0",
           "global-norm clipping threshold (0: none)">,
    Option<"noDecay", "no-decay", "std::string", "\"\"",
           "comma-separated substrings of parameter names without decay">,
    Option<"accumulation", "accumulation", "int64_t", "1",
           "micro-batches per optimizer step">,
  ];
}

#endif // WEFT_PASSES_TRAIN_PASSES_TD
