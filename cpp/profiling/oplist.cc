#include "oplist.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "../kernels/act_name.h"
#include "json.h"

namespace pynas {
namespace {

// Field value types, each with its check and its "expected ..." text.
enum class FieldType { kTensor, kResidual, kSpatial, kChannels, kChannelsOrZero, kConvKernel, kDwKernel, kStride,
                       kAct, kGate, kCount, kGroups, kFlag, kTensors, kPoolKind, kPoolKernel, kPad, kDilation };

struct FieldSpec {
  const char* name;
  FieldType type;
};

struct StepSpec {
  const char* name;
  StepKind kind;
  std::vector<FieldSpec> fields;    // required
  std::vector<FieldSpec> optional;  // block only: required or forbidden depending on mid / se_reduced
};

constexpr long kMaxSpatial = 16384;
constexpr long kMaxChannels = 65536;

const std::vector<StepSpec>& step_specs() {
  using F = FieldType;
  static const std::vector<StepSpec> specs = {
      {"input", StepKind::kInput, {{"h", F::kSpatial}, {"w", F::kSpatial}, {"c", F::kChannels}}, {}},
      {"conv", StepKind::kConv,
       {{"x", F::kTensor}, {"cout", F::kChannels}, {"kernel", F::kConvKernel}, {"stride", F::kStride},
        {"act", F::kAct}, {"residual", F::kResidual}}, {}},
      {"dwconv", StepKind::kDwconv,
       {{"x", F::kTensor}, {"kernel", F::kDwKernel}, {"stride", F::kStride}, {"act", F::kAct}}, {}},
      {"pointwise", StepKind::kPointwise,
       {{"x", F::kTensor}, {"cout", F::kChannels}, {"act", F::kAct}, {"residual", F::kResidual},
        {"groups", F::kGroups}, {"shuffle", F::kFlag}}, {}},
      {"shuffle", StepKind::kShuffle, {{"x", F::kTensor}, {"groups", F::kGroups}}, {}},
      {"block", StepKind::kBlock,
       {{"x", F::kTensor}, {"cout", F::kChannels}, {"mid", F::kChannelsOrZero}, {"kernel", F::kDwKernel},
        {"stride", F::kStride}, {"dw_act", F::kAct}, {"project_act", F::kAct},
        {"se_reduced", F::kChannelsOrZero}, {"residual", F::kResidual}, {"band_rows", F::kCount}},
       {{"expand_act", F::kAct}, {"se_act", F::kAct}, {"se_gate", F::kGate}}},
      {"se", StepKind::kSe, {{"x", F::kTensor}, {"reduced", F::kChannels}, {"act", F::kAct}, {"gate", F::kGate}}, {}},
      {"avgpool", StepKind::kAvgpool, {{"x", F::kTensor}, {"stride", F::kStride}}, {}},
      {"add", StepKind::kAdd, {{"a", F::kTensor}, {"b", F::kTensor}}, {}},
      {"gap", StepKind::kGap, {{"x", F::kTensor}}, {}},
      {"fc", StepKind::kFc, {{"x", F::kTensor}, {"cout", F::kChannels}, {"act", F::kAct}}, {}},
      {"output", StepKind::kOutput, {{"x", F::kTensor}}, {}},
      {"act", StepKind::kAct, {{"x", F::kTensor}, {"act", F::kAct}}, {}},
      {"pool", StepKind::kPool,
       {{"x", F::kTensor}, {"kind", F::kPoolKind}, {"kernel", F::kPoolKernel}, {"stride", F::kStride},
        {"pad", F::kPad}}, {}},
      {"dwconv_dilated", StepKind::kDwconvDilated,
       {{"x", F::kTensor}, {"kernel", F::kDwKernel}, {"stride", F::kStride}, {"dilation", F::kDilation},
        {"act", F::kAct}}, {}},
      {"sum", StepKind::kSum, {{"xs", F::kTensors}}, {}},
      {"concat", StepKind::kConcat, {{"xs", F::kTensors}}, {}},
      {"crop", StepKind::kCrop, {{"x", F::kTensor}}, {}},
      {"zeros", StepKind::kZeros, {{"h", F::kSpatial}, {"w", F::kSpatial}, {"c", F::kChannels}}, {}},
      {"affine", StepKind::kAffine, {{"x", F::kTensor}}, {}},
  };
  return specs;
}

std::string step_names() {
  std::string s;
  for (const StepSpec& spec : step_specs()) s += (s.empty() ? "" : ", ") + std::string(spec.name);
  return s;
}

std::vector<std::string> tokens(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// Parses one file, keeping its position for messages.
class Reader {
 public:
  Reader(const std::string& text, const std::string& path) : text_(text), path_(path) {}

  OpList read() {
    OpList list;
    list.path = path_;
    std::string line;
    if (!next_line(line, false)) error("expected the header line '" + header() + "', got an empty file");
    check_header(line);
    std::map<std::string, int> keys;  // key -> line of its entry
    OpListEntry* entry = nullptr;
    bool expect_features = false;
    while (next_line(line, true)) {
      const std::vector<std::string> t = tokens(line);
      const std::string& word = t[0];
      if (word == "entry") {
        if (entry) error("expected the steps of the entry at line " + std::to_string(entry->line) +
                         " to end with an 'output' line before the next 'entry'");
        list.entries.push_back(parse_entry(t));
        entry = &list.entries.back();
        const auto [it, added] = keys.emplace(entry->key, line_);
        if (!added) error("field 'key': expected each key once per file, '" + entry->key +
                          "' is also the key of the entry at line " + std::to_string(it->second));
        expect_features = true;
      } else if (word == "features") {
        if (!entry || !expect_features) error("expected 'features' only right after an 'entry' line");
        entry->features = parse_features(line);
        expect_features = false;
      } else {
        if (!entry) error("expected an 'entry' line, got '" + word + "'");
        if (expect_features) error("expected a 'features' line after the 'entry' line, got '" + word + "'");
        entry->steps.push_back(parse_step(t, *entry));
        if (entry->steps.back().kind == StepKind::kOutput) entry = nullptr;
      }
    }
    if (entry) error("expected the entry at line " + std::to_string(entry->line) +
                     " to end with an 'output' line, got the end of the file");
    return list;
  }

 private:
  static std::string header() { return std::string(kOpListFormat) + " " + std::to_string(kOpListVersion); }

  [[noreturn]] void error(const std::string& message) const {
    throw OpListError(line_ ? path_ + ":" + std::to_string(line_) + ": " + message : path_ + ": " + message);
  }

  // The next line that is not a comment (unless `skip_comments` is false), without its '\n'.
  bool next_line(std::string& line, bool skip_comments) {
    while (pos_ < text_.size()) {
      const size_t end = text_.find('\n', pos_);
      if (end == std::string::npos) {
        ++line_;
        error("expected the line to end with '\\n' (is the file cut off?)");
      }
      line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      ++line_;
      if (line.find('\r') != std::string::npos) error("expected '\\n' line endings, got a '\\r' (a DOS file?)");
      if (!json::is_utf8(line)) error("expected UTF-8 text");
      if (skip_comments && (tokens(line).empty() || line[line.find_first_not_of(" \t")] == '#')) continue;
      return true;
    }
    return false;
  }

  void check_header(const std::string& line) {
    const std::vector<std::string> t = tokens(line);
    if (t.size() != 2 || t[0] != kOpListFormat)
      error("not an op list: expected the header line '" + header() + "', got '" + line.substr(0, 80) + "'");
    if (t[1] != std::to_string(kOpListVersion))
      error("header: expected version " + std::to_string(kOpListVersion) + " of " + kOpListFormat + ", got '" + t[1] +
            "' (a newer pynas wrote it? update pynas-profile)");
  }

  // name=value pairs after the first token; repeated and malformed ones are errors here, unknown
  // names the caller rejects.
  std::map<std::string, std::string> pairs(const std::vector<std::string>& t, const std::string& what) {
    std::map<std::string, std::string> out;
    for (size_t i = 1; i < t.size(); ++i) {
      const size_t eq = t[i].find('=');
      if (eq == std::string::npos || eq == 0)
        error(what + ": expected fields as name=value, got '" + t[i] + "'");
      const std::string name = t[i].substr(0, eq);
      if (!out.emplace(name, t[i].substr(eq + 1)).second) error(what + ": field '" + name + "' given twice");
    }
    return out;
  }

  OpListEntry parse_entry(const std::vector<std::string>& t) {
    const std::map<std::string, std::string> f = pairs(t, "entry");
    for (const auto& [name, value] : f)
      if (name != "key" && name != "kind" && name != "arch" && name != "segment")
        error("entry: unknown field '" + name + "' (expected key, kind, arch, segment)");
    auto field = [&](const char* name) {
      auto it = f.find(name);
      if (it == f.end()) error(std::string("entry: field '") + name + "' missing (expected key, kind, arch, segment)");
      if (it->second.empty()) error(std::string("entry: field '") + name + "': expected a non-empty value");
      return it->second;
    };
    OpListEntry e;
    e.line = line_;
    e.key = field("key");
    e.kind = field("kind");
    e.arch = field("arch");
    const std::string segment = field("segment");
    e.segment = segment == "-" ? "" : segment;
    return e;
  }

  std::string parse_features(const std::string& line) {
    const size_t start = line.find("features") + std::strlen("features");
    json::Value v;
    try {
      v = json::parse(line.substr(start));
    } catch (const json::Error& err) {
      error(std::string("field 'features': expected a JSON object, ") + err.what());
    }
    if (v.type != json::Value::Type::kObject) error("field 'features': expected a JSON object, got another JSON value");
    return json::dump(v);
  }

  // The integer in `text`, or an error naming the step and field.
  long integer(const std::string& text, const std::string& where, const std::string& expected) {
    errno = 0;
    char* end = nullptr;
    const long v = std::strtol(text.c_str(), &end, 10);
    const bool digits = !text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) ||
                                          (text[0] == '-' && text.size() > 1));
    if (!digits || *end != '\0' || errno == ERANGE) error(where + ": expected " + expected + ", got '" + text + "'");
    return v;
  }

