#include "tessera/tensor/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "kernels/strided_loop.h"

namespace tessera {
namespace {

// Reads element i of a buffer of dtype as double; writes double into dtype.
double load_as_double(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kFloat32:
      return static_cast<const float*>(base)[i];
    case DType::kFloat64:
      return static_cast<const double*>(base)[i];
    case DType::kInt32:
      return static_cast<const int32_t*>(base)[i];
    case DType::kInt64:
      return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::kBFloat16:
      return from_bfloat16(static_cast<const BFloat16*>(base)[i]);
    case DType::kFloat16:
      return from_float16(static_cast<const Float16*>(base)[i]);
  }
  return 0.0;
}

void store_from_double(void* base, DType dtype, int64_t i, double v) {
  switch (dtype) {
    case DType::kFloat32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      break;
    case DType::kFloat64:
      static_cast<double*>(base)[i] = v;
      break;
    case DType::kInt32:
      static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v);
      break;
    case DType::kInt64:
      static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v);
      break;
    case DType::kBFloat16:
      static_cast<BFloat16*>(base)[i] = to_bfloat16(static_cast<float>(v));
      break;
    case DType::kFloat16:
      static_cast<Float16*>(base)[i] = to_float16(static_cast<float>(v));
      break;
  }
}

template <typename T>
void copy_same_type(const Tensor& dst, const Tensor& src) {
  T* d = dst.data<T>();
  const T* s = src.data<T>();
  kernels::strided_loop<2>(
      dst.shape(), {dst.strides(), src.strides()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
        T* dp = d + off[0];
        const T* sp = s + off[1];
        if (inc[0] == 1 && inc[1] == 1) {
          std::memcpy(dp, sp, static_cast<size_t>(n) * sizeof(T));
        } else {
          for (int64_t i = 0; i < n; ++i) dp[i * inc[0]] = sp[i * inc[1]];
        }
      });
}

}  // namespace

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
               DType dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      numel_(shape_numel(shape_)),
      dtype_(dtype),
      device_(storage_->device()) {}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  const size_t bytes = shape_bytes(shape, dtype_size(dtype), "Tensor::empty");
  auto storage = Storage::allocate(bytes, device);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::over(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype) {
  const size_t bytes = shape_bytes(shape, dtype_size(dtype), "Tensor::over");
  if (storage == nullptr || storage->nbytes() < bytes) {
    throw ShapeError("Tensor::over: storage of " + std::to_string(storage ? storage->nbytes() : 0) +
                     " bytes is too small for " + shape_str(shape) + " " + dtype_name(dtype));
  }
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) store_from_double(t.raw_data(), dtype, i, static_cast<double>(i));
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) store_from_double(t.raw_data(), dtype, i, gen.normal());
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, double low, double high, DType dtype) {
  Tensor t = empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    store_from_double(t.raw_data(), dtype, i, gen.uniform(low, high));
  }
  return t;
}

int64_t Tensor::size(int64_t axis) const { return shape_[normalize_axis(axis, dim(), "size")]; }

void* Tensor::raw_data() const {
  if (!storage_) throw ValueError("Tensor::data: tensor is undefined");
  if (storage_->released() && numel_ > 0) {
    throw ValueError(
        "Tensor::data: the tensor's storage is released (a fully sharded layer's parameter used "
        "while its layer is not gathered)");
  }
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::view_with(Shape shape, Shape strides, int64_t offset) const {
  Tensor t = *this;
  t.numel_ = shape_numel(shape, "view");
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape resolved = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      if (infer >= 0) throw ShapeError("reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int>(i);
    } else if (resolved[i] < 0) {
      throw ShapeError("reshape: negative dimension in " + shape_str(shape));
    } else if (__builtin_mul_overflow(known, resolved[i], &known)) {
      throw ShapeError(detail::concat("reshape: shape ", shape_str(shape),
                                      " has more elements than fit in a 64-bit count"));
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_ % known != 0) {
      throw ShapeError(detail::concat("reshape: cannot reshape ", shape_str(shape_), " (", numel_,
                                      " elements) into ", shape_str(shape)));
    }
    resolved[infer] = numel_ / known;
  }
  if (shape_numel(resolved, "reshape") != numel_) {
    throw ShapeError(detail::concat("reshape: cannot reshape ", shape_str(shape_), " (", numel_,
                                    " elements) into ", shape_str(shape)));
  }
  Tensor base = contiguous();
  return base.view_with(resolved, contiguous_strides(resolved), base.offset_);
}

Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end, int64_t step) const {
  int64_t a = normalize_axis(axis, dim(), "slice");
  if (step < 1) throw ValueError(detail::concat("slice: step ", step, " must be >= 1"));
  int64_t n = shape_[a];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = shape_;
  Shape strides = strides_;
  shape[a] = (end - start + step - 1) / step;
  strides[a] = strides_[a] * step;
  return view_with(shape, strides, offset_ + start * strides_[a]);
}

