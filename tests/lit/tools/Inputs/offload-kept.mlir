// weft-offload.test: offload.mlir with %a kept on the device.
func.func @main(%x: tensor<64x256xf32>) -> (tensor<64x256xf32> {weft.output = "y"}) {
  %a = weft.exp %x : tensor<64x256xf32>
  %b = weft.tanh %x : tensor<64x256xf32>
  %c = weft.mul %b, %b : tensor<64x256xf32>
  %y = weft.add %a, %c : tensor<64x256xf32>
  return %y : tensor<64x256xf32>
}
