#include "device.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "../cpu_features.h"
#include "json.h"

namespace pynas {
namespace {

namespace fs = std::filesystem;
const fs::path kCpuDir = "/sys/devices/system/cpu";

std::string strip(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// The stripped contents of a small file; false if it cannot be read.
bool read_text(const fs::path& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string all, line;
  while (std::getline(in, line)) all += line + "\n";
  if (in.bad()) return false;
  out = strip(all);
  return true;
}

// "48K", "1024K", "32M", "512" -> bytes (fingerprint.py's _parse_size).
long parse_size(const fs::path& path, const std::string& text) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  const std::string unit = text.substr(i);
  const long units = unit.empty() ? 1 : unit == "K" ? 1L << 10 : unit == "M" ? 1L << 20 : unit == "G" ? 1L << 30 : 0;
  const long value = i ? std::atol(text.substr(0, i).c_str()) : 0;
  if (units == 0 || value == 0)
    throw std::runtime_error(path.string() + ": expected a cache size such as '48K', got '" + text + "'");
  return value * units;
}

// cpufreq kHz files (fingerprint.py's _read_khz): 0 if unreadable or 0; digits only, else an error.
long read_khz(const fs::path& path) {
  std::string text;
  if (!read_text(path, text)) return 0;
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error(path.string() + ": expected a clock in kHz (digits), got '" + text + "'");
  return std::atol(text.c_str());
}

// L1d, L2, L3 of cpu0 from sysfs (index0, index1, ... in numeric order; the first data or unified
// cache of each level; unreadable indexes skipped), then the C library for a level sysfs lacks.
void cache_sizes(DeviceFacts& f) {
  const fs::path dir = kCpuDir / "cpu0" / "cache";
  std::vector<std::pair<long, fs::path>> indexes;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 5 && name.compare(0, 5, "index") == 0 &&
        name.find_first_not_of("0123456789", 5) == std::string::npos)
      indexes.emplace_back(std::atol(name.c_str() + 5), it->path());
  }
  std::sort(indexes.begin(), indexes.end());
  for (const auto& [number, index] : indexes) {
    std::string level, type, size;
    if (!read_text(index / "level", level) || !read_text(index / "type", type) || !read_text(index / "size", size))
      continue;
    if (type == "Instruction") continue;
    long* slot = level == "1" ? &f.l1d_bytes : level == "2" ? &f.l2_bytes : level == "3" ? &f.l3_bytes : nullptr;
    if (slot && *slot == 0) *slot = parse_size(index / "size", size);
  }
  const CacheSizes libc = libc_cache_sizes();
  if (!f.l1d_bytes) f.l1d_bytes = libc.l1d;
  if (!f.l2_bytes) f.l2_bytes = libc.l2;
  if (!f.l3_bytes) f.l3_bytes = libc.l3;
}

double max_mhz() {
  long best = 0;
  std::error_code ec;
  for (fs::directory_iterator it(kCpuDir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 3 && name.compare(0, 3, "cpu") == 0 && name[3] >= '0' && name[3] <= '9')
      best = std::max(best, read_khz(it->path() / "cpufreq" / "cpuinfo_max_freq"));
  }
  return best / 1000.0;
}

}  // namespace

DeviceFacts device_facts() {
  DeviceFacts f;
  const CpuFeatures& cpu = cpu_features();
  f.cpu_model = cpu.model;
  for (const auto& [name, value] : cpu.flags())
    if (value) f.isa_flags.push_back(name);
  struct utsname u;
  if (uname(&u) != 0) throw std::runtime_error("uname() failed: cannot tell the machine, OS and kernel");
  f.machine = u.machine;
  f.os = u.sysname;
  f.kernel = u.release;
  f.logical_cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (f.logical_cores < 1) throw std::runtime_error("sysconf(_SC_NPROCESSORS_ONLN) cannot tell how many CPUs this machine has");
  cache_sizes(f);
  f.max_mhz = max_mhz();
  return f;
}

double cpu0_mhz() {
  const long khz = read_khz(kCpuDir / "cpu0" / "cpufreq" / "scaling_cur_freq");
  if (khz > 0) return khz / 1000.0;
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || strip(line.substr(0, colon)) != "cpu MHz") continue;
    const std::string value = strip(line.substr(colon + 1));
    char* end = nullptr;
    const double mhz = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0')
      throw std::runtime_error("/proc/cpuinfo: expected a number after 'cpu MHz:', got '" + value + "'");
    return mhz > 0 ? mhz : 0;
  }
  return 0;
}

std::string device_json(const DeviceFacts& f) {
  std::string flags = "[";
  for (size_t i = 0; i < f.isa_flags.size(); ++i) flags += (i ? "," : "") + json::quote(f.isa_flags[i]);
  flags += "]";
  json::ObjectWriter o;
  o.string("cpu_model", f.cpu_model).string("machine", f.machine).string("os", f.os).raw("isa_flags", flags);
  o.integer("logical_cores", f.logical_cores);
  auto bytes = [&](const char* name, long v) { v > 0 ? o.integer(name, v) : o.null(name); };
  bytes("l1d_bytes", f.l1d_bytes);
  bytes("l2_bytes", f.l2_bytes);
  bytes("l3_bytes", f.l3_bytes);
  f.max_mhz > 0 ? o.number("max_mhz", f.max_mhz) : o.null("max_mhz");
  return o.str();
}

}  // namespace pynas
