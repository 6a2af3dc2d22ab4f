// RUN: not weft-opt %s -split-input-file --weft-tile-loss='tiles=9' 2>&1 | FileCheck %s --check-prefixes=NONE,MANY
// RUN: not weft-opt %s -split-input-file --weft-tile-loss='tiles=1' 2>&1 | FileCheck %s --check-prefix=ONE

// A loss of a linear that something else reads too (an output not named
// "logits"): nothing to tile. 1 tile is no tiling.
// NONE: error: weft-tile-loss: finds no loss to tile: a cross_entropy (mean or sum) of a linear without a bias that nothing else reads (the output projection)
// ONE: error: weft-tile-loss: tiles is 1; expected at least 2
func.func @read_twice(%h: tensor<4x8xf32>, %labels: tensor<4xi64>, %w: tensor<16x8xf32>) -> (tensor<f32>, tensor<4x16xf32>) {
  %logits = weft.linear %h, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  %loss = weft.cross_entropy %logits, %labels ignore_index -100 reduction mean : (tensor<4x16xf32>, tensor<4xi64>) -> tensor<f32>
  return %loss, %logits : tensor<f32>, tensor<4x16xf32>
}

// -----

// 9 tiles of 4 tokens.
// MANY: error: weft-tile-loss: 9 tiles of 4 tokens
func.func @few_tokens(%h: tensor<4x8xf32>, %labels: tensor<4xi64>, %w: tensor<16x8xf32>) -> tensor<f32> {
  %logits = weft.linear %h, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  %loss = weft.cross_entropy %logits, %labels ignore_index -100 reduction sum : (tensor<4x16xf32>, tensor<4xi64>) -> tensor<f32>
  return %loss : tensor<f32>
}
