#include "offsim/sim/pickle_reader.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

// Opcodes, named as in CPython's Lib/pickle.py.
enum Op : std::uint8_t {
  kMark = '(', kStop = '.', kPop = '0', kPopMark = '1', kDup = '2', kNone = 'N',
  kBinInt = 'J', kBinInt1 = 'K', kBinInt2 = 'M', kBinFloat = 'G',
  kBinUnicode = 'X', kShortBinBytes = 'C', kBinBytes = 'B',
  kEmptyList = ']', kEmptyDict = '}', kEmptyTuple = ')',
  kAppend = 'a', kAppends = 'e', kSetItem = 's', kSetItems = 'u',
  kList = 'l', kDict = 'd', kTuple = 't',
  kBinPut = 'q', kLongBinPut = 'r', kBinGet = 'h', kLongBinGet = 'j',
  kGlobal = 'c', kReduce = 'R',
  kProto = 0x80, kTuple1 = 0x85, kTuple2 = 0x86, kTuple3 = 0x87, kNewTrue = 0x88, kNewFalse = 0x89,
  kLong1 = 0x8a, kLong4 = 0x8b, kShortBinUnicode = 0x8c, kBinUnicode8 = 0x8d, kBinBytes8 = 0x8e,
  kStackGlobal = 0x93, kMemoize = 0x94, kFrame = 0x95, kByteArray8 = 0x96,
};

// Names of opcodes offsim refuses, for messages; empty for bytes that are no opcode at all.
std::string_view refused_opcode_name(std::uint8_t op) {
  switch (op) {
    case 'I': return "INT (protocol 0 text)";
    case 'L': return "LONG (protocol 0 text)";
    case 'F': return "FLOAT (protocol 0 text)";
    case 'S': return "STRING (protocol 0 text)";
    case 'V': return "UNICODE (protocol 0 text)";
    case 'p': return "PUT (protocol 0 text)";
    case 'g': return "GET (protocol 0 text)";
    case 'T': return "BINSTRING (Python 2 str)";
    case 'U': return "SHORT_BINSTRING (Python 2 str)";
    case 'b': return "BUILD (object state)";
    case 'i': return "INST (object)";
    case 'o': return "OBJ (object)";
    case 'P': return "PERSID (persistent id)";
    case 'Q': return "BINPERSID (persistent id, e.g. a tensor)";
    case 0x81: return "NEWOBJ (object)";
    case 0x82: case 0x83: case 0x84: return "EXT (extension registry)";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS (set)";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX (object)";
    case 0x97: return "NEXT_BUFFER (out-of-band buffer)";
    case 0x98: return "READONLY_BUFFER (out-of-band buffer)";
    default: return {};
  }
}

std::string hex_byte(std::uint8_t op) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "0x%02x", op);
  return buffer;
}

