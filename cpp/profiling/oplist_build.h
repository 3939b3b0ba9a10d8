// Builds the native network of an op list entry (oplist.h) with pseudo-random weights: what
// pynas-profile times.
#pragma once

#include <cstdint>
#include <vector>

#include "../network/network.h"
#include "oplist.h"

namespace pynas {

// Deterministic pseudo-random numbers (splitmix64): the same entry gets the same weights and
// inputs on every device and run.
class WeightRng {
 public:
  explicit WeightRng(std::uint64_t seed) : state_(seed) {}
  // Uniform in [-1, 1), on a 2^-23 grid: never denormal, NaN or infinite.
  float uniform();
  // n values uniform in [-limit, limit).
  std::vector<float> fill(size_t n, float limit);

 private:
  std::uint64_t state_;
};

// Adds `entry`'s steps to `net` (a new Network) and finalizes it. Weights are He-scaled uniform
// (variance 2 / fan_in, so activations keep their range through the network), biases uniform in
// +-0.1, seeded by the entry's key. A step the network refuses (shapes that do not fit, such as a
// residual of another shape) is an OpListError naming `path`, the step's line and the problem.
void build_oplist_network(const std::string& path, const OpListEntry& entry, Network& net);

// `count` input tensors for `net` (uniform in [-1, 1)), for the harness to rotate through.
std::vector<std::vector<float>> oplist_inputs(const OpListEntry& entry, const Network& net, int count);

}  // namespace pynas
