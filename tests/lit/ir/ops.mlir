// Every weft op prints and parses back to itself, in custom and generic form.
// RUN: weft-opt %s | weft-opt | FileCheck %s
// RUN: weft-opt %s --mlir-print-op-generic | weft-opt | FileCheck %s

// Meshes print as aliases at the top of the module.
// CHECK: #[[MESH:.*]] = #weft.mesh<["dp"=2, "sp"=4]>

// CHECK-LABEL: func.func @linear_algebra
func.func @linear_algebra(%a: tensor<8x16x32xf32>, %b: tensor<8x32x4xf32>,
                          %bt: tensor<8x4x32xf32>, %w: tensor<64x32xf32>,
                          %bias: tensor<64xf32>, %shared: tensor<32x4xbf16>,
                          %ab: tensor<8x16x32xbf16>) {
  // CHECK: weft.matmul %{{.*}}, %{{.*}} : (tensor<8x16x32xf32>, tensor<8x32x4xf32>) -> tensor<8x16x4xf32>
  %0 = weft.matmul %a, %b : (tensor<8x16x32xf32>, tensor<8x32x4xf32>) -> tensor<8x16x4xf32>
  // CHECK: weft.matmul %{{.*}}, %{{.*}} {transpose_rhs} : (tensor<8x16x32xf32>, tensor<8x4x32xf32>) -> tensor<8x16x4xf32>
  %1 = weft.matmul %a, %bt {transpose_rhs} : (tensor<8x16x32xf32>, tensor<8x4x32xf32>) -> tensor<8x16x4xf32>
  // CHECK: weft.matmul %{{.*}}, %{{.*}} {transpose_lhs} : (tensor<8x16x32xf32>, tensor<8x16x32xf32>) -> tensor<8x32x32xf32>
  %2 = weft.matmul %a, %a {transpose_lhs} : (tensor<8x16x32xf32>, tensor<8x16x32xf32>) -> tensor<8x32x32xf32>
  // CHECK: weft.matmul %{{.*}}, %{{.*}} : (tensor<8x16x32xbf16>, tensor<32x4xbf16>) -> tensor<8x16x4xbf16>
  %3 = weft.matmul %ab, %shared : (tensor<8x16x32xbf16>, tensor<32x4xbf16>) -> tensor<8x16x4xbf16>
  // CHECK: weft.matmul %{{.*}}, %{{.*}}, acc %{{.*}} {transpose_rhs} : (tensor<8x16x32xf32>, tensor<8x4x32xf32>, tensor<8x16x4xf32>) -> tensor<8x16x4xf32>
  %6 = weft.matmul %a, %bt, acc %0 {transpose_rhs} : (tensor<8x16x32xf32>, tensor<8x4x32xf32>, tensor<8x16x4xf32>) -> tensor<8x16x4xf32>
  // CHECK: weft.linear %{{.*}}, %{{.*}} : (tensor<8x16x32xf32>, tensor<64x32xf32>) -> tensor<8x16x64xf32>
  %4 = weft.linear %a, %w : (tensor<8x16x32xf32>, tensor<64x32xf32>) -> tensor<8x16x64xf32>
  // CHECK: weft.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<8x16x32xf32>, tensor<64x32xf32>, tensor<64xf32>) -> tensor<8x16x64xf32>
  %5 = weft.linear %a, %w, %bias : (tensor<8x16x32xf32>, tensor<64x32xf32>, tensor<64xf32>) -> tensor<8x16x64xf32>
  return
}

// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%x: tensor<4x16xf32>, %y: tensor<4x16xf32>,
                       %i: tensor<4x16xi64>, %j: tensor<4x16xi64>) {
  // CHECK: weft.add %{{.*}}, %{{.*}} : tensor<4x16xf32>
  %0 = weft.add %x, %y : tensor<4x16xf32>
  // CHECK: weft.sub %{{.*}}, %{{.*}} : tensor<4x16xf32>
  %1 = weft.sub %x, %y : tensor<4x16xf32>
  // CHECK: weft.mul %{{.*}}, %{{.*}} : tensor<4x16xf32>
  %2 = weft.mul %x, %y : tensor<4x16xf32>
  // CHECK: weft.div %{{.*}}, %{{.*}} : tensor<4x16xf32>
  %3 = weft.div %x, %y : tensor<4x16xf32>
  // CHECK: weft.max %{{.*}}, %{{.*}} : tensor<4x16xf32>
  %4 = weft.max %x, %y : tensor<4x16xf32>
  // CHECK: weft.min %{{.*}}, %{{.*}} : tensor<4x16xi64>
  %5 = weft.min %i, %j : tensor<4x16xi64>
  // CHECK: weft.pow %{{.*}}, %{{.*}} : tensor<4x16xf32>
  %6 = weft.pow %x, %y : tensor<4x16xf32>
  // CHECK: weft.neg %{{.*}} : tensor<4x16xf32>
  %7 = weft.neg %x : tensor<4x16xf32>
  // CHECK: weft.abs %{{.*}} : tensor<4x16xi64>
  %8 = weft.abs %i : tensor<4x16xi64>
  // CHECK: weft.exp %{{.*}} : tensor<4x16xf32>
  %9 = weft.exp %x : tensor<4x16xf32>
  // CHECK: weft.log %{{.*}} : tensor<4x16xf32>
  %10 = weft.log %x : tensor<4x16xf32>
  // CHECK: weft.tanh %{{.*}} : tensor<4x16xf32>
  %11 = weft.tanh %x : tensor<4x16xf32>
  // CHECK: weft.sigmoid %{{.*}} : tensor<4x16xf32>
  %12 = weft.sigmoid %x : tensor<4x16xf32>
  // CHECK: weft.silu %{{.*}} : tensor<4x16xf32>
  %13 = weft.silu %x : tensor<4x16xf32>
  // CHECK: weft.gelu %{{.*}} : tensor<4x16xf32>
  %14 = weft.gelu %x : tensor<4x16xf32>
  // CHECK: weft.gelu %{{.*}} approximation tanh : tensor<4x16xf32>
  %15 = weft.gelu %x approximation tanh : tensor<4x16xf32>
  // CHECK: weft.rsqrt %{{.*}} : tensor<4x16xf32>
  %16 = weft.rsqrt %x : tensor<4x16xf32>
  // CHECK: weft.sqrt %{{.*}} : tensor<4x16xf32>
  %17 = weft.sqrt %x : tensor<4x16xf32>
  // CHECK: weft.erf %{{.*}} : tensor<4x16xf32>
  %18 = weft.erf %x : tensor<4x16xf32>
  // CHECK: weft.cos %{{.*}} : tensor<4x16xf32>
  %c = weft.cos %x : tensor<4x16xf32>
  // CHECK: weft.sin %{{.*}} : tensor<4x16xf32>
  %s = weft.sin %x : tensor<4x16xf32>
  // CHECK: weft.floor %{{.*}} : tensor<4x16xf32>
  %f = weft.floor %x : tensor<4x16xf32>
  // CHECK: weft.ceil %{{.*}} : tensor<4x16xf32>
  %e = weft.ceil %x : tensor<4x16xf32>
  // CHECK: %[[M:.*]] = weft.compare lt, %{{.*}}, %{{.*}} : tensor<4x16xi64>
  %19 = weft.compare lt, %i, %j : tensor<4x16xi64>
  // CHECK: weft.select %[[M]], %{{.*}}, %{{.*}} : tensor<4x16xi1>, tensor<4x16xf32>
  %20 = weft.select %19, %x, %y : tensor<4x16xi1>, tensor<4x16xf32>
  // CHECK: weft.convert %{{.*}} : tensor<4x16xf32> -> tensor<4x16xbf16>
  %21 = weft.convert %x : tensor<4x16xf32> -> tensor<4x16xbf16>
  return
}

// CHECK-LABEL: func.func @reductions
func.func @reductions(%x: tensor<4x16x8xf32>) {
  // CHECK: weft.reduce sum %{{.*}} dims [1] : (tensor<4x16x8xf32>) -> tensor<4x8xf32>
  %0 = weft.reduce sum %x dims [1] : (tensor<4x16x8xf32>) -> tensor<4x8xf32>
  // CHECK: weft.reduce max %{{.*}} dims [0, 2] keep_dims : (tensor<4x16x8xf32>) -> tensor<1x16x1xf32>
  %1 = weft.reduce max %x dims [0, 2] keep_dims : (tensor<4x16x8xf32>) -> tensor<1x16x1xf32>
  // CHECK: weft.reduce mean %{{.*}} dims [0, 1, 2] : (tensor<4x16x8xf32>) -> tensor<f32>
  %2 = weft.reduce mean %x dims [0, 1, 2] : (tensor<4x16x8xf32>) -> tensor<f32>
  // CHECK: weft.reduce min %{{.*}} dims [] : (tensor<4x16x8xf32>) -> tensor<4x16x8xf32>
  %3 = weft.reduce min %x dims [] : (tensor<4x16x8xf32>) -> tensor<4x16x8xf32>
  // CHECK: weft.softmax %{{.*}} dim 2 : tensor<4x16x8xf32>
  %4 = weft.softmax %x dim 2 : tensor<4x16x8xf32>
  // CHECK: weft.log_softmax %{{.*}} dim 0 : tensor<4x16x8xf32>
  %5 = weft.log_softmax %x dim 0 : tensor<4x16x8xf32>
  return
}

