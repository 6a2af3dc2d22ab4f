// cuDNN 9's fused scaled dot-product attention (SDPA), forward and backward,
// through cudnn-frontend (third_party/, header-only, used in Cudnn.cpp
// alone): cuDNN and the CUDA runtime are loaded with dlopen, like the rest of
// the CUDA runtime. The graphs take the plan's layouts as they are — q
// [batch, sq, heads, dim], k and v [batch, skv, kvHeads, dim], bf16 — and the
// log-sum-exp as weft.attention's `lse` ([batch, heads, sq] f32, cuDNN's
// Stats). The executor tries them where they apply and runs its own kernels
// where cuDNN declines.
#ifndef WEFT_RUNTIME_CUDA_CUDNN_H
#define WEFT_RUNTIME_CUDA_CUDNN_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weft::runtime {

/// An attention cuDNN's SDPA takes: full or causal (the queries the last sq
/// of the skv positions), grouped heads, equal head dimensions.
struct SdpaShape {
  int64_t batch, sq, skv, heads, kvHeads, dim;
  bool causal;
  float scale;
};

class CudnnSdpa {
public:
  enum class Pass {
    Forward,          // q, k, v → out
    ForwardWithStats, // q, k, v → out, lse
    Backward,         // q, k, v, out, dout, lse → dq, dk, dv (deterministic)
  };
  /// The graph, validated for sm_90 (cuDNN loaded; no GPU needed). Throws
  /// Error saying why cuDNN does not take it. The deterministic backward
  /// decomposes dP in a workspace of b·h·s_q·s_kv·2 bytes; where that is
  /// over `workspaceLimit` (≥ 0), cuDNN 9.25 or later accumulates dQ in
  /// order instead, its workspace linear in the sequence (cudnn-frontend's
  /// CUDNN_FRONTEND_ATTN_DP_WORKSPACE_LIMIT, which a user's setting
  /// overrides); earlier cuDNN keeps the dP workspace.
  CudnnSdpa(const SdpaShape &shape, Pass pass, int64_t workspaceLimit = -1);
  ~CudnnSdpa();
  CudnnSdpa(const CudnnSdpa &) = delete;
  CudnnSdpa &operator=(const CudnnSdpa &) = delete;

  /// On the GPU: the operation graph, cuDNN's heuristics and the execution
  /// plan for `handle`. Returns the workspace bytes it runs with; throws
  /// Error when cuDNN cannot run it there.
  int64_t build(void *handle);
  /// Queues the attention on the handle's stream. `pointers` in the Pass's
  /// order (device addresses); `workspace` holds build()'s bytes.
  void run(void *handle, const std::vector<uint64_t> &pointers,
           uint64_t workspace) const;

  /// cuDNN's version (90100 is 9.1.0); loads the library first. Throws
  /// Error naming the libraries tried when it cannot be loaded.
  static int64_t version();
  /// A cuDNN handle whose work goes to `stream` (a CUstream), on the
  /// current context; destroyHandle frees it.
  static void *createHandle(void *stream);
  static void destroyHandle(void *handle);

private:
  struct Graph;
  std::unique_ptr<Graph> graph;
  Pass pass;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_CUDA_CUDNN_H
