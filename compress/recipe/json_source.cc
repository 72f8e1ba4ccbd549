#include "compress/recipe/json_source.h"

#include <iterator>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace mighty::compress {
namespace {

// An input iterator over the text that remembers how far the parser has read, so each SAX event can be given
// the position just after the token it reports.
class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* p, const char** furthest) : p_(p), furthest_(furthest) {}
  reference operator*() const {
    if (p_ + 1 > *furthest_) *furthest_ = p_ + 1;
    return *p_;
  }
  TrackingIterator& operator++() {
    ++p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    auto copy = *this;
    ++p_;
    return copy;
  }
  bool operator==(const TrackingIterator& o) const { return p_ == o.p_; }
  bool operator!=(const TrackingIterator& o) const { return p_ != o.p_; }

 private:
  const char* p_;
  const char** furthest_;
};

std::string escape_pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

class LocatingSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  LocatingSax(const std::string& text, const char** furthest, JsonSource& out)
      : text_(text), furthest_(furthest), out_(out) {}

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }

  bool start_object(std::size_t) override {
    std::string pointer = current_pointer();  // before value() moves an enclosing array to its next index
    value();
    frames_.push_back(Frame{true, std::move(pointer), {}, {}, 0});
    return true;
  }
  bool end_object() override {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    std::string pointer = current_pointer();  // before value() moves an enclosing array to its next index
    value();
    frames_.push_back(Frame{false, std::move(pointer), {}, {}, 0});
    return true;
  }
  bool end_array() override {
    frames_.pop_back();
    return true;
  }
  bool key(string_t& k) override {
    Frame& f = frames_.back();
    if (!f.keys.insert(k).second) {
      const auto [line, col] = position();
      throw Error(fmt::format("{}:{}:{}: {}/{}: duplicated key '{}'", out_.file, line, col, f.pointer,
                              escape_pointer_token(k), k));
    }
    f.key = k;
    return true;
  }
  bool parse_error(std::size_t byte, const std::string&, const nlohmann::detail::exception& ex) override {
    const auto [line, col] = position_of(byte == 0 ? 0 : byte - 1);
    std::string what = ex.what();
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at line L, column C: ".
    const auto colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    throw Error(fmt::format("{}:{}:{}: invalid JSON: {}", out_.file, line, col, what));
  }

 private:
  struct Frame {
    bool is_object;
    std::string pointer;
    std::set<std::string> keys;
    std::string key;
    int64_t next_index;
  };

  std::string current_pointer() {
    if (frames_.empty()) return "";
    Frame& f = frames_.back();
    if (f.is_object) return f.pointer + "/" + escape_pointer_token(f.key);
    return f.pointer + "/" + std::to_string(f.next_index);
  }

  bool value() {
    const std::string p = current_pointer();
    if (!frames_.empty() && !frames_.back().is_object) ++frames_.back().next_index;
    out_.positions[p] = position();
    return true;
  }

  std::pair<int, int> position() const {
    return position_of(static_cast<size_t>(*furthest_ - text_.data()) - 1);
  }

  std::pair<int, int> position_of(size_t offset) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return {line, col};
  }

  const std::string& text_;
  const char** furthest_;
  JsonSource& out_;
  std::vector<Frame> frames_;
};

}  // namespace

std::string JsonSource::where(const std::string& pointer) const {
  std::string p = pointer;
  while (true) {
    auto it = positions.find(p);
    if (it != positions.end()) return fmt::format("{}:{}:{}", file, it->second.first, it->second.second);
    if (p.empty()) return file;
    p = p.substr(0, p.find_last_of('/'));
  }
}

JsonSource parse_json_source(const std::string& text, const std::string& file) {
  JsonSource out;
  out.file = file;
  const char* furthest = text.data();
  LocatingSax sax(text, &furthest, out);
  TrackingIterator first(text.data(), &furthest), last(text.data() + text.size(), &furthest);
  nlohmann::json::sax_parse(first, last, &sax);
  // Positions and duplicates come from the pass above; the value itself from nlohmann's own DOM parser.
  out.value = nlohmann::json::parse(text);
  return out;
}

}  // namespace mighty::compress
