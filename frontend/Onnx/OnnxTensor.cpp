// Serialized onnx.TensorProto files to host tensors.
#include "frontend/Onnx/OnnxTensor.h"

#include "frontend/Onnx/OnnxLiteral.h"
#include "runtime/Error.h"

#include <onnx/onnx_pb.h>

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
  // The data is read as initializers are (raw or typed fields, checked
  // against the shape), then held as the runtime's tensor.
  onnx_import::TensorData data;
  try {
    data = onnx_import::readTensorData(t, path);
  } catch (const onnx_import::ImportFailure &failure) {
    fail(failure.message);
  }
  runtime::HostTensor h;
  h.shape = std::move(data.shape);
  h.bytes.assign(data.bytes.begin(), data.bytes.end());
  switch (data.type) {
  case onnx::TensorProto::FLOAT:
    h.dtype = plan::F32;
    break;
  case onnx::TensorProto::INT64:
    h.dtype = plan::I64;
    break;
  case onnx::TensorProto::INT32:
    h.dtype = plan::I32;
    break;
  default: // BOOL, one byte each
    h.dtype = plan::I1;
  }
  return h;
}

} // namespace weft::frontend
