#include "predictor/table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

namespace pynas {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& expected, const std::string& got) {
  throw std::invalid_argument(field + ": expected " + expected + ", got " + got);
}

std::string str(size_t v) { return std::to_string(v); }

// Latencies are ms >= 0, or NaN for a cell no token vector reads; an infinity or a negative value
// is a pricing bug that would otherwise reach the search as a plausible number.
void check_cells(const std::vector<float>& cells, const std::string& field) {
  for (size_t i = 0; i < cells.size(); ++i) {
    const float v = cells[i];
    if (std::isnan(v)) continue;
    if (!std::isfinite(v) || v < 0)
      fail(field + "[" + str(i) + "]", "a latency in ms >= 0 or NaN (unreachable)", std::to_string(v));
  }
}

}  // namespace

LatencyTable::LatencyTable(TableSpec spec) : spec_(std::move(spec)) {
  const TableSpec& s = spec_;
  const size_t d = s.cardinalities.size(), n_states = s.state_names.size();
  if (d == 0) fail("cardinalities", "at least one decision", "none");
  for (size_t i = 0; i < d; ++i)
    if (s.cardinalities[i] < 1) fail("cardinalities[" + str(i) + "]", "an integer >= 1", std::to_string(s.cardinalities[i]));
  if (s.decision_names.size() != d) fail("decision_names", str(d) + " names", str(s.decision_names.size()));
  if (n_states == 0) fail("state_names", "at least one state", "none");
  if (s.initial_state < 0 || static_cast<size_t>(s.initial_state) >= n_states)
    fail("initial_state", "a state in 0.." + str(n_states - 1), std::to_string(s.initial_state));
  if (s.blocks.empty()) fail("blocks", "at least one block", "none");
  if (s.head.size() != n_states) fail("head", str(n_states) + " values (one per state)", str(s.head.size()));
  check_cells(s.head, "head");
  // The stem plus a fitted per-network intercept, which may be negative: finite is all we ask.
  if (!std::isfinite(s.constant_ms)) fail("constant_ms", "a finite number of ms", std::to_string(s.constant_ms));
  for (int32_t c : s.cardinalities) {
    limit32_.push_back(c - 1);
    limit64_.push_back(c - 1);
  }
  // Fused tables past this many cells would not fit any cache, and their memory would surprise:
  // a layout needing more should split its slots.
  constexpr size_t kMaxFusedCells = size_t(1) << 26;

  for (const TableBlock& b : s.blocks) {
    const std::string where = "blocks[" + b.name + "]";
    if (b.chunk_tokens.empty()) fail(where + ".chunk_tokens", "at least one token", "none");
    size_t n_chunks = 1;
    for (int32_t t : b.chunk_tokens) {
      if (t < 0 || static_cast<size_t>(t) >= d) fail(where + ".chunk_tokens", "token indices in 0.." + str(d - 1), std::to_string(t));
      if (std::count(b.chunk_tokens.begin(), b.chunk_tokens.end(), t) > 1)
        fail(where + ".chunk_tokens", "distinct token indices", std::to_string(t) + " twice");
      n_chunks *= s.cardinalities[t];
      if (n_chunks > kMaxFusedCells) fail(where + ".chunk_tokens", "at most 2^26 chunks", "more");
    }
    auto check_lookup = [&](int32_t token, const std::vector<int32_t>& values, const std::string& field, int32_t lo,
                            int32_t hi) {
      if (token < -1 || token >= static_cast<int32_t>(d))
        fail(where + "." + field + "_token", "-1 (fixed) or a token index in 0.." + str(d - 1), std::to_string(token));
      const size_t expected = token < 0 ? 1 : static_cast<size_t>(s.cardinalities[token]);
      if (values.size() != expected) fail(where + "." + field, str(expected) + " values", str(values.size()));
      for (int32_t v : values)
        if (v < lo || v > hi) fail(where + "." + field, "values in " + std::to_string(lo) + ".." + std::to_string(hi), std::to_string(v));
    };
    check_lookup(b.repeats_token, b.repeats, "repeats", 0, 1 << 20);
    check_lookup(b.state_token, b.next_state, "next_state", 0, static_cast<int32_t>(n_states) - 1);
    if (b.first.size() != n_states * n_chunks)
      fail(where + ".first", str(n_states) + " x " + str(n_chunks) + " values (states x chunks)", str(b.first.size()));
    if (b.rest.size() != n_chunks) fail(where + ".rest", str(n_chunks) + " values (one per chunk)", str(b.rest.size()));
    check_cells(b.first, where + ".first");
    check_cells(b.rest, where + ".rest");

    // The slot's tokens: chunk tokens, then the repeats and state tokens unless already there.
    std::vector<int32_t> tokens = b.chunk_tokens;
    for (int32_t t : {b.repeats_token, b.state_token})
      if (t >= 0 && std::find(tokens.begin(), tokens.end(), t) == tokens.end()) tokens.push_back(t);
    size_t n_full = 1;
    for (int32_t t : tokens) {
      n_full *= s.cardinalities[t];
      if (n_full > kMaxFusedCells) fail(where, "at most 2^26 combinations of its tokens", "more");
    }
    Slot slot{};
    slot.entry_begin = static_cast<int32_t>(entries_.size());
    size_t stride = n_full;  // the last token varies fastest, as numpy.ravel_multi_index
    for (int32_t t : tokens) {
      stride /= s.cardinalities[t];
      entries_.push_back({t, static_cast<int32_t>(stride)});
    }
    slot.entry_end = static_cast<int32_t>(entries_.size());
    // What each full index means: its chunk, repeats and next state.
    std::vector<int32_t> chunk_of(n_full), repeats_of(n_full);
    slot.next_offset = next_full_.size();
    std::vector<int32_t> value(d, 0);
    for (size_t full = 0; full < n_full; ++full) {
      size_t rest_index = full;
      for (size_t k = tokens.size(); k-- > 0;) {
        value[tokens[k]] = static_cast<int32_t>(rest_index % s.cardinalities[tokens[k]]);
        rest_index /= s.cardinalities[tokens[k]];
      }
      int32_t chunk = 0;
      for (int32_t t : b.chunk_tokens) chunk = chunk * s.cardinalities[t] + value[t];
      chunk_of[full] = chunk;
      repeats_of[full] = b.repeats[b.repeats_token < 0 ? 0 : value[b.repeats_token]];
      next_full_.push_back(repeats_of[full] == 0 ? -1 : b.next_state[b.state_token < 0 ? 0 : value[b.state_token]]);
    }
    // Rows: one per state the slot has latencies for, plus the shared row of the others.
    auto fused_row = [&](const float* first) {
      for (size_t full = 0; full < n_full; ++full) {
        const int32_t reps = repeats_of[full], c = chunk_of[full];
        double ms = 0;  // an empty block costs nothing, whatever its (NaN) cells
        if (reps > 0) ms = first ? first[c] : NAN;
        if (reps > 1) ms += (reps - 1) * static_cast<double>(b.rest[c]);
        fused_.push_back(static_cast<float>(ms));
      }
    };
    slot.row_offset = row_of_.size();
    std::vector<size_t> own;
    for (size_t st = 0; st < n_states; ++st) {
      const float* first = &b.first[st * n_chunks];
      if (std::all_of(first, first + n_chunks, [](float v) { return std::isnan(v); })) continue;
      own.push_back(st);
    }
    if ((own.size() + 1) * n_full > kMaxFusedCells)
      fail(where, "a fused table of at most 2^26 cells (states it sees x its tokens' combinations)",
           str((own.size() + 1) * n_full) + " cells");
    const size_t shared_row = fused_.size();
    fused_row(nullptr);
    row_of_.resize(row_of_.size() + n_states, static_cast<uint32_t>(shared_row));
    for (size_t st : own) {
      row_of_[slot.row_offset + st] = static_cast<uint32_t>(fused_.size());
      fused_row(&b.first[st * n_chunks]);
    }
    if (fused_.size() >= (size_t(1) << 32))  // row offsets are uint32
      fail(where, "fused tables of fewer than 2^32 cells in all", str(fused_.size()) + " cells");
    slots_.push_back(slot);
  }
}

