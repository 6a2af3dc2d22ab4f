// Constraints of the collectives.
// RUN: weft-opt %s -split-input-file -verify-diagnostics

func.func @all_gather_c1_unknown(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.all_gather' names axis "tp", which is not in the mesh #weft.mesh<["dp"=2]>}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_gather %x on #weft.mesh<["dp"=2]> ["tp"] dim 0 : (tensor<8x64xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @all_gather_c1_twice(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.all_gather' names axis "dp" twice}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_gather %x on #weft.mesh<["dp"=2]> ["dp", "dp"] dim 0 : (tensor<8x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @all_gather_c1_empty(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.all_gather' names no mesh axis; its group needs at least one}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_gather %x on #weft.mesh<["dp"=2]> [] dim 0 : (tensor<8x64xf32>) -> tensor<8x64xf32>
  return
}

// -----

func.func @all_gather_c2(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.all_gather' gathers along dim 2, outside [0, 2)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_gather %x on #weft.mesh<["dp"=2]> ["dp"] dim 2 : (tensor<8x64xf32>) -> tensor<8x64xf32>
  return
}

// -----

func.func @all_gather_result(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{inferred type(s) 'tensor<16x64xf32>' are incompatible with return type(s) of operation 'tensor<8x64xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_gather %x on #weft.mesh<["dp"=2]> ["dp"] dim 0 : (tensor<8x64xf32>) -> tensor<8x64xf32>
  return
}

// -----

func.func @reduce_scatter_c1(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.reduce_scatter' names axis "sp", which is not in the mesh}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reduce_scatter sum %x on #weft.mesh<["dp"=2]> ["sp"] dim 0 : (tensor<8x64xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @reduce_scatter_c2(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.reduce_scatter' scatters along dim 3, outside [0, 2)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reduce_scatter sum %x on #weft.mesh<["dp"=2]> ["dp"] dim 3 : (tensor<8x64xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @reduce_scatter_c3(%x: tensor<6x64xf32>) {
  // expected-error@+2 {{'weft.reduce_scatter' splits dim 0 of size 6 over a group of 4 ranks}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.reduce_scatter sum %x on #weft.mesh<["dp"=4]> ["dp"] dim 0 : (tensor<6x64xf32>) -> tensor<1x64xf32>
  return
}

// -----

func.func @all_reduce_c1(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{'weft.all_reduce' names axis "tp", which is not in the mesh}}
  %0 = weft.all_reduce sum %x on #weft.mesh<["dp"=2]> ["tp"] : tensor<8x64xf32>
  return
}

// -----

func.func @all_to_all_c1(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.all_to_all' names no mesh axis}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_to_all %x on #weft.mesh<["sp"=2]> [] split 0 concat 1 : (tensor<8x64xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @all_to_all_c2(%x: tensor<8x64xf32>) {
  // expected-error@+2 {{'weft.all_to_all' needs split and concat dims in [0, 2), found 0 and 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_to_all %x on #weft.mesh<["sp"=2]> ["sp"] split 0 concat 2 : (tensor<8x64xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @all_to_all_c3(%x: tensor<1x512x6x128xbf16>) {
  // expected-error@+2 {{'weft.all_to_all' splits dim 2 of size 6 over a group of 4 ranks}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = weft.all_to_all %x on #weft.mesh<["sp"=4]> ["sp"] split 2 concat 1 : (tensor<1x512x6x128xbf16>) -> tensor<1x2048x1x128xbf16>
  return
}

// -----

func.func @send_c1(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{'weft.send' names axis "pp", which is not in the mesh}}
  weft.send %x on #weft.mesh<["dp"=2]> ["pp"] offset 1 : tensor<8x64xf32>
  return
}

// -----

func.func @send_c2(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{'weft.send' op has offset 4, a multiple of the group size 4: a rank would exchange with itself}}
  weft.send %x on #weft.mesh<["pp"=4]> ["pp"] offset 4 : tensor<8x64xf32>
  return
}

// -----

func.func @recv_c1() {
  // expected-error@+1 {{'weft.recv' names axis "pp", which is not in the mesh}}
  %0 = weft.recv on #weft.mesh<["dp"=2]> ["pp"] offset 1 : tensor<8x64xf32>
  return
}

// -----

func.func @recv_c2() {
  // expected-error@+1 {{'weft.recv' op has offset 0, a multiple of the group size 4}}
  %0 = weft.recv on #weft.mesh<["pp"=4]> ["pp"] offset 0 : tensor<8x64xf32>
  return
}

// -----

func.func @collective_broadcast_c1(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{'weft.collective_broadcast' names axis "dp" twice}}
  %0 = weft.collective_broadcast %x on #weft.mesh<["dp"=2]> ["dp", "dp"] root 0 : tensor<8x64xf32>
  return
}

// -----

func.func @collective_broadcast_c2(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{'weft.collective_broadcast' has root 2, outside the group [0, 2)}}
  %0 = weft.collective_broadcast %x on #weft.mesh<["dp"=2]> ["dp"] root 2 : tensor<8x64xf32>
  return
}
