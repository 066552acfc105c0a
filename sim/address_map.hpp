// Device address -> value, open addressing with linear probing and backward-shift deletion (no
// tombstones, so lookups stay short however long the run). Replaces std::unordered_map on the
// simulator's hottest paths (every malloc inserts, every free looks up and erases). Internal to sim/.
#pragma once

#include <cstdint>
#include <vector>

namespace offsim::sim {

template <typename Value>
class AddressTable {
 public:
  static constexpr Value kMissing = static_cast<Value>(~Value{0});

  AddressTable() : slots_(16) {}

  static constexpr std::size_t kNoSlot = ~std::size_t{0};

  Value find(std::uint64_t key) const {
    const std::size_t slot = find_slot(key);
    return slot == kNoSlot ? kMissing : slots_[slot].value;
  }

  /// Where `key` is, or kNoSlot; valid until the next put or erase. Lets a caller that looked a key up
  /// erase it later without probing again.
  std::size_t find_slot(std::uint64_t key) const {
    for (std::size_t i = index(key);; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.value == kMissing) return kNoSlot;
      if (s.key == key) return i;
    }
  }
  Value value_at(std::size_t slot) const { return slots_[slot].value; }

  /// Inserts or overwrites.
  void put(std::uint64_t key, Value value) {
    // At most a quarter full. The table holds only the live allocations, so this costs little memory, and
    // nearly every lookup ends at its first slot: at higher loads the varying probe count made the probe
    // loop's exit a branch mispredicted about twice per free (cachegrind's branch simulation).
    if ((size_ + 1) * 4 > slots_.size()) grow();
    for (std::size_t i = index(key);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.value == kMissing) {
        s = {key, value};
        ++size_;
        return;
      }
      if (s.key == key) {
        s.value = value;
        return;
      }
    }
  }

  bool erase(std::uint64_t key) {
    const std::size_t slot = find_slot(key);
    if (slot == kNoSlot) return false;
    erase_slot(slot);
    return true;
  }

  void erase_slot(std::size_t slot) {
    // Backward shift: move later entries of the same probe chain into the hole.
    std::size_t hole = slot;
    for (std::size_t j = (slot + 1) & mask();; j = (j + 1) & mask()) {
      if (slots_[j].value == kMissing) break;
      const std::size_t home = index(slots_[j].key);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!between) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].value = kMissing;
    --size_;
  }

  std::size_t size() const { return size_; }

  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.value != kMissing) f(s.key, s.value);
    }
  }

 private:
  struct Slot {
    std::uint64_t key = 0;
    Value value = kMissing;
  };

  std::size_t mask() const { return slots_.size() - 1; }
  std::size_t index(std::uint64_t key) const {
    // Addresses are multiples of 512: mix the bits so that neighbours spread over the table.
    return static_cast<std::size_t>((key >> 9) * 0x9E3779B97F4A7C15ULL >> 20) & mask();
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{});
    size_ = 0;
    for (const Slot& s : old) {
      if (s.value != kMissing) put(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

/// Address -> block id (the allocator's live blocks).
using AddressMap = AddressTable<std::uint32_t>;

}  // namespace offsim::sim
