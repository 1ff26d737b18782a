// The targeted corruptions of yono_corruption_test (section 3): one lie
// about one field of a real image, and the specific status Open() must
// return for it.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "corruption_util.h"

namespace corruption {

std::vector<Mutation> TargetedMutations(const Layout& L) {
  const size_t te =
      L.task_table +
      YONO_TASK_ENTRY_SIZE * static_cast<uint32_t>(L.task < 0 ? 0 : L.task);
  std::vector<Mutation> muts = {
      {"unknown task flag bit (v4)", Status::kBadTask,
       [te](auto* b, auto&) {
         Put32(b, te + TASK(FLAGS), 2u);
         return true;
       }},
      {"flash flag on a task with fill records", Status::kBadTask,
       [te](auto* b, auto& l) {
         if (!l.fill_count) return false;
         Put32(b, te + TASK(FLAGS), YONO_TASK_FLAG_FLASH);
         return true;
       }},
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
  return muts;
}

}  // namespace corruption
