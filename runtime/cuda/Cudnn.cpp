// cuDNN's SDPA graphs through cudnn-frontend, loaded with dlopen.
#include "runtime/cuda/Cudnn.h"

#include "runtime/Error.h"

#define NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING
#include <cudnn_frontend.h>

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace cudnn_frontend {
/// The library the frontend's calls resolve in (its dynamic loading).
void *cudnn_dlhandle = nullptr;
} // namespace cudnn_frontend

using namespace weft::runtime;
namespace fe = cudnn_frontend;

namespace {
/// Tensor ids of the graphs.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

void load() {
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string errors;
    for (const char *name :
         {"libcudnn.so.9", "/usr/local/cuda/lib64/libcudnn.so.9"}) {
      if (void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) {
        fe::cudnn_dlhandle = handle;
        return;
      }
      errors += std::string("\n  ") + dlerror();
    }
    failure = "cuDNN 9 cannot be loaded (add the CUDA toolkit's lib64 or the "
              "nvidia-cudnn wheel's lib folder to LD_LIBRARY_PATH)" +
              errors;
  });
  if (!failure.empty())
    throw Error(failure);
}

void check(fe::error_t status, const std::string &what) {
  if (!status.is_good())
    throw Error("cuDNN " + what + ": " + status.get_message());
}

void check(cudnnStatus_t status, const std::string &what) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw Error("cuDNN " + what + ": status " +
                std::to_string(static_cast<int>(status)));
}

/// [batch, heads, seq, dim] over the plan's [batch, seq, heads, dim] memory.
fe::graph::Tensor_attributes bshd(const char *name, int64_t uid, int64_t batch,
                                  int64_t heads, int64_t seq, int64_t dim) {
  return fe::graph::Tensor_attributes()
      .set_name(name)
      .set_uid(uid)
      .set_dim({batch, heads, seq, dim})
      .set_stride({seq * heads * dim, dim, heads * dim, 1});
}

/// The causal mask with the queries the last sq of skv positions (cuDNN's
/// bottom-right diagonal; the same as top-left when sq = skv).
template <typename Attributes>
void mask(Attributes &attributes, const SdpaShape &s) {
  if (!s.causal)
    return;
  if (s.sq == s.skv)
    attributes.set_causal_mask(true);
  else
    attributes.set_causal_mask_bottom_right(true);
}
} // namespace

struct CudnnSdpa::Graph {
  std::shared_ptr<fe::graph::Graph> graph;
  std::vector<int64_t> uids; // in run()'s pointer order
};

namespace {
/// cudnn-frontend's bound on the deterministic backward's dP workspace, set
/// to `bytes` while a graph is made (it reads it then) unless the user has
/// set it.
class DpWorkspaceLimit {
public:
  explicit DpWorkspaceLimit(int64_t bytes) {
    if (bytes < 0 || std::getenv(kName))
      return;
    ::setenv(kName, std::to_string(bytes).c_str(), 1);
    set = true;
  }
  ~DpWorkspaceLimit() {
    if (set)
      ::unsetenv(kName);
  }
  DpWorkspaceLimit(const DpWorkspaceLimit &) = delete;
  DpWorkspaceLimit &operator=(const DpWorkspaceLimit &) = delete;

private:
  static constexpr const char *kName = "CUDNN_FRONTEND_ATTN_DP_WORKSPACE_LIMIT";
  bool set = false;
};
} // namespace

