#include "tessera/tensor/tensor.h"

#include <cmath>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/core/error.h"
#include "tessera/tensor/storage.h"
#include "testing/tensor_assertions.h"

namespace tessera {
namespace {

using testing::tensors_close;
using testing::tensors_equal;

// 0, 1, ..., numel-1 as float64 in the given shape.
Tensor iota(const Shape& shape) {
  return Tensor::arange(shape_numel(shape), DType::kFloat64).reshape(shape);
}

TEST(Tensor, FactoriesGiveTheRequestedShapeDtypeAndValues) {
  Tensor z = Tensor::zeros({2, 3}, DType::kFloat64);
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::kFloat64);
  EXPECT_EQ(z.nbytes(), 48u);
  EXPECT_TRUE(z.is_contiguous());
  for (double v : z.to_vector<double>()) EXPECT_EQ(v, 0.0);
  for (double v : Tensor::ones({4}).to_vector<double>()) EXPECT_EQ(v, 1.0);
  for (int32_t v : Tensor::full({3}, -2.0, DType::kInt32).to_vector<int32_t>()) EXPECT_EQ(v, -2);
  EXPECT_EQ(Tensor::arange(4, DType::kInt64).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 2, 3}));
  Tensor s = Tensor::scalar(2.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 2.5);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, DataIsAlignedForVectorLoads) {
  for (int64_t n : {1, 3, 17, 1000}) {
    auto address = reinterpret_cast<uintptr_t>(Tensor::empty({n}).raw_data());
    EXPECT_EQ(address % Storage::kAlignment, 0u);
  }
}

TEST(Tensor, StorageBytesCountLiveTensorsAndTheirPeak) {
  const size_t before = live_storage_bytes();
  reset_peak_storage_bytes();
  {
    Tensor a = Tensor::empty({1000});
    Tensor view = a.slice(0, 0, 10);  // a view adds no storage
    EXPECT_EQ(live_storage_bytes(), before + 4000);
    {
      Tensor b = Tensor::empty({500}, DType::kFloat64);
      EXPECT_EQ(live_storage_bytes(), before + 8000);
    }
    EXPECT_EQ(live_storage_bytes(), before + 4000);
    // Wrapped memory is storage too: DDP's buckets live in memory the process group hands out.
    constexpr std::align_val_t kAlignment{Storage::kAlignment};
    std::shared_ptr<std::byte[]> memory(
        static_cast<std::byte*>(::operator new(256, kAlignment)),
        [kAlignment](std::byte* p) { ::operator delete(p, kAlignment); });
    auto wrapped = Storage::wrap(memory, 256);
    EXPECT_EQ(live_storage_bytes(), before + 4256);
  }
  EXPECT_EQ(live_storage_bytes(), before);
  EXPECT_EQ(peak_storage_bytes(), before + 8000);
  reset_peak_storage_bytes();
  EXPECT_EQ(peak_storage_bytes(), before);
}

TEST(Tensor, RandomFactoriesAreDeterministicPerSeed) {
  Generator a(4), b(4);
  EXPECT_TRUE(tensors_equal(Tensor::randn({5}, a), Tensor::randn({5}, b)));
  Tensor u = Tensor::rand({100}, a, 2.0, 3.0, DType::kFloat64);
  for (double v : u.to_vector<double>()) {
    EXPECT_GE(v, 2.0);
    EXPECT_LT(v, 3.0);
  }
}

TEST(Tensor, FromVectorRejectsTheWrongCount) {
  EXPECT_THROW(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), ShapeError);
  EXPECT_THROW(Tensor::empty({2, -1}), ShapeError);
}

TEST(Tensor, DataOfTheWrongTypeThrowsDTypeError) {
  Tensor t = Tensor::zeros({2});
  EXPECT_THROW((void)t.data<double>(), DTypeError);
  EXPECT_THROW((void)Tensor().raw_data(), ValueError);
  EXPECT_THROW((void)Tensor::zeros({2, 3}).t().span<float>(), ValueError);  // not contiguous
}

TEST(TensorViews, ReshapeOfAContiguousTensorSharesStorage) {
  Tensor a = iota({2, 6});
  Tensor r = a.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  EXPECT_EQ(r.storage(), a.storage());
  r.select(0, 1).fill_(-1.0);  // elements 4..7
  EXPECT_EQ(a.at({0, 4}), -1.0);
  EXPECT_EQ(a.at({1, 1}), -1.0);
  EXPECT_EQ(a.at({1, 2}), 8.0);
}

