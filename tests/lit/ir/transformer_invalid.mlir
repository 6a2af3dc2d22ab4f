// Constraints of the transformer composites.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @rms_norm_c1(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error@+2 {{'weft.rms_norm' needs x of rank at least 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rms_norm %x, %w epsilon 1.0e-05 : (tensor<f32>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

func.func @rms_norm_c2(%x: tensor<4x256xf32>, %w: tensor<128xf32>) {
  // expected-error@+2 {{'weft.rms_norm' needs weight of shape [256], found 'tensor<128xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rms_norm %x, %w epsilon 1.0e-05 : (tensor<4x256xf32>, tensor<128xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @rms_norm_c3(%x: tensor<4x256xbf16>, %w: tensor<256xf32>) {
  // expected-error@+2 {{'weft.rms_norm' needs weight of element type 'bf16', found 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rms_norm %x, %w epsilon 1.0e-05 : (tensor<4x256xbf16>, tensor<256xf32>) -> tensor<4x256xbf16>
  return
}

// -----

func.func @rms_norm_c4(%x: tensor<4x256xf32>, %w: tensor<256xf32>) {
  // expected-error@+2 {{'weft.rms_norm' needs epsilon >= 0, found -1.0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rms_norm %x, %w epsilon -1.0 : (tensor<4x256xf32>, tensor<256xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @rms_norm_grad_c2(%x: tensor<4x256xf32>, %w: tensor<128xf32>, %g: tensor<4x256xf32>) {
  // expected-error@+2 {{'weft.rms_norm_grad' needs weight of shape [256], found 'tensor<128xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rms_norm_grad %x, %w, %g epsilon 1.0e-05 : (tensor<4x256xf32>, tensor<128xf32>, tensor<4x256xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @rms_norm_grad_c5(%x: tensor<4x256xbf16>, %w: tensor<256xbf16>, %g: tensor<4x256xf32>) {
  // expected-error@+2 {{'weft.rms_norm_grad' needs grad of x's type 'tensor<4x256xbf16>', found 'tensor<4x256xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rms_norm_grad %x, %w, %g epsilon 1.0e-05 : (tensor<4x256xbf16>, tensor<256xbf16>, tensor<4x256xf32>) -> tensor<4x256xbf16>
  return
}

// -----

