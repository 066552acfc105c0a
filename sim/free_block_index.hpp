// The free blocks of one pool on one stream, ordered by (size, address) exactly as PyTorch's
// BlockComparatorSize orders them, so best fit (lower_bound) picks the same block. A two-level
// segregated index (as in TLSF allocators): buckets by the position of the size's leading bit and the
// next 5 bits, each a small array kept sorted by (size, address), with bitmaps to find the next
// non-empty bucket in O(1). Buckets are monotonic in size, so walking buckets in order and each bucket
// in order visits entries in comparator order. No allocation per insert or erase once buckets have grown,
// and no pointer chasing. Internal to sim/.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>

namespace offsim::sim {

class FreeBlockIndex {
 public:
  struct Entry {
    std::uint64_t size;
    std::uint64_t ptr;
    std::uint32_t block;
  };

  /// A position: bucket and index within it; bucket == kEnd means past the last entry.
  struct Position {
    std::uint32_t bucket;
    std::uint32_t index;
    friend bool operator==(const Position&, const Position&) = default;
  };
  static constexpr std::uint32_t kEnd = 0xffffffffu;

  bool empty() const { return count_ == 0; }
  std::size_t size() const { return count_; }
  Position end() const { return {kEnd, 0}; }
  Position begin() const { return first_at_or_after(0); }
  const Entry& at(Position p) const { return buckets_[p.bucket].data[p.index]; }

  // The key comes in registers, not as an Entry: a caller's Entry temporary was written with a 16-byte
  // and a 4-byte store and read back here with 8-byte loads, a store-forwarding stall (perf: an eighth of
  // the time spent in insert).
  void insert(std::uint64_t size, std::uint64_t ptr, std::uint32_t block) {
    const std::uint32_t b = bucket_of(size);
    Bucket& v = buckets_[b];
    if (v.size == v.capacity) [[unlikely]] grow(v);
    const std::uint32_t i = first_not_less(v, size, ptr);
    if (i != v.size) std::memmove(&v.data[i + 1], &v.data[i], (v.size - i) * sizeof(Entry));
    Entry& e = v.data[i];
    e.size = size;
    e.ptr = ptr;
    e.block = block;
    if (++v.size == 1) mark(b);
    ++count_;
  }

  __attribute__((always_inline)) void erase(Position p) {
    Bucket& v = buckets_[p.bucket];
    if (p.index + 1 != v.size) {
      std::memmove(&v.data[p.index], &v.data[p.index + 1], (v.size - p.index - 1) * sizeof(Entry));
    }
    if (--v.size == 0) unmark(p.bucket);
    --count_;
  }

  /// The entry with this exact key, or end().
  Position find(std::uint64_t size, std::uint64_t ptr) const {
    const std::uint32_t b = bucket_of(size);
    const Bucket& v = buckets_[b];
    const std::uint32_t i = first_not_less(v, size, ptr);
    if (i < v.size && v.data[i].size == size && v.data[i].ptr == ptr) return {b, i};
    return end();
  }

  /// First entry not less than (size, ptr).
  Position lower_bound(std::uint64_t size, std::uint64_t ptr) const {
    const std::uint32_t b = bucket_of(size);
    const Bucket& v = buckets_[b];
    const std::uint32_t i = first_not_less(v, size, ptr);
    if (i < v.size) return {b, i};
    return first_at_or_after(b + 1);
  }

  Position next(Position p) const {
    if (p.index + 1 < buckets_[p.bucket].size) return {p.bucket, p.index + 1};
    return first_at_or_after(p.bucket + 1);
  }

  /// The entry before p (p may be end()); p must not be begin().
  Position prev(Position p) const {
    if (p.bucket != kEnd && p.index > 0) return {p.bucket, p.index - 1};
    const std::uint32_t b = last_before(p.bucket == kEnd ? kBuckets : p.bucket);
    return {b, buckets_[b].size - 1};
  }

  template <typename F>
  void for_each(F&& f) const {
    for (Position p = begin(); p != end(); p = next(p)) f(at(p));
  }

 private:
  // Sizes are multiples of 512 (the allocator's kMinBlockSize); unit = size / 512 >= 1.
  static constexpr int kSubBits = 5;
  static constexpr std::uint32_t kSub = 1u << kSubBits;
  static constexpr std::uint32_t kLevels = 64;
  static constexpr std::uint32_t kBuckets = kLevels * kSub;

