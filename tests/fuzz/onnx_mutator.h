// A structure-aware mutation for the ONNX import fuzzer (libFuzzer's LLVMFuzzerCustomMutator): parse the
// input as a ModelProto, change one thing through protobuf reflection, serialize. Byte flips mostly break a
// protobuf's lengths and varints, so they rarely reach past the parser and ONNX's checker; these keep the
// file well formed and change what the importer and the runtime read: a dimension, an attribute's value or
// type, a tensor value (NaN, infinities, huge), an op type, which value a node reads, a repeated field's
// length.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

namespace mighty::fuzz {

struct Leaf {
  google::protobuf::Message* message;
  const google::protobuf::FieldDescriptor* field;
  int index;  // -1 for a singular field
};

inline void collect_leaves(google::protobuf::Message* m, std::vector<Leaf>& leaves,
                           std::vector<Leaf>& repeated, std::vector<std::string>& names) {
  const auto* r = m->GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  for (const auto* f : fields) {
    if (f->is_repeated()) {
      repeated.push_back({m, f, -1});
      const int n = r->FieldSize(*m, f);
      for (int i = 0; i < n; ++i) {
        if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE)
          collect_leaves(r->MutableRepeatedMessage(m, f, i), leaves, repeated, names);
        else
          leaves.push_back({m, f, i});
        if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING && f->name() != "raw_data")
          names.push_back(r->GetRepeatedString(*m, f, i));
      }
    } else if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      collect_leaves(r->MutableMessage(m, f), leaves, repeated, names);
    } else {
      leaves.push_back({m, f, -1});
      if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING && f->name() != "raw_data")
        names.push_back(r->GetString(*m, f));
    }
  }
}

template <typename T>
T interesting_int(std::minstd_rand& rng, T current) {
  const T values[] = {0,
                      1,
                      2,
                      3,
                      4,
                      7,
                      16,
                      static_cast<T>(-1),
                      static_cast<T>(-2),
                      static_cast<T>(255),
                      static_cast<T>(65536),
                      static_cast<T>(int64_t{1} << 31),
                      std::numeric_limits<T>::max(),
                      std::numeric_limits<T>::min(),
                      static_cast<T>(static_cast<uint64_t>(current) + 1),
                      static_cast<T>(static_cast<uint64_t>(current) - 1),
                      static_cast<T>(static_cast<uint64_t>(current) * 2)};
  return values[rng() % (sizeof(values) / sizeof(values[0]))];
}

inline double interesting_float(std::minstd_rand& rng, double current) {
  const double values[] = {0.0,
                           -0.0,
                           1.0,
                           -1.0,
                           0.5,
                           1e-45,
                           1e-30,
                           1e30,
                           3.4e38,
                           -3.4e38,
                           1e300,
                           2.5,
                           current * -1.0,
                           current * 1e10,
                           std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN()};
  return values[rng() % (sizeof(values) / sizeof(values[0]))];
}

