// Constraints of quantization and host offload.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @quantize_c1(%w: tensor<64x64xbf16>) {
  // expected-error@+2 {{'weft.quantize_blockwise' supports 8 or 4 bits, found 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %q, %s = weft.quantize_blockwise %w block_size 2048 bits 2 : (tensor<64x64xbf16>) -> (tensor<1024xi8>, tensor<2xf32>)
  return
}

// -----

func.func @quantize_c2(%w: tensor<64x64xbf16>) {
  // expected-error@+2 {{'weft.quantize_blockwise' needs a block_size >= 1 (even for 4 bits), found 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %q, %s = weft.quantize_blockwise %w block_size 1 bits 4 : (tensor<64x64xbf16>) -> (tensor<2048xi8>, tensor<4096xf32>)
  return
}

// -----

func.func @quantize_c3(%w: tensor<64x64xbf16>) {
  // expected-error@+2 {{'weft.quantize_blockwise' cannot split 4096 elements into blocks of 3000}}
  // expected-error@+1 {{failed to infer returned types}}
  %q, %s = weft.quantize_blockwise %w block_size 3000 bits 8 : (tensor<64x64xbf16>) -> (tensor<4096xi8>, tensor<1xf32>)
  return
}

// -----

func.func @dequantize_c1(%q: tensor<4096xi8>, %s: tensor<2xf32>) {
  // expected-error@+1 {{'weft.dequantize_blockwise' supports 8 or 4 bits, found 16}}
  %0 = weft.dequantize_blockwise %q, %s block_size 2048 bits 16 : (tensor<4096xi8>, tensor<2xf32>) -> tensor<64x64xbf16>
  return
}

// -----

func.func @dequantize_c2(%q: tensor<4096xi8>, %s: tensor<2xf32>) {
  // expected-error@+1 {{'weft.dequantize_blockwise' needs a block_size >= 1 (even for 4 bits), found 0}}
  %0 = weft.dequantize_blockwise %q, %s block_size 0 bits 8 : (tensor<4096xi8>, tensor<2xf32>) -> tensor<64x64xbf16>
  return
}

// -----

func.func @dequantize_c3(%q: tensor<4096xi8>, %s: tensor<2xf32>) {
  // expected-error@+1 {{'weft.dequantize_blockwise' op needs values of shape [2048] and scales of shape [2] for 'tensor<4096xf32>', found 'tensor<4096xi8>' and 'tensor<2xf32>'}}
  %0 = weft.dequantize_blockwise %q, %s block_size 2048 bits 4 : (tensor<4096xi8>, tensor<2xf32>) -> tensor<4096xf32>
  return
}

// -----

func.func @offload_c1(%h: tensor<8xf32, #weft.host>) {
  // expected-error@+2 {{'weft.offload' needs a tensor in device memory, found 'tensor<8xf32, #weft.host>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.offload %h : (tensor<8xf32, #weft.host>) -> tensor<8xf32, #weft.host>
  return
}

// -----

func.func @reload_c1(%x: tensor<8xf32>) {
  // expected-error@+2 {{'weft.reload' needs a tensor in host memory (#weft.host), found 'tensor<8xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reload %x : (tensor<8xf32>) -> tensor<8xf32>
  return
}