// CHECK-LABEL: func.func @shape
func.func @shape(%x: tensor<1x16x256xf32>, %a: tensor<2x3xf32>, %b: tensor<2x5xf32>,
                 %bias: tensor<256xf32>, %table: tensor<512x256xf32>,
                 %ids: tensor<1x16xi64>, %upd: tensor<1x16x256xf32>) {
  // CHECK: weft.reshape %{{.*}} : tensor<1x16x256xf32> -> tensor<1x16x8x32xf32>
  %0 = weft.reshape %x : tensor<1x16x256xf32> -> tensor<1x16x8x32xf32>
  // CHECK: weft.transpose %{{.*}} [0, 2, 1, 3] : (tensor<1x16x8x32xf32>) -> tensor<1x8x16x32xf32>
  %1 = weft.transpose %0 [0, 2, 1, 3] : (tensor<1x16x8x32xf32>) -> tensor<1x8x16x32xf32>
  // CHECK: weft.slice %{{.*}} [0, 1] [2, 3] [1, 2] : (tensor<2x3xf32>) -> tensor<2x1xf32>
  %2 = weft.slice %a [0, 1] [2, 3] [1, 2] : (tensor<2x3xf32>) -> tensor<2x1xf32>
  // CHECK: weft.concat %{{.*}}, %{{.*}} dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
  %3 = weft.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
  // CHECK: weft.broadcast %{{.*}} dims [2] : tensor<256xf32> -> tensor<1x16x256xf32>
  %4 = weft.broadcast %bias dims [2] : tensor<256xf32> -> tensor<1x16x256xf32>
  // CHECK: weft.gather %{{.*}}[%{{.*}}] axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>) -> tensor<1x16x256xf32>
  %5 = weft.gather %table[%ids] axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>) -> tensor<1x16x256xf32>
  // CHECK: weft.scatter_add %{{.*}}[%{{.*}}], %{{.*}} axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xf32>) -> tensor<512x256xf32>
  %6 = weft.scatter_add %table[%ids], %upd axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xf32>) -> tensor<512x256xf32>
  // CHECK: weft.iota dim 1 : tensor<1x16xi64>
  %7 = weft.iota dim 1 : tensor<1x16xi64>
  // CHECK: weft.constant dense<-1.000000e+09> : tensor<16x16xf32>
  %8 = weft.constant dense<-1.0e+09> : tensor<16x16xf32>
  // CHECK: weft.constant dense<[0, 1]> : tensor<2xi64>
  %9 = weft.constant dense<[0, 1]> : tensor<2xi64>
  return
}

