// An allocator for node-based containers (the pools' std::set) that recycles freed nodes instead of
// returning them to malloc: the simulator inserts and erases pool entries on nearly every event, and
// glibc's malloc/free was a third of its time. Nodes of each type go to a per-thread free list; memory
// is kept until the thread ends (bounded by the largest number of nodes alive at once). Internal to sim/.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace offsim::sim {

template <typename T>
class NodeFreeList {
 public:
  using value_type = T;

  NodeFreeList() noexcept = default;
  template <typename U>
  NodeFreeList(const NodeFreeList<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n == 1) {
      std::vector<void*>& free = free_nodes();
      if (!free.empty()) {
        void* p = free.back();
        free.pop_back();
        return static_cast<T*>(p);
      }
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1) {
      std::vector<void*>& free = free_nodes();
      try {
        free.push_back(p);
        return;
      } catch (...) {
      }
    }
    ::operator delete(p);
  }

  friend bool operator==(const NodeFreeList&, const NodeFreeList&) noexcept { return true; }

 private:
  static std::vector<void*>& free_nodes() {
    // The list owns the nodes it holds: they are released when the thread ends.
    struct Holder {
      std::vector<void*> nodes;
      ~Holder() {
        for (void* p : nodes) ::operator delete(p);
      }
    };
    thread_local Holder holder;
    return holder.nodes;
  }
};

}  // namespace offsim::sim