inline void mutate_leaf(const Leaf& leaf, std::minstd_rand& rng, const std::vector<std::string>& names) {
  using FD = google::protobuf::FieldDescriptor;
  auto* m = leaf.message;
  const auto* r = m->GetReflection();
  const auto* f = leaf.field;
  const int i = leaf.index;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32: {
      const int32_t v =
          interesting_int<int32_t>(rng, i < 0 ? r->GetInt32(*m, f) : r->GetRepeatedInt32(*m, f, i));
      i < 0 ? r->SetInt32(m, f, v) : r->SetRepeatedInt32(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_INT64: {
      const int64_t v =
          interesting_int<int64_t>(rng, i < 0 ? r->GetInt64(*m, f) : r->GetRepeatedInt64(*m, f, i));
      i < 0 ? r->SetInt64(m, f, v) : r->SetRepeatedInt64(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_UINT64: {
      const uint64_t v =
          interesting_int<uint64_t>(rng, i < 0 ? r->GetUInt64(*m, f) : r->GetRepeatedUInt64(*m, f, i));
      i < 0 ? r->SetUInt64(m, f, v) : r->SetRepeatedUInt64(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_UINT32: {
      const uint32_t v =
          interesting_int<uint32_t>(rng, i < 0 ? r->GetUInt32(*m, f) : r->GetRepeatedUInt32(*m, f, i));
      i < 0 ? r->SetUInt32(m, f, v) : r->SetRepeatedUInt32(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_FLOAT: {
      const auto v = static_cast<float>(
          interesting_float(rng, i < 0 ? r->GetFloat(*m, f) : r->GetRepeatedFloat(*m, f, i)));
      i < 0 ? r->SetFloat(m, f, v) : r->SetRepeatedFloat(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_DOUBLE: {
      const double v = interesting_float(rng, i < 0 ? r->GetDouble(*m, f) : r->GetRepeatedDouble(*m, f, i));
      i < 0 ? r->SetDouble(m, f, v) : r->SetRepeatedDouble(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_BOOL:
      if (i < 0) r->SetBool(m, f, !r->GetBool(*m, f));
      break;
    case FD::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      const auto* v = e->value(static_cast<int>(rng() % static_cast<unsigned>(e->value_count())));
      i < 0 ? r->SetEnum(m, f, v) : r->SetRepeatedEnum(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_STRING: {
      std::string v = i < 0 ? r->GetString(*m, f) : r->GetRepeatedString(*m, f, i);
      if (f->name() == "raw_data") {
        // A tensor's bytes: one 4-byte value set to something interesting, or the length changed.
        if (v.size() >= 4 && rng() % 4 != 0) {
          const auto x = static_cast<float>(interesting_float(rng, 1.0));
          std::memcpy(&v[(rng() % (v.size() / 4)) * 4], &x, 4);
        } else {
          v.resize(rng() % (v.size() + 9));
        }
      } else if (!names.empty() && rng() % 4 != 0) {
        v = names[rng() % names.size()];  // another value's name: rewires the graph
      } else {
        const char* ops[] = {"Conv",   "Gemm",    "MatMul",    "Add",         "Mul",
                             "Relu",   "MaxPool", "Reshape",   "Concat",      "Flatten",
                             "Clip",   "Softmax", "Transpose", "AveragePool", "Shape",
                             "Gather", "Erf",     "Div",       "Sub",         "LayerNormalization"};
        v = ops[rng() % (sizeof(ops) / sizeof(ops[0]))];
      }
      i < 0 ? r->SetString(m, f, v) : r->SetRepeatedString(m, f, i, v);
      break;
    }
    case FD::CPPTYPE_MESSAGE:
      break;
  }
}

// Mutates `data` (a serialized ModelProto of `size` bytes) in place; returns the new size, or 0 when the
// bytes do not parse or the result would not fit in `max_size` (the caller then mutates bytes).
inline size_t mutate_onnx(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  onnx::ModelProto model;
  if (!model.ParseFromArray(data, static_cast<int>(size))) return 0;
  std::minstd_rand rng(seed | 1u);
  std::vector<Leaf> leaves, repeated;
  std::vector<std::string> names;
  collect_leaves(&model, leaves, repeated, names);
  const unsigned what = rng() % 8;
  if (what == 0 && !repeated.empty()) {
    // A repeated field one shorter, or one longer (its last element copied).
    const Leaf& rep = repeated[rng() % repeated.size()];
    const auto* r = rep.message->GetReflection();
    const int n = r->FieldSize(*rep.message, rep.field);
    if (rng() % 2 == 0 && n > 0) {
      r->SwapElements(rep.message, rep.field, static_cast<int>(rng() % static_cast<unsigned>(n)), n - 1);
      r->RemoveLast(rep.message, rep.field);
    } else if (n > 0) {
      using FD = google::protobuf::FieldDescriptor;
      switch (rep.field->cpp_type()) {
        case FD::CPPTYPE_MESSAGE:
          r->AddMessage(rep.message, rep.field)
              ->CopyFrom(r->GetRepeatedMessage(*rep.message, rep.field, n - 1));
          break;
        case FD::CPPTYPE_INT64:
          r->AddInt64(rep.message, rep.field, r->GetRepeatedInt64(*rep.message, rep.field, n - 1));
          break;
        case FD::CPPTYPE_INT32:
          r->AddInt32(rep.message, rep.field, r->GetRepeatedInt32(*rep.message, rep.field, n - 1));
          break;
        case FD::CPPTYPE_FLOAT:
          r->AddFloat(rep.message, rep.field, r->GetRepeatedFloat(*rep.message, rep.field, n - 1));
          break;
        case FD::CPPTYPE_STRING:
          r->AddString(rep.message, rep.field, r->GetRepeatedString(*rep.message, rep.field, n - 1));
          break;
        default:
          break;
      }
    }
  } else if (!leaves.empty()) {
    mutate_leaf(leaves[rng() % leaves.size()], rng, names);
  }
  const std::string out = model.SerializeAsString();
  if (out.empty() || out.size() > max_size) return 0;
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace mighty::fuzz
