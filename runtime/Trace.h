// Chrome/Perfetto trace files: one complete event per step, a counter of
// live arena bytes and, for collectives, the bytes each sent (in the step's
// arguments and as running totals per kind and mesh axes). Open them in
// ui.perfetto.dev or chrome://tracing.
#ifndef WEFT_RUNTIME_TRACE_H
#define WEFT_RUNTIME_TRACE_H

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace weft::runtime {

class TraceWriter {
public:
  TraceWriter();
  /// Bytes sent by (collective kind, mesh axes), as the Communicator counts.
  using Sent = std::map<std::pair<std::string, std::string>, int64_t>;

  /// Records a step that ran from `start` for `micros` microseconds and
  /// sent `sent` (a collective's bytes; empty for the rest).
  void addStep(const std::string &name, const std::string &category,
               double startMicros, double micros, int64_t liveBytes,
               const Sent &sent = {});
  /// Microseconds since the writer was made.
  double now() const;
  /// Writes the JSON trace. Throws Error naming the file.
  void write(const std::string &path) const;

private:
  struct Event {
    std::string name, category;
    double start, duration;
    int64_t liveBytes;
    Sent sent;
  };
  std::chrono::steady_clock::time_point origin;
  std::vector<Event> events;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_TRACE_H
