// yono_corruption_test IMAGE
// Mutates a real image in many ways and checks that Open()/Rebuild() return
// the specific error (or succeed and stay in bounds), never crash. Meant to
// be run under ASan+UBSan too (tests/cpp/run_sanitized.sh).
//
//  1. truncations                      -> kTooSmall
//  2. bit flips, CRC left stale        -> kBadCrc (or header-specific codes)
//  3. targeted lies, CRC recomputed    -> the specific code per field
//  4. bit flips / random bytes, CRC recomputed -> any status, no crash; if
//     Open() accepts, every Rebuild() must succeed within its region
//  5. Rebuild() argument errors
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "corruption_util.h"
#include "test_util.h"
#include "yono/image.h"
#include "yono/image_format.h"

using corruption::Layout;
using corruption::Mutation;
using yono::Status;
using namespace corruption;  // Get16/Put32/FixCrc and the field macros' helpers
using yono_test::AlignedBuffer;

namespace {

int g_failures = 0;
int g_checks = 0;

// Opens a copy of `bytes` in an exact-size heap buffer; if it opens, rebuilds
// every task into an exact-size region. Returns the Open() status.
Status OpenAndRebuild(const std::vector<uint8_t>& bytes,
                      size_t size_override = SIZE_MAX) {
  const size_t n = size_override == SIZE_MAX ? bytes.size() : size_override;
  AlignedBuffer buf(n);
  if (n) std::memcpy(buf.data(), bytes.data(), n);
  yono::Image image;
  const Status st = image.Open(buf.data(), static_cast<uint32_t>(n));
  if (st != Status::kOk) {
    if (image.is_open()) {
      std::fprintf(stderr, "FAIL: Open failed but image left open\n");
      ++g_failures;
    }
    return st;
  }
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const uint32_t size = image.model_size(t);
    if (!image.is_flash(t) && size > image.max_model_size()) {
      std::fprintf(stderr, "FAIL: accepted model_size > max_model_size\n");
      ++g_failures;
    }
    AlignedBuffer out(size);
    uint32_t written = 0;
    const Status rs = image.Rebuild(t, out.data(), size, &written);
    if (rs != Status::kOk || written != size) {
      std::fprintf(stderr, "FAIL: opened image but Rebuild(%u) -> %s\n", t,
                   yono::StatusString(rs));
      ++g_failures;
    }
  }
  return st;
}

void Expect(const char* what, Status got, Status want) {
  ++g_checks;
  if (got != want) {
    std::fprintf(stderr, "FAIL: %s: got %s (%d), want %s (%d)\n", what,
                 yono::StatusString(got), static_cast<int>(got),
                 yono::StatusString(want), static_cast<int>(want));
    ++g_failures;
  }
}

