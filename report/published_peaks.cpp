#include "offsim/report/published_peaks.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "offsim/sim/errors.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& where, const std::string& what) {
  throw ParseError(path.string(), 0, where + ": " + what);
}

}  // namespace

std::vector<PublishedPeak> read_published_grids(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ParseError(path.string(), 0, "cannot open published measurements");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ParseError(path.string(), e.byte, std::string("not JSON: ") + e.what());
  }
  if (!doc.is_object() || doc.value("format", "") != "offsim-published-measurements/1") {
    fail(path, "format", "expected \"offsim-published-measurements/1\"");
  }
  std::vector<PublishedPeak> out;
  if (!doc.contains("grids")) return out;
  if (!doc["grids"].is_array()) fail(path, "grids", "expected a list");
  for (std::size_t g = 0; g < doc["grids"].size(); ++g) {
    const json& grid = doc["grids"][g];
    const std::string where = "grids[" + std::to_string(g) + "]";
    if (!grid.is_object() || !grid.contains("points") || !grid["points"].is_array()) fail(path, where, "expected an object with a points list");
    if (!grid.contains("backend") || !grid["backend"].is_string()) fail(path, where + ".backend", "expected a string");
    PublishedPeak base;
    base.grid = grid.value("id", where);
    base.device = grid.value("device", "not stated");
    base.citation = grid.value("citation", "");
    try {
      base.backend = policies::parse_backend(grid["backend"].get<std::string>());
    } catch (const Error& e) {
      fail(path, where + ".backend", e.what());
    }
    for (std::size_t i = 0; i < grid["points"].size(); ++i) {
      const json& p = grid["points"][i];
      const std::string at = where + ".points[" + std::to_string(i) + "]";
      if (!p.is_object()) fail(path, at, "expected an object");
      if (p.contains("status") && p["status"] != "ok") continue;
      PublishedPeak point = base;
      if (!p.contains("op") || !p["op"].is_string()) fail(path, at + ".op", "expected \"decode\" or \"encode\"");
      try {
        point.op = policies::parse_vae_op(p["op"].get<std::string>());
      } catch (const Error& e) {
        fail(path, at + ".op", e.what());
      }
      if (!p.contains("height") || !p["height"].is_number_integer() || !p.contains("width") || !p["width"].is_number_integer()) {
        fail(path, at, "expected integer height and width");
      }
      point.height = p["height"].get<int>();
      point.width = p["width"].get<int>();
      if (point.height <= 0 || point.width <= 0) fail(path, at, "expected positive height and width");
      if (p.contains("peak_reserved_growth_gib") && p["peak_reserved_growth_gib"].is_number()) {
        const double gib = p["peak_reserved_growth_gib"].get<double>();
        if (!(gib > 0)) fail(path, at + ".peak_reserved_growth_gib", "expected a positive number");
        point.bytes = static_cast<std::uint64_t>(std::llround(gib * 1073741824.0));
      } else if (p.contains("peak_reserved_growth_bytes_derived") && p["peak_reserved_growth_bytes_derived"].is_number_unsigned()) {
        point.bytes = p["peak_reserved_growth_bytes_derived"].get<std::uint64_t>();
        point.derived = true;
      } else {
        fail(path, at, "expected peak_reserved_growth_gib or peak_reserved_growth_bytes_derived");
      }
      point.approximate = p.value("approximate", false);
      out.push_back(std::move(point));
    }
  }
  return out;
}

}  // namespace offsim::report
