// Constraints of the mesh and sharding attributes and of the weft argument
// attributes.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

// expected-error@+1 {{a mesh needs at least one axis}}
func.func private @mesh_c1() attributes {m = #weft.mesh<[]>}

// -----

// expected-error@+1 {{mesh axis "dp" is named twice}}
func.func private @mesh_c2() attributes {m = #weft.mesh<["dp"=2, "dp"=4]>}

// -----

// expected-error@+1 {{mesh axis "dp" has size 0; sizes must be at least 1}}
func.func private @mesh_c3() attributes {m = #weft.mesh<["dp"=0]>}

// -----

// expected-error@+1 {{sharding names axis "tp", which is not in the mesh}}
func.func private @sharding_c1() attributes {s = #weft.sharding<#weft.mesh<["dp"=2]>, [{"tp"}]>}

// -----

// expected-error@+1 {{sharding uses axis "dp" twice}}
func.func private @sharding_c2() attributes {s = #weft.sharding<#weft.mesh<["dp"=2]>, [{"dp"}, {"dp"}]>}

// -----

// expected-error@+1 {{'func.func' op argument 0: sharding has 1 dimension entries but the tensor 'tensor<4x8xf32>' has rank 2}}
func.func @sharding_c3(%x: tensor<4x8xf32> {weft.sharding = #weft.sharding<#weft.mesh<["dp"=2]>, [{"dp"}]>}) {
  return
}

// -----

func.func @sharding_c3_op(%x: tensor<4x8xf32>) {
  // expected-error@+1 {{'weft.exp' op sharding has 3 dimension entries but the tensor 'tensor<4x8xf32>' has rank 2}}
  %0 = weft.exp %x {weft.sharding = #weft.sharding<#weft.mesh<["dp"=2]>, [{"dp"}, {}, {}]>} : tensor<4x8xf32>
  return
}

// -----

// expected-error@+1 {{'func.func' op argument 0: 'weft.param' must be a non-empty string}}
func.func @param_name(%x: tensor<4x8xf32> {weft.param = ""}) {
  return
}
