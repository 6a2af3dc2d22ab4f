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

#endif // WEFT_PASSES_TRAIN_PASSES_TD
