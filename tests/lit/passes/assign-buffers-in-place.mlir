// RUN: weft-opt %s -pass-pipeline='builtin.module(func.func(weft-form-fusion-groups,weft-assign-buffers{threads=2}))' | FileCheck %s

// A fusion group's result takes the memory of a row input of its type that
// dies there: the bf16 group computes into the linear's memory (the CPU
// widens bf16 inputs into scratch rows first; CUDA reads each chunk before
// it stores it), so the arena holds two rows of values, not three.
// CHECK-LABEL: func.func @bf16_in_place(
// CHECK-SAME: weft.activation_bytes = 1024 : i64
// CHECK: weft.linear {{.*}}weft.buffers = [#weft.buffer<"arena", [[A:[0-9]+]]>]
// CHECK: weft.fusion_group
// CHECK: } {weft.buffers = [#weft.buffer<"arena", [[A]]>]
func.func @bf16_in_place(%x: tensor<4x64xbf16>, %w: tensor<64x64xbf16> {weft.param = "w"}) -> tensor<4x64xbf16> {
  %a = weft.linear %x, %w : (tensor<4x64xbf16>, tensor<64x64xbf16>) -> tensor<4x64xbf16>
  %b = weft.exp %a : tensor<4x64xbf16>
  %c = weft.mul %b, %a : tensor<4x64xbf16>
  return %c : tensor<4x64xbf16>
}

// f32: the CPU writes each result as its op runs and reads f32 inputs where
// they are, so only a result computed after the input's last read takes its
// memory — the product (the mul reads %a last), not the exp (%a is read
// after it).
// CHECK-LABEL: func.func @f32_after_the_last_read(
// CHECK: weft.linear {{.*}}weft.buffers = [#weft.buffer<"arena", [[A:[0-9]+]]>]
// CHECK: weft.fusion_group
// CHECK: } {weft.buffers = [#weft.buffer<"arena", 0>, #weft.buffer<"arena", [[A]]>]
func.func @f32_after_the_last_read(%x: tensor<4x64xf32>, %w: tensor<64x64xf32> {weft.param = "w"}) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  %a = weft.linear %x, %w : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32>
  %b = weft.exp %a : tensor<4x64xf32>
  %c = weft.mul %b, %a : tensor<4x64xf32>
  return %b, %c : tensor<4x64xf32>, tensor<4x64xf32>
}

// An input read after the group keeps its memory.
// CHECK-LABEL: func.func @read_later(
// CHECK: weft.linear {{.*}}weft.buffers = [#weft.buffer<"arena", [[A:[0-9]+]]>]
// CHECK: weft.fusion_group
// CHECK-NOT: #weft.buffer<"arena", [[A]]>]
// CHECK: weft.linear
func.func @read_later(%x: tensor<4x64xf32>, %w: tensor<64x64xf32> {weft.param = "w"}) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  %a = weft.linear %x, %w : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32>
  %b = weft.exp %a : tensor<4x64xf32>
  %d = weft.linear %a, %w : (tensor<4x64xf32>, tensor<64x64xf32>) -> tensor<4x64xf32>
  return %b, %d : tensor<4x64xf32>, tensor<4x64xf32>
}

// scatter_add adds into its base where the base dies there (an embedding's
// gradient over its zeros: one table in the arena, not two); a base read
// later keeps its memory.
// CHECK-LABEL: func.func @scatter_into_base(
// CHECK: weft.fusion_group
// CHECK: } {weft.buffers = [#weft.buffer<"arena", [[Z:[0-9]+]]>]
// CHECK: weft.scatter_add {{.*}}weft.buffers = [#weft.buffer<"arena", [[Z]]>]
func.func @scatter_into_base(%ids: tensor<1x16xi64>, %x: tensor<1x16x256xf32>) -> tensor<512x256xf32> {
  %zero = weft.constant dense<0.0> : tensor<512x256xf32>
  %one = weft.constant dense<1.0> : tensor<512x256xf32>
  %base = weft.mul %zero, %one : tensor<512x256xf32>
  %g = weft.scatter_add %base[%ids], %x axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xf32>) -> tensor<512x256xf32>
  return %g : tensor<512x256xf32>
}

// CHECK-LABEL: func.func @scatter_base_read_later(
// CHECK: weft.fusion_group
// CHECK: } {weft.buffers = [#weft.buffer<"arena", [[Z:[0-9]+]]>]
// CHECK-NOT: weft.scatter_add {{.*}}weft.buffers = [#weft.buffer<"arena", [[Z]]>]
// CHECK: weft.scatter_add
func.func @scatter_base_read_later(%ids: tensor<1x16xi64>, %x: tensor<1x16x256xf32>) -> (tensor<512x256xf32>, tensor<512x256xf32>) {
  %zero = weft.constant dense<0.0> : tensor<512x256xf32>
  %one = weft.constant dense<1.0> : tensor<512x256xf32>
  %base = weft.mul %zero, %one : tensor<512x256xf32>
  %g = weft.scatter_add %base[%ids], %x axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xf32>) -> tensor<512x256xf32>
  return %g, %base : tensor<512x256xf32>, tensor<512x256xf32>
}

// A product lands on its accumulator where that dies there (a gradient
// summed over its readers: one tensor in the arena, not three); an
// accumulator read later keeps its memory. The arena holds the 2 KiB input
// and one 4 KiB product.
// CHECK-LABEL: func.func @product_onto_accumulator(
// CHECK-SAME: weft.activation_bytes = 6144 : i64
// CHECK: weft.matmul {{.*}}weft.buffers = [#weft.buffer<"arena", [[P:[0-9]+]]>]
// CHECK: weft.matmul {{.*}}, acc {{.*}}weft.buffers = [#weft.buffer<"arena", [[P]]>]
// CHECK: weft.matmul {{.*}}, acc {{.*}}weft.buffers = [#weft.buffer<"arena", [[P]]>]
func.func @product_onto_accumulator(%g: tensor<16x32xf32>, %w: tensor<32x64xf32> {weft.param = "w"}) -> tensor<16x64xf32> {
  %a = weft.matmul %g, %w : (tensor<16x32xf32>, tensor<32x64xf32>) -> tensor<16x64xf32>
  %b = weft.matmul %g, %w, acc %a : (tensor<16x32xf32>, tensor<32x64xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
  %c = weft.matmul %g, %w, acc %b : (tensor<16x32xf32>, tensor<32x64xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
  return %c : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @accumulator_read_later(
// CHECK: weft.matmul {{.*}}weft.buffers = [#weft.buffer<"arena", [[P:[0-9]+]]>]
// CHECK-NOT: weft.matmul {{.*}}, acc {{.*}}weft.buffers = [#weft.buffer<"arena", [[P]]>]
// CHECK: weft.matmul {{.*}}, acc
func.func @accumulator_read_later(%g: tensor<16x32xf32>, %w: tensor<32x64xf32> {weft.param = "w"}) -> (tensor<16x64xf32>, tensor<16x64xf32>) {
  %a = weft.matmul %g, %w : (tensor<16x32xf32>, tensor<32x64xf32>) -> tensor<16x64xf32>
  %b = weft.matmul %g, %w, acc %a : (tensor<16x32xf32>, tensor<32x64xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
  return %a, %b : tensor<16x64xf32>, tensor<16x64xf32>
}