// Python decodes pickled str as UTF-8 with "surrogatepass"; accept exactly that.
bool valid_utf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  std::size_t i = 0;
  while (i < size) {
    const unsigned c = bytes[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t extra = 0;
    unsigned minimum = 0;
    unsigned code = 0;
    if ((c & 0xE0U) == 0xC0U) { extra = 1; minimum = 0x80; code = c & 0x1FU; }
    else if ((c & 0xF0U) == 0xE0U) { extra = 2; minimum = 0x800; code = c & 0x0FU; }
    else if ((c & 0xF8U) == 0xF0U) { extra = 3; minimum = 0x10000; code = c & 0x07U; }
    else return false;
    if (i + extra >= size) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const unsigned next = bytes[i + k];
      if ((next & 0xC0U) != 0x80U) return false;
      code = (code << 6U) | (next & 0x3FU);
    }
    if (code < minimum || code > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

// Items of a MARK region stay on the stack until APPENDS; for list regions longer than this, items are
// offered to the sink early (all but the last few, which single-item opcodes may still consume).
constexpr std::size_t kEagerWindow = 4096;
constexpr std::size_t kKeepOnTop = 4;

struct MarkRegion {
  std::size_t position;       // stack index of the first item after MARK
  std::size_t offered_upto;   // items below this index were offered to the sink already
  std::uint64_t streamed = 0;  // items the sink took early
  std::uint64_t offset;       // byte offset of the MARK opcode
};

class Unpickler {
 public:
  Unpickler(ByteReader& input, PickleItemSink* sink, const PickleReadLimits& limits)
      : in_(input), sink_(sink), limits_(limits) {}

  PickleValue run();

 private:
  [[noreturn]] void fail(const std::string& message) const { in_.fail(op_offset_, message); }
  [[noreturn]] void fail_at(std::uint64_t offset, const std::string& message) const { in_.fail(offset, message); }

  std::size_t region_start() const { return marks_.empty() ? 0 : marks_.back().position; }
  void require_items(std::size_t count, std::string_view op) const {
    if (stack_.size() - region_start() < count) {
      fail(std::string(op) + " needs " + std::to_string(count) + " item(s) on the stack above the last MARK, found " +
           std::to_string(stack_.size() - region_start()) + " (stack underflow)");
    }
  }
  void push(PickleValue value) {
    if (auto* info = value.container_info(); info != nullptr && info->offset == 0) info->offset = op_offset_;
    stack_.push_back(std::move(value));
    stack_offsets_.push_back(op_offset_);
    if (sink_ != nullptr && !marks_.empty() && stack_.size() - marks_.back().offered_upto > kEagerWindow) {
      stream_region_early();
    }
  }
  PickleValue pop(std::string_view op) {
    require_items(1, op);
    PickleValue value = std::move(stack_.back());
    stack_.pop_back();
    stack_offsets_.pop_back();
    return value;
  }
  MarkRegion pop_mark(std::string_view op) {
    if (marks_.empty()) fail(std::string(op) + " needs a MARK before it, found none");
    MarkRegion region = marks_.back();
    marks_.pop_back();
    return region;
  }
  void require_nothing_streamed(const MarkRegion& region, std::string_view op) const {
    if (region.streamed > 0) {
      fail(std::string(op) + " closes a MARK region (opened at byte " + std::to_string(region.offset) + ") whose " +
           std::to_string(region.streamed) + " items were already taken as list items; expected APPENDS");
    }
  }

  void place(const PickleValue& container, const PickleValue& item);
  void require_open(const PickleValue& container, std::string_view op) const;
  void require_hashable(const PickleValue& key, std::uint64_t offset) const;
  void append_region(PickleValue& list, std::size_t begin, std::size_t offered_upto);
  void append_one(const PickleValue& list, PickleValue item, std::uint64_t item_offset);
  void stream_region_early();
  void release(const PickleValue& item);
  void memo_put(std::uint64_t index);
  PickleValue memo_get(std::uint64_t index);
  std::vector<PickleValue> take_region(const MarkRegion& region);
  PickleValue read_global_line(std::string_view what);
  PickleValue apply_reduce(const PickleValue& callable, const PickleValue& arguments);
  std::string read_utf8(std::uint64_t length);
  PickleValue read_long(std::uint64_t length);

  ByteReader& in_;
  PickleItemSink* sink_;
  PickleReadLimits limits_;
  std::vector<PickleValue> stack_;
  std::vector<std::uint64_t> stack_offsets_;  // byte offset where each stack item started
  std::vector<MarkRegion> marks_;
  std::vector<PickleValue> memo_;
  std::vector<bool> memo_set_;
  std::uint64_t op_offset_ = 0;
};

void Unpickler::require_open(const PickleValue& container, std::string_view op) const {
  const auto* info = container.container_info();
  if (info != nullptr && info->sealed) {
    fail(std::string(op) + " changes a " + std::string(container.type_name()) +
         " that is already inside another container (self-referencing or shared-then-mutated data; plain-data "
         "pickles never do this)");
  }
}

void Unpickler::place(const PickleValue& container, const PickleValue& item) {
  PickleContainerInfo* item_info = item.container_info();
  if (item_info == nullptr) return;
  if (item.same_object(container)) fail("a " + std::string(item.type_name()) + " is placed inside itself");
  item_info->sealed = true;
  PickleContainerInfo* info = container.container_info();
  const std::uint32_t depth = item_info->depth + 1;
  if (depth > limits_.max_depth) {
    fail("containers nest " + std::to_string(depth) + " deep, more than the limit of " +
         std::to_string(limits_.max_depth));
  }
  info->depth = std::max(info->depth, depth);
}

void Unpickler::require_hashable(const PickleValue& key, std::uint64_t offset) const {
  using Kind = PickleValue::Kind;
  const Kind kind = key.kind();
  if (kind == Kind::kList || kind == Kind::kDict || kind == Kind::kReleased || kind == Kind::kGlobal) {
    fail_at(offset, "dict key of type " + std::string(key.type_name()) + " (unhashable; expected str, int, tuple, ...)");
  }
}

void Unpickler::release(const PickleValue& item) {
  const PickleContainerInfo* info = item.container_info();
  if (info == nullptr || !info->memo_slot) return;
  PickleValue& slot = memo_[*info->memo_slot];
  if (slot.same_object(item)) slot = PickleValue::released();
}

void Unpickler::append_one(const PickleValue& list, PickleValue item, std::uint64_t item_offset) {
  PickleList& target = list.as_list();
  if (sink_ != nullptr && sink_->take(target, item, item_offset)) {
    ++target.info.streamed_items;
    release(item);
    return;
  }
  place(list, item);
  target.items.push_back(std::move(item));
}

void Unpickler::append_region(PickleValue& list, std::size_t begin, std::size_t offered_upto) {
  PickleList& target = list.as_list();
  target.items.reserve(target.items.size() + (stack_.size() - begin));
  for (std::size_t i = begin; i < stack_.size(); ++i) {
    if (i < offered_upto || sink_ == nullptr) {
      place(list, stack_[i]);
      target.items.push_back(std::move(stack_[i]));
    } else {
      append_one(list, std::move(stack_[i]), stack_offsets_[i]);
    }
  }
  stack_.resize(begin);
  stack_offsets_.resize(begin);
}

void Unpickler::stream_region_early() {
  MarkRegion& region = marks_.back();
  if (region.position == 0) return;
  const PickleValue& list = stack_[region.position - 1];
  if (list.kind() != PickleValue::Kind::kList || list.as_list().info.sealed) return;
  PickleList& target = list.as_list();
  const std::size_t end = stack_.size() - kKeepOnTop;
  std::size_t write = region.offered_upto;
  for (std::size_t read = region.offered_upto; read < end; ++read) {
    if (sink_->take(target, stack_[read], stack_offsets_[read])) {
      ++target.info.streamed_items;
      ++region.streamed;
      release(stack_[read]);
      stack_[read] = PickleValue();
    } else {
      if (write != read) {
        stack_[write] = std::move(stack_[read]);
        stack_offsets_[write] = stack_offsets_[read];
      }
      ++write;
    }
  }
  const std::size_t kept = write;
  for (std::size_t read = end; read < stack_.size(); ++read, ++write) {
    stack_[write] = std::move(stack_[read]);
    stack_offsets_[write] = stack_offsets_[read];
  }
  stack_.resize(write);
  stack_offsets_.resize(write);
  region.offered_upto = kept;
}

void Unpickler::memo_put(std::uint64_t index) {
  if (stack_.size() <= region_start()) fail("memo store needs an item on the stack above the last MARK, found none");
  // Python and TorchScript number memo entries 0, 1, 2, ... and each entry costs at least one byte of input,
  // so a larger index is corrupt (and honouring it would allocate without bound).
  if (index > in_.offset()) {
    fail("memo index " + std::to_string(index) + " is larger than the bytes read so far (expected sequentially "
         "numbered memo entries)");
  }
  if (index >= memo_.size()) {
    memo_.resize(index + 1);
    memo_set_.resize(index + 1, false);
  }
  memo_[index] = stack_.back();
  memo_set_[index] = true;
  if (auto* info = stack_.back().container_info()) info->memo_slot = static_cast<std::uint32_t>(index);
}

PickleValue Unpickler::memo_get(std::uint64_t index) {
  if (index >= memo_.size() || !memo_set_[index]) {
    fail("memo index " + std::to_string(index) + " was never stored (expected an index set earlier by "
         "BINPUT/LONG_BINPUT/MEMOIZE)");
  }
  return memo_[index];
}

std::vector<PickleValue> Unpickler::take_region(const MarkRegion& region) {
  std::vector<PickleValue> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(region.position)),
                                 std::make_move_iterator(stack_.end()));
  stack_.resize(region.position);
  stack_offsets_.resize(region.position);
  return items;
}

