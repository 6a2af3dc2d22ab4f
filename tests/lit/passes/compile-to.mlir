// --compile-to runs the pipeline up to a named phase; import-cleanup
// canonicalizes and checks shapes, the later phases are still empty.
// RUN: weft-opt %s --compile-to=import-cleanup | FileCheck %s
// RUN: weft-opt %s --compile-to=bufferize | FileCheck %s
// RUN: not weft-opt %s --compile-to=lowering 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: weft-opt: unknown phase 'lowering' for --compile-to; the phases are import-cleanup, model, train, strategy, partition, memory, schedule, bufferize

// CHECK-LABEL: func.func @forward
func.func @forward(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // Dead code is removed and identical ops are merged.
  // CHECK-NEXT: %[[E:.*]] = weft.exp
  // CHECK-NEXT: %[[S:.*]] = weft.add %[[E]], %[[E]]
  // CHECK-NEXT: return %[[S]]
  %unused = weft.tanh %x : tensor<4x8xf32>
  %0 = weft.exp %x : tensor<4x8xf32>
  %1 = weft.exp %x : tensor<4x8xf32>
  %2 = weft.add %0, %1 : tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}