Layout Parse(const std::vector<uint8_t>& b) {
  Layout l;
  l.image_size = Get32(b, HDR(IMAGE_SIZE));
  l.cb_count = Get16(b, HDR(CODEBOOK_COUNT));
  l.task_count = Get16(b, HDR(TASK_COUNT));
  l.cb_table = Get32(b, HDR(CODEBOOK_TABLE_OFFSET));
  l.task_table = Get32(b, HDR(TASK_TABLE_OFFSET));
  for (uint32_t t = 0; t < l.task_count; ++t) {
    const size_t te = l.task_table + YONO_TASK_ENTRY_SIZE * t;
    const uint32_t fc = Get32(b, te + TASK(FILL_COUNT));
    if (fc == 0) continue;
    const uint32_t ft = Get32(b, te + TASK(FILL_TABLE_OFFSET));
    Layout cand = l;
    cand.task = static_cast<int32_t>(t);
    cand.fill_table = ft;
    cand.fill_count = fc;
    for (uint32_t r = 0; r < fc; ++r) {
      const size_t re = ft + YONO_FILL_RECORD_SIZE * r;
      const uint8_t kind = b[re + FILL(KIND)];
      if ((kind == YONO_FILL_KIND_PQ || kind == YONO_FILL_KIND_PQ_RESIDUAL) &&
          cand.rec_pq < 0)
        cand.rec_pq = static_cast<int64_t>(re);
      if (kind == YONO_FILL_KIND_PQ_RESIDUAL && cand.rec_res < 0)
        cand.rec_res = static_cast<int64_t>(re);
      if (kind == YONO_FILL_KIND_RAW && cand.rec_raw < 0)
        cand.rec_raw = static_cast<int64_t>(re);
      if (kind == YONO_FILL_KIND_ZERO && cand.rec_zero < 0)
        cand.rec_zero = static_cast<int64_t>(re);
    }
    if (l.task < 0 || (cand.rec_pq >= 0 && l.rec_pq < 0)) l = cand;
  }
  return l;
}

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
uint32_t Rand() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return static_cast<uint32_t>(g_rng >> 11);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s IMAGE [flip_positions]\n", argv[0]);
    return 2;
  }
  const std::string image_path = argv[1];
  const int present = yono_test::CheckImagePresent(image_path);
  if (present >= 0) return present;
  const uint32_t flip_budget =
      argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) : 1000;

  std::vector<uint8_t> orig;
  if (!yono_test::ReadFile(image_path, &orig)) {
    std::fprintf(stderr, "FAIL: cannot read %s\n", image_path.c_str());
    return 1;
  }
  Expect("original image", OpenAndRebuild(orig), Status::kOk);
  if (g_failures) return 1;
  const Layout L = Parse(orig);
  const uint32_t N = L.image_size;

  // 1. Truncations.
  for (size_t n = 0; n < YONO_HEADER_SIZE + 16 && n < N; ++n)
    Expect("truncated", OpenAndRebuild(orig, n), Status::kTooSmall);
  for (int i = 0; i < 64; ++i) {
    const size_t n = YONO_HEADER_SIZE + Rand() % (N - YONO_HEADER_SIZE);
    Expect("truncated", OpenAndRebuild(orig, n), Status::kTooSmall);
  }
  Expect("truncated by one", OpenAndRebuild(orig, N - 1), Status::kTooSmall);
  {
    // A buffer longer than image_size is fine (e.g. a flash partition).
    std::vector<uint8_t> longer = orig;
    longer.resize(orig.size() + 100, 0xFF);
    Expect("trailing bytes", OpenAndRebuild(longer), Status::kOk);
  }

  // 2. Bit flips with a stale CRC: every flip in [16, N) must be kBadCrc.
  {
    const uint32_t step = N / flip_budget + 1;
    for (uint32_t pos = YONO_CRC_START; pos < N; pos += step) {
      std::vector<uint8_t> b = orig;
      b[pos] ^= static_cast<uint8_t>(1u << (pos % 8));
      Expect("bit flip, stale crc", OpenAndRebuild(b), Status::kBadCrc);
    }
    for (uint32_t pos = 0; pos < YONO_CRC_START; ++pos) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<uint8_t> b = orig;
        b[pos] ^= static_cast<uint8_t>(1u << bit);
        const Status st = OpenAndRebuild(b);
        Status want = Status::kBadCrc;
        if (pos < HDR(FORMAT_VERSION))
          want = Status::kBadMagic;
        else if (pos < HDR(HEADER_SIZE))
          want = Status::kBadVersion;
        else if (pos < HDR(IMAGE_SIZE))
          want = Status::kBadHeader;
        else if (pos < HDR(CRC32))
          want = Get32(b, HDR(IMAGE_SIZE)) > N ? Status::kTooSmall
                 : Get32(b, HDR(IMAGE_SIZE)) < YONO_HEADER_SIZE
                     ? Status::kBadHeader
                     : Status::kBadCrc;
        Expect("header bit flip", st, want);
      }
    }
  }

  // 3. Targeted lies, CRC recomputed (corruption_cases.cc).
  const std::vector<Mutation> muts = corruption::TargetedMutations(L);
  int applied = 0;
  for (const Mutation& m : muts) {
    std::vector<uint8_t> b = orig;
    if (!m.apply(&b, L)) {
      std::printf("  (not applicable to this image: %s)\n", m.what);
      continue;
    }
    ++applied;
    if (m.fix_crc) FixCrc(&b);
    Expect(m.what, OpenAndRebuild(b), m.want);
  }

  // 4. Bit flips and random bytes with the CRC recomputed: structural
  //    validation must catch whatever matters; no crash, no OOB.
  uint32_t accepted = 0, rejected = 0;
  {
    const uint32_t meta_end =
        L.task_table + YONO_TASK_ENTRY_SIZE * L.task_count;
    auto flip_and_check = [&](uint32_t pos, uint8_t mask) {
      std::vector<uint8_t> b = orig;
      b[pos] ^= mask;
      FixCrc(&b);
      if (OpenAndRebuild(b) == Status::kOk)
        ++accepted;
      else
        ++rejected;
    };
    // Every bit of the header and tables (they are small).
    for (uint32_t pos = YONO_CRC_START; pos < meta_end && pos < N; ++pos)
      for (int bit = 0; bit < 8; ++bit)
        flip_and_check(pos, static_cast<uint8_t>(1u << bit));
    // Every bit of the first fill records.
    for (uint32_t r = 0; r < L.fill_count && r < 8; ++r)
      for (uint32_t k = 0; k < YONO_FILL_RECORD_SIZE; ++k)
        for (int bit = 0; bit < 8; ++bit)
          flip_and_check(L.fill_table + YONO_FILL_RECORD_SIZE * r + k,
                         static_cast<uint8_t>(1u << bit));
    // Sampled positions over the whole image.
    const uint32_t step = N / flip_budget + 1;
    for (uint32_t pos = YONO_CRC_START; pos < N; pos += step)
      flip_and_check(pos, static_cast<uint8_t>(1u << (Rand() % 8)));
    // Random 32-bit garbage in header / tables / fill records.
    for (int i = 0; i < 1000; ++i) {
      std::vector<uint8_t> b = orig;
      uint32_t pos;
      if (L.fill_count && (i & 1))
        pos = L.fill_table + Rand() % (YONO_FILL_RECORD_SIZE * L.fill_count);
      else
        pos = YONO_CRC_START + Rand() % (meta_end - YONO_CRC_START);
      if (pos + 4 > N) continue;
      Put32(&b, pos, (i & 2) ? Rand() : (Rand() & 0xFF));
      FixCrc(&b);
      if (OpenAndRebuild(b) == Status::kOk)
        ++accepted;
      else
        ++rejected;
    }
  }

  // 5. Rebuild() argument errors.
  {
    AlignedBuffer buf(orig.size());
    std::memcpy(buf.data(), orig.data(), orig.size());
    yono::Image image;
    AlignedBuffer out(image.max_model_size() + 64);
    Expect("rebuild before open", image.Rebuild(0, out.data(), 16, nullptr),
           Status::kNotOpen);
    Expect("open null", image.Open(nullptr, 100), Status::kBadArgument);
    Expect("open", image.Open(buf.data(), static_cast<uint32_t>(orig.size())),
           Status::kOk);
    AlignedBuffer region(image.max_model_size() + 64);
    const uint32_t n0 = image.model_size(0);
    uint32_t written = 99;
    Expect("region too small",
           image.Rebuild(0, region.data(), n0 - 1, &written),
           Status::kRegionTooSmall);
    if (written != 0) {
      std::fprintf(stderr, "FAIL: written not reset\n");
      ++g_failures;
    }
    Expect("misaligned region",
           image.Rebuild(0, region.data() + 1, n0 + 16, nullptr),
           Status::kBadAlignment);
    Expect("no such task",
           image.Rebuild(image.task_count(), region.data(), n0, nullptr),
           Status::kNoSuchTask);
    Expect("null region", image.Rebuild(0, nullptr, n0, nullptr),
           Status::kBadArgument);
    Expect("exact region", image.Rebuild(0, region.data(), n0, &written),
           Status::kOk);
    if (image.task_name(image.task_count()) != nullptr ||
        image.model_size(image.task_count()) != 0 ||
        image.find_task("no such task, surely") != -1 ||
        image.find_task(nullptr) != -1) {
      std::fprintf(stderr, "FAIL: accessors with bad arguments\n");
      ++g_failures;
    }
    // A name that is a prefix / extension of a real one must not match.
    const std::string name = image.task_name(0);
    if (image.find_task((name + "x").c_str()) == 0 ||
        (name.size() > 1 &&
         image.find_task(name.substr(0, name.size() - 1).c_str()) == 0)) {
      std::fprintf(stderr, "FAIL: find_task prefix match\n");
      ++g_failures;
    }
    // A failed Open() closes the image.
    Expect("reopen truncated", image.Open(buf.data(), 10), Status::kTooSmall);
    if (image.is_open() || image.task_count() != 0) {
      std::fprintf(stderr, "FAIL: image still open after failed Open\n");
      ++g_failures;
    }
  }

  std::printf(
      "%s: %d checks, %d targeted mutations applied, fuzz: %u accepted / %u "
      "rejected\n",
      image_path.c_str(), g_checks, applied, accepted, rejected);
  std::printf(g_failures == 0 ? "PASS\n" : "FAIL (%d)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