std::string Unpickler::read_utf8(std::uint64_t length) {
  const std::uint64_t start = in_.offset();
  std::string text = in_.read_string(length, "string bytes");
  if (!valid_utf8(text)) fail_at(start, "string is not valid UTF-8");
  return text;
}

PickleValue Unpickler::read_long(std::uint64_t length) {
  // The declared length is checked against the bytes left before anything is allocated for it: a
  // corrupt LONG4 length of 2^31 - 1 must not cost 2 GiB.
  if (length > in_.remaining()) {
    fail("LONG of " + std::to_string(length) + " bytes runs past the end of the file (" +
         std::to_string(in_.remaining()) + " bytes left)");
  }
  PickleBigInt value;
  value.twos_complement.resize(static_cast<std::size_t>(length));
  in_.read(value.twos_complement.data(), value.twos_complement.size(), "LONG bytes");
  if (value.twos_complement.empty()) return PickleValue::integer(0);
  return PickleValue::big_integer(std::move(value));
}

PickleValue Unpickler::read_global_line(std::string_view what) {
  std::string line;
  for (;;) {
    const std::uint8_t c = in_.read_u8(std::string(what) + " ended by a newline");
    if (c == '\n') break;
    if (line.size() >= 256) fail("GLOBAL " + std::string(what) + " is longer than 256 bytes");
    line.push_back(static_cast<char>(c));
  }
  return PickleValue::str(std::move(line));
}

