// The NumPy .npy format (versions 1-3): magic, header length, a Python dict
// literal with descr, fortran_order and shape, then the raw data.
#include "runtime/Error.h"
#include "runtime/HostTensor.h"

#include "kernels/cpu/Kernels.h"
#include "runtime/PlanFile.h"

#include <cstring>
#include <fstream>
#include <sstream>

using namespace weft::runtime;
using weft::plan::DType;

namespace {
struct NpyType {
  const char *descr;
  DType dtype;
};
constexpr NpyType kTypes[] = {
    {"<f4", weft::plan::F32}, {"<f2", weft::plan::F16},
    {"<i8", weft::plan::I64}, {"<i4", weft::plan::I32},
    {"|i1", weft::plan::I8},  {"|b1", weft::plan::I1},
};

/// The value of 'key' in the header dict, up to the next top-level comma.
std::string headerField(const std::string &header, const std::string &key,
                        const std::string &path) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    throw Error(path + ": .npy header has no '" + key + "'");
  at = header.find(':', at) + 1;
  while (at < header.size() && header[at] == ' ')
    ++at;
  size_t end = at;
  if (header[at] == '(')
    end = header.find(')', at) + 1;
  else if (header[at] == '\'')
    end = header.find('\'', at + 1) + 1;
  else
    end = header.find_first_of(",}", at);
  return header.substr(at, end - at);
}
} // namespace

std::string weft::runtime::describe(DType dtype,
                                    const std::vector<int64_t> &shape) {
  std::string text;
  for (int64_t d : shape)
    text += std::to_string(d) + "x";
  return text + dtypeName(dtype);
}

HostTensor weft::runtime::readNpy(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw Error(path + ": cannot open: " + std::strerror(errno));
  std::stringstream contents;
  contents << file.rdbuf();
  const std::string bytes = contents.str();
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw Error(path + ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t headerLength, headerStart;
  if (major == 1) {
    headerLength = static_cast<unsigned char>(bytes[8]) |
                   static_cast<unsigned char>(bytes[9]) << 8;
    headerStart = 10;
  } else if ((major == 2 || major == 3) && bytes.size() >= 12) {
    uint32_t length;
    std::memcpy(&length, bytes.data() + 8, 4);
    headerLength = length;
    headerStart = 12;
  } else {
    throw Error(path + ": unsupported .npy version " + std::to_string(major));
  }
  if (headerStart + headerLength > bytes.size())
    throw Error(path + ": truncated .npy header");
  const std::string header = bytes.substr(headerStart, headerLength);

  HostTensor tensor;
  std::string descr = headerField(header, "descr", path);
  descr = descr.substr(1, descr.size() - 2);
  for (const NpyType &type : kTypes)
    if (descr == type.descr)
      tensor.dtype = type.dtype;
  if (tensor.dtype == weft::plan::DTYPE_UNSPECIFIED)
    throw Error(path + ": unsupported .npy dtype '" + descr +
                "' (expected <f4, <f2, <i8, <i4, |i1 or |b1)");
  if (headerField(header, "fortran_order", path) != "False")
    throw Error(path + ": Fortran-ordered arrays are not supported");
  std::string shape = headerField(header, "shape", path);
  std::stringstream dims(shape.substr(1, shape.size() - 2));
  std::string dim;
  while (std::getline(dims, dim, ','))
    if (dim.find_first_not_of(' ') != std::string::npos)
      tensor.shape.push_back(std::stoll(dim));

  const size_t dataBytes = tensor.numElements() * dtypeBytes(tensor.dtype);
  const size_t dataStart = headerStart + headerLength;
  if (bytes.size() - dataStart != dataBytes)
    throw Error(path + ": holds " + std::to_string(bytes.size() - dataStart) +
                " data bytes, its header (" +
                describe(tensor.dtype, tensor.shape) + ") needs " +
                std::to_string(dataBytes));
  tensor.bytes.assign(bytes.begin() + dataStart, bytes.end());
  return tensor;
}

void weft::runtime::writeNpy(const std::string &path,
                             const HostTensor &tensor) {
  const char *descr = nullptr;
  for (const NpyType &type : kTypes)
    if (type.dtype == tensor.dtype)
      descr = type.descr;
  if (!descr)
    throw Error(path + ": cannot write dtype " +
                std::string(dtypeName(tensor.dtype)) + " as .npy");
  std::string shape = "(";
  for (int64_t d : tensor.shape)
    shape += std::to_string(d) + ", ";
  if (tensor.shape.size() > 1)
    shape.resize(shape.size() - 2);
  else if (tensor.shape.size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that the data starts on a 64-byte boundary.
  while ((10 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::ofstream file(path, std::ios::binary);
  if (!file)
    throw Error(path + ": cannot write: " + std::strerror(errno));
  const uint16_t length = static_cast<uint16_t>(header.size());
  file.write("\x93NUMPY\x01\x00", 8);
  file.put(static_cast<char>(length & 0xff));
  file.put(static_cast<char>(length >> 8));
  file << header;
  file.write(tensor.bytes.data(), tensor.bytes.size());
  if (!file)
    throw Error(path + ": cannot write: " + std::strerror(errno));
}

HostTensor weft::runtime::widenBf16(const HostTensor &tensor) {
  if (tensor.dtype != plan::BF16)
    return tensor;
  HostTensor wide{plan::F32, tensor.shape, {}};
  wide.bytes.resize(tensor.numElements() * 4);
  kernels::cpu::bf16ToF32(
      reinterpret_cast<const uint16_t *>(tensor.bytes.data()),
      reinterpret_cast<float *>(wide.bytes.data()), tensor.numElements());
  return wide;
}

HostTensor weft::runtime::narrowToBf16(const HostTensor &tensor) {
  HostTensor narrow{plan::BF16, tensor.shape, {}};
  narrow.bytes.resize(tensor.numElements() * 2);
  kernels::cpu::f32ToBf16(reinterpret_cast<const float *>(tensor.bytes.data()),
                          reinterpret_cast<uint16_t *>(narrow.bytes.data()),
                          tensor.numElements());
  return narrow;
}
