// Chrome/Perfetto trace files: one complete event per step and a counter of
// live arena bytes. Open them in ui.perfetto.dev or chrome://tracing.
#ifndef WEFT_RUNTIME_TRACE_H
#define WEFT_RUNTIME_TRACE_H

#include <chrono>
#include <string>
#include <vector>

namespace weft::runtime {

class TraceWriter {
public:
  TraceWriter();
  /// Records a step that ran from `start` for `micros` microseconds.
  void addStep(const std::string &name, const std::string &category,
               double startMicros, double micros, int64_t liveBytes);
  /// Microseconds since the writer was made.
  double now() const;
  /// Writes the JSON trace. Throws Error naming the file.
  void write(const std::string &path) const;

private:
  struct Event {
    std::string name, category;
    double start, duration;
    int64_t liveBytes;
  };
  std::chrono::steady_clock::time_point origin;
  std::vector<Event> events;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_TRACE_H