TEST(TensorViews, ReshapeOfANonContiguousTensorCopies) {
  Tensor a = iota({2, 3});
  Tensor r = a.t().reshape({6});
  EXPECT_NE(r.storage(), a.storage());
  EXPECT_EQ(r.to_vector<double>(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorViews, SliceIsAViewWithAStep) {
  Tensor a = iota({3, 7});
  Tensor s = a.slice(1, 1, 7, 2);  // columns 1, 3, 5
  EXPECT_EQ(s.shape(), (Shape{3, 3}));
  EXPECT_EQ(s.strides(), (Shape{7, 2}));
  EXPECT_EQ(s.storage(), a.storage());
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.at({2, 1}), 17.0);
  s.fill_(0.0);
  EXPECT_EQ(a.at({2, 3}), 0.0);
  EXPECT_EQ(a.at({2, 2}), 16.0);
  // Negative bounds count from the end; bounds past the end clamp.
  EXPECT_EQ(a.slice(0, -2, 100).shape(), (Shape{2, 7}));
  EXPECT_EQ(a.slice(0, 2, 1).shape(), (Shape{0, 7}));
  EXPECT_EQ(a.slice(1, 0, 7, 3).shape(), (Shape{3, 3}));
  EXPECT_THROW(a.slice(1, 0, 7, 0), ValueError);
}

TEST(TensorViews, SelectDropsAnAxisAsAView) {
  Tensor a = iota({2, 3, 4});
  Tensor s = a.select(1, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 4}));
  EXPECT_EQ(s.storage(), a.storage());
  EXPECT_EQ(s.at({1, 3}), 23.0);
  EXPECT_EQ(a.select(-1, -1).at({0, 0}), 3.0);
  s.fill_(5.0);
  EXPECT_EQ(a.at({0, 2, 0}), 5.0);
}

TEST(TensorViews, TransposeAndPermuteSwapStridesWithoutCopying) {
  Tensor a = iota({2, 3, 4});
  Tensor t = a.transpose(0, 2);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_EQ(t.storage(), a.storage());
  EXPECT_EQ(t.at({3, 1, 1}), a.at({1, 1, 3}));
  Tensor p = a.permute({1, 2, 0});
  EXPECT_EQ(p.shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(p.at({2, 1, 1}), a.at({1, 2, 1}));
  EXPECT_EQ(p.storage(), a.storage());
  EXPECT_THROW(a.permute({0, 0, 1}), ValueError);
  EXPECT_THROW(a.permute({0, 1}), ShapeError);
  EXPECT_THROW(a.t(), ShapeError);
}

TEST(TensorViews, ExpandBroadcastsWithStrideZero) {
  Tensor row = iota({1, 3});
  Tensor e = row.expand({4, 3});
  EXPECT_EQ(e.strides(), (Shape{0, 1}));
  EXPECT_EQ(e.storage(), row.storage());
  EXPECT_EQ(e.at({3, 2}), 2.0);
  Tensor lead = iota({3}).expand({2, 2, 3});
  EXPECT_EQ(lead.strides(), (Shape{0, 0, 1}));
  EXPECT_THROW(iota({2, 3}).expand({4, 3}), ShapeError);
  EXPECT_THROW(iota({2, 3}).expand({3}), ShapeError);
}

TEST(TensorViews, ContiguousCopiesOnlyWhenNeeded) {
  Tensor a = iota({3, 4});
  EXPECT_EQ(a.contiguous().storage(), a.storage());
  Tensor t = a.t();
  Tensor c = t.contiguous();
  EXPECT_NE(c.storage(), a.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_TRUE(tensors_equal(c, t));
  // A size-1 axis does not make a tensor non-contiguous, whatever its stride.
  EXPECT_TRUE(a.slice(0, 1, 2).is_contiguous());
  EXPECT_FALSE(a.slice(1, 1, 3).is_contiguous());
}

TEST(TensorViews, CloneIsIndependent) {
  Tensor a = iota({2, 2});
  Tensor c = a.clone();
  c.fill_(9.0);
  EXPECT_EQ(a.at({1, 1}), 3.0);
  Tensor from_view = a.t().clone();
  EXPECT_TRUE(from_view.is_contiguous());
  EXPECT_EQ(from_view.to_vector<double>(), (std::vector<double>{0, 2, 1, 3}));
}

TEST(TensorViews, ViewsOfViewsKeepTheirOffsets) {
  Tensor a = iota({4, 5});
  Tensor v = a.slice(0, 1, 4).slice(1, 2, 5).t();  // rows 1..3, columns 2..4, transposed
  EXPECT_EQ(v.shape(), (Shape{3, 3}));
  EXPECT_EQ(v.offset(), 7);
  EXPECT_EQ(v.at({0, 0}), 7.0);
  EXPECT_EQ(v.at({2, 1}), 14.0);
  EXPECT_EQ(v.contiguous().to_vector<double>(),
            (std::vector<double>{7, 12, 17, 8, 13, 18, 9, 14, 19}));
}

TEST(CopyFrom, BroadcastsTheSource) {
  Tensor dst = Tensor::zeros({2, 3}, DType::kFloat64);
  dst.copy_from(Tensor::from_vector<double>({1, 2, 3}, {3}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  dst.copy_from(Tensor::from_vector<double>({7, 8}, {2, 1}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{7, 7, 7, 8, 8, 8}));
  EXPECT_THROW(dst.copy_from(Tensor::zeros({4}, DType::kFloat64)), ShapeError);
}

TEST(CopyFrom, ConvertsTheDtype) {
  Tensor src = Tensor::from_vector<double>({2.75, -2.75, 1e10, 0.5}, {4});
  Tensor f = Tensor::empty({4}, DType::kFloat32);
  f.copy_from(src);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{2.75f, -2.75f, 1e10f, 0.5f}));
  Tensor i = Tensor::empty({2}, DType::kInt32);
  i.copy_from(src.slice(0, 0, 2));
  EXPECT_EQ(i.to_vector<int32_t>(), (std::vector<int32_t>{2, -2}));  // truncates toward zero
  Tensor broadcast = Tensor::empty({3}, DType::kInt64);
  broadcast.copy_from(src.slice(0, 3, 4));
  EXPECT_EQ(broadcast.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0}));
  Tensor back = Tensor::empty({2}, DType::kFloat64);
  back.copy_from(Tensor::from_vector<int64_t>({-3, 1LL << 40}, {2}));
  EXPECT_EQ(back.to_vector<double>(), (std::vector<double>{-3.0, 1099511627776.0}));
  EXPECT_EQ(src.to(DType::kFloat64).storage(), src.storage());  // already that dtype: no copy
  EXPECT_EQ(src.to(DType::kInt64).to_vector<int64_t>(),
            (std::vector<int64_t>{2, -2, 10000000000, 0}));
}

