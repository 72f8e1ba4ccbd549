// The C API over Session: exceptions never cross it; they become -1/NULL and mighty_last_error().
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/input_spec.h"
#include "runtime/mighty.h"
#include "runtime/text/document_model.h"

struct mighty_model {
  explicit mighty_model(mighty::Session s) : session(std::move(s)) {}
  mighty::Session session;
  std::unique_ptr<mighty::DocumentModel> documents;  // document classifiers; reads `session`, which stays put
};

namespace {

thread_local std::string last_error;

template <typename F>
auto guarded(F&& f, decltype(f()) on_error) -> decltype(f()) {
  try {
    last_error.clear();
    return f();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown error";
  }
  return on_error;
}

mighty_model* wrap(mighty::Artifact artifact) {
  auto m = std::make_unique<mighty_model>(mighty::Session(std::move(artifact)));
  const mighty::InputSpec& spec = m->session.input_spec();  // the C API needs one
  if (spec.kind == "documents") m->documents = std::make_unique<mighty::DocumentModel>(m->session);
  return m.release();
}

}  // namespace

extern "C" {

mighty_model* mighty_load(const char* path) {
  return guarded([&] { return wrap(mighty::Artifact::open(path ? path : "")); },
                 static_cast<mighty_model*>(nullptr));
}

mighty_model* mighty_load_memory(const void* data, size_t size) {
  return guarded(
      [&] {
        if (!data && size) throw mighty::Error("mighty_load_memory: data is NULL");
        return wrap(
            mighty::Artifact::from_bytes(std::string(static_cast<const char*>(data), size), "(memory)"));
      },
      static_cast<mighty_model*>(nullptr));
}

void mighty_free(mighty_model* model) { delete model; }

const char* mighty_last_error(void) { return last_error.c_str(); }

int mighty_input_kind(const mighty_model* m) {
  if (m && m->session.input_spec().kind == "documents") return MIGHTY_INPUT_TEXT;
  return m && m->session.input_spec().kind == "text" ? MIGHTY_INPUT_TOKENS : MIGHTY_INPUT_IMAGES;
}

size_t mighty_input_size(const mighty_model* m) {
  if (!m) return 0;
  if (m->session.input_spec().kind == "documents")
    return static_cast<size_t>(m->session.input_spec().max_tokens);
  return static_cast<size_t>(m->session.input_spec().kind == "text" ? m->session.input_spec().context
                                                                    : m->session.input_spec().example_size());
}

size_t mighty_output_size(const mighty_model* m, size_t length) {
  return m ? static_cast<size_t>(m->session.output_size(static_cast<int64_t>(length))) : 0;
}

size_t mighty_label_count(const mighty_model* m) { return m ? m->session.artifact().labels().size() : 0; }

const char* mighty_label(const mighty_model* m, size_t index) {
  return (m && index < m->session.artifact().labels().size()) ? m->session.artifact().labels()[index].c_str()
                                                              : nullptr;
}

int mighty_preprocess_images(const mighty_model* m, const uint8_t* pixels, size_t count, float* out) {
  return guarded(
      [&] {
        if (!m || !pixels || !out) throw mighty::Error("mighty_preprocess_images: NULL argument");
        if (m->session.input_spec().kind != "images")
          throw mighty::Error("mighty_preprocess_images: the model takes tokens");
        const auto x = m->session.input_spec().images(pixels, static_cast<int64_t>(count));
        std::memcpy(out, x.data(), x.size() * sizeof(float));
        return 0;
      },
      -1);
}

int mighty_run(const mighty_model* m, const float* input, size_t batch, float* output) {
  return guarded(
      [&] {
        if (!m || !input || !output) throw mighty::Error("mighty_run: NULL argument");
        const auto y = m->session.run(input, static_cast<int64_t>(batch));
        std::memcpy(output, y.data(), y.size() * sizeof(float));
        return 0;
      },
      -1);
}

int mighty_run_tokens(const mighty_model* m, const int64_t* tokens, size_t batch, size_t length,
                      float* output) {
  return guarded(
      [&] {
        if (!m || !tokens || !output) throw mighty::Error("mighty_run_tokens: NULL argument");
        const auto y =
            m->session.run_tokens(tokens, static_cast<int64_t>(batch), static_cast<int64_t>(length));
        std::memcpy(output, y.data(), y.size() * sizeof(float));
        return 0;
      },
      -1);
}

int mighty_run_text(const mighty_model* m, const char* text, size_t size, float* output) {
  return guarded(
      [&] {
        if (!m || (!text && size > 0) || !output) throw mighty::Error("mighty_run_text: NULL argument");
        if (!m->documents) throw mighty::Error(m->session.artifact().name() + ": not a document classifier");
        const auto y = m->documents->run(std::string_view(text ? text : "", size));
        std::memcpy(output, y.data(), y.size() * sizeof(float));
        return 0;
      },
      -1);
}

}  // extern "C"
