#include "oplist_build.h"

#include <cmath>
#include <new>
#include <stdexcept>
#include <string>

namespace pynas {
namespace {

// FNV-1a of the key: the weights seed.
std::uint64_t hash_key(const std::string& key) {
  std::uint64_t h = 1469598103934665603ull;
  for (const char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

float he_limit(size_t fan_in) { return std::sqrt(6.0f / static_cast<float>(fan_in)); }  // uniform, var 2/fan_in

const char* step_name(StepKind kind) {
  switch (kind) {
    case StepKind::kInput: return "input";
    case StepKind::kConv: return "conv";
    case StepKind::kDwconv: return "dwconv";
    case StepKind::kPointwise: return "pointwise";
    case StepKind::kShuffle: return "shuffle";
    case StepKind::kBlock: return "block";
    case StepKind::kSe: return "se";
    case StepKind::kAvgpool: return "avgpool";
    case StepKind::kAdd: return "add";
    case StepKind::kGap: return "gap";
    case StepKind::kFc: return "fc";
    case StepKind::kOutput: return "output";
    case StepKind::kAct: return "act";
    case StepKind::kPool: return "pool";
    case StepKind::kDwconvDilated: return "dwconv_dilated";
    case StepKind::kSum: return "sum";
    case StepKind::kConcat: return "concat";
    case StepKind::kCrop: return "crop";
    case StepKind::kZeros: return "zeros";
    case StepKind::kAffine: return "affine";
  }
  return "?";
}

// One step: returns the id of the tensor it makes (-1 for output).
int add_step(const OpListStep& s, Network& net, WeightRng& rng) {
  const float kBias = 0.1f;
  switch (s.kind) {
    case StepKind::kInput:
      return net.input(s.h, s.w, s.c);
    case StepKind::kConv: {
      const size_t cin = net.shape(s.x).c, k = s.kernel;
      const auto w = rng.fill(s.cout * k * k * cin, he_limit(k * k * cin));
      const auto b = rng.fill(s.cout, kBias);
      return net.conv(s.x, w.data(), b.data(), s.cout, s.kernel, s.stride, s.act, s.residual);
    }
    case StepKind::kDwconv: {
      const size_t c = net.shape(s.x).c, k = s.kernel;
      const auto w = rng.fill(k * k * c, he_limit(k * k));
      const auto b = rng.fill(c, kBias);
      return net.dwconv(s.x, w.data(), b.data(), s.kernel, s.stride, s.act);
    }
    case StepKind::kPointwise: {
      const size_t cin = net.shape(s.x).c, groups = static_cast<size_t>(s.groups);
      if (cin % groups || static_cast<size_t>(s.cout) % groups)
        throw std::invalid_argument("pointwise: field 'groups': expected a divisor of the input (" +
                                    std::to_string(cin) + ") and output (" + std::to_string(s.cout) +
                                    ") channels, got " + std::to_string(groups));
      const auto w = rng.fill(s.cout * (cin / groups), he_limit(cin / groups));
      const auto b = rng.fill(s.cout, kBias);
      return net.pointwise(s.x, w.data(), b.data(), s.cout, s.act, s.residual, groups, s.shuffle != 0);
    }
    case StepKind::kShuffle:
      return net.shuffle(s.x, static_cast<size_t>(s.groups));
    case StepKind::kBlock: {
      const size_t cin = net.shape(s.x).c, k = s.kernel;
      Network::BlockWeights bw;
      bw.mid = s.mid ? s.mid : cin;  // mid=0: no expand, the depthwise conv runs on the input
      bw.cout = s.cout;
      bw.kernel = s.kernel;
      bw.stride = s.stride;
      std::vector<float> ew, eb, rw, rb, xw, xb;
      if (s.mid) {
        ew = rng.fill(bw.mid * cin, he_limit(cin));
        eb = rng.fill(bw.mid, kBias);
        bw.expand_w = ew.data();
        bw.expand_b = eb.data();
        bw.expand_act = s.expand_act;
      }
      const auto dw = rng.fill(k * k * bw.mid, he_limit(k * k));
      const auto db = rng.fill(bw.mid, kBias);
      bw.dw_w = dw.data();
      bw.dw_b = db.data();
      bw.dw_act = s.dw_act;
      if (s.reduced) {
        rw = rng.fill(s.reduced * bw.mid, he_limit(bw.mid));
        rb = rng.fill(s.reduced, kBias);
        xw = rng.fill(bw.mid * s.reduced, he_limit(s.reduced));
        xb = rng.fill(bw.mid, kBias);
        bw.se_reduced = s.reduced;
        bw.se_w_reduce = rw.data();
        bw.se_b_reduce = rb.data();
        bw.se_w_expand = xw.data();
        bw.se_b_expand = xb.data();
        bw.se_act = s.se_act;
        bw.se_gate = s.gate;
      }
      const auto pw = rng.fill(s.cout * bw.mid, he_limit(bw.mid));
      const auto pb = rng.fill(s.cout, kBias);
      bw.project_w = pw.data();
      bw.project_b = pb.data();
      bw.project_act = s.project_act;
      bw.band_rows = s.band_rows;
      return net.block(s.x, bw, s.residual);
    }
    case StepKind::kSe: {
      const size_t c = net.shape(s.x).c;
      const auto rw = rng.fill(s.reduced * c, he_limit(c));
      const auto rb = rng.fill(s.reduced, kBias);
      const auto xw = rng.fill(c * s.reduced, he_limit(s.reduced));
      const auto xb = rng.fill(c, kBias);
      return net.se(s.x, rw.data(), rb.data(), s.reduced, xw.data(), xb.data(), s.act, s.gate);
    }
    case StepKind::kAvgpool:
      return net.avgpool(s.x, s.stride);
    case StepKind::kAdd:
      return net.add(s.x, s.b);
    case StepKind::kGap:
      return net.gap(s.x);
    case StepKind::kFc: {
      const size_t cin = net.shape(s.x).size();
      const auto w = rng.fill(s.cout * cin, he_limit(cin));
      const auto b = rng.fill(s.cout, kBias);
      return net.fc(s.x, w.data(), b.data(), s.cout, s.act);
    }
    case StepKind::kOutput:
      net.finalize(s.x);
      return -1;
    case StepKind::kAct:
      return net.act(s.x, s.act);
    case StepKind::kPool:
      return net.pool(s.x, s.pool_kind, s.kernel, s.stride, s.pad);
    case StepKind::kDwconvDilated: {
      const size_t c = net.shape(s.x).c, k = s.kernel;
      const auto w = rng.fill(k * k * c, he_limit(k * k));
      const auto b = rng.fill(c, kBias);
      return net.dwconv_dilated(s.x, w.data(), b.data(), s.kernel, s.stride, s.dilation, s.act);
    }
    case StepKind::kSum:
      return net.sum(s.xs);
    case StepKind::kConcat:
      return net.concat(s.xs);
    case StepKind::kCrop:
      return net.crop(s.x);
    case StepKind::kZeros:
      return net.zeros(s.h, s.w, s.c);
    case StepKind::kAffine: {
      const size_t c = net.shape(s.x).c;
      auto scale = rng.fill(c, 0.1f);  // a BatchNorm's folded scale: near 1, never 0
      for (float& v : scale) v += 1.0f;
      const auto shift = rng.fill(c, kBias);
      return net.affine(s.x, scale.data(), shift.data());
    }
  }
  throw std::logic_error("unhandled op list step");
}

}  // namespace

float WeightRng::uniform() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<std::int64_t>(z >> 40) - (1 << 23)) * (1.0f / (1 << 23));
}

std::vector<float> WeightRng::fill(size_t n, float limit) {
  std::vector<float> out(n);
  for (float& v : out) v = uniform() * limit;
  return out;
}

void build_oplist_network(const std::string& path, const OpListEntry& entry, Network& net) {
  WeightRng rng(hash_key(entry.key));
  int expected_id = 0;
  for (const OpListStep& s : entry.steps) {
    const std::string where = path + ":" + std::to_string(s.line) + ": " + step_name(s.kind) + ": ";
    int id;
    try {
      id = add_step(s, net, rng);
    } catch (const std::bad_alloc&) {
      throw OpListError(where + "out of memory building this step (are its shapes what you meant?)");
    } catch (const std::exception& e) {  // the Network's own checks: shapes, tensors
      throw OpListError(where + e.what());
    }
    // Ids in the file are the builder's by definition (oplist.h): a mismatch is a pynas bug.
    if (s.kind != StepKind::kOutput && id != expected_id)
      throw std::logic_error(where + "the network made tensor " + std::to_string(id) + ", the op list numbers it " +
                             std::to_string(expected_id));
    ++expected_id;
  }
}

std::vector<std::vector<float>> oplist_inputs(const OpListEntry& entry, const Network& net, int count) {
  WeightRng rng(hash_key(entry.key) ^ 0x5bd1e995u);
  std::vector<std::vector<float>> out;
  for (int i = 0; i < count; ++i) out.push_back(rng.fill(net.shape(0).size(), 1.0f));
  return out;
}

}  // namespace pynas
