// Parsing, printing and verification of the weft attributes.
#include "ir/WeftDialect.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace weft;

#include "ir/WeftEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "ir/WeftAttrs.cpp.inc"

void WeftDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "ir/WeftAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// MeshAttr
//===----------------------------------------------------------------------===//

// #weft.mesh<["dp"=2, "sp"=4]>
Attribute MeshAttr::parse(AsmParser &parser, Type) {
  SmallVector<MeshAxisAttr> axes;
  auto parseAxis = [&]() -> ParseResult {
    std::string name;
    int64_t size;
    if (parser.parseString(&name) || parser.parseEqual() ||
        parser.parseInteger(size))
      return failure();
    axes.push_back(MeshAxisAttr::get(parser.getContext(), name, size));
    return success();
  };
  if (parser.parseLess() ||
      parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, parseAxis) ||
      parser.parseGreater())
    return {};
  return MeshAttr::getChecked(
      [&] { return parser.emitError(parser.getNameLoc()); },
      parser.getContext(), axes);
}

void MeshAttr::print(AsmPrinter &printer) const {
  printer << "<[";
  llvm::interleaveComma(getAxes(), printer, [&](MeshAxisAttr axis) {
    printer << '"' << axis.getName() << "\"=" << axis.getSize();
  });
  printer << "]>";
}

LogicalResult MeshAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               ArrayRef<MeshAxisAttr> axes) {
  if (axes.empty())
    return emitError() << "a mesh needs at least one axis";
  llvm::StringSet<> seen;
  for (MeshAxisAttr axis : axes) {
    if (axis.getName().empty())
      return emitError() << "mesh axis names must be non-empty";
    if (!seen.insert(axis.getName()).second)
      return emitError() << "mesh axis \"" << axis.getName()
                         << "\" is named twice";
    if (axis.getSize() < 1)
      return emitError() << "mesh axis \"" << axis.getName() << "\" has size "
                         << axis.getSize() << "; sizes must be at least 1";
  }
  return success();
}

MeshAxisAttr MeshAttr::getAxis(StringRef name) const {
  for (MeshAxisAttr axis : getAxes())
    if (axis.getName() == name)
      return axis;
  return {};
}

int64_t MeshAttr::getGroupSize(ArrayRef<StringRef> names) const {
  int64_t size = 1;
  for (StringRef name : names) {
    MeshAxisAttr axis = getAxis(name);
    if (!axis)
      return -1;
    size *= axis.getSize();
  }
  return size;
}

int64_t MeshAttr::getGroupSize(ArrayAttr names) const {
  SmallVector<StringRef> strings;
  for (Attribute name : names)
    strings.push_back(llvm::cast<StringAttr>(name).getValue());
  return getGroupSize(strings);
}

int64_t MeshAttr::getNumRanks() const {
  int64_t ranks = 1;
  for (MeshAxisAttr axis : getAxes())
    ranks *= axis.getSize();
  return ranks;
}

//===----------------------------------------------------------------------===//
// ShardingAttr
//===----------------------------------------------------------------------===//

// #weft.sharding<#mesh, [{"dp"}, {}, {"sp", "tp"}]>
Attribute ShardingAttr::parse(AsmParser &parser, Type) {
  MeshAttr mesh;
  SmallVector<Attribute> dims;
  auto parseDim = [&]() -> ParseResult {
    SmallVector<Attribute> axes;
    auto parseAxis = [&]() -> ParseResult {
      std::string name;
      if (parser.parseString(&name))
        return failure();
      axes.push_back(StringAttr::get(parser.getContext(), name));
      return success();
    };
    if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Braces, parseAxis))
      return failure();
    dims.push_back(ArrayAttr::get(parser.getContext(), axes));
    return success();
  };
  if (parser.parseLess() || parser.parseAttribute(mesh) ||
      parser.parseComma() ||
      parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, parseDim) ||
      parser.parseGreater())
    return {};
  return ShardingAttr::getChecked(
      [&] { return parser.emitError(parser.getNameLoc()); },
      parser.getContext(), mesh, ArrayAttr::get(parser.getContext(), dims));
}

void ShardingAttr::print(AsmPrinter &printer) const {
  printer << '<';
  printer.printAttribute(getMesh());
  printer << ", [";
  llvm::interleaveComma(getDims(), printer, [&](Attribute dim) {
    printer << '{';
    llvm::interleaveComma(
        llvm::cast<ArrayAttr>(dim), printer, [&](Attribute axis) {
          printer << '"' << llvm::cast<StringAttr>(axis).getValue() << '"';
        });
    printer << '}';
  });
  printer << "]>";
}

LogicalResult ShardingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   MeshAttr mesh, ArrayAttr dims) {
  llvm::StringSet<> used;
  for (Attribute dim : dims) {
    auto axes = llvm::dyn_cast<ArrayAttr>(dim);
    if (!axes)
      return emitError() << "each sharding entry must be a list of axis names";
    for (Attribute axisAttr : axes) {
      auto axis = llvm::dyn_cast<StringAttr>(axisAttr);
      if (!axis)
        return emitError() << "mesh axis names must be strings";
      if (!mesh.getAxis(axis.getValue()))
        return emitError() << "sharding names axis \"" << axis.getValue()
                           << "\", which is not in the mesh " << mesh;
      if (!used.insert(axis.getValue()).second)
        return emitError() << "sharding uses axis \"" << axis.getValue()
                           << "\" twice";
    }
  }
  return success();
}

int64_t ShardingAttr::getNumShards(unsigned dim) const {
  return getMesh().getGroupSize(llvm::cast<ArrayAttr>(getDims()[dim]));
}

//===----------------------------------------------------------------------===//
// BufferAttr
//===----------------------------------------------------------------------===//

LogicalResult BufferAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 StringRef region, int64_t offset) {
  if (region != "arena" && region != "parameters" && region != "constants" &&
      region != "state")
    return emitError() << "unknown memory region \"" << region
                       << "\"; expected arena, parameters, constants or state";
  if (offset < 0 || offset % 64 != 0)
    return emitError() << "buffer offset " << offset
                       << " is not a non-negative multiple of 64";
  return success();
}