Tensor Tensor::select(int64_t axis, int64_t index) const {
  int64_t a = normalize_axis(axis, dim(), "select");
  if (index < 0) index += shape_[a];
  if (index < 0 || index >= shape_[a]) {
    throw IndexError(detail::concat("select: index ", index, " out of range for axis ", a,
                                    " of shape ", shape_str(shape_)));
  }
  Shape shape = shape_;
  Shape strides = strides_;
  shape.erase(shape.begin() + a);
  strides.erase(strides.begin() + a);
  return view_with(shape, strides, offset_ + index * strides_[a]);
}

Tensor Tensor::transpose(int64_t axis0, int64_t axis1) const {
  int64_t a = normalize_axis(axis0, dim(), "transpose");
  int64_t b = normalize_axis(axis1, dim(), "transpose");
  Shape shape = shape_;
  Shape strides = strides_;
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return view_with(shape, strides, offset_);
}

Tensor Tensor::t() const {
  if (dim() != 2) throw ShapeError("t: expected a 2-D tensor, got " + shape_str(shape_));
  return transpose(0, 1);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  if (static_cast<int64_t>(order.size()) != dim()) {
    throw ShapeError(detail::concat("permute: order has ", order.size(), " axes, tensor ",
                                    shape_str(shape_), " has ", dim()));
  }
  Shape shape(order.size());
  Shape strides(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t a = normalize_axis(order[i], dim(), "permute");
    if (seen[a]) throw ValueError(detail::concat("permute: axis ", a, " repeated"));
    seen[a] = true;
    shape[i] = shape_[a];
    strides[i] = strides_[a];
  }
  return view_with(shape, strides, offset_);
}

Tensor Tensor::expand(const Shape& shape) const {
  (void)shape_numel(shape, "expand");
  if (shape.size() < shape_.size()) {
    throw ShapeError(
        detail::concat("expand: cannot expand ", shape_str(shape_), " to ", shape_str(shape)));
  }
  size_t lead = shape.size() - shape_.size();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    int64_t own = shape_[i - lead];
    if (own == shape[i]) {
      strides[i] = strides_[i - lead];
    } else if (own != 1) {
      throw ShapeError(
          detail::concat("expand: cannot expand ", shape_str(shape_), " to ", shape_str(shape)));
    }
  }
  return view_with(shape, strides, offset_);
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device_);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  Tensor s = src.shape_ == shape_ ? src : src.expand(shape_);
  if (s.dtype_ == dtype_) {
    switch (dtype_) {
      case DType::kFloat32:
        copy_same_type<float>(*this, s);
        return;
      case DType::kFloat64:
        copy_same_type<double>(*this, s);
        return;
      case DType::kInt32:
        copy_same_type<int32_t>(*this, s);
        return;
      case DType::kInt64:
        copy_same_type<int64_t>(*this, s);
        return;
      case DType::kBFloat16:
        copy_same_type<BFloat16>(*this, s);
        return;
      case DType::kFloat16:
        copy_same_type<Float16>(*this, s);
        return;
    }
  }
  void* d = raw_data();
  const void* sp = s.raw_data();
  DType dd = dtype_;
  DType sd = s.dtype_;
  kernels::strided_loop<2>(
      shape_, {strides_, s.strides_},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
        for (int64_t i = 0; i < n; ++i) {
          store_from_double(d, dd, off[0] + i * inc[0],
                            load_as_double(sp, sd, off[1] + i * inc[1]));
        }
      });
}

Tensor& Tensor::fill_(double value) {
  Tensor one = empty({}, dtype_, device_);
  store_from_double(one.raw_data(), dtype_, 0, value);
  copy_from(one);
  return *this;
}

double Tensor::item() const {
  if (numel_ != 1) {
    throw ShapeError("item: expected a one-element tensor, got " + shape_str(shape_));
  }
  return load_as_double(raw_data(), dtype_, 0);
}

double Tensor::at(const std::vector<int64_t>& index) const {
  if (static_cast<int64_t>(index.size()) != dim()) {
    throw IndexError(
        detail::concat("at: ", index.size(), " indices for shape ", shape_str(shape_)));
  }
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    if (index[i] < 0 || index[i] >= shape_[i]) {
      throw IndexError(detail::concat("at: index ", index[i], " out of range for axis ", i,
                                      " of shape ", shape_str(shape_)));
    }
    off += index[i] * strides_[i];
  }
  return load_as_double(raw_data(), dtype_, off);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(dtype_of<T>()).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + numel_);
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

std::string Tensor::to_string() const {
  std::ostringstream out;
  out << "Tensor(" << shape_str(shape_) << ", " << dtype_name(dtype_) << ")";
  if (defined() && numel_ <= 16) {
    Tensor c = to(DType::kFloat64).contiguous();
    out << " [";
    for (int64_t i = 0; i < numel_; ++i) out << (i ? ", " : "") << c.data<double>()[i];
    out << "]";
  }
  return out.str();
}

}  // namespace tessera
