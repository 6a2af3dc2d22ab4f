// The trace in the Chrome trace-event JSON format.
#include "runtime/Trace.h"

#include "runtime/Error.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

using namespace weft::runtime;

TraceWriter::TraceWriter() : origin(std::chrono::steady_clock::now()) {}

double TraceWriter::now() const {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now() - origin)
      .count();
}

void TraceWriter::addStep(const std::string &name, const std::string &category,
                          double startMicros, double micros, int64_t liveBytes,
                          const Sent &sent) {
  events.push_back({name, category, startMicros, micros, liveBytes, sent});
}

namespace {
std::string sentName(const std::pair<std::string, std::string> &key) {
  return "sent " + key.first + " over " + key.second;
}
} // namespace

void TraceWriter::write(const std::string &path) const {
  nlohmann::json trace = {{"displayTimeUnit", "ms"},
                          {"traceEvents", nlohmann::json::array()}};
  auto &out = trace["traceEvents"];
  out.push_back({{"name", "process_name"},
                 {"ph", "M"},
                 {"pid", 0},
                 {"args", {{"name", "weft cpu"}}}});
  Sent totals;
  for (const Event &e : events) {
    nlohmann::json step = {{"name", e.name}, {"cat", e.category}, {"ph", "X"},
                           {"ts", e.start},  {"dur", e.duration}, {"pid", 0},
                           {"tid", 0}};
    for (const auto &[key, bytes] : e.sent) {
      step["args"][sentName(key) + " (bytes)"] = bytes;
      totals[key] += bytes;
      out.push_back({{"name", sentName(key)},
                     {"ph", "C"},
                     {"ts", e.start + e.duration},
                     {"pid", 0},
                     {"args", {{"bytes", totals[key]}}}});
    }
    out.push_back(std::move(step));
    out.push_back({{"name", "arena live bytes"},
                   {"ph", "C"},
                   {"ts", e.start},
                   {"pid", 0},
                   {"args", {{"bytes", e.liveBytes}}}});
  }
  for (const auto &[key, bytes] : totals)
    trace["otherData"][sentName(key) + " (bytes)"] = bytes;
  std::ofstream file(path);
  if (!file)
    throw Error(path + ": cannot write: " + std::strerror(errno));
  file << trace.dump() << "\n";
  if (!file)
    throw Error(path + ": cannot write: " + std::strerror(errno));
}
