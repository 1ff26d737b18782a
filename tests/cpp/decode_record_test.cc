// yono_decode_record_test IMAGE DIR
// The flash-task decode seam without TFLM: every PQ / PQ_RESIDUAL fill
// record of IMAGE, turned into the 24-byte decode record a flash model's
// YONO_DECODE operator carries (dst_offset = src_offset = 0) with its index
// array copied out of the image, must pass yono_image_check_record and
// decode (stack workspace, attached codeword cache, no cache) to exactly the
// bytes of DIR/<task>.tflite (`yonoc extract`) at the record's dst_offset.
// Then the corruptions a decode record can carry are refused cleanly: a
// codebook past the table, mixed s, M out of range, bad kind / layout /
// length, index >= K, an index span one short or one long, and a too small
// output.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"
#include "yono/image.h"
#include "yono/image_format.h"

using yono::Status;
using yono_test::AlignedBuffer;

namespace {

int g_failures = 0;

uint16_t Get16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t Get32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}
void Put16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

struct Cb {
  uint32_t s, k;
};
Cb Codebook(const yono::Image& im, uint32_t c) {
  const uint8_t* d = im.data();
  const uint8_t* e = d + Get32(d + YONO_HEADER_CODEBOOK_TABLE_OFFSET_OFF) +
                     YONO_CODEBOOK_ENTRY_SIZE * c;
  return Cb{e[YONO_CODEBOOK_SUBVECTOR_LEN_OFF],
            Get16(e + YONO_CODEBOOK_CODEWORD_COUNT_OFF)};
}
uint32_t CodebookCount(const yono::Image& im) {
  return Get16(im.data() + YONO_HEADER_CODEBOOK_COUNT_OFF);
}

void Expect(Status got, Status want, const char* task, const char* what) {
  if (got != want) {
    std::fprintf(stderr, "FAIL: %s: %s: got %s, want %s\n", task, what,
                 yono::StatusString(got), yono::StatusString(want));
    ++g_failures;
  }
}

// Check a mutated record against the image: must be refused with `want`.
void ExpectRefused(const yono::Image& im, const uint8_t* rec,
                   const std::vector<uint8_t>& idx, Status want,
                   const char* task, const char* what) {
  uint32_t length = 1;
  // Exact-size heap copies: ASan flags any read past them.
  AlignedBuffer r(YONO_FILL_RECORD_SIZE);
  std::memcpy(r.data(), rec, YONO_FILL_RECORD_SIZE);
  AlignedBuffer x(idx.size());
  if (!idx.empty()) std::memcpy(x.data(), idx.data(), idx.size());
  Expect(im.CheckRecord(r.data(), x.data(), static_cast<uint32_t>(idx.size()),
                        &length),
         want, task, what);
  if (length != 0) {
    std::fprintf(stderr, "FAIL: %s: %s: length %u on failure\n", task, what,
                 length);
    ++g_failures;
  }
}