func.func @layer_norm_grad_c5(%x: tensor<4x256xf32>, %w: tensor<256xf32>, %g: tensor<4x128xf32>) {
  // expected-error@+2 {{'weft.layer_norm_grad' needs grad of x's type 'tensor<4x256xf32>', found 'tensor<4x128xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.layer_norm_grad %x, %w, %g epsilon 1.0e-05 : (tensor<4x256xf32>, tensor<256xf32>, tensor<4x128xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @layer_norm_c1(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error@+2 {{'weft.layer_norm' needs x of rank at least 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.layer_norm %x, %w epsilon 1.0e-05 : (tensor<f32>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

func.func @layer_norm_c2(%x: tensor<4x256xf32>, %w: tensor<256xf32>, %b: tensor<1x256xf32>) {
  // expected-error@+2 {{'weft.layer_norm' needs bias of shape [256], found 'tensor<1x256xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.layer_norm %x, %w, %b epsilon 1.0e-05 : (tensor<4x256xf32>, tensor<256xf32>, tensor<1x256xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @layer_norm_c3(%x: tensor<4x256xf32>, %w: tensor<256xf32>, %b: tensor<256xbf16>) {
  // expected-error@+2 {{'weft.layer_norm' needs bias of element type 'f32', found 'bf16'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.layer_norm %x, %w, %b epsilon 1.0e-05 : (tensor<4x256xf32>, tensor<256xf32>, tensor<256xbf16>) -> tensor<4x256xf32>
  return
}

// -----

func.func @layer_norm_c4(%x: tensor<4x256xf32>, %w: tensor<256xf32>) {
  // expected-error@+2 {{'weft.layer_norm' needs epsilon >= 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.layer_norm %x, %w epsilon -1.0e-05 : (tensor<4x256xf32>, tensor<256xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @rope_c1(%x: tensor<1x16x256xf32>, %p: tensor<1x16xi64>) {
  // expected-error@+2 {{'weft.rope' needs x of rank 4 [batch, seq, heads, head_dim], found 'tensor<1x16x256xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rope %x, %p theta 1.0e+04 : (tensor<1x16x256xf32>, tensor<1x16xi64>) -> tensor<1x16x256xf32>
  return
}

// -----

func.func @rope_c2(%x: tensor<1x16x8x32xf32>, %p: tensor<16xi64>) {
  // expected-error@+2 {{'weft.rope' needs positions of shape [1, 16], found 'tensor<16xi64>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rope %x, %p theta 1.0e+04 : (tensor<1x16x8x32xf32>, tensor<16xi64>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @rope_c3(%x: tensor<1x16x8x31xf32>, %p: tensor<1x16xi64>) {
  // expected-error@+2 {{'weft.rope' needs an even head_dim, found 31}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rope %x, %p theta 1.0e+04 : (tensor<1x16x8x31xf32>, tensor<1x16xi64>) -> tensor<1x16x8x31xf32>
  return
}

// -----

func.func @rope_c4(%x: tensor<1x16x8x32xf32>, %p: tensor<1x16xi64>) {
  // expected-error@+2 {{'weft.rope' needs theta > 0, found 0.0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rope %x, %p theta 0.0 : (tensor<1x16x8x32xf32>, tensor<1x16xi64>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @rope_c5(%x: tensor<1x16x8x4xf32>, %p: tensor<1x16xi64>) {
  // expected-error@+2 {{'weft.rope' needs head_dim / 2 = 2 frequencies, found 3}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rope %x, %p theta 1.0e+04 frequencies [1.0, 0.5, 0.25] : (tensor<1x16x8x4xf32>, tensor<1x16xi64>) -> tensor<1x16x8x4xf32>
  return
}

// -----

func.func @rope_c5_sign(%x: tensor<1x16x8x4xf32>, %p: tensor<1x16xi64>) {
  // expected-error@+2 {{'weft.rope' needs finite positive frequencies, found -1.0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.rope %x, %p theta 1.0e+04 frequencies [1.0, -1.0] : (tensor<1x16x8x4xf32>, tensor<1x16xi64>) -> tensor<1x16x8x4xf32>
  return
}

// -----

func.func @attention_c11(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' takes a window only with kind 'causal' or 'alibi', not 'full'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention full %q, %k, %k window 4 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c11_size(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' needs a positive window, found 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k window 0 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c1(%q: tensor<16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' needs q, k and v of rank 4}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k : (tensor<16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c2(%q: tensor<2x16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' needs one batch size in q, k and v}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k : (tensor<2x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<2x16x8x32xf32>
  return
}

// -----

func.func @attention_c3(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %v: tensor<1x12x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' needs k and v with the same sequence length and heads}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention full %q, %k, %v : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x12x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c4(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x64xf32>) {
  // expected-error@+2 {{'weft.attention' needs q and k with the same head_dim, found 32 and 64}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k : (tensor<1x16x8x32xf32>, tensor<1x16x4x64xf32>, tensor<1x16x4x64xf32>) -> tensor<1x16x8x64xf32>
  return
}

// -----

func.func @attention_c5(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x3x32xf32>) {
  // expected-error@+2 {{'weft.attention' needs query heads (8) to be a multiple of key/value heads (3)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k : (tensor<1x16x8x32xf32>, tensor<1x16x3x32xf32>, tensor<1x16x3x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c6(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xbf16>) {
  // expected-error@+2 {{'weft.attention' needs q, k and v of one element type}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xbf16>, tensor<1x16x4x32xbf16>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c7_missing(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' of kind 'mask' needs a mask operand}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention mask %q, %k, %k : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c7_kind(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %m: tensor<16x16xi1>) {
  // expected-error@+2 {{'weft.attention' takes a mask only with kind 'mask', not 'causal'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k mask(%m) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<16x16xi1>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c7_shape(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %m: tensor<16x8xi1>) {
  // expected-error@+2 {{'weft.attention' needs a mask of shape [1, 16, 16] or [16, 16], found 'tensor<16x8xi1>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention mask %q, %k, %k mask(%m) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<16x8xi1>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c8_missing(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' of kind 'alibi' needs an alibi slopes operand}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention alibi %q, %k, %k : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c8_kind(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %s: tensor<8xf32>) {
  // expected-error@+2 {{'weft.attention' takes alibi slopes only with kind 'alibi', not 'full'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention full %q, %k, %k slopes(%s) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<8xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c8_shape(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %s: tensor<4xf32>) {
  // expected-error@+2 {{'weft.attention' needs alibi slopes of shape [8], found 'tensor<4xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention alibi %q, %k, %k slopes(%s) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<4xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c9(%q: tensor<1x16x8x32xf32>, %k: tensor<1x8x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' with a causal mask needs at most as many queries (16) as keys (8)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention causal %q, %k, %k : (tensor<1x16x8x32xf32>, tensor<1x8x4x32xf32>, tensor<1x8x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @attention_c10(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>) {
  // expected-error@+2 {{'weft.attention' needs a positive scale, found -1.0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.attention full %q, %k, %k scale -1.0 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  return
}

// -----

func.func @cross_entropy_c1(%l: tensor<f32>, %y: tensor<i64>) {
  // expected-error@+2 {{'weft.cross_entropy' needs logits of rank at least 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.cross_entropy %l, %y ignore_index -100 reduction mean : (tensor<f32>, tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_c2(%l: tensor<1x16x512xf32>, %y: tensor<1x15xi64>) {
  // expected-error@+2 {{'weft.cross_entropy' needs labels of shape [1, 16], found 'tensor<1x15xi64>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.cross_entropy %l, %y ignore_index -100 reduction mean : (tensor<1x16x512xf32>, tensor<1x15xi64>) -> tensor<f32>
  return
}

// -----

func.func @moe_gate_c2(%l: tensor<16x4xf32>) {
  // expected-error@+2 {{'weft.moe_gate' needs 1 <= top_k <= 4 experts, found 5}}
  // expected-error@+1 {{failed to infer returned types}}
  %0:2 = weft.moe_gate %l top_k 5 : (tensor<16x4xf32>) -> (tensor<16x5xf32>, tensor<16x5xi64>)
  return
}

// -----

func.func @moe_dispatch_c1(%x: tensor<16x64xf32>, %e: tensor<8x2xi64>) {
  // expected-error@+2 {{'weft.moe_dispatch' needs x [tokens, hidden] and experts [tokens, k], found 'tensor<16x64xf32>' and 'tensor<8x2xi64>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0:2 = weft.moe_dispatch %x, %e num_experts 4 : (tensor<16x64xf32>, tensor<8x2xi64>) -> (tensor<16x64xf32>, tensor<5xi64>)
  return
}

// -----

func.func @grouped_linear_c2(%x: tensor<32x64xf32>, %o: tensor<3xi64>, %a: tensor<128x64xf32>, %b: tensor<64x64xf32>) {
  // expected-error@+2 {{'weft.grouped_linear' needs every weight of shape [out, 64] like the first ('tensor<128x64xf32>'), found 'tensor<64x64xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.grouped_linear %x, %o, %a, %b : (tensor<32x64xf32>, tensor<3xi64>, tensor<128x64xf32>, tensor<64x64xf32>) -> tensor<32x128xf32>
  return
}

// -----

func.func @moe_combine_c1(%r: tensor<30x64xf32>, %w: tensor<16x2xf32>, %e: tensor<16x2xi64>) {
  // expected-error@+2 {{'weft.moe_combine' needs rows [tokens * k, hidden], weights and experts [tokens, k], found 'tensor<30x64xf32>', 'tensor<16x2xf32>' and 'tensor<16x2xi64>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.moe_combine %r, %w, %e num_experts 4 : (tensor<30x64xf32>, tensor<16x2xf32>, tensor<16x2xi64>) -> tensor<16x64xf32>
  return
}

// -----

func.func @attention_grad_c1(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x3x32xf32>, %o: tensor<1x16x8x32xf32>) {
  // expected-error@+2 {{'weft.attention_grad' needs query heads (8) to be a multiple of key/value heads (3)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0:3 = weft.attention_grad causal %q, %k, %k, %o, %o : (tensor<1x16x8x32xf32>, tensor<1x16x3x32xf32>, tensor<1x16x3x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x3x32xf32>, tensor<1x16x3x32xf32>)
  return
}

// -----

func.func @attention_grad_c3(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %l: tensor<1x16x8xf32>) {
  // expected-error@+2 {{'weft.attention_grad' needs lse of type 'tensor<1x8x16xf32>', found 'tensor<1x16x8xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0:3 = weft.attention_grad causal %q, %k, %k, %q, %q lse(%l) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  return
}

// -----

func.func @attention_grad_c2(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %o: tensor<1x16x8x16xf32>) {
  // expected-error@+2 {{'weft.attention_grad' needs out of type 'tensor<1x16x8x32xf32>', found 'tensor<1x16x8x16xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0:3 = weft.attention_grad causal %q, %k, %k, %o, %o : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x16xf32>, tensor<1x16x8x16xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  return
}
