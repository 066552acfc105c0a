#include "offsim/sim/structured_writer.hpp"

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

void write_value(StructuredWriter& writer, const PickleValue& value) {
  using Kind = PickleValue::Kind;
  switch (value.kind()) {
    case Kind::kNone: writer.write_none(); return;
    case Kind::kBool: writer.write_bool(value.as_bool()); return;
    case Kind::kInt: writer.write_int(value.as_int()); return;
    case Kind::kBigInt: writer.write_big_int(value.as_big_int()); return;
    case Kind::kFloat: writer.write_float(value.as_float()); return;
    case Kind::kStr: writer.write_str(value.as_str()); return;
    case Kind::kBytes: writer.write_bytes(value.as_bytes()); return;
    case Kind::kList:
      writer.begin_list();
      for (const auto& item : value.as_list().items) write_value(writer, item);
      writer.end_list();
      return;
    case Kind::kTuple:
      writer.begin_tuple();
      for (const auto& item : value.as_tuple().items) write_value(writer, item);
      writer.end_tuple();
      return;
    case Kind::kDict:
      writer.begin_dict();
      for (const auto& [key, item] : value.as_dict().entries) {
        write_value(writer, key);
        write_value(writer, item);
      }
      writer.end_dict();
      return;
    case Kind::kGlobal:
      throw Error("cannot write " + value.as_global().module + "." + value.as_global().name +
                  ": a pickle GLOBAL is not plain data");
    case Kind::kReleased:
      throw Error("cannot write a value that a streaming reader already released");
  }
}

}  // namespace offsim::sim
