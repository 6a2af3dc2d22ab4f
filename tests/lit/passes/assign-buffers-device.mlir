// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-assign-buffers{threads=2}))' | FileCheck %s --check-prefixes=CHECK,CPU
// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-assign-buffers{threads=2 device=cuda}))' | FileCheck %s --check-prefixes=CHECK,CUDA
// RUN: not weft-opt %s -pass-pipeline='builtin.module(func.func(weft-assign-buffers{device=tpu}))' 2>&1 | FileCheck %s --check-prefix=BAD

// The workspace holds what the device's kernels take from the plan. A bf16
// linear widens tiles of its operands there on the CPU; on CUDA cuBLASLt
// has its own workspace.
// CHECK-LABEL: func.func @bf16_linear(
// CPU-SAME: weft.device = "cpu"
// CPU-SAME: weft.workspace_bytes = 49152 : i64
// CUDA-SAME: weft.device = "cuda"
// CUDA-SAME: weft.workspace_bytes = 0 : i64
func.func @bf16_linear(%x: tensor<64x64xbf16>, %w: tensor<64x64xbf16> {weft.param = "w"}) -> tensor<64x64xbf16> {
  %0 = weft.linear %x, %w : (tensor<64x64xbf16>, tensor<64x64xbf16>) -> tensor<64x64xbf16>
  return %0 : tensor<64x64xbf16>
}

// Attention's backward: on the CPU, each thread's blocks of scores; on CUDA,
// each query row's δ and log-sum-exp, 2 × 1 × 8 heads × 16 rows × 4 bytes.
// CHECK-LABEL: func.func @attention_backward(
// CPU-SAME: weft.workspace_bytes = 99328 : i64
// CUDA-SAME: weft.workspace_bytes = 1024 : i64
func.func @attention_backward(%q: tensor<1x16x8x32xf32>, %k: tensor<1x16x4x32xf32>, %o: tensor<1x16x8x32xf32>, %l: tensor<1x8x16xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) {
  %0:3 = weft.attention_grad causal %q, %k, %k, %o, %o lse(%l) : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>, tensor<1x8x16xf32>) -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
  return %0#0, %0#1, %0#2 : tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>
}

// Collectives stage inner-dimension blocks on both devices.
// CHECK-LABEL: func.func @collective_staging(
// CHECK-SAME: weft.workspace_bytes = 8192 : i64
func.func @collective_staging(%x: tensor<2x4x8x16xf32>) -> tensor<2x8x4x16xf32> {
  %0 = weft.all_to_all %x on #weft.mesh<["sp"=2]> ["sp"] split 2 concat 1 : (tensor<2x4x8x16xf32>) -> tensor<2x8x4x16xf32>
  return %0 : tensor<2x8x4x16xf32>
}

// BAD: error: the workspace is planned for the cpu or cuda, not 'tpu'
