// ONNX TensorProto files (`input_0.pb`, as the ONNX test data and
// onnx.numpy_helper write them) read as runtime inputs.
#ifndef WEFT_FRONTEND_ONNX_ONNXTENSOR_H
#define WEFT_FRONTEND_ONNX_ONNXTENSOR_H

#include "runtime/HostTensor.h"

#include <string>

namespace weft::frontend {

/// Reads a serialized onnx.TensorProto (FLOAT, INT64, INT32 or BOOL; raw or
/// typed data). Throws runtime::Error naming the file: it does not parse,
/// its element type is not one weft runs, or its data does not fill its
/// shape.
runtime::HostTensor readOnnxTensor(const std::string &path);

} // namespace weft::frontend

#endif // WEFT_FRONTEND_ONNX_ONNXTENSOR_H
