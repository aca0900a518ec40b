#pragma once
// Tensor data in and out of safetensors files: the TypeScript side parses and validates headers; this
// moves the bytes and converts dtypes, off the main thread.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rt {

enum class Dtype { F32, BF16, F16 };

Dtype parse_dtype(const std::string& name);
size_t dtype_size(Dtype d);

struct ReadItem {
  uint64_t file_offset;  // absolute byte offset in the file
  Dtype dtype;
  size_t count;                  // elements
  float* dst;                    // float32 destination, or
  uint16_t* dst_bf16 = nullptr;  // instead of dst: bf16 bits (a frozen bf16 base); wider values are rounded
  std::string name;              // the tensor's name, for errors ("item <i>" when empty)
  size_t first_index = 0;        // index of dst[0] within that tensor, when only a piece of it is read
};

struct WriteItem {
  const float* src;
  size_t count;
  Dtype dtype;                         // F32 or BF16
  const uint16_t* src_bf16 = nullptr;  // instead of src: bf16 bits (a frozen bf16 base), written or widened
};

// Reads each item into its destination, converting its dtype to the destination's (float32, or bf16 bits
// rounded to nearest even), in pieces of at most kReadChunkBytes spread over all threads. A piece whose
// dtype is the destination's is read straight into place; any other goes through a buffer of at most 1 MiB
// per thread, so no tensor ever has a second full-size copy in memory. progress, when given, gets the bytes
// read so far after each piece, in increasing order. Throws naming the file on a short read ("truncated"),
// and naming the file, the tensor and the first index when a value is NaN or infinite: such weights would
// only turn every loss into NaN steps later.
constexpr size_t kReadChunkBytes = size_t(8) << 20;
void read_tensors(const std::string& file, const std::vector<ReadItem>& items,
                  const std::function<void(uint64_t bytes_read)>& progress = nullptr);

// Writes header bytes then the items, to file + ".tmp-<pid>" (created exclusively, never through a symbolic
// link), fsyncs, renames to file. A symbolic link at file is refused rather than replaced.
void write_safetensors(const std::string& file, const std::vector<uint8_t>& header,
                       const std::vector<WriteItem>& items);

// The index of the first NaN or infinite value of values[0..n), or n when all are finite.
size_t first_non_finite(const float* values, size_t n);

// Conversions (exposed for tests): bf16 round-to-nearest-even; f16 and bf16 widening.
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);
float f16_to_float(uint16_t h);

}  // namespace rt
