// pynas-profile's output: a portable measurements file (JSON Lines, pynas/store/portable.py),
// appended one record at a time, each written whole and fsync'ed before the next is measured, so
// a run killed at any moment (kill -9, a phone's battery) loses at most the record in flight.
//
// Resuming: an existing file is read first. Its header must be a version-1 pynas-measurements
// header and every complete line a JSON object with key, backend, backend_version and threads
// (the caller skips keys measured in its series). A last line without its '\n' is a record the
// killed run was writing: begin() cuts it off. Anything else unexpected is a
// MeasurementFileError and the file is left as it was.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace pynas {

struct MeasurementFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ExistingRecord {
  std::string key, backend, backend_version;
  long threads = 0;
};

class MeasurementFile {
 public:
  // Reads `path` if it exists (nothing is written yet) and locks it against a second
  // pynas-profile; `writer` goes into the header of a new file ("pynas-profile 0.1.0").
  MeasurementFile(const std::string& path, const std::string& writer);
  ~MeasurementFile();
  MeasurementFile(const MeasurementFile&) = delete;
  MeasurementFile& operator=(const MeasurementFile&) = delete;

  const std::vector<ExistingRecord>& existing() const { return existing_; }
  // Bytes of a cut-off last line that begin() removes (0: none).
  size_t torn_bytes() const { return torn_bytes_; }

  // Makes the file ready for appending, once the caller has checked all its input: creates it
  // with its header, or cuts off a torn last line. std::runtime_error on I/O errors.
  void begin();

  // Appends one record (a JSON object's text, without '\n') and fsyncs; begin()s first if
  // needed. std::runtime_error on I/O errors.
  void append(const std::string& record);

 private:
  void scan(const std::string& text);
  [[noreturn]] void error(int line, const std::string& message) const;

  std::string path_, writer_;
  int fd_ = -1;
  bool begun_ = false;
  size_t size_ = 0;        // bytes in the file when read
  size_t torn_bytes_ = 0;  // of those, the cut-off last line's
  std::vector<ExistingRecord> existing_;
};

}  // namespace pynas