// CHECK-LABEL: func.func @transformer
func.func @transformer(%x: tensor<1x16x256xf32>, %w: tensor<256xf32>, %q: tensor<1x16x8x32xf32>,
                       %k: tensor<1x16x4x32xf32>, %v: tensor<1x16x4x32xf32>,
                       %pos: tensor<1x16xi64>, %mask: tensor<16x16xi1>,
                       %slopes: tensor<8xf32>, %logits: tensor<1x16x512xf32>,
                       %small: tensor<1x16x8x4xf32>) {
  // CHECK: weft.rms_norm %{{.*}}, %{{.*}} epsilon 9.99999974E-6 : (tensor<1x16x256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
  %0 = weft.rms_norm %x, %w epsilon 1.0e-05 : (tensor<1x16x256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
  // CHECK: weft.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} epsilon 9.99999974E-6 : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<1x16x256xf32>) -> tensor<1x16x256xf32>
  %dn = weft.rms_norm_grad %x, %w, %0 epsilon 1.0e-05 : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<1x16x256xf32>) -> tensor<1x16x256xf32>
  // CHECK: weft.layer_norm_grad %{{.*}}, %{{.*}}, %{{.*}} epsilon 9.99999974E-6 : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<1x16x256xf32>) -> tensor<1x16x256xf32>
  %dl = weft.layer_norm_grad %x, %w, %0 epsilon 1.0e-05 : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<1x16x256xf32>) -> tensor<1x16x256xf32>
  // CHECK: weft.layer_norm %{{.*}}, %{{.*}}, %{{.*}} epsilon 9.99999974E-6 : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
  %1 = weft.layer_norm %x, %w, %w epsilon 1.0e-05 : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
  // CHECK: weft.layer_norm %{{.*}}, %{{.*}} epsilon 0.000000e+00 : (tensor<1x16x256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
  %2 = weft.layer_norm %x, %w epsilon 0.0 : (tensor<1x16x256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
  // CHECK: weft.rope %{{.*}}, %{{.*}} theta 5.000000e+05 : (tensor<1x16x8x32xf32>, tensor<1x16xi64>) -> tensor<1x16x8x32xf32>
  %3 = weft.rope %q, %pos theta 5.0e+05 : (tensor<1x16x8x32xf32>, tensor<1x16xi64>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.rope %{{.*}}, %{{.*}} theta 1.000000e+04 interleaved : (tensor<1x16x8x32xf32>, tensor<1x16xi64>) -> tensor<1x16x8x32xf32>
  %4 = weft.rope %q, %pos theta 1.0e+04 interleaved : (tensor<1x16x8x32xf32>, tensor<1x16xi64>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.attention causal %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  %5 = weft.attention causal %q, %k, %v : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.attention full %{{.*}}, %{{.*}}, %{{.*}} scale 1.250000e-01 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  %6 = weft.attention full %q, %k, %v scale 0.125 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.attention mask %{{.*}}, %{{.*}}, %{{.*}} mask(%{{.*}}) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<16x16xi1>) -> tensor<1x16x8x32xf32>
  %7 = weft.attention mask %q, %k, %v mask(%mask) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<16x16xi1>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.attention alibi %{{.*}}, %{{.*}}, %{{.*}} slopes(%{{.*}}) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<8xf32>) -> tensor<1x16x8x32xf32>
  %8 = weft.attention alibi %q, %k, %v slopes(%slopes) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<8xf32>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.attention causal %{{.*}}, %{{.*}}, %{{.*}} window 4 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  %sw = weft.attention causal %q, %k, %v window 4 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
  // CHECK: weft.attention causal %{{.*}}, %{{.*}}, %{{.*}} with_lse : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x8x16xf32>)
  %lo, %lse = weft.attention causal %q, %k, %v with_lse : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x8x16xf32>)
  // CHECK: weft.attention_grad causal %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} lse(%{{.*}}) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>, tensor<1x8x16xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  %lg:3 = weft.attention_grad causal %q, %k, %v, %lo, %lo lse(%lse) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>, tensor<1x8x16xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  // CHECK: weft.attention_grad causal %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} window 4 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  %swg:3 = weft.attention_grad causal %q, %k, %v, %sw, %sw window 4 : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  // CHECK: weft.rope %{{.*}}, %{{.*}} theta 1.000000e+04 frequencies [1.000000e+00, 5.000000e-01{{.*}}] : (tensor<1x16x8x4xf32>, tensor<1x16xi64>) -> tensor<1x16x8x4xf32>
  %rf = weft.rope %small, %pos theta 1.0e+04 frequencies [1.0, 0.5] : (tensor<1x16x8x4xf32>, tensor<1x16xi64>) -> tensor<1x16x8x4xf32>
  // CHECK: weft.cross_entropy %{{.*}}, %{{.*}} ignore_index -100 reduction mean : (tensor<1x16x512xf32>, tensor<1x16xi64>) -> tensor<f32>
  %9 = weft.cross_entropy %logits, %pos ignore_index -100 reduction mean : (tensor<1x16x512xf32>, tensor<1x16xi64>) -> tensor<f32>
  // CHECK: weft.cross_entropy %{{.*}}, %{{.*}} ignore_index 0 reduction none : (tensor<1x16x512xf32>, tensor<1x16xi64>) -> tensor<1x16xf32>
  %10 = weft.cross_entropy %logits, %pos ignore_index 0 reduction none : (tensor<1x16x512xf32>, tensor<1x16xi64>) -> tensor<1x16xf32>
  return
}

