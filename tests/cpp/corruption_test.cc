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

#include "test_util.h"
#include "yono/image.h"
#include "yono/image_format.h"

// Field offsets, from the generated layout header (never literal numbers).
#define HDR(f) YONO_HEADER_##f##_OFF
#define CB(f) YONO_CODEBOOK_##f##_OFF
#define TASK(f) YONO_TASK_##f##_OFF
#define FILL(f) YONO_FILL_##f##_OFF

using yono::Status;
using yono_test::AlignedBuffer;

namespace {

int g_failures = 0;
int g_checks = 0;

uint16_t Get16(const std::vector<uint8_t>& b, size_t o) {
  return static_cast<uint16_t>(b[o] | (b[o + 1] << 8));
}
uint32_t Get32(const std::vector<uint8_t>& b, size_t o) {
  return static_cast<uint32_t>(b[o]) | (static_cast<uint32_t>(b[o + 1]) << 8) |
         (static_cast<uint32_t>(b[o + 2]) << 16) |
         (static_cast<uint32_t>(b[o + 3]) << 24);
}
void Put16(std::vector<uint8_t>* b, size_t o, uint32_t v) {
  (*b)[o] = static_cast<uint8_t>(v);
  (*b)[o + 1] = static_cast<uint8_t>(v >> 8);
}
void Put32(std::vector<uint8_t>* b, size_t o, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    (*b)[o + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
void FixCrc(std::vector<uint8_t>* b) {
  const uint32_t n = Get32(*b, HDR(IMAGE_SIZE));
  if (n < YONO_CRC_START || n > b->size()) return;
  Put32(b, HDR(CRC32),
        yono::Crc32(b->data() + YONO_CRC_START, n - YONO_CRC_START));
}

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
    if (size > image.max_model_size()) {
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

// Parsed positions of the fields the targeted tests poke at.
struct Layout {
  uint32_t image_size = 0;
  uint32_t cb_table = 0, cb_count = 0, task_table = 0, task_count = 0;
  // First task with fill records, and positions of some of its records.
  int32_t task = -1;
  uint32_t fill_table = 0, fill_count = 0;
  int64_t rec_pq = -1, rec_pq_k1 = -1, rec_raw = -1, rec_zero = -1;
  int64_t rec_res =
      -1;  // a PQ_RESIDUAL record (its first stage is also rec_pq's kind)
};

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

struct Mutation {
  const char* what;
  Status want;
  std::function<bool(std::vector<uint8_t>*, const Layout&)>
      apply;  // false: not applicable
  bool fix_crc = true;
};

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

  // 3. Targeted lies, CRC recomputed.
  const size_t te =
      L.task_table +
      YONO_TASK_ENTRY_SIZE * static_cast<uint32_t>(L.task < 0 ? 0 : L.task);
  std::vector<Mutation> muts = {
      {"older version", Status::kBadVersion,
       [](auto* b, auto&) {
         Put16(b, HDR(FORMAT_VERSION), YONO_FORMAT_VERSION - 1);
         return true;
       }},
      {"newer version", Status::kBadVersion,
       [](auto* b, auto&) {
         Put16(b, HDR(FORMAT_VERSION), YONO_FORMAT_VERSION + 1);
         return true;
       }},
      {"version 0", Status::kBadVersion,
       [](auto* b, auto&) {
         Put16(b, HDR(FORMAT_VERSION), 0);
         return true;
       }},
      {"notes past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         Put32(b, HDR(NOTES_OFFSET), l.image_size - 8);
         Put32(b, HDR(NOTES_SIZE), 16);
         return true;
       }},
      {"notes offset huge", Status::kOutOfBounds,
       [](auto* b, auto&) {
         Put32(b, HDR(NOTES_OFFSET), 0xFFFFFFF0u);
         Put32(b, HDR(NOTES_SIZE), 0x20);
         return true;
       }},
      {"notes size huge", Status::kOutOfBounds,
       [](auto* b, auto&) {
         Put32(b, HDR(NOTES_OFFSET), YONO_HEADER_SIZE);
         Put32(b, HDR(NOTES_SIZE), 0xFFFFFFFFu);
         return true;
       }},
      {"empty notes with an offset", Status::kBadHeader,
       [](auto* b, auto&) {
         Put32(b, HDR(NOTES_OFFSET), YONO_HEADER_SIZE);
         Put32(b, HDR(NOTES_SIZE), 0);
         return true;
       }},
      {"notes inside the image are ignored", Status::kOk,
       [](auto* b, auto& l) {
         Put32(b, HDR(NOTES_OFFSET), YONO_HEADER_SIZE);
         Put32(b, HDR(NOTES_SIZE), l.image_size - YONO_HEADER_SIZE);
         return true;
       }},
      {"header_size 48", Status::kBadHeader,
       [](auto* b, auto&) {
         Put16(b, HDR(HEADER_SIZE), 48);
         return true;
       }},
      {"flags 1", Status::kBadHeader,
       [](auto* b, auto&) {
         Put32(b, HDR(FLAGS), 1);
         return true;
       }},
      {"task_count 0", Status::kBadHeader,
       [](auto* b, auto&) {
         Put16(b, HDR(TASK_COUNT), 0);
         return true;
       }},
      {"image_size > buffer", Status::kTooSmall,
       [](auto* b, auto& l) {
         Put32(b, HDR(IMAGE_SIZE), l.image_size + 1);
         return true;
       },
       false},
      {"image_size < header", Status::kBadHeader,
       [](auto* b, auto&) {
         Put32(b, HDR(IMAGE_SIZE), YONO_HEADER_SIZE - 1);
         return true;
       },
       false},
      {"crc lie", Status::kBadCrc,
       [](auto* b, auto&) {
         Put32(b, HDR(CRC32), Get32(*b, HDR(CRC32)) ^ 1u);
         return true;
       },
       false},
      {"codebook table past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put32(b, HDR(CODEBOOK_TABLE_OFFSET), l.image_size - 8);
         return true;
       }},
      {"codebook table offset huge", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put32(b, HDR(CODEBOOK_TABLE_OFFSET), 0xFFFFFFF0u);
         return true;
       }},
      {"task table past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         Put32(b, HDR(TASK_TABLE_OFFSET),
               l.image_size - YONO_TASK_ENTRY_SIZE + 1);
         return true;
       }},
      {"task_count lies", Status::kOutOfBounds,
       [](auto* b, auto&) {
         Put16(b, HDR(TASK_COUNT), 0xFFFF);
         return true;
       }},
      {"codebook s 0", Status::kBadCodebook,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         (*b)[l.cb_table + CB(SUBVECTOR_LEN)] = 0;
         return true;
       }},
      {"codebook s > max", Status::kBadCodebook,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         (*b)[l.cb_table + CB(SUBVECTOR_LEN)] = YONO_MAX_SUBVECTOR_LEN + 1;
         return true;
       }},
      {"codebook K 0", Status::kBadCodebook,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put16(b, l.cb_table + CB(CODEWORD_COUNT), 0);
         return true;
       }},
      {"codebook K > max", Status::kBadCodebook,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put16(b, l.cb_table + CB(CODEWORD_COUNT), YONO_MAX_CODEWORDS + 1);
         return true;
       }},
      {"codebook data_size lies", Status::kBadCodebook,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put32(b, l.cb_table + CB(DATA_SIZE),
               Get32(*b, l.cb_table + CB(DATA_SIZE)) + 2);
         return true;
       }},
      {"codebook data past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put32(b, l.cb_table + CB(DATA_OFFSET), l.image_size - 2);
         return true;
       }},
      {"codebook data offset huge", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (!l.cb_count) return false;
         Put32(b, l.cb_table + CB(DATA_OFFSET), 0xFFFFFFFFu);
         return true;
       }},
      {"name_length 0", Status::kBadTask,
       [te](auto* b, auto&) {
         Put32(b, te + TASK(NAME_LENGTH), 0);
         return true;
       }},
      {"name_length > max", Status::kBadTask,
       [te](auto* b, auto&) {
         Put32(b, te + TASK(NAME_LENGTH), YONO_MAX_NAME_LENGTH + 1);
         return true;
       }},
      {"name without NUL", Status::kBadTask,
       [te](auto* b, auto&) {
         (*b)[Get32(*b, te + TASK(NAME_OFFSET)) +
              Get32(*b, te + TASK(NAME_LENGTH))] = 'x';
         return true;
       }},
      {"name past end", Status::kOutOfBounds,
       [te](auto* b, auto& l) {
         Put32(b, te + TASK(NAME_OFFSET), l.image_size - 1);
         return true;
       }},
      {"model_size > max_model_size", Status::kBadHeader,
       [te](auto* b, auto&) {
         Put32(b, HDR(MAX_MODEL_SIZE), Get32(*b, te + TASK(MODEL_SIZE)) - 1);
         return true;
       }},
      {"arena_size > max_arena_size", Status::kBadHeader,
       [te](auto* b, auto&) {
         Put32(b, te + TASK(ARENA_SIZE), Get32(*b, HDR(MAX_ARENA_SIZE)) + 1);
         return true;
       }},
      {"skeleton_size +1", Status::kBadTask,
       [te](auto* b, auto& l) {
         if (Get32(*b, te + TASK(SKELETON_OFFSET)) +
                 Get32(*b, te + TASK(SKELETON_SIZE)) >=
             l.image_size)
           return false;
         Put32(b, te + TASK(SKELETON_SIZE),
               Get32(*b, te + TASK(SKELETON_SIZE)) + 1);
         return true;
       }},
      {"skeleton past end", Status::kOutOfBounds,
       [te](auto* b, auto& l) {
         Put32(b, te + TASK(SKELETON_OFFSET),
               l.image_size - Get32(*b, te + TASK(SKELETON_SIZE)) + 1);
         return true;
       }},
      {"model_size +1 (sum mismatch)", Status::kBadTask,
       [te](auto* b, auto&) {
         const uint32_t ms = Get32(*b, te + TASK(MODEL_SIZE)) + 1;
         Put32(b, te + TASK(MODEL_SIZE), ms);
         if (Get32(*b, HDR(MAX_MODEL_SIZE)) < ms) {
           Put32(b, HDR(MAX_MODEL_SIZE), ms);
         }
         return true;
       }},
      {"fill_count lies", Status::kOutOfBounds,
       [te](auto* b, auto&) {
         Put32(b, te + TASK(FILL_COUNT), 0x10000000u);
         return true;
       }},
      {"fill table past end", Status::kOutOfBounds,
       [te](auto* b, auto& l) {
         if (!l.fill_count) return false;
         Put32(b, te + TASK(FILL_TABLE_OFFSET), l.image_size - 8);
         return true;
       }},
      {"unknown fill kind", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (!l.fill_count) return false;
         (*b)[l.fill_table + FILL(KIND)] = YONO_FILL_KIND_PQ_RESIDUAL + 1;
         return true;
       }},
      {"residual M2 0", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_res < 0) return false;
         (*b)[static_cast<size_t>(l.rec_res) + FILL(RESIDUAL_COUNT)] = 0;
         return true;
       }},
      {"residual M2 > max", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_res < 0) return false;
         (*b)[static_cast<size_t>(l.rec_res) + FILL(RESIDUAL_COUNT)] =
             YONO_MAX_SUBCODEBOOKS + 1;
         return true;
       }},
      {"residual_first past table", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_res < 0) return false;
         Put16(b, static_cast<size_t>(l.rec_res) + FILL(RESIDUAL_FIRST),
               l.cb_count);
         return true;
       }},
      {"residual indices past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (l.rec_res < 0) return false;
         const size_t r = static_cast<size_t>(l.rec_res);
         const size_t ce = l.cb_table + YONO_CODEBOOK_ENTRY_SIZE *
                                            Get16(*b, r + FILL(CODEBOOK_FIRST));
         const uint32_t s = (*b)[ce + CB(SUBVECTOR_LEN)],
                        len = Get32(*b, r + FILL(LENGTH));
         // the first stage's indices end exactly at the image end: the residual's are past it
         Put32(b, r + FILL(SRC_OFFSET), l.image_size - (len + s - 1) / s);
         return true;
       }},
      {"fill length 0", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (!l.fill_count) return false;
         Put32(b, l.fill_table + FILL(LENGTH), 0);
         return true;
       }},
      {"fill past model_size", Status::kBadFillRecord,
       [te](auto* b, auto& l) {
         if (!l.fill_count) return false;
         const size_t last =
             l.fill_table + YONO_FILL_RECORD_SIZE * (l.fill_count - 1);
         Put32(b, last + FILL(DST_OFFSET),
               Get32(*b, te + TASK(MODEL_SIZE)) -
                   Get32(*b, last + FILL(LENGTH)) + 1);
         return true;
       }},
      {"fill length huge", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (!l.fill_count) return false;
         Put32(b, l.fill_table + FILL(LENGTH), 0xFFFFFFFFu);
         return true;
       }},
      {"fills overlap", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.fill_count < 2) return false;
         Put32(b, l.fill_table + YONO_FILL_RECORD_SIZE + FILL(DST_OFFSET),
               Get32(*b, l.fill_table + FILL(DST_OFFSET)) +
                   Get32(*b, l.fill_table + FILL(LENGTH)) - 1);
         return true;
       }},
      {"fills unsorted", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.fill_count < 2) return false;
         const auto r0 = b->begin() + l.fill_table,
                    r1 = r0 + YONO_FILL_RECORD_SIZE;
         std::swap_ranges(r0, r1, r1);
         return true;
       }},
      {"zero record with a layout", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_zero < 0) return false;
         (*b)[static_cast<size_t>(l.rec_zero) + FILL(LAYOUT)] =
             YONO_LAYOUT_KERNEL_MAJOR;
         return true;
       }},
      {"raw src past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (l.rec_raw < 0) return false;
         Put32(b, static_cast<size_t>(l.rec_raw) + FILL(SRC_OFFSET),
               l.image_size - 1);
         return true;
       }},
      {"raw src huge", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (l.rec_raw < 0) return false;
         Put32(b, static_cast<size_t>(l.rec_raw) + FILL(SRC_OFFSET),
               0xFFFFFFFFu);
         return true;
       }},
      {"unknown pq layout", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         (*b)[static_cast<size_t>(l.rec_pq) + FILL(LAYOUT)] =
             YONO_LAYOUT_KERNEL_MAJOR + 1;
         return true;
       }},
      {"pq M 0", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         (*b)[static_cast<size_t>(l.rec_pq) + FILL(CODEBOOK_COUNT)] = 0;
         return true;
       }},
      {"pq M > max", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         (*b)[static_cast<size_t>(l.rec_pq) + FILL(CODEBOOK_COUNT)] =
             YONO_MAX_SUBCODEBOOKS + 1;
         return true;
       }},
      {"pq codebook_first past table", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         Put16(b, static_cast<size_t>(l.rec_pq) + FILL(CODEBOOK_FIRST),
               l.cb_count);
         return true;
       }},
      {"pq index array past end", Status::kOutOfBounds,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         Put32(b, static_cast<size_t>(l.rec_pq) + FILL(SRC_OFFSET),
               l.image_size - 1);
         return true;
       }},
      {"pq index >= K", Status::kBadIndex,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         const size_t r = static_cast<size_t>(l.rec_pq);
         const uint32_t m = (*b)[r + FILL(CODEBOOK_COUNT)];
         const uint32_t cbf = Get16(*b, r + FILL(CODEBOOK_FIRST));
         // Shrink every sub-codebook of this record to K=1 (consistently),
         // then any index > 0 is out of range; make index 0 of sub-vector 0 = 1.
         for (uint32_t q = 0; q < m; ++q) {
           const size_t ce = l.cb_table + YONO_CODEBOOK_ENTRY_SIZE * (cbf + q);
           Put16(b, ce + CB(CODEWORD_COUNT), 1);
           Put32(b, ce + CB(DATA_SIZE), 2u * (*b)[ce + CB(SUBVECTOR_LEN)]);
         }
         (*b)[Get32(*b, r + FILL(SRC_OFFSET))] = 1;
         return true;
       }},
      {"pq layout 1 P 0", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         const size_t r = static_cast<size_t>(l.rec_pq);
         (*b)[r + FILL(LAYOUT)] = YONO_LAYOUT_KERNEL_MAJOR;
         Put16(b, r + FILL(KERNEL_POSITIONS), 0);
         Put16(b, r + FILL(INNER_CHANNELS), 1);
         return true;
       }},
      {"pq layout 1 I 0", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         const size_t r = static_cast<size_t>(l.rec_pq);
         (*b)[r + FILL(LAYOUT)] = YONO_LAYOUT_KERNEL_MAJOR;
         Put16(b, r + FILL(KERNEL_POSITIONS), 1);
         Put16(b, r + FILL(INNER_CHANNELS), 0);
         return true;
       }},
      {"pq layout 1 length % (P*I)", Status::kBadFillRecord,
       [](auto* b, auto& l) {
         if (l.rec_pq < 0) return false;
         const size_t r = static_cast<size_t>(l.rec_pq);
         const uint32_t len = Get32(*b, r + FILL(LENGTH));
         (*b)[r + FILL(LAYOUT)] = YONO_LAYOUT_KERNEL_MAJOR;
         Put16(b, r + FILL(KERNEL_POSITIONS), 0xFFFF);
         Put16(b, r + FILL(INNER_CHANNELS), 0xFFFF);
         return len % (0xFFFFu * 0xFFFFu) != 0;
       }},
  };
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
