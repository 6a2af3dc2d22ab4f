// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-assign-buffers{threads=2}))' | FileCheck %s

// Lifetimes: the input dies at the exp, so the linear reuses its memory, and
// the exp dies at the linear, so the tanh reuses the exp's; the reshape
// shares its operand's buffer; the parameter goes to its own region; returned
// values live to the end. 4x8xf32 = 128 bytes: the peak is two of them.
// CHECK-LABEL: func.func @lifetimes(
// CHECK-SAME: %{{.*}}: tensor<4x8xf32> {weft.buffer = #weft.buffer<"arena", [[B:[0-9]+]]>}
// CHECK-SAME: %{{.*}}: tensor<8x8xf32> {weft.buffer = #weft.buffer<"parameters", 0>, weft.param = "w"}
// CHECK-SAME: weft.activation_bytes = 256 : i64
// CHECK-SAME: weft.arena_bytes = 256 : i64
// CHECK-SAME: weft.parameter_bytes = 256 : i64
// CHECK-SAME: weft.threads = 2 : i64
// CHECK-SAME: weft.workspace_bytes = 0 : i64
// CHECK: weft.exp {{.*}}weft.buffers = [#weft.buffer<"arena", [[A:[0-9]+]]>]
// CHECK: weft.linear {{.*}}weft.buffers = [#weft.buffer<"arena", [[B]]>]
// CHECK: weft.reshape {{.*}}weft.buffers = [#weft.buffer<"arena", [[B]]>]
// CHECK: weft.tanh {{.*}}weft.buffers = [#weft.buffer<"arena", [[A]]>]
func.func @lifetimes(%x: tensor<4x8xf32>, %w: tensor<8x8xf32> {weft.param = "w"}) -> (tensor<32xf32>, tensor<4x8xf32>) {
  %0 = weft.exp %x : tensor<4x8xf32>
  %1 = weft.linear %0, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
  %2 = weft.reshape %1 : tensor<4x8xf32> -> tensor<32xf32>
  %3 = weft.tanh %1 : tensor<4x8xf32>
  return %2, %3 : tensor<32xf32>, tensor<4x8xf32>
}

// A reshape of a constant or a parameter views its region: no arena memory.
// CHECK-LABEL: func.func @views_outside_the_arena(
// CHECK-SAME: weft.activation_bytes = 0 : i64
// CHECK: weft.constant {{.*}}weft.buffers = [#weft.buffer<"constants", 0>]
// CHECK: weft.reshape {{.*}}weft.buffers = [#weft.buffer<"constants", 0>]
// CHECK: weft.reshape {{.*}}weft.buffers = [#weft.buffer<"parameters", 0>]
// CHECK: weft.reshape {{.*}}weft.buffers = [#weft.buffer<"parameters", 0>]
func.func @views_outside_the_arena(%w: tensor<2x4xf32> {weft.param = "w"}) -> (tensor<4xf32>, tensor<4x2xf32>) {
  %c = weft.constant dense<1.0> : tensor<2x2xf32>
  %0 = weft.reshape %c : tensor<2x2xf32> -> tensor<4xf32>
  %1 = weft.reshape %w : tensor<2x4xf32> -> tensor<8xf32>
  %2 = weft.reshape %1 : tensor<8xf32> -> tensor<4x2xf32>
  return %0, %2 : tensor<4xf32>, tensor<4x2xf32>
}

// Collectives stage blocks of inner dimensions in the workspace, so the plan
// counts that memory: Ulysses' all-to-all (split heads, concat sequence) stages
// what it sends and what it receives, 2 × 4096 bytes; a gather along dim 1
// stages its result; one along dim 0 needs nothing.
// CHECK-LABEL: func.func @collective_staging(
// CHECK-SAME: weft.workspace_bytes = 8192 : i64
func.func @collective_staging(%x: tensor<2x4x8x16xf32>, %y: tensor<2x4xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8xf32>, tensor<4x4xf32>) {
  %0 = weft.all_to_all %x on #weft.mesh<["sp"=2]> ["sp"] split 2 concat 1 : (tensor<2x4x8x16xf32>) -> tensor<2x8x4x16xf32>
  %1 = weft.all_gather %y on #weft.mesh<["sp"=2]> ["sp"] dim 1 : (tensor<2x4xf32>) -> tensor<2x8xf32>
  %2 = weft.all_gather %y on #weft.mesh<["sp"=2]> ["sp"] dim 0 : (tensor<2x4xf32>) -> tensor<4x4xf32>
  return %0, %1, %2 : tensor<2x8x4x16xf32>, tensor<2x8xf32>, tensor<4x4xf32>
}