// CHECK-LABEL: func.func @mixture_of_experts
func.func @mixture_of_experts(%x: tensor<16x64xf32>, %logits: tensor<16x4xf32>, %w: tensor<128x64xf32>) {
  // CHECK: weft.moe_gate %{{.*}} top_k 2 normalize : (tensor<16x4xf32>) -> (tensor<16x2xf32>, tensor<16x2xi64>)
  %g:2 = weft.moe_gate %logits top_k 2 normalize : (tensor<16x4xf32>) -> (tensor<16x2xf32>, tensor<16x2xi64>)
  // CHECK: weft.moe_dispatch %{{.*}}, %{{.*}} num_experts 4 : (tensor<16x64xf32>, tensor<16x2xi64>) -> (tensor<32x64xf32>, tensor<5xi64>)
  %d:2 = weft.moe_dispatch %x, %g#1 num_experts 4 : (tensor<16x64xf32>, tensor<16x2xi64>) -> (tensor<32x64xf32>, tensor<5xi64>)
  // CHECK: weft.grouped_linear %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<32x64xf32>, tensor<5xi64>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>) -> tensor<32x128xf32>
  %h = weft.grouped_linear %d#0, %d#1, %w, %w, %w, %w : (tensor<32x64xf32>, tensor<5xi64>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>) -> tensor<32x128xf32>
  // CHECK: weft.moe_combine %{{.*}}, %{{.*}}, %{{.*}} num_experts 4 : (tensor<32x64xf32>, tensor<16x2xf32>, tensor<16x2xi64>) -> tensor<16x64xf32>
  %y = weft.moe_combine %d#0, %g#0, %g#1 num_experts 4 : (tensor<32x64xf32>, tensor<16x2xf32>, tensor<16x2xi64>) -> tensor<16x64xf32>
  return
}

// CHECK-LABEL: func.func @collectives
func.func @collectives(%x: tensor<8x64xf32>, %act: tensor<1x512x32x128xbf16>) {
  // CHECK: weft.all_gather %{{.*}} on #[[MESH]] ["dp", "sp"] dim 0 : (tensor<8x64xf32>) -> tensor<64x64xf32>
  %0 = weft.all_gather %x on #weft.mesh<["dp"=2, "sp"=4]> ["dp", "sp"] dim 0 : (tensor<8x64xf32>) -> tensor<64x64xf32>
  // CHECK: weft.reduce_scatter sum %{{.*}} on #[[MESH]] ["sp"] dim 1 : (tensor<8x64xf32>) -> tensor<8x16xf32>
  %1 = weft.reduce_scatter sum %x on #weft.mesh<["dp"=2, "sp"=4]> ["sp"] dim 1 : (tensor<8x64xf32>) -> tensor<8x16xf32>
  // CHECK: weft.all_reduce mean %{{.*}} on #[[MESH]] ["dp"] : tensor<8x64xf32>
  %2 = weft.all_reduce mean %x on #weft.mesh<["dp"=2, "sp"=4]> ["dp"] : tensor<8x64xf32>
  // CHECK: weft.all_to_all %{{.*}} on #[[MESH]] ["sp"] split 2 concat 1 : (tensor<1x512x32x128xbf16>) -> tensor<1x2048x8x128xbf16>
  %3 = weft.all_to_all %act on #weft.mesh<["dp"=2, "sp"=4]> ["sp"] split 2 concat 1 : (tensor<1x512x32x128xbf16>) -> tensor<1x2048x8x128xbf16>
  // CHECK: weft.send %{{.*}} on #[[MESH]] ["sp"] offset 1 : tensor<8x64xf32>
  weft.send %x on #weft.mesh<["dp"=2, "sp"=4]> ["sp"] offset 1 : tensor<8x64xf32>
  // CHECK: weft.recv on #[[MESH]] ["sp"] offset -1 : tensor<8x64xf32>
  %4 = weft.recv on #weft.mesh<["dp"=2, "sp"=4]> ["sp"] offset -1 : tensor<8x64xf32>
  // CHECK: weft.collective_broadcast %{{.*}} on #[[MESH]] ["dp"] root 1 : tensor<8x64xf32>
  %5 = weft.collective_broadcast %x on #weft.mesh<["dp"=2, "sp"=4]> ["dp"] root 1 : tensor<8x64xf32>
  return
}

