// Meshes and shardings round-trip, attach to function arguments and results,
// and report each Constraint.
// RUN: weft-opt %s -split-input-file | weft-opt -split-input-file | FileCheck %s

// CHECK: #[[MESH:.*]] = #weft.mesh<["dp"=2, "sp"=4]>
// CHECK-LABEL: func.func @sharded
// CHECK-SAME: weft.sharding = #weft.sharding<#[[MESH]], [{"dp"}, {"sp"}, {}]>
// CHECK-SAME: weft.sharding = #weft.sharding<#[[MESH]], [{"dp", "sp"}, {}]>
func.func @sharded(%act: tensor<2x64x256xbf16> {weft.sharding = #weft.sharding<#weft.mesh<["dp"=2, "sp"=4]>, [{"dp"}, {"sp"}, {}]>},
                   %w: tensor<256x256xbf16> {weft.param = "w", weft.sharding = #weft.sharding<#weft.mesh<["dp"=2, "sp"=4]>, [{"dp", "sp"}, {}]>}) {
  // CHECK: weft.silu %{{.*}} {weft.sharding = #weft.sharding<#[[MESH]], [{"dp"}, {"sp"}, {}]>}
  %0 = weft.silu %act {weft.sharding = #weft.sharding<#weft.mesh<["dp"=2, "sp"=4]>, [{"dp"}, {"sp"}, {}]>} : tensor<2x64x256xbf16>
  return
}