// Range check of a row: v is in 0..limit iff neither v nor limit - v is negative, so the OR of
// both over the row has its sign bit set iff some token is bad. No branch per token, and 16-byte
// vectors (SSE2 / NEON, both in their architecture's baseline) do 4 int32 or 2 int64 tokens at once.
template <typename T>
inline T row_bad(const T* row, const T* limit, size_t d) {
  constexpr size_t kLanes = 16 / sizeof(T);
  typedef T Vec __attribute__((vector_size(16)));
  Vec acc = {};
  size_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    Vec v, l;
    std::memcpy(&v, row + j, sizeof v);  // rows need not be 16-byte aligned
    std::memcpy(&l, limit + j, sizeof l);
    acc |= v | (l - v);
  }
  T bad = 0;
  for (size_t k = 0; k < kLanes; ++k) bad |= acc[k];
  for (; j < d; ++j) bad |= row[j] | (limit[j] - row[j]);
  return bad;
}

template <typename T>
void LatencyTable::bad_token(const T* row, size_t r) const {
  for (size_t j = 0; j < limit64_.size(); ++j) {
    if (row[j] >= 0 && row[j] <= limit64_[j]) continue;
    throw std::invalid_argument("tokens row " + str(r) + ", decision " + str(j) + " (" + spec_.decision_names[j] +
                                "): expected a value in 0.." + std::to_string(limit64_[j]) + ", got " +
                                std::to_string(row[j]));
  }
  throw std::logic_error("LatencyTable: a row was flagged bad but every token is in range");
}