PickleValue Unpickler::apply_reduce(const PickleValue& callable, const PickleValue& arguments) {
  if (callable.kind() != PickleValue::Kind::kGlobal) {
    fail("REDUCE expects a callable pushed by GLOBAL below its argument tuple, found " +
         std::string(callable.type_name()));
  }
  if (arguments.kind() != PickleValue::Kind::kTuple) {
    fail("REDUCE expects an argument tuple on top of the stack, found " + std::string(arguments.type_name()));
  }
  const auto& global = callable.as_global();
  const auto& args = arguments.as_tuple().items;
  const std::string qualified = global.module + "." + global.name;
  if (global.module == "torch.jit._pickle") {
    // TorchScript's pickler wraps containers so that torch.jit.load can restore their static types; the
    // data is the first argument (torch/jit/_pickle.py).
    if (global.name == "restore_type_tag" && args.size() == 2) return args[0];
    if ((global.name == "build_intlist" || global.name == "build_doublelist" || global.name == "build_boollist") &&
        args.size() == 1 && args[0].kind() == PickleValue::Kind::kList) {
      return args[0];
    }
  }
  fail("REDUCE of " + qualified + " with " + std::to_string(args.size()) +
       " argument(s) is not supported (offsim reads plain data: dict, list, tuple, str, bytes, int, float, bool, "
       "None, and TorchScript's torch.jit._pickle container tags)");
}

