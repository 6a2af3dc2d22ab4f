// --compile-to runs the pipeline up to a named phase: import-cleanup
// canonicalizes, schedule forms fusion groups, bufferize assigns memory.
// RUN: weft-opt %s --compile-to=import-cleanup | FileCheck %s --check-prefix=CLEANUP
// RUN: weft-opt %s --compile-to=strategy | FileCheck %s --check-prefix=CLEANUP
// RUN: weft-opt %s --compile-to=schedule | FileCheck %s --check-prefix=SCHEDULE
// RUN: weft-opt %s --compile-to=bufferize | FileCheck %s --check-prefix=BUFFERIZE
// RUN: not weft-opt %s --compile-to=lowering 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: weft-opt --help | FileCheck %s --check-prefix=HELP

// HELP: --compile-to=<phase> - Run the weft pipeline up to and including this phase (import-cleanup, model, train, strategy, partition, memory, schedule, bufferize)

// BAD: weft-opt: unknown phase 'lowering' for --compile-to; the phases are import-cleanup, model, train, strategy, partition, memory, schedule, bufferize

// Dead code is removed and identical ops are merged.
// CLEANUP-LABEL: func.func @forward
// CLEANUP-NEXT: %[[E:.*]] = weft.exp
// CLEANUP-NEXT: %[[S:.*]] = weft.add %[[E]], %[[E]]
// CLEANUP-NEXT: return %[[S]]

// SCHEDULE-LABEL: func.func @forward
// SCHEDULE-NEXT: %[[G:.*]] = weft.fusion_group
// SCHEDULE: weft.exp
// SCHEDULE-NEXT: weft.add
// SCHEDULE-NEXT: weft.yield
// SCHEDULE: return %[[G]]

// BUFFERIZE: func.func @forward(%{{.*}}: tensor<4x8xf32> {weft.buffer = #weft.buffer<"arena", 0>})
// BUFFERIZE-SAME: attributes {weft.activation_bytes = 256 : i64, weft.arena_bytes = {{[0-9]+}} : i64
// BUFFERIZE: weft.buffers = [#weft.buffer<"arena", 128>]
func.func @forward(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %unused = weft.tanh %x : tensor<4x8xf32>
  %0 = weft.exp %x : tensor<4x8xf32>
  %1 = weft.exp %x : tensor<4x8xf32>
  %2 = weft.add %0, %1 : tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}
