// Reads JSON into the plain-value model (pickle_value.hpp) with nlohmann_json's SAX parser, so that a
// snapshot in JSON form goes through the same decoding, the same list-item streaming (PickleItemSink)
// and the same bounds as a pickle. Objects become dicts with str keys, arrays become lists, integers
// that fit int64 become int (larger ones up to 2^64-1 become big ints), other numbers float.
#pragma once

#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/pickle_value.hpp"

namespace offsim::sim {

/// Reads one JSON document (nothing but whitespace may follow it). Syntax errors and nesting deeper than
/// limits.max_depth throw ParseError(file, byte offset, what was expected).
PickleValue read_json_value(ByteReader& input, PickleItemSink* sink = nullptr, const PickleReadLimits& limits = {});

/// True when the first non-whitespace byte of `first_bytes` opens a JSON object or array.
bool looks_like_json(std::string_view first_bytes);

}  // namespace offsim::sim