  // A bucket's entries, sorted. Not a std::vector: GCC compiled vector::insert with its reallocation
  // path inline (a six-register prologue on every insert), and the header is 16 bytes instead of 24, so
  // the 2048 headers of an index take less cache.
  struct Bucket {
    std::unique_ptr<Entry[]> data;
    std::uint32_t size = 0;
    std::uint32_t capacity = 0;
  };

  [[gnu::noinline]] static void grow(Bucket& v) {
    const std::uint32_t capacity = std::max<std::uint32_t>(4, v.capacity * 2);
    std::unique_ptr<Entry[]> data(new Entry[capacity]);
    if (v.size != 0) std::memcpy(data.get(), v.data.get(), v.size * sizeof(Entry));
    v.data = std::move(data);
    v.capacity = capacity;
  }

  static bool less(const Entry& e, std::uint64_t size, std::uint64_t ptr) {
    return e.size != size ? e.size < size : e.ptr < ptr;
  }

  // Index of the first entry not less than (size, ptr): linear for the usual few entries, binary beyond.
  static std::uint32_t first_not_less(const Bucket& v, std::uint64_t size, std::uint64_t ptr) {
    std::uint32_t lo = 0, hi = v.size;
    while (hi - lo > 8) {
      const std::uint32_t mid = lo + (hi - lo) / 2;
      if (less(v.data[mid], size, ptr)) lo = mid + 1;
      else hi = mid;
    }
    while (lo < hi && less(v.data[lo], size, ptr)) ++lo;
    return lo;
  }

  static std::uint32_t bucket_of(std::uint64_t size) {
    const std::uint64_t unit = size >> 9;
    if (unit < kSub) return static_cast<std::uint32_t>(unit);  // level 0: exact units 0..31
    const int top = std::bit_width(unit) - 1;                  // >= kSubBits
    const std::uint32_t level = static_cast<std::uint32_t>(top - kSubBits + 1);
    const std::uint32_t sub = static_cast<std::uint32_t>((unit >> (top - kSubBits)) & (kSub - 1));
    return level * kSub + sub;
  }

  void mark(std::uint32_t b) {
    levels_ |= 1ULL << (b / kSub);
    subs_[b / kSub] |= 1u << (b % kSub);
  }
  void unmark(std::uint32_t b) {
    subs_[b / kSub] &= ~(1u << (b % kSub));
    if (subs_[b / kSub] == 0) levels_ &= ~(1ULL << (b / kSub));
  }

  Position first_at_or_after(std::uint32_t b) const {
    if (b >= kBuckets) return end();
    const std::uint32_t level = b / kSub;
    const std::uint32_t within = subs_[level] & (~0u << (b % kSub));
    if (within != 0) return {level * kSub + static_cast<std::uint32_t>(std::countr_zero(within)), 0};
    const std::uint64_t higher = level + 1 < kLevels ? levels_ & (~0ULL << (level + 1)) : 0;
    if (higher == 0) return end();
    const std::uint32_t l = static_cast<std::uint32_t>(std::countr_zero(higher));
    return {l * kSub + static_cast<std::uint32_t>(std::countr_zero(subs_[l])), 0};
  }

  // Last non-empty bucket strictly before b (one must exist).
  std::uint32_t last_before(std::uint32_t b) const {
    const std::uint32_t level = b / kSub;
    if (level < kLevels && b % kSub != 0) {
      const std::uint32_t within = subs_[level] & ((1u << (b % kSub)) - 1);
      if (within != 0) return level * kSub + static_cast<std::uint32_t>(std::bit_width(within) - 1);
    }
    const std::uint64_t lower = levels_ & ((level >= 64 ? ~0ULL : (1ULL << level) - 1));
    const std::uint32_t l = static_cast<std::uint32_t>(std::bit_width(lower) - 1);
    return l * kSub + static_cast<std::uint32_t>(std::bit_width(subs_[l]) - 1);
  }

  std::array<Bucket, kBuckets> buckets_{};
  std::array<std::uint32_t, kLevels> subs_{};
  std::uint64_t levels_ = 0;
  std::size_t count_ = 0;
};

}  // namespace offsim::sim
