#include "tensor_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <vector>
#include "error.h"

namespace rt {

Dtype parse_dtype(const std::string& name) {
  if (name == "F32") return Dtype::F32;
  if (name == "BF16") return Dtype::BF16;
  if (name == "F16") return Dtype::F16;
  fail("dtype", "unsupported dtype ", name, " (F32, BF16 and F16 are)");
}

size_t dtype_size(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return (uint16_t)((bits >> 16) | 0x0040);  // stay a (quiet) NaN
  const uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);        // ties to even
  return (uint16_t)((bits + rounding) >> 16);
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const int exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  float f;
  if (exp == 0) {
    f = std::ldexp((float)mant, -24);  // zero and subnormals
    return sign ? -f : f;
  }
  uint32_t bits =
      exp == 31 ? sign | 0x7F800000 | (mant << 13) : sign | ((uint32_t)(exp - 15 + 127) << 23) | (mant << 13);
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void read_exact(int fd, void* dst, size_t n, uint64_t off, const std::string& file) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("read_tensors", file, ": ", std::strerror(errno));
    if (r == 0) fail("read_tensors", file, ": truncated: expected ", n, " more bytes at offset ", off);
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
}

void write_all(int fd, const void* src, size_t n, const std::string& file) {
  auto* p = static_cast<const char*>(src);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write_safetensors", file, ": ", std::strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

// One piece of one item: elements [from, from + n).
struct Piece {
  const ReadItem* item;
  size_t from, n;
};

std::vector<Piece> split_into_pieces(const std::vector<ReadItem>& items) {
  std::vector<Piece> pieces;
  for (const ReadItem& it : items) {
    const size_t per_piece = kReadChunkBytes / dtype_size(it.dtype);
    for (size_t from = 0; from < it.count; from += per_piece)
      pieces.push_back({&it, from, std::min(per_piece, it.count - from)});
  }
  return pieces;
}

float widen_16(Dtype d, uint16_t h) { return d == Dtype::BF16 ? bf16_to_float(h) : f16_to_float(h); }

// Elements converted at a time within a piece: the scratch buffer of each thread holds this many source
// elements (at most 1 MiB), whatever the piece size and the thread count.
constexpr size_t kConvertElements = size_t(1) << 18;

// Converts n elements of the item's dtype, read into src, into its destination from element `at` on.
void convert(const ReadItem& it, size_t at, size_t n, const uint8_t* src) {
  if (it.dtype == Dtype::F32) {
    const float* f = reinterpret_cast<const float*>(src);
    for (size_t i = 0; i < n; i++) it.dst_bf16[at + i] = float_to_bf16(f[i]);  // F32 into bf16
    return;
  }
  const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
  if (it.dst_bf16) {  // F16 into bf16: through float32, which holds every f16 value exactly
    for (size_t i = 0; i < n; i++) it.dst_bf16[at + i] = float_to_bf16(f16_to_float(h[i]));
    return;
  }
  for (size_t i = 0; i < n; i++) it.dst[at + i] = widen_16(it.dtype, h[i]);
}

// Reads one piece into its destination; scratch is the thread's buffer for a piece that needs converting.
void read_piece_values(int fd, const Piece& p, const std::string& file, std::vector<uint8_t>& scratch) {
  const ReadItem& it = *p.item;
  const size_t width = dtype_size(it.dtype);
  const uint64_t off = it.file_offset + (uint64_t)p.from * width;
  if (it.dst_bf16 && it.dtype == Dtype::BF16) return read_exact(fd, it.dst_bf16 + p.from, p.n * 2, off, file);
  if (!it.dst_bf16 && it.dtype == Dtype::F32) return read_exact(fd, it.dst + p.from, p.n * 4, off, file);
  for (size_t done = 0; done < p.n; done += kConvertElements) {
    const size_t n = std::min(kConvertElements, p.n - done);
    scratch.resize(n * width);
    read_exact(fd, scratch.data(), n * width, off + (uint64_t)done * width, file);
    convert(it, p.from + done, n, scratch.data());
  }
}

// Index of the first NaN or infinite bf16 value (all exponent bits set), or n when there is none.
size_t first_non_finite_bf16(const uint16_t* bits, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((bits[i] & 0x7f80u) == 0x7f80u) return i;
  return n;
}

// Reads one piece into its destination and refuses it when a value is NaN or infinite: checked piece by
// piece while the values are still in cache, as a second pass over gigabytes would not be.
void read_piece(int fd, const Piece& p, const std::vector<ReadItem>& items, const std::string& file,
                std::vector<uint8_t>& scratch) {
  read_piece_values(fd, p, file, scratch);
  const ReadItem& it = *p.item;
  float value;
  size_t bad;
  if (it.dst_bf16) {
    bad = first_non_finite_bf16(it.dst_bf16 + p.from, p.n);
    value = bad < p.n ? bf16_to_float(it.dst_bf16[p.from + bad]) : 0.f;
  } else {
    bad = first_non_finite(it.dst + p.from, p.n);
    value = bad < p.n ? it.dst[p.from + bad] : 0.f;
  }
  if (bad == p.n) return;
  const std::string what =
      it.name.empty() ? "item " + std::to_string(p.item - items.data()) : "tensor '" + it.name + "'";
  fail("read_tensors", file, ": ", what, " contains ",
       std::isnan(value) ? "NaN"
       : value > 0       ? "Inf"
                         : "-Inf",
       " at index ", it.first_index + p.from + bad);
}

// Creates `tmp` exclusively and without following a symbolic link planted there. A leftover of the same
// name (a crashed writer with the same pid, common for pid 1 in a container) is unlinked first: unlink
// removes a link itself, never its target.
int open_new_file(const std::string& tmp) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::open(tmp.c_str(), flags, 0644);
  if (fd < 0 && errno == EEXIST && ::unlink(tmp.c_str()) == 0) fd = ::open(tmp.c_str(), flags, 0644);
  if (fd < 0) fail("write_safetensors", tmp, ": ", std::strerror(errno));
  return fd;
}

}  // namespace