CudnnSdpa::CudnnSdpa(const SdpaShape &s, Pass pass, int64_t workspaceLimit)
    : graph(std::make_unique<Graph>()), pass(pass) {
  load();
  const DpWorkspaceLimit limit(pass == Pass::Backward ? workspaceLimit : -1);
  try {
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    g->set_sm_version(90); // validated for Hopper without a GPU
    auto q = g->tensor(bshd("Q", kQ, s.batch, s.heads, s.sq, s.dim));
    auto k = g->tensor(bshd("K", kK, s.batch, s.kvHeads, s.skv, s.dim));
    auto v = g->tensor(bshd("V", kV, s.batch, s.kvHeads, s.skv, s.dim));
    const std::vector<int64_t> statsDim = {s.batch, s.heads, s.sq, 1},
                               statsStride = {s.heads * s.sq, s.sq, 1, 1};
    if (pass != Pass::Backward) {
      auto options = fe::graph::SDPA_attributes()
                         .set_name("weft.attention")
                         .set_generate_stats(pass == Pass::ForwardWithStats)
                         .set_attn_scale(s.scale);
      mask(options, s);
      auto [out, stats] = g->sdpa(q, k, v, options);
      out->set_output(true)
          .set_uid(kO)
          .set_dim({s.batch, s.heads, s.sq, s.dim})
          .set_stride({s.sq * s.heads * s.dim, s.dim, s.heads * s.dim, 1});
      graph->uids = {kQ, kK, kV, kO};
      if (pass == Pass::ForwardWithStats) {
        stats->set_output(true)
            .set_uid(kStats)
            .set_data_type(fe::DataType_t::FLOAT)
            .set_dim(statsDim)
            .set_stride(statsStride);
        graph->uids.push_back(kStats);
      }
    } else {
      auto out = g->tensor(bshd("O", kO, s.batch, s.heads, s.sq, s.dim));
      auto dout = g->tensor(bshd("dO", kDO, s.batch, s.heads, s.sq, s.dim));
      auto stats = g->tensor(fe::graph::Tensor_attributes()
                                 .set_name("Stats")
                                 .set_uid(kStats)
                                 .set_dim(statsDim)
                                 .set_stride(statsStride)
                                 .set_data_type(fe::DataType_t::FLOAT));
      auto options = fe::graph::SDPA_backward_attributes()
                         .set_name("weft.attention_grad")
                         .set_attn_scale(s.scale)
                         .set_deterministic_algorithm(true);
      mask(options, s);
      auto [dq, dk, dv] = g->sdpa_backward(q, k, v, out, dout, stats, options);
      const int64_t qStride = s.sq * s.heads * s.dim,
                    kvStride = s.skv * s.kvHeads * s.dim;
      dq->set_output(true)
          .set_uid(kDQ)
          .set_dim({s.batch, s.heads, s.sq, s.dim})
          .set_stride({qStride, s.dim, s.heads * s.dim, 1});
      dk->set_output(true)
          .set_uid(kDK)
          .set_dim({s.batch, s.kvHeads, s.skv, s.dim})
          .set_stride({kvStride, s.dim, s.kvHeads * s.dim, 1});
      dv->set_output(true)
          .set_uid(kDV)
          .set_dim({s.batch, s.kvHeads, s.skv, s.dim})
          .set_stride({kvStride, s.dim, s.kvHeads * s.dim, 1});
      graph->uids = {kQ, kK, kV, kO, kDO, kStats, kDQ, kDK, kDV};
    }
    check(g->validate(), "validate");
    graph->graph = std::move(g);
  } catch (const std::exception &error) {
    if (dynamic_cast<const Error *>(&error))
      throw;
    throw Error(std::string("cuDNN: ") + error.what());
  }
}

CudnnSdpa::~CudnnSdpa() = default;

int64_t CudnnSdpa::build(void *handle) {
  auto h = static_cast<cudnnHandle_t>(handle);
  fe::graph::Graph &g = *graph->graph;
  try {
    check(g.build_operation_graph(h), "build_operation_graph");
    check(g.create_execution_plans({fe::HeurMode_t::A}),
          "create_execution_plans");
    check(g.check_support(h), "check_support");
    check(g.build_plans(h), "build_plans");
    int64_t bytes = 0;
    check(g.get_workspace_size(bytes), "get_workspace_size");
    return bytes;
  } catch (const std::exception &error) {
    if (dynamic_cast<const Error *>(&error))
      throw;
    throw Error(std::string("cuDNN: ") + error.what());
  }
}

void CudnnSdpa::run(void *handle, const std::vector<uint64_t> &pointers,
                    uint64_t workspace) const {
  if (pointers.size() != graph->uids.size())
    throw Error("cuDNN SDPA: " + std::to_string(pointers.size()) +
                " tensors given, " + std::to_string(graph->uids.size()) +
                " expected");
  std::unordered_map<int64_t, void *> pack;
  for (size_t i = 0; i < pointers.size(); ++i)
    pack[graph->uids[i]] = reinterpret_cast<void *>(pointers[i]);
  check(graph->graph->execute(static_cast<cudnnHandle_t>(handle), pack,
                              reinterpret_cast<void *>(workspace)),
        "execute");
}

int64_t CudnnSdpa::version() {
  load();
  return static_cast<int64_t>(fe::detail::get_backend_version());
}

void *CudnnSdpa::createHandle(void *stream) {
  load();
  cudnnHandle_t handle = nullptr;
  check(fe::detail::create_handle(&handle), "cudnnCreate");
  check(fe::detail::set_stream(handle, static_cast<cudaStream_t>(stream)),
        "cudnnSetStream");
  return handle;
}

void CudnnSdpa::destroyHandle(void *handle) {
  if (handle)
    fe::detail::destroy_handle(static_cast<cudnnHandle_t>(handle));
}
