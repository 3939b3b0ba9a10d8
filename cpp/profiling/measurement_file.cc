#include "measurement_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "json.h"

namespace pynas {
namespace {

constexpr const char* kFormat = "pynas-measurements";
constexpr int kVersion = 1;

std::string os_error(const std::string& what) { return what + " (" + std::strerror(errno) + ")"; }

void write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(os_error(path + ": cannot write"));
    done += static_cast<size_t>(n);
  }
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

MeasurementFile::MeasurementFile(const std::string& path, const std::string& writer) : path_(path), writer_(writer) {
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0)
    throw MeasurementFileError(path + ": expected an uncompressed file name (records are appended and synced one by "
                               "one; gzip the file afterwards if it must be smaller)");
  fd_ = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) {
    if (errno == ENOENT) return;  // created by the first append()
    throw MeasurementFileError(os_error(path + ": cannot open for appending"));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0)
    throw MeasurementFileError(errno == EWOULDBLOCK ? path + ": another pynas-profile is writing this file"
                                                    : os_error(path + ": cannot lock"));
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw MeasurementFileError(os_error(path + ": cannot read"));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  scan(text);
}

MeasurementFile::~MeasurementFile() {
  if (fd_ >= 0) ::close(fd_);  // also releases the lock
}

void MeasurementFile::error(int line, const std::string& message) const {
  throw MeasurementFileError(path_ + ":" + std::to_string(line) + ": " + message +
                             "; expected a file pynas-profile wrote (nothing was changed; name a new -o file)");
}

void MeasurementFile::scan(const std::string& text) {
  size_ = text.size();
  const size_t last_newline = text.rfind('\n');
  const size_t complete = last_newline == std::string::npos ? 0 : last_newline + 1;
  torn_bytes_ = text.size() - complete;
  if (complete == 0 && torn_bytes_ > 0) {
    // No complete line: a header cut off while a new file was being made, or another file.
    const std::string start = std::string("{\"format\":\"") + kFormat + "\"";
    if (text.compare(0, std::min(text.size(), start.size()), start, 0, std::min(text.size(), start.size())) != 0)
      error(1, "not a pynas measurements file (no complete line, and not the start of a header)");
    return;
  }
  size_t pos = 0;
  int line = 0;
  while (pos < complete) {
    const size_t end = text.find('\n', pos);
    const std::string s = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    json::Value v;
    try {
      v = json::parse(s);
    } catch (const json::Error& e) {
      error(line, e.what());
    }
    if (v.type != json::Value::Type::kObject) error(line, "expected a JSON object");
    if (line == 1) {
      const json::Value* format = v.find("format");
      const json::Value* version = v.find("version");
      if (!format || format->type != json::Value::Type::kString || format->text != kFormat)
        error(line, std::string("not a pynas measurements file: header field 'format' expected '") + kFormat + "'");
      if (!version || !version->is_integer() || version->number != kVersion)
        error(line, "header field 'version': expected " + std::to_string(kVersion));
      continue;
    }
    ExistingRecord r;
    for (auto [name, slot] : {std::pair<const char*, std::string*>{"key", &r.key}, {"backend", &r.backend},
                              {"backend_version", &r.backend_version}}) {
      const json::Value* f = v.find(name);
      if (!f || f->type != json::Value::Type::kString) error(line, std::string("field '") + name + "': expected a string");
      *slot = f->text;
    }
    const json::Value* threads = v.find("threads");
    if (!threads || !threads->is_integer() || threads->number < 1)
      error(line, "field 'threads': expected an integer >= 1");
    r.threads = static_cast<long>(threads->number);
    existing_.push_back(std::move(r));
  }
}

void MeasurementFile::begin() {
  if (begun_) return;
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error(os_error(path_ + ": cannot create"));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) throw std::runtime_error(os_error(path_ + ": cannot lock"));
    // The new name must survive a crash too.
    const int dir = ::open(dir_of(path_).c_str(), O_RDONLY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  }
  if (torn_bytes_ > 0) {
    if (::ftruncate(fd_, static_cast<off_t>(size_ - torn_bytes_)) != 0)
      throw std::runtime_error(os_error(path_ + ": cannot cut off the torn last line"));
    size_ -= torn_bytes_;
  }
  if (size_ == 0) {
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    json::ObjectWriter header;
    header.string("format", kFormat).integer("version", kVersion).string("writer", writer_).string("created_at", when);
    write_all(fd_, header.str() + "\n", path_);
  }
  begun_ = true;
}

void MeasurementFile::append(const std::string& record) {
  begin();
  // One write of the whole line: a kill leaves either the line or a prefix of it without '\n',
  // which the next run cuts off.
  write_all(fd_, record + "\n", path_);
  if (::fsync(fd_) != 0) throw std::runtime_error(os_error(path_ + ": cannot sync to disk"));
}

}  // namespace pynas