// The corruption cases on one valid (record, indices) pair.
void Corruptions(const yono::Image& im, const uint8_t* good,
                 const std::vector<uint8_t>& idx, const char* task,
                 uint32_t* k_cases) {
  uint8_t rec[YONO_FILL_RECORD_SIZE];
  const auto fresh = [&]() { std::memcpy(rec, good, sizeof rec); };
  const uint32_t cb_count = CodebookCount(im);
  const uint32_t first = Get16(good + YONO_FILL_CODEBOOK_FIRST_OFF);
  const uint32_t m = good[YONO_FILL_CODEBOOK_COUNT_OFF];
  const uint32_t length = Get32(good + YONO_FILL_LENGTH_OFF);

  fresh();
  Put16(rec + YONO_FILL_CODEBOOK_FIRST_OFF, cb_count);
  ExpectRefused(im, rec, idx, Status::kBadFillRecord, task,
                "codebook_first past the table");
  fresh();
  Put16(rec + YONO_FILL_CODEBOOK_FIRST_OFF, cb_count - m + 1);
  if (cb_count - m + 1 != first)  // the last M codebooks + one past the table
    ExpectRefused(im, rec, idx, Status::kBadFillRecord, task,
                  "codebooks run past the table");
  fresh();
  rec[YONO_FILL_CODEBOOK_COUNT_OFF] = 0;
  ExpectRefused(im, rec, idx, Status::kBadFillRecord, task, "M 0");
  fresh();
  rec[YONO_FILL_CODEBOOK_COUNT_OFF] = YONO_MAX_SUBCODEBOOKS + 1;
  ExpectRefused(im, rec, idx, Status::kBadFillRecord, task, "M > max");
  for (uint32_t kind : {YONO_FILL_KIND_ZERO, YONO_FILL_KIND_RAW, 4u, 255u}) {
    fresh();
    rec[YONO_FILL_KIND_OFF] = static_cast<uint8_t>(kind);
    ExpectRefused(im, rec, idx, Status::kBadFillRecord, task,
                  "kind not PQ / PQ_RESIDUAL");
  }
  fresh();
  rec[YONO_FILL_LAYOUT_OFF] = YONO_LAYOUT_KERNEL_MAJOR + 1;
  ExpectRefused(im, rec, idx, Status::kBadFillRecord, task, "unknown layout");
  fresh();
  rec[YONO_FILL_LAYOUT_OFF] = YONO_LAYOUT_KERNEL_MAJOR;
  Put16(rec + YONO_FILL_KERNEL_POSITIONS_OFF, 0);
  ExpectRefused(im, rec, idx, Status::kBadFillRecord, task,
                "layout 1 with P 0");
  fresh();
  Put32(rec + YONO_FILL_LENGTH_OFF, 0);
  ExpectRefused(im, rec, idx, Status::kBadFillRecord, task, "length 0");
  // The index span must be exactly n (+ n2).
  std::vector<uint8_t> shorter(idx.begin(), idx.end() - 1);
  ExpectRefused(im, good, shorter, Status::kOutOfBounds, task,
                "one index short");
  std::vector<uint8_t> longer(idx);
  longer.push_back(0);
  ExpectRefused(im, good, longer, Status::kOutOfBounds, task,
                "one index too many");
  fresh();
  Put32(rec + YONO_FILL_LENGTH_OFF,
        length + 64u * 16u);  // needs more indices than given
  ExpectRefused(im, rec, idx, Status::kOutOfBounds, task,
                "length longer than the indices");
  // A codebook with another s in the record's run.
  for (uint32_t c = 0; c + 1 < cb_count && m == 1; ++c) {
    if (Codebook(im, c).s != Codebook(im, c + 1).s) {
      fresh();
      rec[YONO_FILL_CODEBOOK_COUNT_OFF] = 2;
      Put16(rec + YONO_FILL_CODEBOOK_FIRST_OFF, c);
      ExpectRefused(im, rec, idx, Status::kBadFillRecord, task,
                    "sub-codebooks of mixed s");
      break;
    }
  }
  // index >= K: point the first stage (M = 1) at a codebook with K < 256,
  // same s, and make one index K (refused) or K - 1 everywhere (accepted).
  const uint32_t s = Codebook(im, first).s;
  const uint32_t n = (length + s - 1) / s;
  if (good[YONO_FILL_KIND_OFF] == YONO_FILL_KIND_PQ && m == 1) {
    for (uint32_t c = 0; c < cb_count; ++c) {
      const Cb cb = Codebook(im, c);
      if (cb.s != s || cb.k == YONO_MAX_CODEWORDS) continue;
      fresh();
      Put16(rec + YONO_FILL_CODEBOOK_FIRST_OFF, c);
      std::vector<uint8_t> ok(n, static_cast<uint8_t>(cb.k - 1));
      uint32_t got = 0;
      Expect(im.CheckRecord(rec, ok.data(), n, &got), Status::kOk, task,
             "indices K - 1");
      std::vector<uint8_t> bad(ok);
      bad[n / 2] = static_cast<uint8_t>(cb.k);
      ExpectRefused(im, rec, bad, Status::kBadIndex, task, "an index == K");
      ++*k_cases;
      break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IMAGE DIR\n", argv[0]);
    return 2;
  }
  const std::string image_path = argv[1];
  const std::string dir = argv[2];
  const int present = yono_test::CheckImagePresent(image_path);
  if (present >= 0) return present;
  std::vector<uint8_t> file;
  if (!yono_test::ReadFile(image_path, &file)) {
    std::fprintf(stderr, "FAIL: cannot read %s\n", image_path.c_str());
    return 1;
  }
  AlignedBuffer img(file.size());
  std::memcpy(img.data(), file.data(), file.size());
  yono::Image image;
  yono::Image cached;
  const uint32_t size = static_cast<uint32_t>(img.size());
  if (image.Open(img.data(), size) != Status::kOk ||
      cached.Open(img.data(), size) != Status::kOk) {
    std::fprintf(stderr, "FAIL: Open\n");
    return 1;
  }
  std::vector<uint8_t> cw(image.codeword_cache_size() + 1);
  if (cached.AttachCodewordCache(cw.data(), image.codeword_cache_size()) !=
      Status::kOk) {
    std::fprintf(stderr, "FAIL: AttachCodewordCache\n");
    return 1;
  }
  const uint8_t* d = img.data();
  const uint32_t task_table = Get32(d + YONO_HEADER_TASK_TABLE_OFFSET_OFF);
  uint32_t records = 0, residual = 0, kernel_major = 0, bytes = 0, k_cases = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const char* name = image.task_name(t);
    std::vector<uint8_t> expected;
    if (!yono_test::ReadFile(dir + "/" + name + ".tflite", &expected)) {
      std::fprintf(stderr, "FAIL: cannot read %s/%s.tflite\n", dir.c_str(),
                   name);
      ++g_failures;
      continue;
    }
    const uint8_t* entry = d + task_table + YONO_TASK_ENTRY_SIZE * t;
    const uint32_t fill_table = Get32(entry + YONO_TASK_FILL_TABLE_OFFSET_OFF);
    const uint32_t fill_count = Get32(entry + YONO_TASK_FILL_COUNT_OFF);
    bool corrupted = false;
    for (uint32_t r = 0; r < fill_count; ++r) {
      const uint8_t* f = d + fill_table + YONO_FILL_RECORD_SIZE * r;
      const uint8_t kind = f[YONO_FILL_KIND_OFF];
      if (kind != YONO_FILL_KIND_PQ && kind != YONO_FILL_KIND_PQ_RESIDUAL)
        continue;
      const uint32_t dst = Get32(f + YONO_FILL_DST_OFFSET_OFF);
      const uint32_t src = Get32(f + YONO_FILL_SRC_OFFSET_OFF);
      const uint32_t length = Get32(f + YONO_FILL_LENGTH_OFF);
      uint8_t rec[YONO_FILL_RECORD_SIZE];
      std::memcpy(rec, f, sizeof rec);
      Put32(rec + YONO_FILL_DST_OFFSET_OFF, 0);
      Put32(rec + YONO_FILL_SRC_OFFSET_OFF, 0);
      const uint32_t s =
          Codebook(image, Get16(f + YONO_FILL_CODEBOOK_FIRST_OFF)).s;
      uint32_t n = (length + s - 1) / s;
      if (kind == YONO_FILL_KIND_PQ_RESIDUAL) {
        const uint32_t s2 =
            Codebook(image, Get16(f + YONO_FILL_RESIDUAL_FIRST_OFF)).s;
        n += (length + s2 - 1) / s2;
        ++residual;
      }
      if (f[YONO_FILL_LAYOUT_OFF] == YONO_LAYOUT_KERNEL_MAJOR) ++kernel_major;
      const std::vector<uint8_t> idx(d + src,
                                     d + src + n);  // outside the image now
      uint32_t got = 0;
      Expect(image.CheckRecord(rec, idx.data(), n, &got), Status::kOk, name,
             "check_record");
      if (got != length) {
        std::fprintf(stderr, "FAIL: %s: record %u: length %u, want %u\n", name,
                     r, got, length);
        ++g_failures;
      }
      AlignedBuffer out(length);  // exactly length: ASan flags a write past it
      for (int path = 0; path < 3; ++path) {
        std::memset(out.data(), 0x5A + path, length);
        int8_t* o = reinterpret_cast<int8_t*>(out.data());
        const Status st =
            path == 0 ? image.DecodeRecord(rec, idx.data(), o, length)
            : path == 1
                ? cached.DecodeRecord(rec, idx.data(), o, length)
                : static_cast<Status>(yono_image_decode_record_ws(
                      image.c_image(), rec, idx.data(), o, length, nullptr, 0));
        Expect(st, Status::kOk, name, "decode_record");
        if (dst + uint64_t{length} > expected.size() ||
            std::memcmp(out.data(), expected.data() + dst, length) != 0) {
          std::fprintf(
              stderr,
              "FAIL: %s: record %u (path %d): decode != rebuilt bytes\n", name,
              r, path);
          ++g_failures;
        }
      }
      Expect(
          image.DecodeRecord(rec, idx.data(),
                             reinterpret_cast<int8_t*>(out.data()), length - 1),
          Status::kRegionTooSmall, name, "decode into length - 1");
      ++records;
      bytes += length;
      if (!corrupted) {  // the corruption set once per task
        Corruptions(image, rec, idx, name, &k_cases);
        corrupted = true;
      }
    }
  }
  std::printf(
      "%u decode records (%u residual, %u kernel-major), %u bytes, equal to "
      "the rebuild;"
      " index >= K cases: %u\n",
      records, residual, kernel_major, bytes, k_cases);
  if (records == 0) {
    std::fprintf(stderr, "FAIL: the image has no PQ record\n");
    ++g_failures;
  }
  std::printf(g_failures == 0 ? "PASS\n" : "FAIL (%d)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
