// Stateful properties of the model caches (tests/policies/support/cache_state_machine.hpp): random
// sequences of lock / unlock / request / repeated call / empty_cache, invariants after every command.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "offsim/sim/bytes.hpp"
#include "offsim/check/cache_state_machine.hpp"

namespace offsim::check {
namespace {

// InvokeAI keeps every locked model and reserves at least device_working_mem_gb = 3 GB for the request.
RC_GTEST_PROP(CacheStateMachine, InvokeAIBeforeTheQwenFix, ()) { check_cache_sequence("invokeai@fda7c42b", true, 3 * GiB); }
RC_GTEST_PROP(CacheStateMachine, InvokeAISnapshot, ()) { check_cache_sequence("invokeai@8e71a8a5", true, 3 * GiB); }
RC_GTEST_PROP(CacheStateMachine, InvokeAISmartPartialLoading, ()) {
  check_cache_sequence("invokeai-smart@00f5ba9f", true, 3 * GiB);
}
// ComfyUI has no locks: it promises the models of the latest load_models_gpu, with minimum_inference_memory
// (0.8 GiB + 400 MiB) kept free.
RC_GTEST_PROP(CacheStateMachine, ComfyUI, ()) { check_cache_sequence("comfyui@a125cd84", false, 1219 * MiB + 205 * MiB); }

}  // namespace
}  // namespace offsim::check
