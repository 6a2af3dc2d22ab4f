// Bad checkpoints: each is refused with a message naming the file and,
// where there is one, the tensor, and nothing is loaded.
#include "runtime/Safetensors.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace rt = weft::runtime;

namespace {
std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/weft_safetensors_" + name;
}

/// A safetensors file: the 8-byte little-endian header size, the header,
/// the data.
std::string file(const std::string &header, const std::string &data) {
  const uint64_t size = header.size();
  return std::string(reinterpret_cast<const char *>(&size), 8) + header + data;
}

std::string write(const std::string &name, const std::string &bytes) {
  const std::string path = tempPath(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

/// What opening (and, when `read` names a tensor, reading) `bytes` throws.
std::string errorOf(const std::string &name, const std::string &bytes,
                    const std::string &read = "",
                    std::vector<int64_t> shape = {2, 2},
                    weft::plan::DType dtype = weft::plan::F32) {
  const std::string path = write(name, bytes);
  try {
    rt::SafetensorsCheckpoint checkpoint(path);
    if (!read.empty()) {
      std::vector<float> out(64);
      checkpoint.read(read, shape, dtype, out.data());
    }
  } catch (const rt::Error &e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kGood =
    R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
} // namespace

TEST(Safetensors, ReadsAWellFormedFile) {
  EXPECT_EQ(errorOf("good", file(kGood, std::string(16, '\0')), "w"),
            "(no error)");
}

TEST(Safetensors, RefusesTruncatedFiles) {
  EXPECT_EQ(errorOf("empty", ""),
            tempPath("empty") +
                ": not a safetensors file (too short to hold a header)");
  EXPECT_EQ(errorOf("short", "\x10\x00\x00"),
            tempPath("short") +
                ": not a safetensors file (too short to hold a header)");
  // The header promises more bytes than the file has.
  const std::string whole = file(kGood, std::string(16, '\0'));
  EXPECT_EQ(errorOf("cut_header", whole.substr(0, 20)),
            tempPath("cut_header") + ": header of " +
                std::to_string(kGood.size()) +
                " bytes runs past the end of the file");
  // The data is cut short: the tensor's offsets lie past the end.
  EXPECT_EQ(errorOf("cut_data", whole.substr(0, whole.size() - 4)),
            tempPath("cut_data") +
                ": tensor 'w': data_offsets [0, 16) lie outside the 12 data "
                "bytes");
}

TEST(Safetensors, RefusesOversizedAndNonJsonHeaders) {
  std::string huge(8, '\0');
  const uint64_t size = uint64_t{200} << 20;
  std::memcpy(huge.data(), &size, 8);
  huge += std::string(size, ' ');
  EXPECT_EQ(errorOf("huge", huge),
            tempPath("huge") + ": header of 209715200 bytes is larger than "
                               "safetensors' 100 MiB limit");
  const uint64_t absurd = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(
      errorOf("absurd",
              std::string(reinterpret_cast<const char *>(&absurd), 8) + "{}"),
      tempPath("absurd") + ": header of 18446744073709551615 bytes runs "
                           "past the end of the file");
  EXPECT_EQ(errorOf("not_json", file("{\"w\": [", "")),
            tempPath("not_json") + ": the header is not a JSON object");
  EXPECT_EQ(errorOf("array", file("[1, 2]", "")),
            tempPath("array") + ": the header is not a JSON object");
}

TEST(Safetensors, RefusesMalformedEntries) {
  EXPECT_EQ(errorOf("fields", file(R"({"w":{"dtype":"F32"}})", "")),
            tempPath("fields") +
                ": tensor 'w': expected dtype, shape and data_offsets");
  EXPECT_EQ(
      errorOf("negative",
              file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})",
                   "")),
      tempPath("negative") +
          ": tensor 'w': shape must hold non-negative integers");
  EXPECT_EQ(
      errorOf("offsets",
              file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})",
                   std::string(8, '\0'))),
      tempPath("offsets") +
          ": tensor 'w': data_offsets [8, 4) lie outside the 8 data bytes");
  EXPECT_EQ(
      errorOf("dtype",
              file(R"({"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})",
                   std::string(1, '\0'))),
      tempPath("dtype") + ": tensor 'w': unknown dtype 'F8'");
  // Bytes that do not match dtype × shape, and a shape whose byte count
  // wraps around 2^64 to the bytes given.
  EXPECT_EQ(
      errorOf(
          "bytes",
          file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})",
               std::string(16, '\0'))),
      tempPath("bytes") + ": tensor 'w': 16 bytes for F32 [2, 3]");
  EXPECT_EQ(
      errorOf(
          "wraps",
          file(
              R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})",
              "")),
      tempPath("wraps") + ": tensor 'w': shape [4611686018427387904, 4]… has "
                          "more than 2^64 elements");
}

TEST(Safetensors, RefusesMismatchedReads) {
  const std::string bytes = file(kGood, std::string(16, '\0'));
  EXPECT_EQ(errorOf("missing", bytes, "v"),
            tempPath("missing") + ": has no tensor 'v'");
  EXPECT_EQ(errorOf("shape", bytes, "w", {4}),
            tempPath("shape") +
                ": tensor 'w' has shape [2, 2], the model expects [4]");
  EXPECT_EQ(errorOf("as_int", bytes, "w", {2, 2}, weft::plan::I64),
            tempPath("as_int") +
                ": tensor 'w' is wanted as i64; weights load as f32 or bf16");
  EXPECT_EQ(
      errorOf("int_weights",
              file(R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})",
                   std::string(16, '\0')),
              "w", {2}),
      tempPath("int_weights") +
          ": tensor 'w' has dtype I64; expected F32, BF16 or F16");
}

TEST(Safetensors, WidensF16AndRoundsToBf16Exactly) {
  // 1, -2.5, the largest half, the smallest subnormal half, inf, -0.
  const uint16_t half[] = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x7C00, 0x8000};
  const std::string path = write(
      "f16", file(R"({"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]}})",
                  std::string(reinterpret_cast<const char *>(half), 12)));
  rt::SafetensorsCheckpoint checkpoint(path);
  std::vector<float> f32(6);
  checkpoint.read("h", {6}, weft::plan::F32, f32.data());
  EXPECT_EQ(
      f32, (std::vector<float>{1.0f, -2.5f, 65504.0f, 0x1p-24f,
                               std::numeric_limits<float>::infinity(), -0.0f}));
  EXPECT_TRUE(std::signbit(f32[5]));
  std::vector<uint16_t> bf16(6);
  checkpoint.read("h", {6}, weft::plan::BF16, bf16.data());
  // 65504 = 0x477FE000 rounds to nearest even: 0x4780 (65536).
  EXPECT_EQ(bf16, (std::vector<uint16_t>{0x3F80, 0xC020, 0x4780, 0x3380, 0x7F80,
                                         0x8000}));
}
