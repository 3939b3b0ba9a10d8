// Op list files: what pynas-profile measures, written by pynas.profiling.oplist (Python) and read
// here. This comment is the format's definition.
//
// Format "pynas-oplist" version 1: UTF-8 text, lines ending in '\n' ("\r\n" is an error). Tokens
// on a line are separated by spaces or tabs. Lines that are empty or start with '#' are comments.
//
// Line 1, the header:
//
//     pynas-oplist 1
//
// Then entries, each one measurement to take: an `entry` line, a `features` line, then the steps
// of a native network (pynas._core.Network, cpp/network/network.h), `input` first and `output`
// last:
//
//     entry key=<KEY> kind=<KIND> arch=<ARCH> segment=<ID>
//     features {"cin": 32, "h": 112, ...}
//     input h=112 w=112 c=32
//     block x=0 cout=16 mid=0 kernel=3 stride=1 dw_act=re project_act=none se_reduced=0 residual=-1 band_rows=0
//     output x=1
//
// entry     key        the measurement key (segment key or architecture string), no whitespace;
//                      each key once per file
//           kind       its kind ("stem", "mbconv", ..., "network"), no whitespace
//           arch       the architecture string it comes from (no whitespace; for people and logs)
//           segment    the segment id in arch ("stem", "s1.0", "head"), or "-" for the whole network
// features  a JSON object on the rest of the line, copied into the record (the store compares
//           features as JSON, so "6.0" stays a float)
//
// Steps mirror the Network builder's methods with their scalar parameters (weights are not in the
// file: pynas-profile fills deterministic pseudo-random ones, values do not change timing). Every
// field is required (exceptions: block's conditional fields below), each once, in any order, as
// name=value. Tensors are numbered as the builder numbers them: `input` makes tensor 0, every
// further step the next one (1, 2, ...); a step names tensors made before it.
//
//     input      h w c                                    the network input, H x W x C, first step
//     conv       x cout kernel stride act residual        regular conv (kernel 1/3/5/7), + residual
//     dwconv     x kernel stride act                      depthwise (kernel 3/5/7)
//     pointwise  x cout act residual groups shuffle       1x1 conv as a GEMM, + residual; groups >= 1
//                                                         must divide the input and output channels;
//                                                         shuffle=1 (groups > 1) writes the output
//                                                         channel-shuffled (FBNet's grouped expand)
//     shuffle    x groups                                 ShuffleNet channel shuffle on its own
//     block      x cout mid kernel stride dw_act project_act se_reduced residual band_rows
//                [expand_act] [se_act se_gate]            fused inverted-residual / depthwise-
//                                                         separable block: mid=0 means no expand
//                                                         (depthwise-separable; then no expand_act),
//                                                         else expand_act is required; se_reduced=0
//                                                         means no SE (then no se_act, se_gate), else
//                                                         both are required; band_rows=0: sized to L2
//     se         x reduced act gate                       squeeze-and-excitation
//     avgpool    x stride                                 3x3 average pool, padding 1 (not counted)
//     add        a b                                      elementwise sum
//     gap        x                                        global average pool
//     fc         x cout act                               fully connected
//     output     x                                        the network output (Network::finalize):
//                                                         a tensor made by a step; ends the entry
//
// The steps of cell networks (NAS-Bench-201, DARTS, NASNet, ENAS: cpp/network/cell_steps.cc):
//
//     act             x act                               an activation on its own
//     pool            x kind kernel stride pad            kxk pooling, kind avg (padding not counted)
//                                                         or max; pad < kernel
//     dwconv_dilated  x kernel stride dilation act        depthwise conv, padding dilation*(k-1)/2
//     sum             xs                                  the sum of >= 2 tensors of one shape
//     concat          xs                                  channel concatenation, >= 2 tensors of one
//                                                         H x W, in order
//     crop            x                                   x[1:, 1:] (FactorizedReduce's shifted path)
//     zeros           h w c                               a tensor of zeros (reads nothing)
//     affine          x                                   per-channel scale and shift (a folded BN)
//
// Values: x, a, b: tensor ids; xs: two or more tensor ids separated by commas, no spaces ("3,5,6");
// residual: a tensor id or -1 (none); cout, mid, reduced, se_reduced, h, w, c: integers (h, w <=
// 16384; c, cout, mid, reduced <= 65536); stride 1 or 2; act names none, re, r6, hs, sw; gate
// sigmoid or hsigmoid; band_rows 0..16384; groups 1..64; shuffle 0 or 1; pool's kind avg or max,
// its kernel 1..7 and pad 0..6; dwconv_dilated's kernel 3, 5 or 7 and dilation 1..8.
//
// Errors name the file, the line, the field and what was expected (OpListError); a file with any
// error is rejected whole, before anything is measured.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/common.h"

namespace pynas {

struct OpListError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr const char* kOpListFormat = "pynas-oplist";
constexpr int kOpListVersion = 1;

enum class StepKind { kInput, kConv, kDwconv, kPointwise, kShuffle, kBlock, kSe, kAvgpool, kAdd, kGap, kFc, kOutput,
                      kAct, kPool, kDwconvDilated, kSum, kConcat, kCrop, kZeros, kAffine };

struct OpListStep {
  StepKind kind = StepKind::kInput;
  int line = 0;  // in the file, for errors found while building
  // The fields a step kind has (the rest keep these defaults).
  int x = -1, b = -1, residual = -1;  // tensor ids (b: add's second input)
  long h = 0, w = 0, c = 0;
  long cout = 0, mid = 0, reduced = 0, band_rows = 0;
  int kernel = 0, stride = 0;
  long groups = 1;
  int shuffle = 0;
  Act act = Act::kNone, expand_act = Act::kNone, dw_act = Act::kNone, project_act = Act::kNone;
  Act se_act = Act::kReLU;
  int gate = 0;  // 0 sigmoid, 1 hsigmoid (Network's codes)
  int pool_kind = 0;  // pool: 0 average, 1 max (Network's codes)
  int pad = 0, dilation = 1;
  std::vector<int> xs;  // sum, concat: their input tensors
};

struct OpListEntry {
  int line = 0;  // of its `entry` line
  std::string key, kind, arch, segment;  // segment "" for a whole network ("-" in the file)
  std::string features;  // compact JSON text of the features object
  std::vector<OpListStep> steps;  // input first, output last
};

struct OpList {
  std::string path;
  std::vector<OpListEntry> entries;
};

// Reads and checks a whole op list file; OpListError "<path>:<line>: ..." on the first problem.
OpList read_oplist(const std::string& path);

// The same from text (`path` only names it in errors).
OpList parse_oplist(const std::string& text, const std::string& path);

}  // namespace pynas
