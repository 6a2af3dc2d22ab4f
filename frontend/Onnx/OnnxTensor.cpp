// Serialized onnx.TensorProto files to host tensors.
#include "frontend/Onnx/OnnxTensor.h"

#include "runtime/Error.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>

namespace weft::frontend {

runtime::HostTensor readOnnxTensor(const std::string &path) {
  auto fail = [&](const std::string &why) {
    throw runtime::Error(path + ": " + why);
  };
  onnx::TensorProto t;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      fail("cannot open the file");
    if (!t.ParseFromIstream(&in))
      fail("not an ONNX TensorProto (the protobuf does not parse)");
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    fail("tensor '" + t.name() +
         "' keeps its data in an external file; "
         "inputs must hold their data");
  runtime::HostTensor h;
  h.shape.assign(t.dims().begin(), t.dims().end());
  int64_t n = 1;
  for (int64_t d : h.shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      fail("tensor '" + t.name() + "' has an invalid shape");
  auto fill = [&](auto typed, plan::DType dtype, const auto &field) {
    using T = decltype(typed);
    const int64_t width = sizeof(T);
    h.dtype = dtype;
    const std::string &raw = t.raw_data();
    if (!raw.empty() || field.size() == 0) {
      if (static_cast<int64_t>(raw.size()) != n * width)
        fail("tensor '" + t.name() + "' holds " + std::to_string(raw.size()) +
             " bytes of data; its shape " + runtime::describe(dtype, h.shape) +
             " needs " + std::to_string(n * width));
      h.bytes.assign(raw.begin(), raw.end());
      return;
    }
    if (field.size() != n)
      fail("tensor '" + t.name() + "' holds " + std::to_string(field.size()) +
           " elements; its shape " + runtime::describe(dtype, h.shape) +
           " needs " + std::to_string(n));
    h.bytes.resize(n * width);
    for (int64_t i = 0; i < n; ++i) {
      T v = static_cast<T>(field.Get(i));
      std::memcpy(h.bytes.data() + i * width, &v, width);
    }
  };
  switch (t.data_type()) {
  case onnx::TensorProto::FLOAT:
    fill(float(), plan::F32, t.float_data());
    break;
  case onnx::TensorProto::INT64:
    fill(int64_t(), plan::I64, t.int64_data());
    break;
  case onnx::TensorProto::INT32:
    fill(int32_t(), plan::I32, t.int32_data());
    break;
  case onnx::TensorProto::BOOL:
    fill(uint8_t(), plan::I1, t.int32_data());
    break;
  default:
    fail("tensor '" + t.name() + "' has element type " +
         onnx::TensorProto::DataType_Name(
             static_cast<onnx::TensorProto::DataType>(t.data_type())) +
         "; weft runs FLOAT, INT64, INT32 and BOOL inputs");
  }
  return h;
}

} // namespace weft::frontend
