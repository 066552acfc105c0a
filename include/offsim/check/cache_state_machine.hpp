// A stateful RapidCheck test of a model cache's operations against a simple model of what must be
// resident. One small command struct per operation:
//   Lock(m)     a request for model m starts (the cache locks it and makes room for it)
//   Unlock(m)   that request ends
//   Request(m)  a whole request (lock, then unlock)
//   RepeatCall  every stage of the scenario once, as a pipeline call
//   EmptyCache  torch.cuda.empty_cache() between requests
// After every command: weights account for every allocated byte; a held model is fully on the device
// whenever the held set fits with the cache's working memory; what the cache reports offloaded holds no
// bytes; a decision that stopped as satisfied keeps P1. Caches without locks (ComfyUI) only promise the
// model of the latest request.
#pragma once

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <memory>
#include <string>
#include <vector>

#include "offsim/policies/policy.hpp"
#include "offsim/policies/sim_backend.hpp"

namespace offsim::check {

using policies::ModelManifest;
using policies::RunContext;
using policies::Scenario;
using policies::SimBackend;
using policies::Policy;
using policies::Stage;
using policies::StageDecision;
using policies::StopReason;

struct CacheModel {
  std::vector<std::uint64_t> sizes;  // model bytes (static)
  std::uint64_t working_memory = 0;  // the cache's default E (static)
  bool locks_hold = true;            // (static) see CacheSut
  std::vector<int> locks;            // outstanding requests per model
  int latest = -1;                   // model of the latest request
  /// Promised fully resident: locked when the held set fitted with the working memory. A held model is
  /// never evicted, so the promise lasts until its last unlock (or, without locks, the next request).
  std::vector<bool> full;

  void on_request(int model);  // a request for `model` starts
};

struct CacheSut {
  std::string policy_id;
  bool locks_hold = true;  // the cache keeps every locked model (InvokeAI); false: only the latest (ComfyUI)
  std::shared_ptr<Scenario> scenario;
  std::unique_ptr<SimBackend> backend;
  std::unique_ptr<RunContext> context;
  std::unique_ptr<Policy> policy;
  std::uint64_t working_memory = 0;  // the cache's default E, for "the held set fits"
};

/// A scenario of synthetic models (whole 2 MiB multiples, so segments waste nothing) on an 8 GiB device.
std::shared_ptr<Scenario> cache_test_scenario();
std::unique_ptr<CacheSut> make_cache_sut(const std::string& policy_id, bool locks_hold, std::uint64_t working_memory);
CacheModel initial_model(const CacheSut& sut);

using CacheCommand = rc::state::Command<CacheModel, CacheSut>;

struct Lock : CacheCommand {
  int model;
  explicit Lock(const CacheModel& m);
  void apply(CacheModel& m) const override;
  void run(const CacheModel& m, CacheSut& sut) const override;
  void show(std::ostream& os) const override;
};

struct Unlock : CacheCommand {
  int model;
  explicit Unlock(const CacheModel& m);
  void checkPreconditions(const CacheModel& m) const override;
  void apply(CacheModel& m) const override;
  void run(const CacheModel& m, CacheSut& sut) const override;
  void show(std::ostream& os) const override;
};

struct Request : CacheCommand {
  int model;
  explicit Request(const CacheModel& m);
  void apply(CacheModel& m) const override;
  void run(const CacheModel& m, CacheSut& sut) const override;
  void show(std::ostream& os) const override;
};

struct RepeatCall : CacheCommand {
  explicit RepeatCall(const CacheModel&) {}
  void checkPreconditions(const CacheModel& m) const override;
  void apply(CacheModel& m) const override;
  void run(const CacheModel& m, CacheSut& sut) const override;
  void show(std::ostream& os) const override { os << "RepeatCall"; }
};

struct EmptyCache : CacheCommand {
  explicit EmptyCache(const CacheModel&) {}
  void run(const CacheModel& m, CacheSut& sut) const override;
  void show(std::ostream& os) const override { os << "EmptyCache"; }
};

/// Checks the invariants above after a command (RC_ASSERT inside).
void check_cache_invariants(const CacheModel& model, CacheSut& sut);

/// One stateful property run: fresh cache, a random command sequence, invariants after each command.
void check_cache_sequence(const std::string& policy_id, bool locks_hold, std::uint64_t working_memory);

}  // namespace offsim::check
