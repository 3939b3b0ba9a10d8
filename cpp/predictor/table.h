// The compiled latency lookup table: a search space's every segment latency in dense per-block
// tables, summed per token vector with no Python (a search's fast path). No Python in here: a C++
// search links pynas_native and calls predict_batch directly.
//
// Layout (pynas/space/layout.py documents it in full, and TableLayout.trace is the reference
// semantics): block slots walked in order with a state (what the next block's input is).
// Per slot: chunk = mixed-radix index of its chunk tokens (first most significant);
// repeats = repeats[token[repeats_token]]; latency 0 if repeats == 0, else
// first[state][chunk] + (repeats - 1) * rest[chunk]; when repeats > 0 the state becomes
// next_state[token[state_token]], else it passes through. Then + head[state] + constant.
// Unreachable cells are NaN; predicting a row that reads one is an error, never 0 ms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pynas {

struct TableBlock {
  std::string name;
  std::vector<int32_t> chunk_tokens;  // token indices, first most significant
  int32_t repeats_token = -1;         // -1: the block always has repeats[0] repeats
  std::vector<int32_t> repeats;       // per value of repeats_token (one value when fixed)
  int32_t state_token = -1;           // -1: a non-empty block always leaves next_state[0]
  std::vector<int32_t> next_state;    // per value of state_token (one value when fixed)
  std::vector<float> first;           // [n_states][n_chunks] ms, NaN where unreachable
  std::vector<float> rest;            // [n_chunks] ms, NaN where unreachable
};

struct TableSpec {
  std::vector<int32_t> cardinalities;       // per decision (token)
  std::vector<std::string> decision_names;  // per decision, for error messages
  std::vector<std::string> state_names;     // per state, for error messages
  int32_t initial_state = 0;
  std::vector<TableBlock> blocks;
  std::vector<float> head;  // [n_states] ms, NaN where unreachable
  double constant_ms = 0;   // segments every network has (stem) + per-network overhead
};

// A row read a NaN (unpriced) cell: the table and the token vectors disagree on the space.
class UnpricedCellError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class LatencyTable {
 public:
  // std::invalid_argument naming the field when the spec is inconsistent (sizes, indices out of
  // range, infinite or negative latencies).
  explicit LatencyTable(TableSpec spec);

  // out[i] = predicted ms of row i of the n x d row-major token array. std::invalid_argument
  // (row, decision index and name, value, allowed range) for a bad token or d;
  // UnpricedCellError (row, block, state, chunk) for a row reading a NaN cell.
  void predict_batch(const int32_t* tokens, size_t n, size_t d, float* out) const;
  void predict_batch(const int64_t* tokens, size_t n, size_t d, float* out) const;

  const TableSpec& spec() const { return spec_; }
  size_t n_decisions() const { return spec_.cardinalities.size(); }
  size_t n_blocks() const { return spec_.blocks.size(); }
  size_t n_states() const { return spec_.state_names.size(); }

 private:
  // Hot-loop form. Each slot's tokens (chunk tokens, then the repeats and state tokens if not
  // among them) form its "full" mixed-radix index, and the slot's cost and next state are
  // precomputed per (state, full index): a row costs one range check, one multiply-add per token
  // and three table reads per slot, with no branch on the row's values. Values equal the
  // layout's formula exactly as computed in double, then rounded to float once.
  struct Entry {
    int32_t token;
    int32_t stride;  // in the slot's full index
  };
  struct Slot {
    int32_t entry_begin, entry_end;  // into entries_
    size_t row_offset;               // into row_of_: per state, the offset of its row in fused_
    size_t next_offset;              // into next_full_: per full index
  };

  template <typename T>
  void predict(const T* tokens, size_t n, size_t d, float* out) const;
  template <typename T>
  [[noreturn]] void bad_token(const T* row, size_t r) const;
  template <typename T>
  [[noreturn]] void unpriced(const T* row, size_t r) const;

  TableSpec spec_;  // as given: error messages and the diagnosis of a NaN read use it
  std::vector<int32_t> limit32_;  // per decision: cardinality - 1
  std::vector<int64_t> limit64_;
  std::vector<Entry> entries_;
  std::vector<Slot> slots_;
  // Per slot and state: where the state's row of the slot's fused table starts. States whose
  // `first` row is all NaN (the slot never sees them) share one row: 0 where the block is empty
  // (it passes any state on), NaN elsewhere.
  std::vector<uint32_t> row_of_;
  std::vector<float> fused_;       // per slot, per row, per full index: ms of the block
  std::vector<int32_t> next_full_;  // per slot, per full index: the next state, -1 = passes it on
};

}  // namespace pynas