  void set_field(OpListStep& s, const FieldSpec& field, const std::string& text, const std::string& step, int tensors) {
    const std::string where = step + ": field '" + field.name + "'";
    auto in_range = [&](long lo, long hi, const std::string& expected) {
      const long v = integer(text, where, expected);
      if (v < lo || v > hi) error(where + ": expected " + expected + ", got " + text);
      return v;
    };
    const std::string tensor_range = tensors > 0 ? "0.." + std::to_string(tensors - 1) : "none yet";
    long v = 0;
    switch (field.type) {
      case FieldType::kTensor:
        if (tensors == 0) error(where + ": expected a tensor id, but no tensor exists yet ('input' comes first)");
        v = in_range(0, tensors - 1, "a tensor id made by an earlier step (" + tensor_range + ")");
        break;
      case FieldType::kResidual:
        v = integer(text, where, "-1 or a tensor id");
        if (v != -1 && (v < 0 || v >= tensors))
          error(where + ": expected -1 (none) or a tensor id made by an earlier step (" + tensor_range + "), got " + text);
        break;
      case FieldType::kSpatial: v = in_range(1, kMaxSpatial, "an integer 1.." + std::to_string(kMaxSpatial)); break;
      case FieldType::kChannels: v = in_range(1, kMaxChannels, "an integer 1.." + std::to_string(kMaxChannels)); break;
      case FieldType::kChannelsOrZero:
        v = in_range(0, kMaxChannels, "an integer 0.." + std::to_string(kMaxChannels));
        break;
      case FieldType::kConvKernel:
        v = in_range(1, 7, "1, 3, 5 or 7");
        if (v % 2 == 0) error(where + ": expected 1, 3, 5 or 7, got " + text);
        break;
      case FieldType::kDwKernel:
        v = in_range(3, 7, "3, 5 or 7");
        if (v % 2 == 0) error(where + ": expected 3, 5 or 7, got " + text);
        break;
      case FieldType::kStride: v = in_range(1, 2, "1 or 2"); break;
      case FieldType::kCount: v = in_range(0, kMaxSpatial, "an integer 0.." + std::to_string(kMaxSpatial)); break;
      case FieldType::kGroups: v = in_range(1, 64, "an integer 1..64"); break;
      case FieldType::kFlag: v = in_range(0, 1, "0 or 1"); break;
      case FieldType::kPoolKernel: v = in_range(1, 7, "an integer 1..7"); break;
      case FieldType::kPad: v = in_range(0, 6, "an integer 0..6"); break;
      case FieldType::kDilation: v = in_range(1, 8, "an integer 1..8"); break;
      case FieldType::kPoolKind:
        if (text != "avg" && text != "max") error(where + ": expected avg or max, got '" + text + "'");
        s.pool_kind = text == "max";
        return;
      case FieldType::kTensors: {
        const std::string expected = "two or more tensor ids made by earlier steps (" + tensor_range +
                                     "), separated by commas";
        size_t start = 0;
        while (true) {
          const size_t comma = text.find(',', start);
          const std::string id = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          const long t = integer(id, where, expected);
          if (t < 0 || t >= tensors) error(where + ": expected " + expected + ", got " + text);
          s.xs.push_back(static_cast<int>(t));
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
        if (s.xs.size() < 2) error(where + ": expected " + expected + ", got " + text);
        return;
      }
      case FieldType::kAct: {
        Act a;
        try {
          a = parse_act(text);
        } catch (const std::invalid_argument&) {
          error(where + ": expected one of none, re, r6, hs, sw, got '" + text + "'");
        }
        const std::string n = field.name;
        (n == "act" ? s.act : n == "expand_act" ? s.expand_act : n == "dw_act" ? s.dw_act
         : n == "project_act" ? s.project_act : s.se_act) = a;
        return;
      }
      case FieldType::kGate:
        if (text != "sigmoid" && text != "hsigmoid") error(where + ": expected sigmoid or hsigmoid, got '" + text + "'");
        s.gate = text == "hsigmoid";
        return;
    }
    const std::string n = field.name;
    if (n == "x" || n == "a") s.x = static_cast<int>(v);
    else if (n == "b") s.b = static_cast<int>(v);
    else if (n == "residual") s.residual = static_cast<int>(v);
    else if (n == "h") s.h = v;
    else if (n == "w") s.w = v;
    else if (n == "c") s.c = v;
    else if (n == "cout") s.cout = v;
    else if (n == "mid") s.mid = v;
    else if (n == "reduced" || n == "se_reduced") s.reduced = v;
    else if (n == "band_rows") s.band_rows = v;
    else if (n == "kernel") s.kernel = static_cast<int>(v);
    else if (n == "stride") s.stride = static_cast<int>(v);
    else if (n == "groups") s.groups = v;
    else if (n == "shuffle") s.shuffle = static_cast<int>(v);
    else if (n == "pad") s.pad = static_cast<int>(v);
    else if (n == "dilation") s.dilation = static_cast<int>(v);
  }

  OpListStep parse_step(const std::vector<std::string>& t, const OpListEntry& entry) {
    const StepSpec* spec = nullptr;
    for (const StepSpec& candidate : step_specs())
      if (t[0] == candidate.name) spec = &candidate;
    if (!spec) error("unknown step '" + t[0] + "': expected one of entry, features, " + step_names());
    const int tensors = static_cast<int>(entry.steps.size());  // input made tensor 0, each step one more
    if (spec->kind == StepKind::kInput && tensors != 0) error("input: expected only as the first step of an entry");
    if (spec->kind != StepKind::kInput && tensors == 0)
      error(std::string(spec->name) + ": expected 'input' as the first step of an entry");
    if (spec->kind == StepKind::kOutput && tensors < 2) error("output: expected at least one step between input and output");
    std::map<std::string, std::string> f = pairs(t, spec->name);
    OpListStep s;
    s.kind = spec->kind;
    s.line = line_;
    std::string expected;
    for (const FieldSpec& field : spec->fields) expected += (expected.empty() ? "" : " ") + std::string(field.name);
    for (const FieldSpec& field : spec->optional) expected += " [" + std::string(field.name) + "]";
    for (const FieldSpec& field : spec->fields) {
      auto it = f.find(field.name);
      if (it == f.end())
        error(std::string(spec->name) + ": field '" + field.name + "' missing (expected " + expected + ")");
      set_field(s, field, it->second, spec->name, tensors);
      f.erase(it);
    }
    if (spec->kind == StepKind::kBlock) {
      // expand_act exactly when there is an expand conv; se_act and se_gate exactly with SE.
      const bool expand = s.mid > 0, se = s.reduced > 0;
      for (const FieldSpec& field : spec->optional) {
        const std::string name = field.name;
        const bool wanted = name == "expand_act" ? expand : se;
        const char* why = name == "expand_act" ? "mid" : "se_reduced";
        auto it = f.find(name);
        if (wanted && it == f.end())
          error("block: field '" + name + "' missing (required when " + why + " > 0)");
        if (!wanted && it != f.end())
          error("block: field '" + name + "': expected none when " + why + "=0, got '" + it->second + "'");
        if (it != f.end()) {
          set_field(s, field, it->second, spec->name, tensors);
          f.erase(it);
        }
      }
    }
    if (spec->kind == StepKind::kOutput && s.x == 0) error("output: field 'x': expected a tensor made by a step, not the input (0)");
    if (!f.empty())
      error(std::string(spec->name) + ": unknown field '" + f.begin()->first + "' (expected " + expected + ")");
    return s;
  }

  const std::string& text_;
  const std::string& path_;
  size_t pos_ = 0;
  int line_ = 0;
};

}  // namespace

OpList parse_oplist(const std::string& text, const std::string& path) { return Reader(text, path).read(); }

OpList read_oplist(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw OpListError(path + ": cannot read (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw OpListError(path + ": cannot read (" + std::strerror(errno) + ")");
  return parse_oplist(text.str(), path);
}

}  // namespace pynas
