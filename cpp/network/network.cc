#include "network.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "flush_denormals.h"
#include "../kernels/add.h"
#include "../kernels/avgpool.h"
#include "../kernels/conv.h"
#include "../kernels/dwconv.h"
#include "../kernels/fc.h"
#include "../kernels/gap.h"
#include "../kernels/gemm.h"
#include "../kernels/mbconv.h"
#include "../kernels/se.h"

namespace pynas {

void AlignedFree::operator()(float* p) const { std::free(p); }

AlignedBuffer aligned_floats(size_t n) {
  const size_t bytes = (std::max<size_t>(n, 1) * sizeof(float) + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return AlignedBuffer(p);
}

namespace {

AlignedBuffer copy_of(const float* data, size_t n) {
  AlignedBuffer out = aligned_floats(n);
  std::memcpy(out.get(), data, n * sizeof(float));
  return out;
}

size_t out_size(size_t in, int kernel, int stride) {
  return (in + 2 * static_cast<size_t>(kernel / 2) - kernel) / stride + 1;
}

// Rows per task when splitting over threads: enough work per chunk to amortise the hand-off.
size_t grain_rows(size_t row_floats) { return std::max<size_t>(1, 16384 / std::max<size_t>(row_floats, 1)); }

}  // namespace

// The count is checked before the pool starts any thread.
Network::Network(int threads) : pool_(checked_thread_count(threads)) {}

int Network::add_tensor(Shape shape) {
  shapes_.push_back(shape);
  return static_cast<int>(shapes_.size()) - 1;
}

void Network::check_tensor(int id, const char* field) const {
  if (id < 0 || id >= static_cast<int>(shapes_.size()))
    throw std::invalid_argument(std::string(field) + ": no tensor " + std::to_string(id) + " in this network");
  if (output_ >= 0) throw std::logic_error("network already finalized: no more steps can be added");
}

int Network::add_step(std::string kernel, std::vector<int> reads, Shape out, std::function<void(float* const*)> run) {
  const int id = add_tensor(out);
  steps_.push_back(Step{std::move(kernel), std::move(reads), id, std::move(run)});
  return id;
}

int Network::input(size_t h, size_t w, size_t c) {
  if (input_ >= 0) throw std::logic_error("network input already defined");
  if (!h || !w || !c) throw std::invalid_argument("input: expected a positive H x W x C shape");
  input_ = add_tensor({h, w, c});
  return input_;
}

const Network::Shape& Network::shape(int tensor) const {
  if (tensor < 0 || tensor >= static_cast<int>(shapes_.size()))
    throw std::invalid_argument("tensor: no tensor " + std::to_string(tensor) + " in this network");
  return shapes_[tensor];
}

int Network::conv(int x, const float* w_ohwi, const float* bias, size_t cout, int kernel, int stride, Act act,
                  int residual) {
  check_tensor(x, "conv input");
  const Shape in = shapes_[x];
  const Shape out{out_size(in.h, kernel, stride), out_size(in.w, kernel, stride), cout};
  if (residual >= 0) {
    check_tensor(residual, "conv residual");
    if (shapes_[residual].size() != out.size()) throw std::invalid_argument("conv residual: shape differs from output");
  }
  const KernelVariant& v = select_kernel("conv");
  weights_.push_back(aligned_floats(conv_packed_size(cout, kernel, in.c)));
  conv_pack_weights(w_ohwi, cout, kernel, in.c, weights_.back().get());
  const float* packed = weights_.back().get();
  weights_.push_back(copy_of(bias, cout));
  const float* b = weights_.back().get();
  const ConvFn fn = reinterpret_cast<ConvFn>(v.fn);
  std::vector<int> reads{x};
  if (residual >= 0) reads.push_back(residual);
  const int y = static_cast<int>(shapes_.size());
  return add_step(v.name, reads, out, [=, this](float* const* t) {
    const ConvArgs a{t[x], packed, b, residual >= 0 ? t[residual] : nullptr, t[y], in.h, in.w, in.c, out.h, out.w,
                     cout, kernel, stride, kernel / 2, act};
    pool_.parallel_for(out.h, grain_rows(out.w * cout), [&](size_t r0, size_t r1) { fn(a, r0, r1); });
  });
}

int Network::dwconv(int x, const float* w_kkc, const float* bias, int kernel, int stride, Act act) {
  check_tensor(x, "dwconv input");
  const Shape in = shapes_[x];
  const Shape out{out_size(in.h, kernel, stride), out_size(in.w, kernel, stride), in.c};
  const KernelVariant& v = select_kernel("dwconv");
  weights_.push_back(copy_of(w_kkc, static_cast<size_t>(kernel) * kernel * in.c));
  const float* w = weights_.back().get();
  weights_.push_back(copy_of(bias, in.c));
  const float* b = weights_.back().get();
  const DwConvFn fn = reinterpret_cast<DwConvFn>(v.fn);
  const int y = static_cast<int>(shapes_.size());
  return add_step(v.name, {x}, out, [=, this](float* const* t) {
    const DwConvArgs a{t[x], w, b, t[y], in.h, in.w, out.h, out.w, in.c, kernel, stride, kernel / 2, act};
    pool_.parallel_for(out.h, grain_rows(out.w * in.c), [&](size_t r0, size_t r1) { fn(a, r0, r1); });
  });
}

int Network::pointwise(int x, const float* w_oi, const float* bias, size_t cout, Act act, int residual,
                       size_t groups, bool shuffle) {
  check_tensor(x, "pointwise input");
  const Shape in = shapes_[x];
  const Shape out{in.h, in.w, cout};
  if (groups < 1 || in.c % groups != 0 || cout % groups != 0)
    throw std::invalid_argument("pointwise groups: expected a divisor of Cin = " + std::to_string(in.c) +
                                " and Cout = " + std::to_string(cout) + ", got " + std::to_string(groups));
  if (shuffle && groups == 1)
    throw std::invalid_argument("pointwise shuffle: a channel shuffle needs groups > 1 (one group: the identity)");
  if (residual >= 0) {
    check_tensor(residual, "pointwise residual");
    if (shapes_[residual].size() != out.size())
      throw std::invalid_argument("pointwise residual: shape differs from output");
  }
  const KernelVariant& v = select_kernel("gemm");
  const GemmTile tile = gemm_tile(v.name);
  const size_t cin_g = in.c / groups, cout_g = cout / groups;
  // One packed panel set per group, each starting 64-byte aligned.
  const size_t group_stride = (gemm_packed_size(cout_g, cin_g, tile.nr, tile.nr_min) + 15) / 16 * 16;
  weights_.push_back(aligned_floats(group_stride * groups));
  for (size_t g = 0; g < groups; ++g)
    gemm_pack(w_oi + g * cout_g * cin_g, cin_g, bias + g * cout_g, cout_g, cin_g, tile.nr, tile.nr_min,
              weights_.back().get() + g * group_stride);
  const float* packed = weights_.back().get();
  const GemmFn fn = reinterpret_cast<GemmFn>(v.fn);
  const size_t m = in.h * in.w;
  std::vector<int> reads{x};
  if (residual >= 0) reads.push_back(residual);
  const int y = static_cast<int>(shapes_.size());
  std::string name = v.name;
  if (groups > 1) name += "[g" + std::to_string(groups) + (shuffle ? "+shuffle]" : "]");
  // A shuffled output goes through the shared scratch: the GEMMs write a cache-sized block of rows
  // there (each thread its own rows: the block at the same row offset), which is then shuffled
  // into the output with the residual added on the way.
  const size_t block_rows = std::max<size_t>(16, (32 * 1024) / (sizeof(float) * cout));
  if (shuffle) scratch_floats_ = std::max(scratch_floats_, m * cout);
  // Few rows and many output channels (a 7 x 7 layer: 49 rows, 960 or 1280 channels): the threads
  // split the output channels in whole panels instead of the rows, so each reads only its share of
  // the weights (which dominate such a layer) and none idles for want of rows.
  // Unless the panels split unevenly where the rows would not (N = 160: 5 panels, 3 + 2 on two
  // threads, against 25 + 24 rows of 49): then the rows, each thread reading all the weights.
  const size_t row_grain = std::max<size_t>(64, grain_rows(cout));
  const size_t panels = (cout + tile.nr - 1) / tile.nr;
  const size_t threads = static_cast<size_t>(pool_.threads());
  const size_t most_panels = (panels + threads - 1) / threads;  // the busiest thread's share, of panels
  const bool panels_even = most_panels * threads * 10 <= panels * 11;  // within 10% of an even split
  const bool by_panels = threads > 1 && groups == 1 && !shuffle && m < row_grain * 2 && panels >= 2 &&
                         (panels_even || m < 16 * threads);
  const size_t grain = m >= row_grain * 2 ? row_grain : std::max<size_t>(16, m / threads);
  return add_step(name, reads, out, [=, this](float* const* t) {
    const float* res = residual >= 0 ? t[residual] : nullptr;
    float* tmp = scratch_.get();
    if (by_panels) {
      // Panels [p0, p1) are a packed layer of their own (gemm.h: every panel but the last is nr wide).
      pool_.parallel_for(panels, 1, [&](size_t p0, size_t p1) {
        const size_t n0 = p0 * tile.nr, n1 = std::min(cout, p1 * tile.nr);
        const GemmArgs a{t[x], in.c, packed + n0 * (cin_g + 1), t[y] + n0, cout, res ? res + n0 : nullptr, cout, m,
                         n1 - n0, cin_g, act};
        fn(a, 0, m);
      });
      return;
    }
    pool_.parallel_for(m, grain, [&](size_t r0, size_t r1) {
      if (!shuffle) {
        for (size_t g = 0; g < groups; ++g) {
          const GemmArgs a{t[x] + g * cin_g, in.c, packed + g * group_stride, t[y] + g * cout_g, cout,
                           res ? res + g * cout_g : nullptr, cout, m, cout_g, cin_g, act};
          fn(a, r0, r1);
        }
        return;
      }
      for (size_t m0 = r0; m0 < r1; m0 += block_rows) {
        const size_t m1 = std::min(r1, m0 + block_rows);
        for (size_t g = 0; g < groups; ++g) {
          const GemmArgs a{t[x] + g * cin_g, in.c, packed + g * group_stride, tmp + g * cout_g, cout, nullptr, 0, m,
                           cout_g, cin_g, act};
          fn(a, m0, m1);
        }
        channel_shuffle(tmp, cout, t[y], cout, res, cout, cout, groups, m0, m1);
      }
    });
  });
}

int Network::shuffle(int x, size_t groups) {
  check_tensor(x, "shuffle input");
  const Shape in = shapes_[x];
  if (groups < 2 || in.c % groups != 0)
    throw std::invalid_argument("shuffle groups: expected a divisor > 1 of C = " + std::to_string(in.c) + ", got " +
                                std::to_string(groups));
  const int y = static_cast<int>(shapes_.size());
  const size_t m = in.h * in.w;
  return add_step("channel_shuffle[g" + std::to_string(groups) + "]", {x}, in, [=, this](float* const* t) {
    pool_.parallel_for(m, grain_rows(in.c), [&](size_t r0, size_t r1) {
      channel_shuffle(t[x], in.c, t[y], in.c, nullptr, 0, in.c, groups, r0, r1);
    });
  });
}

int Network::se(int x, const float* w_reduce, const float* b_reduce, size_t reduced, const float* w_expand,
                const float* b_expand, Act act, int gate) {
  check_tensor(x, "se input");
  if (gate != 0 && gate != 1) throw std::invalid_argument("se gate: expected 0 (sigmoid) or 1 (hsigmoid)");
  const Shape in = shapes_[x];
  const KernelVariant& v = select_kernel("se");
  weights_.push_back(aligned_floats(conv_packed_size(reduced, 1, in.c)));
  conv_pack_weights(w_reduce, reduced, 1, in.c, weights_.back().get());
  const float* wr = weights_.back().get();
  weights_.push_back(aligned_floats(conv_packed_size(in.c, 1, reduced)));
  conv_pack_weights(w_expand, in.c, 1, reduced, weights_.back().get());
  const float* we = weights_.back().get();
  weights_.push_back(copy_of(b_reduce, reduced));
  const float* br = weights_.back().get();
  weights_.push_back(copy_of(b_expand, in.c));
  const float* be = weights_.back().get();
  // Workspace: sum, scale, hidden; then one more sum per further thread.
  const size_t chunks = std::min<size_t>(pool_.threads(), in.h);
  weights_.push_back(aligned_floats(2 * in.c + reduced + (chunks - 1) * in.c));
  float* work = weights_.back().get();
  const SeFn fn = reinterpret_cast<SeFn>(v.fn);
  const int y = static_cast<int>(shapes_.size());
  return add_step(v.name, {x}, in, [=, this](float* const* t) {
    const SeArgs a{t[x], t[y], in.h, in.w, in.c, reduced, wr, br, we, be, act, static_cast<Gate>(gate),
                   work, work + 2 * in.c, work + in.c};
    if (chunks <= 1) {
      fn(a, SeStage::kAll, 0, in.h);
      return;
    }
    // Several threads: each pools its rows into its own sums, one adds them and computes the gate,
    // then each scales its rows. (One thread doing all of it cost MnasNet-A1's 7x7 SE steps at two
    // threads 0.027 ms each, as much as their depthwise conv.)
    auto rows_of = [&](size_t c) { return std::pair<size_t, size_t>{in.h * c / chunks, in.h * (c + 1) / chunks}; };
    auto sums_of = [&](size_t c) { return c == 0 ? work : work + 2 * in.c + reduced + (c - 1) * in.c; };
    pool_.parallel_for(chunks, 1, [&](size_t c0, size_t c1) {
      for (size_t c = c0; c < c1; ++c) {
        SeArgs part = a;
        part.sum = sums_of(c);
        std::fill(part.sum, part.sum + in.c, 0.0f);
        fn(part, SeStage::kPool, rows_of(c).first, rows_of(c).second);
      }
    });
    for (size_t c = 1; c < chunks; ++c) {
      const float* other = sums_of(c);
      for (size_t i = 0; i < in.c; ++i) work[i] += other[i];
    }
    fn(a, SeStage::kExcite, 0, 0);
    pool_.parallel_for(chunks, 1, [&](size_t c0, size_t c1) {
      for (size_t c = c0; c < c1; ++c) fn(a, SeStage::kScale, rows_of(c).first, rows_of(c).second);
    });
  });
}

int Network::block(int x, const BlockWeights& bw, int residual) {
  check_tensor(x, "block input");
  const Shape in = shapes_[x];
  if (bw.kernel != 3 && bw.kernel != 5 && bw.kernel != 7)
    throw std::invalid_argument("block kernel: expected 3, 5 or 7, got " + std::to_string(bw.kernel));
  if (bw.stride != 1 && bw.stride != 2)
    throw std::invalid_argument("block stride: expected 1 or 2, got " + std::to_string(bw.stride));
  if (!bw.expand_w && bw.mid != in.c)
    throw std::invalid_argument("block mid: a block without expand keeps the input's " + std::to_string(in.c) +
                                " channels, got mid=" + std::to_string(bw.mid));
  if (!bw.mid || !bw.cout || !bw.dw_w || !bw.dw_b || !bw.project_w || !bw.project_b)
    throw std::invalid_argument("block: expected mid, cout, depthwise and project weights");
  if (bw.se_gate != 0 && bw.se_gate != 1) throw std::invalid_argument("block se gate: expected 0 or 1");
  const Shape out{out_size(in.h, bw.kernel, bw.stride), out_size(in.w, bw.kernel, bw.stride), bw.cout};
  if (residual >= 0) {
    check_tensor(residual, "block residual");
    if (shapes_[residual].size() != out.size()) throw std::invalid_argument("block residual: shape differs from output");
  }
  const KernelVariant& gemm = select_kernel("gemm");
  const KernelVariant& dw = select_kernel("dwconv");
  const GemmTile tile = gemm_tile(gemm.name);
  auto pack_gemm = [&](const float* w, const float* b, size_t n, size_t k) {
    weights_.push_back(aligned_floats(gemm_packed_size(n, k, tile.nr, tile.nr_min)));
    gemm_pack(w, k, b, n, k, tile.nr, tile.nr_min, weights_.back().get());
    return static_cast<const float*>(weights_.back().get());
  };
  auto keep = [&](const float* data, size_t n) {
    weights_.push_back(copy_of(data, n));
    return static_cast<const float*>(weights_.back().get());
  };
  MbconvPlan p{};
  p.in_h = in.h, p.in_w = in.w, p.cin = in.c, p.mid = bw.mid, p.cout = bw.cout, p.out_h = out.h, p.out_w = out.w;
  p.kernel = bw.kernel, p.stride = bw.stride;
  p.expand = reinterpret_cast<GemmFn>(gemm.fn);
  p.expand_packed = bw.expand_w ? pack_gemm(bw.expand_w, bw.expand_b, bw.mid, in.c) : nullptr;
  p.expand_act = bw.expand_act;
  p.dw = reinterpret_cast<DwConvFn>(dw.fn);
  p.dw_weights = keep(bw.dw_w, static_cast<size_t>(bw.kernel) * bw.kernel * bw.mid);
  p.dw_bias = keep(bw.dw_b, bw.mid);
  p.dw_act = bw.dw_act;
  std::string name = std::string("mbconv[") + (bw.expand_w ? std::string(gemm.name) + "+" : "") + dw.name;
  if (bw.se_reduced) {
    const KernelVariant& se = select_kernel("se");
    p.se = reinterpret_cast<SeFn>(se.fn);
    p.se_reduced = bw.se_reduced;
    weights_.push_back(aligned_floats(conv_packed_size(bw.se_reduced, 1, bw.mid)));
    conv_pack_weights(bw.se_w_reduce, bw.se_reduced, 1, bw.mid, weights_.back().get());
    p.se_w_reduce = weights_.back().get();
    weights_.push_back(aligned_floats(conv_packed_size(bw.mid, 1, bw.se_reduced)));
    conv_pack_weights(bw.se_w_expand, bw.mid, 1, bw.se_reduced, weights_.back().get());
    p.se_w_expand = weights_.back().get();
    p.se_b_reduce = keep(bw.se_b_reduce, bw.se_reduced);
    p.se_b_expand = keep(bw.se_b_expand, bw.mid);
    p.se_act = bw.se_act;
    p.se_gate = static_cast<Gate>(bw.se_gate);
    name += std::string("+") + se.name;
  }
  p.project = reinterpret_cast<GemmFn>(gemm.fn);
  p.project_packed = pack_gemm(bw.project_w, bw.project_b, bw.cout, bw.mid);
  p.project_act = bw.project_act;
  // Half of a 1 MB L2 (Zen 4/5; big ARM cores have 512 KB-1 MB): the rest holds the weights.
  p.band_rows = bw.band_rows ? std::min<size_t>(bw.band_rows, out.h) : mbconv_band_rows(p, 512 * 1024);
  name += "+" + std::string(gemm.name) + "] band" + std::to_string(p.band_rows);

  // Contiguous row chunks, one per thread (no more than rows), each with its own workspace.
  const size_t chunks = std::min<size_t>(pool_.threads(), out.h);
  const size_t shared = (mbconv_shared_floats(p) + 15) / 16 * 16;
  const size_t per_chunk = mbconv_chunk_floats(p);
  scratch_floats_ = std::max(scratch_floats_, shared + chunks * per_chunk);
  const int y = static_cast<int>(shapes_.size());
  std::vector<int> reads{x};
  if (residual >= 0) reads.push_back(residual);
  return add_step(name, reads, out, [=, this](float* const* t) {
    float* scratch = scratch_.get();
    const MbconvTensors tt{t[x], residual >= 0 ? t[residual] : nullptr, t[y], scratch};
    float* ws[64];
    const size_t n = std::min<size_t>(chunks, 64);
    for (size_t c = 0; c < n; ++c) ws[c] = scratch + shared + c * per_chunk;
    auto rows_of = [&](size_t c) { return std::pair<size_t, size_t>{out.h * c / n, out.h * (c + 1) / n}; };
    if (!p.has_se()) {
      pool_.parallel_for(n, 1, [&](size_t c0, size_t c1) {
        for (size_t c = c0; c < c1; ++c) mbconv_rows(p, tt, rows_of(c).first, rows_of(c).second, ws[c]);
      });
      return;
    }
    pool_.parallel_for(n, 1, [&](size_t c0, size_t c1) {
      for (size_t c = c0; c < c1; ++c) mbconv_se_pool_rows(p, tt, rows_of(c).first, rows_of(c).second, ws[c]);
    });
    mbconv_se_excite(p, tt, ws, n);
    pool_.parallel_for(n, 1, [&](size_t c0, size_t c1) {
      for (size_t c = c0; c < c1; ++c) mbconv_se_project_rows(p, tt, rows_of(c).first, rows_of(c).second, ws[0]);
    });
  });
}

int Network::avgpool(int x, int stride) {
  check_tensor(x, "avgpool input");
  const Shape in = shapes_[x];
  const Shape out{(in.h - 1) / stride + 1, (in.w - 1) / stride + 1, in.c};
  const KernelVariant& v = select_kernel("avgpool");
  const AvgPoolFn fn = reinterpret_cast<AvgPoolFn>(v.fn);
  const int y = static_cast<int>(shapes_.size());
  return add_step(v.name, {x}, out, [=, this](float* const* t) {
    const AvgPoolArgs a{t[x], t[y], in.h, in.w, out.h, out.w, in.c, stride};
    pool_.parallel_for(out.h, grain_rows(out.w * in.c), [&](size_t r0, size_t r1) { fn(a, r0, r1); });
  });
}

int Network::add(int a, int b) {
  check_tensor(a, "add input a");
  check_tensor(b, "add input b");
  if (shapes_[a].size() != shapes_[b].size()) throw std::invalid_argument("add: input shapes differ");
  const Shape out = shapes_[a];
  const KernelVariant& v = select_kernel("add");
  const AddFn fn = reinterpret_cast<AddFn>(v.fn);
  const int y = static_cast<int>(shapes_.size());
  return add_step(v.name, {a, b}, out, [=, this](float* const* t) {
    pool_.parallel_for(out.size(), 16384, [&](size_t i0, size_t i1) { fn(t[a] + i0, t[b] + i0, t[y] + i0, i1 - i0); });
  });
}

int Network::gap(int x) {
  check_tensor(x, "gap input");
  const Shape in = shapes_[x];
  const KernelVariant& v = select_kernel("gap");
  const GapFn fn = reinterpret_cast<GapFn>(v.fn);
  const int y = static_cast<int>(shapes_.size());
  return add_step(v.name, {x}, {1, 1, in.c}, [=](float* const* t) { fn(GapArgs{t[x], t[y], in.h, in.w, in.c}); });
}

int Network::fc(int x, const float* w, const float* bias, size_t cout, Act act) {
  check_tensor(x, "fc input");
  const size_t cin = shapes_[x].size();
  const KernelVariant& v = select_kernel("fc");
  weights_.push_back(aligned_floats(conv_packed_size(cout, 1, cin)));
  conv_pack_weights(w, cout, 1, cin, weights_.back().get());
  const float* packed = weights_.back().get();
  weights_.push_back(copy_of(bias, cout));
  const float* b = weights_.back().get();
  const FcFn fn = reinterpret_cast<FcFn>(v.fn);
  const int y = static_cast<int>(shapes_.size());
  // Threads split the output channels in blocks of 64 (the widest kernel's step; the packing is in
  // blocks of 16, each in_c x 16 floats), so each streams its share of the weights: a classifier's
  // weights (1280 x 1000: 5 MB) are the whole of its time.
  const size_t blocks = (cout + 63) / 64;
  return add_step(v.name, {x}, {1, 1, cout}, [=, this](float* const* t) {
    pool_.parallel_for(blocks, 1, [&](size_t b0, size_t b1) {
      const size_t c0 = 64 * b0, c1 = std::min(cout, 64 * b1);
      fn(FcArgs{t[x], packed + c0 * cin, b + c0, t[y] + c0, cin, c1 - c0, act});
    });
  });
}

void Network::finalize(int output) {
  if (output_ >= 0) throw std::logic_error("network already finalized");
  if (input_ < 0) throw std::logic_error("network has no input");
  if (output < 0 || output >= static_cast<int>(shapes_.size()) || output == input_)
    throw std::invalid_argument("output: expected the id of a tensor a step produces, got " + std::to_string(output));
  std::vector<size_t> last_read(shapes_.size(), 0);
  for (size_t i = 0; i < steps_.size(); ++i)
    for (int r : steps_[i].reads) last_read[r] = i;
  last_read[output] = std::numeric_limits<size_t>::max();
  buffer_of_.assign(shapes_.size(), -1);
  std::vector<size_t> capacity;
  std::vector<int> free_list;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const size_t need = shapes_[steps_[i].writes].size();
    // Best fit among free buffers, else a new one.
    auto best = free_list.end();
    for (auto it = free_list.begin(); it != free_list.end(); ++it)
      if (capacity[*it] >= need && (best == free_list.end() || capacity[*it] < capacity[*best])) best = it;
    if (best != free_list.end()) {
      buffer_of_[steps_[i].writes] = *best;
      free_list.erase(best);
    } else {
      buffer_of_[steps_[i].writes] = static_cast<int>(capacity.size());
      capacity.push_back(need);
    }
    // A step may read one tensor twice (a conv whose residual is its own input): free it once.
    std::vector<int> reads = steps_[i].reads;
    std::sort(reads.begin(), reads.end());
    reads.erase(std::unique(reads.begin(), reads.end()), reads.end());
    for (int r : reads)
      if (r != input_ && last_read[r] == i) free_list.push_back(buffer_of_[r]);
  }
  for (size_t cap : capacity) buffers_.push_back(aligned_floats(cap));
  if (scratch_floats_) scratch_ = aligned_floats(scratch_floats_);
  pointers_.assign(shapes_.size(), nullptr);
  for (size_t t = 0; t < shapes_.size(); ++t)
    if (buffer_of_[t] >= 0) pointers_[t] = buffers_[buffer_of_[t]].get();
  output_ = output;
}

void Network::run(const float* input, float* output) {
  if (output_ < 0) throw std::logic_error("network not finalized");
  pointers_[input_] = const_cast<float*>(input);  // kernels only read their inputs
  const FlushDenormals flush;  // a run's time must not depend on the weights' values (flush_denormals.h)
  for (const Step& step : steps_) step.run(pointers_.data());
  std::memcpy(output, pointers_[output_], shapes_[output_].size() * sizeof(float));
}

std::vector<std::vector<double>> Network::profile(const float* input, float* output, int runs) {
  if (output_ < 0) throw std::logic_error("network not finalized");
  if (runs < 1) throw std::invalid_argument("runs: expected >= 1, got " + std::to_string(runs));
  pointers_[input_] = const_cast<float*>(input);
  const FlushDenormals flush;
  std::vector<std::vector<double>> seconds(runs, std::vector<double>(steps_.size()));
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < steps_.size(); ++i) {
      steps_[i].run(pointers_.data());
      const auto t1 = std::chrono::steady_clock::now();
      seconds[r][i] = std::chrono::duration<double>(t1 - t0).count();
      t0 = t1;
    }
  }
  std::memcpy(output, pointers_[output_], shapes_[output_].size() * sizeof(float));
  return seconds;
}

std::vector<std::string> Network::describe() const {
  std::vector<std::string> out;
  for (const Step& s : steps_) {
    const Shape& o = shapes_[s.writes];
    out.push_back(s.kernel + " " + std::to_string(o.h) + "x" + std::to_string(o.w) + "x" + std::to_string(o.c));
  }
  return out;
}

size_t Network::arena_floats() const {
  size_t total = 0;
  for (size_t i = 0; i < buffers_.size(); ++i) {
    size_t cap = 0;
    for (size_t t = 0; t < shapes_.size(); ++t)
      if (buffer_of_[t] == static_cast<int>(i)) cap = std::max(cap, shapes_[t].size());
    total += cap;
  }
  return total;
}

}  // namespace pynas
