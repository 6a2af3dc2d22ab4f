// Mesh and sharding attributes: parsing, verification and group sizes.
#include "ir/WeftDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace weft;

namespace {
class AttrsTest : public ::testing::Test {
protected:
  AttrsTest() { context.loadDialect<WeftDialect>(); }

  /// Parses `text`; on failure returns null and keeps the diagnostic.
  Attribute parse(StringRef text) {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      lastError = diag.str();
      return success();
    });
    return parseAttribute(text, &context);
  }

  MLIRContext context;
  std::string lastError;
};
} // namespace

TEST_F(AttrsTest, MeshGroupSizes) {
  auto mesh = dyn_cast_or_null<MeshAttr>(
      parse(R"(#weft.mesh<["dp"=2, "sp"=4, "tp"=3]>)"));
  ASSERT_TRUE(mesh);
  EXPECT_EQ(mesh.getNumRanks(), 24);
  EXPECT_EQ(mesh.getGroupSize(ArrayRef<StringRef>{"dp", "sp"}), 8);
  EXPECT_EQ(mesh.getGroupSize(ArrayRef<StringRef>{"tp"}), 3);
  EXPECT_EQ(mesh.getGroupSize(ArrayRef<StringRef>{"ep"}), -1);
  EXPECT_EQ(mesh.getAxis("sp").getSize(), 4);
  EXPECT_FALSE(mesh.getAxis("ep"));
}

TEST_F(AttrsTest, MeshConstraints) {
  EXPECT_FALSE(parse(R"(#weft.mesh<[]>)"));
  EXPECT_EQ(lastError, "a mesh needs at least one axis");
  EXPECT_FALSE(parse(R"(#weft.mesh<["dp"=2, "dp"=2]>)"));
  EXPECT_EQ(lastError, "mesh axis \"dp\" is named twice");
  EXPECT_FALSE(parse(R"(#weft.mesh<["dp"=0]>)"));
  EXPECT_EQ(lastError, "mesh axis \"dp\" has size 0; sizes must be at least 1");
  EXPECT_FALSE(parse(R"(#weft.mesh<[""=2]>)"));
  EXPECT_EQ(lastError, "mesh axis names must be non-empty");
}

TEST_F(AttrsTest, ShardingShardsAndConstraints) {
  auto sharding = dyn_cast_or_null<ShardingAttr>(parse(
      R"(#weft.sharding<#weft.mesh<["dp"=2, "sp"=4]>, [{"dp", "sp"}, {}]>)"));
  ASSERT_TRUE(sharding);
  EXPECT_EQ(sharding.getNumShards(0), 8);
  EXPECT_EQ(sharding.getNumShards(1), 1);

  EXPECT_FALSE(parse(R"(#weft.sharding<#weft.mesh<["dp"=2]>, [{"tp"}]>)"));
  EXPECT_NE(
      lastError.find("sharding names axis \"tp\", which is not in the mesh"),
      std::string::npos);
  EXPECT_FALSE(
      parse(R"(#weft.sharding<#weft.mesh<["dp"=2]>, [{"dp"}, {"dp"}]>)"));
  EXPECT_EQ(lastError, "sharding uses axis \"dp\" twice");
}
