// weft-offload.test: the activation %a waits in host memory while the rest
// runs, then comes back for the add.
func.func @main(%x: tensor<64x256xf32>) -> (tensor<64x256xf32> {weft.output = "y"}) {
  %a = weft.exp %x : tensor<64x256xf32>
  %h = weft.offload %a : (tensor<64x256xf32>) -> tensor<64x256xf32, #weft.host>
  %b = weft.tanh %x : tensor<64x256xf32>
  %c = weft.mul %b, %b : tensor<64x256xf32>
  %r = weft.reload %h : (tensor<64x256xf32, #weft.host>) -> tensor<64x256xf32>
  %y = weft.add %r, %c : tensor<64x256xf32>
  return %y : tensor<64x256xf32>
}