TEST(CopyFrom, WritesIntoANonContiguousDestination) {
  Tensor base = Tensor::zeros({3, 2}, DType::kFloat64);
  Tensor dst = base.t();  // [2, 3] view
  dst.copy_from(iota({2, 3}));
  EXPECT_EQ(base.to_vector<double>(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  Tensor strided = Tensor::zeros({2, 6}, DType::kFloat32);
  strided.slice(1, 1, 6, 2).copy_from(Tensor::ones({2, 3}, DType::kFloat64));
  EXPECT_EQ(strided.to_vector<float>(), (std::vector<float>{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}));
}

TEST(CopyFrom, HandlesLargeStridedCopiesAcrossThreads) {
  // Big enough that the copy loop is split across the intra-op threads.
  Tensor a = Tensor::arange(512 * 300, DType::kFloat32).reshape({512, 300});
  Tensor t = a.t().contiguous();
  ASSERT_EQ(t.shape(), (Shape{300, 512}));
  for (int64_t r : {0, 1, 150, 299}) {
    for (int64_t c : {0, 7, 511}) ASSERT_EQ(t.at({r, c}), a.at({c, r}));
  }
}

TEST(Tensor, ItemAndAtCheckTheirArguments) {
  Tensor a = iota({2, 3});
  EXPECT_THROW(a.item(), ShapeError);
  EXPECT_THROW(a.at({2, 0}), IndexError);
  EXPECT_THROW(a.at({0}), IndexError);
  EXPECT_THROW(a.at({0, -1}), IndexError);
  EXPECT_EQ(a.size(-1), 3);
  EXPECT_THROW(a.size(2), IndexError);
}

TEST(Tensor, ToStringNamesShapeDtypeAndSmallValues) {
  std::string s = Tensor::from_vector<float>({1, 2}, {2}).to_string();
  EXPECT_NE(s.find("[2]"), std::string::npos) << s;
  EXPECT_NE(s.find("float32"), std::string::npos) << s;
  EXPECT_NE(s.find("1, 2"), std::string::npos) << s;
}

TEST(Tensor, OverWrappedMemoryKeepsItAliveAndChecksItsSize) {
  constexpr std::align_val_t kAlignment{64};
  auto* raw = static_cast<std::byte*>(::operator new(64, kAlignment));
  bool freed = false;
  std::shared_ptr<std::byte[]> memory(raw, [&freed, kAlignment](std::byte* p) {
    freed = true;
    ::operator delete(p, kAlignment);
  });
  {
    Tensor t = Tensor::over(Storage::wrap(memory, 64), {4, 4});
    memory.reset();
    t.fill_(2.0);
    EXPECT_EQ(t.data<float>(), reinterpret_cast<float*>(raw));
    EXPECT_EQ(t.data<float>()[15], 2.0f);
    EXPECT_FALSE(freed);
    EXPECT_THROW((void)Tensor::over(t.storage(), {5, 4}), ShapeError);
  }
  EXPECT_TRUE(freed);
  auto misaligned = std::shared_ptr<std::byte[]>(memory, raw + 4);
  EXPECT_THROW((void)Storage::wrap(misaligned, 32), ValueError);
}

// What ZeRO-3 does to a layer's parameters: the memory goes and comes back under the same views.
TEST(Storage, AReleasedStorageFreesItsMemoryAndItsViewsSeeItAgainWhenRestored) {
  const size_t before = live_storage_bytes();
  Tensor t = Tensor::zeros({1000});
  const Tensor view = t.slice(0, 10, 20);
  t.storage()->release();
  EXPECT_TRUE(t.storage()->released());
  EXPECT_EQ(live_storage_bytes(), before);
  EXPECT_THROW((void)view.data<float>(), ValueError);
  t.storage()->restore();
  EXPECT_EQ(live_storage_bytes(), before + 4000);
  t.fill_(2.0);
  EXPECT_EQ(view.at({3}), 2.0);
  t.storage()->release();  // and the tensor's end frees nothing twice
}

}  // namespace
}  // namespace tessera
