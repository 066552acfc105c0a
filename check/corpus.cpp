#include "offsim/check/corpus.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::check {

std::vector<CorpusEntry> load_corpus(const std::filesystem::path& root) {
  std::vector<CorpusEntry> out;
  const std::filesystem::path dir = root / "tests/corpus";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".json" && name.find(".counterexample.") == std::string::npos) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const std::filesystem::path& file : files) {
    std::ifstream in(file);
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      throw ParseError(file.string(), e.byte, e.what());
    }
    auto field = [&](const char* key) {
      if (!doc.contains(key) || !doc[key].is_string()) throw ParseError(file.string(), 0, std::string("missing string field \"") + key + "\"");
      return doc[key].get<std::string>();
    };
    if (field("format") != "offsim-corpus-entry/1") throw ParseError(file.string(), 0, "format must be offsim-corpus-entry/1");
    CorpusEntry entry;
    entry.file = file.string();
    entry.bug = field("bug");
    entry.title = field("title");
    entry.citation = field("citation");
    entry.buggy = field("buggy");
    entry.fixed = field("fixed");
    try {
      const std::string property = field("property");
      const auto dot = property.find('.');
      entry.property = parse_property(property.substr(0, dot));
      if (dot != std::string::npos) entry.aspect = property.substr(dot + 1);
      (void)policies::make_policy(entry.buggy);
      (void)policies::make_policy(entry.fixed);
    } catch (const ConfigError& e) {
      throw ParseError(file.string(), 0, e.what());
    }
    if (doc.contains("fixed_exceptions")) {
      const nlohmann::json& list = doc["fixed_exceptions"];
      if (!list.is_array()) throw ParseError(file.string(), 0, "fixed_exceptions: must be a list");
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string where = "fixed_exceptions[" + std::to_string(i) + "]";
        const nlohmann::json& e = list[i];
        if (!e.is_object() || !e.contains("property") || !e["property"].is_string() || !e.contains("why") ||
            !e["why"].is_string() || e["why"].get<std::string>().empty()) {
          throw ParseError(file.string(), 0, where + ": needs \"property\" (e.g. \"P3.memory-fraction\") and a non-empty \"why\"");
        }
        FixedException exception;
        const std::string property = e["property"].get<std::string>();
        const auto dot = property.find('.');
        try {
          exception.property = parse_property(property.substr(0, dot));
        } catch (const ConfigError& error) {
          throw ParseError(file.string(), 0, where + ".property: " + error.what());
        }
        if (dot != std::string::npos) exception.aspect = property.substr(dot + 1);
        exception.why = e["why"].get<std::string>();
        entry.fixed_exceptions.push_back(std::move(exception));
      }
    }
    if (doc.contains("counterexamples")) entry.counterexamples = doc["counterexamples"].get<std::vector<std::string>>();
    if (doc.contains("scope")) {
      const nlohmann::json& scope = doc["scope"];
      entry.scope.pipelines = scope.value("pipelines", std::vector<std::string>{});
      entry.scope.alloc_confs = scope.value("alloc_confs", std::vector<std::string>{});
      entry.scope.torch_versions = scope.value("torch_versions", std::vector<std::string>{});
      entry.scope.prior_history = scope.value("prior_history", true);
      for (const std::string& name : entry.scope.pipelines) {
        const auto& all = pipeline_templates();
        if (std::none_of(all.begin(), all.end(), [&](const PipelineTemplate& t) { return t.name == name; })) {
          throw ParseError(file.string(), 0, "scope.pipelines: unknown pipeline \"" + name + "\"");
        }
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::vector<std::string> CorpusEntry::excused_aspects(PropertyId p) const {
  std::vector<std::string> out;
  for (const FixedException& e : fixed_exceptions) {
    if (e.property == p && !e.aspect.empty()) out.push_back(e.aspect);
  }
  return out;
}

bool CorpusEntry::excuses_whole(PropertyId p) const {
  return std::any_of(fixed_exceptions.begin(), fixed_exceptions.end(),
                     [p](const FixedException& e) { return e.property == p && e.aspect.empty(); });
}

std::size_t CorpusResult::detected() const {
  // Only a counterexample of the entry's property counts: a give-up or an error found nothing.
  return static_cast<std::size_t>(std::count_if(buggy_searches.begin(), buggy_searches.end(),
                                                [](const PropertyCheckResult& r) { return r.violated(); }));
}

std::optional<std::string> CorpusResult::fixed_excuse(const PropertyCheckResult& check) const {
  if (!check.violated()) return std::nullopt;
  if (check.property == PropertyId::kP5) return "P5 over-estimate: reported, never failed";
  for (const FixedException& e : entry->fixed_exceptions) {
    if (e.property == check.property && e.aspect.empty()) return "excused by the entry: " + e.why;
  }
  return std::nullopt;
}

bool CorpusResult::fixed_fails(const PropertyCheckResult& check) const { return !check.ok() && !fixed_excuse(check); }

bool CorpusResult::fixed_replay_fails(const PropertyCheckResult& check) const {
  return !check.holds() && !fixed_excuse(check);
}

std::size_t CorpusResult::fixed_failures() const {
  return static_cast<std::size_t>(std::count_if(fixed_searches.begin(), fixed_searches.end(),
                                                [this](const PropertyCheckResult& r) { return fixed_fails(r); }));
}

bool CorpusResult::ok() const {
  const auto violated = [](const PropertyCheckResult& r) { return r.violated(); };
  const auto replay_fails = [this](const PropertyCheckResult& r) { return fixed_replay_fails(r); };
  return detected() == buggy_searches.size() && fixed_failures() == 0 &&
         std::all_of(buggy_replays.begin(), buggy_replays.end(), violated) &&
         std::none_of(fixed_replays.begin(), fixed_replays.end(), replay_fails);
}

std::vector<CorpusResult> run_corpus(const std::vector<CorpusEntry>& entries, const CorpusOptions& options) {
  const GeneratorInputs loaded = load_generator_inputs(options.root);
  OutcomeCache cache(options.root);
  std::vector<CorpusResult> results;
  std::size_t searched = 0;  // (entry, seed) pairs done, for options.progress
  for (const CorpusEntry& entry : entries) {
    CorpusResult r;
    r.entry = &entry;
    GeneratorInputs inputs = loaded;
    inputs.scope = entry.scope;
    // The fixed variant is judged on every property that applies to it, not only the entry's: a fix that
    // ran out of memory for another reason would otherwise still "pass".
    const std::vector<PropertyId> fixed_properties = applicable_properties(policies::make_policy(entry.fixed)->info());
    for (std::uint64_t seed : options.seeds) {
      PropertyCheckOptions o;
      o.seed = seed;
      o.cases = options.cases;
      o.aspect = entry.aspect;
      o.counterexample_dir = options.counterexample_dir;
      r.buggy_searches.push_back(check_property(entry.buggy, entry.property, o, cache, inputs));
      PropertyCheckOptions f = o;
      f.aspect.clear();
      if (!f.counterexample_dir.empty()) f.counterexample_dir /= "fixed";
      for (PropertyId property : fixed_properties) {
        f.excluded_aspects = entry.excused_aspects(property);
        r.fixed_searches.push_back(check_property(entry.fixed, property, f, cache, inputs));
      }
      cache.clear();
      if (options.progress) options.progress(++searched, entries.size() * options.seeds.size());
    }
    for (const std::string& file : entry.counterexamples) {
      const policies::Scenario scenario = policies::Scenario::load(options.root / file, options.root);
      r.buggy_replays.push_back(check_property_on(entry.buggy, entry.property, scenario, entry.aspect));
      r.buggy_replays.back().counterexample_file = file;
      for (PropertyId property : fixed_properties) {
        PropertyCheckResult fixed =
            check_property_on(entry.fixed, property, scenario, "", entry.excused_aspects(property));
        fixed.counterexample_file = file;
        r.fixed_replays.push_back(std::move(fixed));
      }
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace offsim::check