PickleValue Unpickler::run() {
  using Kind = PickleValue::Kind;
  for (;;) {
    op_offset_ = in_.offset();
    const std::uint8_t op = in_.read_u8("a pickle opcode (the pickle has no STOP)");
    switch (op) {
      case kProto: {
        const std::uint8_t version = in_.read_u8("the protocol version after PROTO");
        if (version > 5) fail("pickle protocol " + std::to_string(version) + " is newer than 5, the newest known");
        break;
      }
      case kFrame: {
        const std::uint64_t length = in_.read_le(8, "the 8-byte FRAME length");
        if (length > in_.remaining()) {
          fail("FRAME of " + std::to_string(length) + " bytes runs past the end of the file (" +
               std::to_string(in_.remaining()) + " bytes left)");
        }
        break;
      }
      case kStop: {
        if (!marks_.empty()) fail("STOP with a MARK still open (opened at byte " + std::to_string(marks_.back().offset) + ")");
        if (stack_.size() != 1) {
          fail("STOP expects exactly one value on the stack, found " + std::to_string(stack_.size()));
        }
        if (!in_.at_end()) {
          fail_at(in_.offset(), std::to_string(in_.remaining()) + " bytes follow the pickle's STOP opcode (expected the "
                                "end of the file)");
        }
        return std::move(stack_.back());
      }
      case kMark: marks_.push_back(MarkRegion{stack_.size(), stack_.size(), 0, op_offset_}); break;
      case kPop: {
        // As CPython's load_pop: with nothing above the last MARK, POP discards the MARK.
        if (stack_.size() > region_start()) {
          pop("POP");
        } else if (!marks_.empty()) {
          require_nothing_streamed(pop_mark("POP"), "POP");
        } else {
          fail("POP with an empty stack (stack underflow)");
        }
        break;
      }
      case kPopMark: {
        const MarkRegion region = pop_mark("POP_MARK");
        require_nothing_streamed(region, "POP_MARK");
        take_region(region);
        break;
      }
      case kDup: {
        require_items(1, "DUP");
        PickleValue copy = stack_.back();
        push(std::move(copy));
        break;
      }
      case kNone: push(PickleValue::none()); break;
      case kNewTrue: push(PickleValue::boolean(true)); break;
      case kNewFalse: push(PickleValue::boolean(false)); break;
      case kBinInt1: push(PickleValue::integer(in_.read_u8("the BININT1 byte"))); break;
      case kBinInt2: push(PickleValue::integer(static_cast<std::int64_t>(in_.read_le(2, "the BININT2 bytes")))); break;
      case kBinInt: {
        const auto raw = static_cast<std::uint32_t>(in_.read_le(4, "the BININT bytes"));
        push(PickleValue::integer(static_cast<std::int32_t>(raw)));
        break;
      }
      case kLong1: push(read_long(in_.read_u8("the LONG1 length byte"))); break;
      case kLong4: {
        const auto length = static_cast<std::int32_t>(static_cast<std::uint32_t>(in_.read_le(4, "the LONG4 length")));
        if (length < 0) fail("LONG4 with negative length " + std::to_string(length));
        push(read_long(static_cast<std::uint64_t>(length)));
        break;
      }
      case kBinFloat: {
        const std::uint64_t big_endian = in_.read_le(8, "the 8 BINFLOAT bytes");
        // The 8 bytes are big-endian; read_le gave them byte-reversed.
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8U) | ((big_endian >> (8U * static_cast<unsigned>(i))) & 0xFFU);
        push(PickleValue::floating(std::bit_cast<double>(bits)));
        break;
      }
      case kShortBinUnicode: push(PickleValue::str(read_utf8(in_.read_u8("the SHORT_BINUNICODE length")))); break;
      case kBinUnicode: push(PickleValue::str(read_utf8(in_.read_le(4, "the BINUNICODE length")))); break;
      case kBinUnicode8: push(PickleValue::str(read_utf8(in_.read_le(8, "the BINUNICODE8 length")))); break;
      case kShortBinBytes:
        push(PickleValue::bytes(in_.read_string(in_.read_u8("the SHORT_BINBYTES length"), "bytes payload")));
        break;
      case kBinBytes: push(PickleValue::bytes(in_.read_string(in_.read_le(4, "the BINBYTES length"), "bytes payload"))); break;
      case kBinBytes8:
      case kByteArray8:
        push(PickleValue::bytes(in_.read_string(in_.read_le(8, "the 8-byte length"), "bytes payload")));
        break;
      case kEmptyList: push(PickleValue::new_list()); break;
      case kEmptyDict: push(PickleValue::new_dict()); break;
      case kEmptyTuple: push(PickleValue::new_tuple({})); break;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const std::size_t count = static_cast<std::size_t>(op - kTuple1 + 1);
        require_items(count, "TUPLE" + std::to_string(count));
        std::vector<PickleValue> items(std::make_move_iterator(stack_.end() - static_cast<std::ptrdiff_t>(count)),
                                       std::make_move_iterator(stack_.end()));
        const std::uint64_t start = stack_offsets_[stack_.size() - count];
        stack_.resize(stack_.size() - count);
        stack_offsets_.resize(stack_offsets_.size() - count);
        PickleValue tuple = PickleValue::new_tuple(std::move(items));
        for (const auto& item : tuple.as_tuple().items) place(tuple, item);
        op_offset_ = start;
        push(std::move(tuple));
        break;
      }
      case kTuple:
      case kList: {
        const MarkRegion region = pop_mark(op == kTuple ? "TUPLE" : "LIST");
        require_nothing_streamed(region, op == kTuple ? "TUPLE" : "LIST");
        std::vector<PickleValue> items = take_region(region);
        PickleValue container = op == kTuple ? PickleValue::new_tuple({}) : PickleValue::new_list();
        for (const auto& item : items) place(container, item);
        if (op == kTuple) {
          container.as_tuple().items = std::move(items);
        } else {
          container.as_list().items = std::move(items);
        }
        op_offset_ = region.offset;
        push(std::move(container));
        break;
      }
      case kDict:
      case kSetItems: {
        const MarkRegion region = pop_mark(op == kDict ? "DICT" : "SETITEMS");
        require_nothing_streamed(region, op == kDict ? "DICT" : "SETITEMS");
        const std::size_t count = stack_.size() - region.position;
        if (count % 2 != 0) {
          fail(std::string(op == kDict ? "DICT" : "SETITEMS") + " has an odd number of items (" + std::to_string(count) +
               ") above its MARK; expected key, value pairs");
        }
        PickleValue dict;
        if (op == kDict) {
          dict = PickleValue::new_dict();
        } else {
          if (region.position == 0 || stack_[region.position - 1].kind() != Kind::kDict) {
            fail("SETITEMS expects a dict below its MARK, found " +
                 std::string(region.position == 0 ? "nothing" : stack_[region.position - 1].type_name()));
          }
          dict = stack_[region.position - 1];
          require_open(dict, "SETITEMS");
        }
        auto& entries = dict.as_dict().entries;
        entries.reserve(entries.size() + count / 2);
        for (std::size_t i = region.position; i < stack_.size(); i += 2) {
          require_hashable(stack_[i], stack_offsets_[i]);
          place(dict, stack_[i]);
          place(dict, stack_[i + 1]);
          entries.emplace_back(std::move(stack_[i]), std::move(stack_[i + 1]));
        }
        stack_.resize(region.position);
        stack_offsets_.resize(region.position);
        if (op == kDict) {
          op_offset_ = region.offset;
          push(std::move(dict));
        }
        break;
      }
      case kSetItem: {
        require_items(3, "SETITEM");
        PickleValue value = pop("SETITEM");
        const std::uint64_t key_offset = stack_offsets_.back();
        PickleValue key = pop("SETITEM");
        const PickleValue& dict = stack_.back();
        if (dict.kind() != Kind::kDict) fail("SETITEM expects a dict below the key and value, found " + std::string(dict.type_name()));
        require_open(dict, "SETITEM");
        require_hashable(key, key_offset);
        place(dict, key);
        place(dict, value);
        dict.as_dict().entries.emplace_back(std::move(key), std::move(value));
        break;
      }
      case kAppend: {
        require_items(2, "APPEND");
        const std::uint64_t item_offset = stack_offsets_.back();
        PickleValue item = pop("APPEND");
        const PickleValue& list = stack_.back();
        if (list.kind() != Kind::kList) fail("APPEND expects a list below the item, found " + std::string(list.type_name()));
        require_open(list, "APPEND");
        append_one(list, std::move(item), item_offset);
        break;
      }
      case kAppends: {
        const MarkRegion region = pop_mark("APPENDS");
        if (region.position == 0 || stack_[region.position - 1].kind() != Kind::kList) {
          fail("APPENDS expects a list below its MARK, found " +
               std::string(region.position == 0 ? "nothing" : stack_[region.position - 1].type_name()));
        }
        PickleValue list = stack_[region.position - 1];
        require_open(list, "APPENDS");
        append_region(list, region.position, region.offered_upto);
        break;
      }
      case kBinPut: memo_put(in_.read_u8("the BINPUT index")); break;
      case kLongBinPut: memo_put(in_.read_le(4, "the LONG_BINPUT index")); break;
      case kMemoize: memo_put(memo_.size()); break;
      case kBinGet: push(memo_get(in_.read_u8("the BINGET index"))); break;
      case kLongBinGet: push(memo_get(in_.read_le(4, "the LONG_BINGET index"))); break;
      case kGlobal: {
        PickleValue module = read_global_line("module name");
        PickleValue name = read_global_line("qualified name");
        push(PickleValue::global(module.as_str(), name.as_str()));
        break;
      }
      case kStackGlobal: {
        require_items(2, "STACK_GLOBAL");
        PickleValue name = pop("STACK_GLOBAL");
        PickleValue module = pop("STACK_GLOBAL");
        if (name.kind() != Kind::kStr || module.kind() != Kind::kStr) {
          fail("STACK_GLOBAL expects two str (module, name), found " + std::string(module.type_name()) + " and " +
               std::string(name.type_name()));
        }
        push(PickleValue::global(module.as_str(), name.as_str()));
        break;
      }
      case kReduce: {
        require_items(2, "REDUCE");
        PickleValue arguments = pop("REDUCE");
        PickleValue callable = pop("REDUCE");
        push(apply_reduce(callable, arguments));
        break;
      }
      default: {
        const std::string_view name = refused_opcode_name(op);
        fail("unsupported pickle opcode " + hex_byte(op) + (name.empty() ? std::string() : " " + std::string(name)) +
             "; offsim reads plain data pickled with protocol 2-5: dict, list, tuple, str, bytes, int, float, bool, "
             "None");
      }
    }
  }
}

}  // namespace

PickleValue read_pickle(ByteReader& input, PickleItemSink* sink, const PickleReadLimits& limits) {
  Unpickler unpickler(input, sink, limits);
  return unpickler.run();
}

PickleValue read_pickle_file(const std::filesystem::path& path, PickleItemSink* sink, const PickleReadLimits& limits) {
  ByteReader input(path);
  return read_pickle(input, sink, limits);
}

PickleValue read_pickle_bytes(std::string bytes, std::string source, PickleItemSink* sink,
                              const PickleReadLimits& limits) {
  ByteReader input(std::move(source), std::move(bytes));
  return read_pickle(input, sink, limits);
}

bool looks_like_pickle(std::string_view first_bytes) {
  return first_bytes.size() >= 2 && static_cast<std::uint8_t>(first_bytes[0]) == kProto &&
         static_cast<std::uint8_t>(first_bytes[1]) >= 2 && static_cast<std::uint8_t>(first_bytes[1]) <= 5;
}

}  // namespace offsim::sim
