#include "json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pynas::json {
namespace {

// Bytes of the well-formed UTF-8 character at s[i] (1-4), 0 if it is not one (bad lead or
// continuation byte, overlong form, surrogate, beyond U+10FFFF, cut off by the end).
size_t utf8_length(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  if (n == 1) return 1;
  unsigned cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const unsigned char t = static_cast<unsigned char>(s[i + k]);
    if ((t >> 6) != 0x2) return 0;
    cp = (cp << 6) | (t & 0x3F);
  }
  const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Value document() {
    skip_space();
    Value v = value(0);
    skip_space();
    if (i_ != s_.size()) fail("expected the end of the JSON text");
    return v;
  }

 private:
  // Deep nesting could overflow the stack; pynas's features are flat.
  static constexpr int kMaxDepth = 64;

  [[noreturn]] void fail(const std::string& what) const {
    std::string got = i_ < s_.size() ? "'" + s_.substr(i_, 12) + "'" : "the end of the text";
    throw Error("invalid JSON at byte " + std::to_string(i_ + 1) + ": " + what + ", got " + got);
  }

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  bool take(const char* word) {
    size_t n = 0;
    while (word[n]) ++n;
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("at most " + std::to_string(kMaxDepth) + " nested arrays or objects");
    Value v;
    if (i_ >= s_.size()) fail("expected a value");
    const char c = s_[i_];
    if (c == '{') {
      v.type = Value::Type::kObject;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
      for (;;) {
        skip_space();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a member name (a string)");
        const size_t at = i_;
        std::string name = string();
        for (const auto& member : v.object)
          if (member.first == name) {
            i_ = at;
            fail("expected each name once in an object, '" + name + "' repeats");
          }
        skip_space();
        if (i_ >= s_.size() || s_[i_] != ':') fail("expected ':'");
        ++i_;
        skip_space();
        v.object.emplace_back(std::move(name), value(depth + 1));
        skip_space();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.type = Value::Type::kArray;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
      for (;;) {
        skip_space();
        v.array.push_back(value(depth + 1));
        skip_space();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = Value::Type::kString;
      v.text = string();
      return v;
    }
    if (take("true")) { v.type = Value::Type::kBool; v.boolean = true; return v; }
    if (take("false")) { v.type = Value::Type::kBool; return v; }
    if (take("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) return number_value();
    fail("expected a value (object, array, string, number, true, false or null)");
  }

  Value number_value() {
    const size_t start = i_;
    auto digits = [&] {
      const size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ - d;
    };
    if (s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits() == 0) {
      fail("expected a digit");
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (digits() == 0) fail("expected a digit after '.'");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0) fail("expected a digit in the exponent");
    }
    Value v;
    v.type = Value::Type::kNumber;
    v.text = s_.substr(start, i_ - start);
    v.number = std::strtod(v.text.c_str(), nullptr);
    if (!std::isfinite(v.number)) {
      i_ = start;
      fail("expected a number within the range of a double");
    }
    return v;
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("expected 4 hex digits after \\u");
    unsigned u = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      u <<= 4;
      if (h >= '0' && h <= '9') u |= h - '0';
      else if (h >= 'a' && h <= 'f') u |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') u |= h - 'A' + 10;
      else { --i_; fail("expected a hex digit in a \\u escape"); }
    }
    return u;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // One UTF-8 encoded character, appended to `out` (validated: Python decodes the file as UTF-8
  // and rejects it otherwise).
  void utf8_char(std::string& out) {
    const size_t n = utf8_length(s_, i_);
    if (n == 0) fail("expected UTF-8 text");
    out.append(s_, i_, n);
    i_ += n;
  }

  std::string string() {
    ++i_;  // the opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("expected the closing '\"' of a string");
      const char c = s_[i_];
      if (c == '"') { ++i_; return out; }
      if (static_cast<unsigned char>(c) < 0x20) fail("expected no control characters in a string (escape them)");
      if (c != '\\') { utf8_char(out); continue; }
      ++i_;
      if (i_ >= s_.size()) fail("expected an escape after '\\'");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair
            if (!take("\\u")) fail("expected a low surrogate \\uDC00-\\uDFFF after a high one");
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("expected a low surrogate \\uDC00-\\uDFFF after a high one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("expected a high surrogate before a low one");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --i_;
          fail("expected one of the escapes \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
      }
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace

const Value* Value::find(const std::string& name) const {
  for (const auto& member : object)
    if (member.first == name) return &member.second;
  return nullptr;
}

bool Value::is_integer() const {
  return type == Type::kNumber && text.find_first_of(".eE") == std::string::npos;
}

Value parse(const std::string& text) { return Parser(text).document(); }

bool is_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string quote(const std::string& s) {
  if (!is_utf8(s)) throw Error("a JSON string must be UTF-8 text, got bytes that are not: '" + s + "'");
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string number(double x) {
  if (!std::isfinite(x)) throw Error("a JSON number must be finite, got " + std::to_string(x));
  char buf[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string dump(const Value& v) {
  switch (v.type) {
    case Value::Type::kNull: return "null";
    case Value::Type::kBool: return v.boolean ? "true" : "false";
    case Value::Type::kNumber: return v.text;
    case Value::Type::kString: return quote(v.text);
    case Value::Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < v.array.size(); ++i) out += (i ? "," : "") + dump(v.array[i]);
      return out + "]";
    }
    case Value::Type::kObject: {
      std::string out = "{";
      for (size_t i = 0; i < v.object.size(); ++i)
        out += (i ? "," : "") + quote(v.object[i].first) + ":" + dump(v.object[i].second);
      return out + "}";
    }
  }
  return "null";
}

ObjectWriter& ObjectWriter::member(const char* name, const std::string& json) {
  if (text_.size() > 1) text_ += ',';
  text_ += quote(name) + ":" + json;
  return *this;
}

ObjectWriter& ObjectWriter::string(const char* name, const std::string& value) { return member(name, quote(value)); }
ObjectWriter& ObjectWriter::number(const char* name, double value) { return member(name, json::number(value)); }
ObjectWriter& ObjectWriter::integer(const char* name, long long value) { return member(name, std::to_string(value)); }
ObjectWriter& ObjectWriter::boolean(const char* name, bool value) { return member(name, value ? "true" : "false"); }
ObjectWriter& ObjectWriter::null(const char* name) { return member(name, "null"); }
ObjectWriter& ObjectWriter::raw(const char* name, const std::string& json) { return member(name, json); }

}  // namespace pynas::json
