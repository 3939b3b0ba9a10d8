// The device facts a measurement record carries (pynas/store/portable.py's "device" object, and
// "kernel" and "cpu_mhz"), read exactly as pynas.store.fingerprint reads them in Python, so the
// importer derives the same device id for pynas-profile's records as for Python's on one machine.
#pragma once

#include <string>
#include <vector>

namespace pynas {

struct DeviceFacts {
  std::string cpu_model;  // cpu_features().model: CPUID brand; on ARM /proc/cpuinfo or MIDR_EL1
  std::string machine;    // uname -m
  std::string os;         // uname -s
  std::string kernel;     // uname -r (not identifying: stored per measurement)
  std::vector<std::string> isa_flags;  // cpu_features() flags that are true
  long logical_cores = 0;              // sysconf(_SC_NPROCESSORS_ONLN), as Python's os.cpu_count()
  long l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;  // 0: unknown (null)
  double max_mhz = 0;  // highest cpufreq/cpuinfo_max_freq of all CPUs; 0: unknown (null)
};

// Throws std::runtime_error naming the file when sysfs holds something unreadable as a size or
// clock (Python raises StoreError there too).
DeviceFacts device_facts();

// cpu0's clock now (cpufreq scaling_cur_freq, else /proc/cpuinfo's first "cpu MHz"), 0 if unknown.
double cpu0_mhz();

// The "device" object of a record.
std::string device_json(const DeviceFacts& facts);

}  // namespace pynas
