// A weight whose input features do not match x: the CLI must point at line 4.
module {
  func.func @forward(%x: tensor<4x32xf32>, %w: tensor<16x31xf32>) -> tensor<4x16xf32> {
    %0 = weft.linear %x, %w : (tensor<4x32xf32>, tensor<16x31xf32>) -> tensor<4x16xf32>
    return %0 : tensor<4x16xf32>
  }
}
