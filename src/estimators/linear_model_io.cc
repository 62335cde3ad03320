// A fitted linear model's bytes: version, loss, features, classes, outputs, then the weights and
// the intercept as little-endian float32.
#include <span>

#include "tessera/core/error.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/linear_model.h"

namespace tessera::estimators {
namespace {

constexpr uint32_t kLinearModelVersion = 1;
// More features than any table a process could hold; a corrupt count is refused before it is
// multiplied.
constexpr int64_t kMaxLinearFeatures = int64_t{1} << 32;
constexpr int64_t kMaxLinearClasses = int64_t{1} << 20;

// The outputs a model of `loss` with `classes` has, or -1 when the pair makes no model.
int64_t outputs_for(const std::string& loss, int64_t classes) {
  if (loss == "squared") return classes == 0 ? 1 : -1;
  if (loss == "squared_hinge") return classes == 2 ? 1 : -1;
  if (loss == "logistic" && classes >= 2 && classes <= kMaxLinearClasses) {
    return classes == 2 ? 1 : classes;
  }
  return -1;
}

void read_floats(BinaryReader& in, std::vector<float>& out, int64_t count, const char* what) {
  const auto bytes = static_cast<uint64_t>(count) * sizeof(float);
  if (auto left = in.remaining(); left && *left < bytes) {
    throw FormatError(detail::concat(in.source(), ": ", count, " ", what, " need ", bytes,
                                     " bytes, ", *left, " left"));
  }
  out.resize(static_cast<size_t>(count));
  in.read_bytes(std::as_writable_bytes(std::span(out)));
}

}  // namespace

void LinearModel::write(BinaryWriter& out) const {
  out.write_u32(kLinearModelVersion);
  out.write_string(loss);
  out.write_i64(features);
  out.write_i64(classes);
  out.write_i64(outputs);
  out.write_bytes(std::as_bytes(std::span(weights)));
  out.write_bytes(std::as_bytes(std::span(intercept)));
}

LinearModel LinearModel::read(BinaryReader& in) {
  const uint32_t version = in.read_u32();
  if (version != kLinearModelVersion) {
    throw FormatError(detail::concat(in.source(), ": linear model version ", version, ", expected ",
                                     kLinearModelVersion));
  }
  LinearModel m;
  m.loss = in.read_string(32);
  m.features = in.read_i64();
  m.classes = in.read_i64();
  m.outputs = in.read_i64();
  if (m.features < 1 || m.features > kMaxLinearFeatures) {
    throw FormatError(detail::concat(in.source(), ": ", m.features, " features"));
  }
  if (outputs_for(m.loss, m.classes) < 0 || m.outputs != outputs_for(m.loss, m.classes)) {
    throw FormatError(detail::concat(in.source(), ": no linear model has loss '", m.loss, "', ",
                                     m.classes, " classes and ", m.outputs, " outputs"));
  }
  read_floats(in, m.weights, m.features * m.outputs, "weights");
  read_floats(in, m.intercept, m.outputs, "intercepts");
  return m;
}

}  // namespace tessera::estimators