// Walks the row through the tables as given (not the fused ones) to name the NaN cell it read.
template <typename T>
void LatencyTable::unpriced(const T* row, size_t r) const {
  int32_t state = spec_.initial_state;
  const std::string prefix = "tokens row " + str(r) + ": ";
  for (const TableBlock& b : spec_.blocks) {
    int32_t chunk = 0;
    for (int32_t t : b.chunk_tokens) chunk = chunk * spec_.cardinalities[t] + static_cast<int32_t>(row[t]);
    const int32_t reps = b.repeats[b.repeats_token < 0 ? 0 : row[b.repeats_token]];
    const std::string cell = "block " + b.name + " (state " + std::to_string(state) + " '" +
                             spec_.state_names[state] + "', chunk " + std::to_string(chunk) + ")";
    if (reps > 0 && std::isnan(b.first[size_t(state) * b.rest.size() + chunk]))
      throw UnpricedCellError(prefix + cell + ": its first repeat has no latency (NaN cell: the table was not "
                              "compiled for this input of the block)");
    if (reps > 1 && std::isnan(b.rest[chunk]))
      throw UnpricedCellError(prefix + cell + ": its later repeats have no latency (NaN cell: the table was not "
                              "compiled for " + std::to_string(reps) + " repeats of this choice)");
    if (reps > 0) state = b.next_state[b.state_token < 0 ? 0 : row[b.state_token]];
  }
  if (std::isnan(spec_.head[state]))
    throw UnpricedCellError(prefix + "head (state " + std::to_string(state) + " '" + spec_.state_names[state] +
                            "') has no latency (NaN cell: the table was not compiled for this head input)");
  throw std::logic_error("LatencyTable: a row summed to NaN but reads no NaN cell");
}

template <typename T>
void LatencyTable::predict(const T* tokens, size_t n, size_t d, float* out) const {
  if (d != limit64_.size())
    fail("tokens", "N x " + str(limit64_.size()) + " (one column per decision)", "N x " + str(d));
  const T* limit;
  if constexpr (sizeof(T) == 4) limit = limit32_.data();
  else limit = limit64_.data();
  const Entry* entries = entries_.data();
  const Slot* slots = slots_.data();
  const size_t n_slots = slots_.size();
  const uint32_t* row_of = row_of_.data();
  const float* fused = fused_.data();
  const int32_t* next_full = next_full_.data();
  const float* head = spec_.head.data();
  const int32_t initial = spec_.initial_state;
  const double constant = spec_.constant_ms;
  for (size_t r = 0; r < n; ++r) {
    const T* row = tokens + r * d;
    if (row_bad(row, limit, d) < 0) bad_token(row, r);  // before any table read
    int32_t state = initial;
    double total = constant;
    for (size_t b = 0; b < n_slots; ++b) {
      const Slot& s = slots[b];
      uint32_t full = 0;
      for (int32_t e = s.entry_begin; e < s.entry_end; ++e)
        full += static_cast<uint32_t>(row[entries[e].token]) * static_cast<uint32_t>(entries[e].stride);
      total += fused[row_of[s.row_offset + state] + full];
      // An empty block (next -1) passes the state on: a select on a mask, not a branch.
      const int32_t after = next_full[s.next_offset + full];
      const int32_t keep = after >> 31;
      state = (state & keep) | (after & ~keep);
    }
    total += head[state];
    if (std::isnan(total)) unpriced(row, r);
    out[r] = static_cast<float>(total);
  }
}

void LatencyTable::predict_batch(const int32_t* tokens, size_t n, size_t d, float* out) const {
  predict(tokens, n, d, out);
}

void LatencyTable::predict_batch(const int64_t* tokens, size_t n, size_t d, float* out) const {
  predict(tokens, n, d, out);
}

}  // namespace pynas