size_t first_non_finite(const float* values, size_t n) {
  size_t first = n;
#pragma omp parallel for schedule(static) reduction(min : first)
  for (size_t i = 0; i < n; i++)
    if (!std::isfinite(values[i]) && i < first) first = i;
  return first;
}

void read_tensors(const std::string& file, const std::vector<ReadItem>& items,
                  const std::function<void(uint64_t bytes_read)>& progress) {
  Fd f{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail("read_tensors", file, ": ", std::strerror(errno));
  const std::vector<Piece> pieces = split_into_pieces(items);
  uint64_t done = 0;
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  // Threads read and convert pieces side by side: one thread alone cannot fill memory bandwidth, nor keep
  // up with the page faults of freshly allocated destinations.
#pragma omp parallel
  {
    std::vector<uint8_t> scratch;
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < pieces.size(); i++) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        read_piece(f.fd, pieces[i], items, file, scratch);
#pragma omp critical(ringtune_read_progress)
        {
          done += pieces[i].n * dtype_size(pieces[i].item->dtype);
          if (progress) progress(done);
        }
      } catch (...) {
#pragma omp critical(ringtune_read_error)
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

void write_safetensors(const std::string& file, const std::vector<uint8_t>& header,
                       const std::vector<WriteItem>& items) {
  const std::string tmp = file + ".tmp-" + std::to_string(::getpid());
  {
    Fd f{open_new_file(tmp)};
    write_all(f.fd, header.data(), header.size(), tmp);
    std::vector<uint16_t> half;
    std::vector<float> wide;
    for (const WriteItem& it : items) {
      if (it.src_bf16 && it.dtype == Dtype::BF16) {
        write_all(f.fd, it.src_bf16, it.count * 2, tmp);
      } else if (it.src_bf16 && it.dtype == Dtype::F32) {
        const size_t per_chunk = kReadChunkBytes / 4;  // widened in chunks: no full-size fp32 copy
        for (size_t from = 0; from < it.count; from += per_chunk) {
          const size_t n = std::min(per_chunk, it.count - from);
          wide.resize(n);
          const uint16_t* h = it.src_bf16 + from;
          float* w = wide.data();
#pragma omp parallel for schedule(static)
          for (size_t i = 0; i < n; i++) w[i] = bf16_to_float(h[i]);
          write_all(f.fd, w, n * 4, tmp);
        }
      } else if (it.dtype == Dtype::F32) {
        write_all(f.fd, it.src, it.count * 4, tmp);
      } else if (it.dtype == Dtype::BF16) {
        half.resize(it.count);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < it.count; i++) half[i] = float_to_bf16(it.src[i]);
        write_all(f.fd, half.data(), it.count * 2, tmp);
      } else {
        ::unlink(tmp.c_str());
        fail("write_safetensors", file, ": writing F16 is not supported (F32 and BF16 are)");
      }
    }
    if (::fsync(f.fd) != 0) fail("write_safetensors", tmp, ": fsync: ", std::strerror(errno));
  }
  struct stat at;
  if (::lstat(file.c_str(), &at) == 0 && S_ISLNK(at.st_mode)) {
    ::unlink(tmp.c_str());
    fail("write_safetensors", file, ": is a symbolic link; outputs are never written through links");
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("write_safetensors", file, ": rename: ", std::strerror(e));
  }
}

}  // namespace rt
