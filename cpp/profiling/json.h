// A small JSON reader and writer for pynas-profile: it reads the features of op list entries and
// the records of a measurements file it resumes, and writes records (pynas/store/portable.py).
//
// The reader is strict in the ways the Python importer is: RFC 8259 syntax, UTF-8, no NaN or
// Infinity, no name repeated within one object (Python's json would silently keep the last one).
// Numbers keep their source text, so a value read and written again is the same JSON: "6.0" stays
// a float for Python and "6" an int (the store compares features as JSON text).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pynas::json {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // kString: the decoded string; kNumber: the number's source text
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in source order

  // The member called `name` of an object, nullptr if absent (or not an object).
  const Value* find(const std::string& name) const;
  bool is_integer() const;  // a number written without fraction or exponent
};

// Parses one JSON text, surrounding whitespace allowed; Error names the byte offset and what was
// expected.
Value parse(const std::string& text);

// Compact JSON text of a value (no spaces; strings escaped by quote(), numbers as read).
std::string dump(const Value& value);

// Whether `s` is well-formed UTF-8.
bool is_utf8(const std::string& s);

// A JSON string literal: quotes, backslash escapes for '"', '\\' and control characters (\n, \t,
// ..., else \u00XX); other characters, UTF-8 included, as they are. Error if `s` is not UTF-8
// (the importer could not decode the line).
std::string quote(const std::string& s);

// A finite number in the shortest text that reads back as the same double; Error if not finite
// (JSON has no NaN or Infinity).
std::string number(double x);

// Builds one JSON object's text member by member, in order.
class ObjectWriter {
 public:
  ObjectWriter& string(const char* name, const std::string& value);
  ObjectWriter& number(const char* name, double value);
  ObjectWriter& integer(const char* name, long long value);
  ObjectWriter& boolean(const char* name, bool value);
  ObjectWriter& null(const char* name);
  ObjectWriter& raw(const char* name, const std::string& json);  // already JSON text
  std::string str() const { return text_ + "}"; }

 private:
  ObjectWriter& member(const char* name, const std::string& json);
  std::string text_ = "{";
};

}  // namespace pynas::json