// CHECK-LABEL: func.func @quantization_and_memory
func.func @quantization_and_memory(%w: tensor<64x64xbf16>, %act: tensor<1x4096x256xbf16>) {
  // CHECK: %[[V:.*]], %[[S:.*]] = weft.quantize_blockwise %{{.*}} block_size 2048 bits 8 : (tensor<64x64xbf16>) -> (tensor<4096xi8>, tensor<2xf32>)
  %q, %s = weft.quantize_blockwise %w block_size 2048 bits 8 : (tensor<64x64xbf16>) -> (tensor<4096xi8>, tensor<2xf32>)
  // CHECK: weft.dequantize_blockwise %[[V]], %[[S]] block_size 2048 bits 8 : (tensor<4096xi8>, tensor<2xf32>) -> tensor<64x64xbf16>
  %0 = weft.dequantize_blockwise %q, %s block_size 2048 bits 8 : (tensor<4096xi8>, tensor<2xf32>) -> tensor<64x64xbf16>
  // CHECK: weft.quantize_blockwise %{{.*}} block_size 1024 bits 4 : (tensor<64x64xbf16>) -> (tensor<2048xi8>, tensor<4xf32>)
  %q4, %s4 = weft.quantize_blockwise %w block_size 1024 bits 4 : (tensor<64x64xbf16>) -> (tensor<2048xi8>, tensor<4xf32>)
  // CHECK: weft.dequantize_blockwise %{{.*}}, %{{.*}} block_size 1024 bits 4 : (tensor<2048xi8>, tensor<4xf32>) -> tensor<4096xf32>
  %1 = weft.dequantize_blockwise %q4, %s4 block_size 1024 bits 4 : (tensor<2048xi8>, tensor<4xf32>) -> tensor<4096xf32>
  // CHECK: %[[H:.*]] = weft.offload %{{.*}} : (tensor<1x4096x256xbf16>) -> tensor<1x4096x256xbf16, #weft.host>
  %h = weft.offload %act : (tensor<1x4096x256xbf16>) -> tensor<1x4096x256xbf16, #weft.host>
  // CHECK: weft.reload %[[H]] : (tensor<1x4096x256xbf16, #weft.host>) -> tensor<1x4096x256xbf16>
  %2 = weft.reload %h : (tensor<1x4096x256xbf16, #weft.host>) -> tensor<1x4096x256xbf16>
  return
}

// Dynamic dimensions propagate through type inference.
// CHECK-LABEL: func.func @dynamic
func.func @dynamic(%x: tensor<?x16x256xf32>, %w: tensor<64x256xf32>) {
  // CHECK: weft.linear %{{.*}}, %{{.*}} : (tensor<?x16x256xf32>, tensor<64x256xf32>) -> tensor<?x16x64xf32>
  %0 = weft.linear %x, %w : (tensor<?x16x256xf32>, tensor<64x256xf32>) -> tensor<?x16x64xf32>
  return
}

// CHECK-LABEL: func.func @scheduling
func.func @scheduling(%x: tensor<2x8xf32>, %w: tensor<8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>) {
  // CHECK: %[[G:.*]]:2 = weft.fusion_group(%{{.*}}, %{{.*}} : tensor<2x8xf32>, tensor<8xf32>) {
  // CHECK-NEXT: ^bb0(%[[A:.*]]: tensor<2x8xf32>, %[[B:.*]]: tensor<8xf32>):
  // CHECK-NEXT: %[[E:.*]] = weft.exp %[[A]] : tensor<2x8xf32>
  // CHECK-NEXT: %[[N:.*]] = weft.rms_norm %[[E]], %[[B]]
  // CHECK-NEXT: weft.yield %[[E]], %[[N]] : tensor<2x8xf32>, tensor<2x8xf32>
  // CHECK-NEXT: } {weft.buffers = [#weft.buffer<"arena", 0>, #weft.buffer<"arena", 128>]} : tensor<2x8xf32>, tensor<2x8xf32>
  %e, %n = weft.fusion_group (%x, %w : tensor<2x8xf32>, tensor<8xf32>) {
  ^bb0(%a: tensor<2x8xf32>, %b: tensor<8xf32>):
    %0 = weft.exp %a : tensor<2x8xf32>
    %1 = weft.rms_norm %0, %b epsilon 1.0e-05 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
    weft.yield %0, %1 : tensor<2x8xf32>, tensor<2x8xf32>
  } {weft.buffers = [#weft.buffer<"arena", 0>, #weft.buffer<"arena", 128>]} : tensor<2x8xf32>, tensor<2x8xf32>
  return %e, %n : tensor<2x8xf32>, tensor<2x8xf32>
}
