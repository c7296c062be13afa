/* The CPU path's per-pixel work in three calls: the network input of a crop (what
 * sgdn_ros.core.preprocessing's lookup tables write), the peak search (what
 * sgdn_ros.core.decoding.find_peaks returns) and the angle class and width logit at the peaks
 * (what decode_grasps reads through channel_maps.PixelSampler). In Python these are a few
 * dozen NumPy and OpenCV calls; on the 2-core project machines each runs on cold caches right
 * after inference and costs tens of microseconds whatever its work (docs/performance.md).
 *
 * Every result is the Python form's exactly. Planes are table lookups. A peak is a pixel >=
 * threshold that no pixel of its (2d+1)^2 neighbourhood (clipped at the borders) exceeds;
 * peaks are taken strongest first, ties in row-major order, each kept unless a kept one lies
 * within Chebyshev distance d, until max_peaks are kept: only comparisons of the map's own
 * float32 values decide. The sampling repeats the Python form's float32 operations in its
 * order, built without floating-point contraction (CMakeLists.txt).
 *
 * As in Python, only the box around the pixels >= threshold is searched. The neighbourhood
 * maximum is a sliding maximum along the rows, then along the columns, each by doubling: the
 * maximum over 2, 4, 8, ... pixels from every position, then two overlapping spans for 2d+1.
 * Every step is an element-wise maximum of two rows of floats, which the compiler vectorises.
 *
 * Loaded with ctypes (sgdn_ros/core/compiled_stages.py): plain C, no Python API, so one build
 * serves every Python version.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float value;
    int64_t row, col; /* row -1 once kept or suppressed */
} Candidate;

typedef struct {
    int64_t top, left, bottom, right; /* inclusive; top > bottom when no pixel is >= threshold */
} Box;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static float larger(float a, float b) { return a > b ? a : b; }

/* Rows without a pixel >= threshold are passed over after one vectorised pass; in the others
 * the first and last such pixels are looked for from either end. Returns 0, or -1 at the first
 * row holding a NaN (any NaN: the caller refuses such a map). */
static int box_above(const float *score, int64_t stride, int64_t height, int64_t width,
                     float threshold, Box *box) {
    *box = (Box){height, width, -1, -1};
    for (int64_t row = 0; row < height; ++row) {
        const float *line = score + row * stride;
        int above = 0, not_a_number = 0; /* OR-reductions of comparisons: vectorised */
        for (int64_t col = 0; col < width; ++col) {
            above |= line[col] >= threshold;
            not_a_number |= line[col] != line[col];
        }
        if (not_a_number) {
            return -1;
        }
        if (!above) {
            continue;
        }
        int64_t first = 0, last = width - 1;
        while (!(line[first] >= threshold)) {
            ++first;
        }
        while (!(line[last] >= threshold)) {
            --last;
        }
        box->top = min64(box->top, row);
        box->bottom = row;
        box->left = min64(box->left, first);
        box->right = max64(box->right, last);
    }
    return 0;
}

/* out[i] = max(a[i], b[i]): the one step of the sliding maxima, vectorised. `out` may be `a`
 * (b lies ahead of it, so every b[i] is read before it is written). */
static void maximum_of(float *out, const float *a, const float *b, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
        out[i] = larger(a[i], b[i]);
    }
}

/* Position i (its `lanes` floats; positions `step` floats apart) becomes its element-wise
 * maximum with position i + shift, for the first `count` positions: one vectorised call when
 * the positions are adjacent. */
static void shifted_maximum(float *values, int64_t count, int64_t shift, int64_t step,
                            int64_t lanes) {
    if (step == lanes) {
        maximum_of(values, values, values + shift * step, count * step);
        return;
    }
    for (int64_t i = 0; i < count; ++i) {
        maximum_of(values + i * step, values + i * step, values + (i + shift) * step, lanes);
    }
}

/* Position i of `values` (positions `step` floats apart, `lanes` floats each) becomes the
 * maximum over positions i .. i + window - 1, for the first length - window + 1 positions:
 * maxima over 2, 4, 8, ... positions, then two overlapping spans cover the window. */
static void sliding_maximum(float *values, int64_t length, int64_t window, int64_t step,
                            int64_t lanes) {
    int64_t span = 1;
    for (; 2 * span <= window; span *= 2) {
        shifted_maximum(values, length - span, span, step, lanes);
    }
    if (window > span) {
        shifted_maximum(values, length - (window - span), window - span, step, lanes);
    }
}

/* Whether a is taken before b: stronger, or as strong and earlier in row-major order. */
static int before(const Candidate *a, const Candidate *b) {
    return a->value > b->value ||
           (a->value == b->value && (a->row < b->row || (a->row == b->row && a->col < b->col)));
}

/* The greedy pass over the candidates in strength order, as a selection: each round takes the
 * best candidate not yet within `distance` of a kept one (the one the sorted pass would keep
 * next), so a plateau of many equal candidates costs count x max_peaks steps, not a sort. */
static int64_t keep_apart(Candidate *candidates, int64_t count, int64_t distance,
                          int64_t max_peaks, int64_t *rows, int64_t *cols) {
    int64_t kept = 0;
    while (kept < max_peaks) {
        Candidate *best = NULL;
        for (int64_t i = 0; i < count; ++i) {
            if (candidates[i].row >= 0 && (best == NULL || before(&candidates[i], best))) {
                best = &candidates[i];
            }
        }
        if (best == NULL) {
            break;
        }
        const int64_t row = best->row, col = best->col;
        rows[kept] = row;
        cols[kept] = col;
        ++kept;
        for (int64_t i = 0; i < count; ++i) {
            Candidate *other = &candidates[i];
            if (other->row >= 0 &&
                max64(llabs(other->row - row), llabs(other->col - col)) <= distance) {
                other->row = -1; /* suppressed, or the one just kept */
            }
        }
    }
    return kept;
}

/* Writes up to max_peaks (row, col) pairs, strongest first, and returns how many; -1 when
 * memory could not be had, -2 when the map holds a NaN. row_stride counts floats. */
int64_t sgdn_find_peaks(const float *score, int64_t height, int64_t width, int64_t row_stride,
                        float threshold, int64_t distance, int64_t max_peaks, int64_t *rows,
                        int64_t *cols) {
    Box box;
    if (box_above(score, row_stride, height, width, threshold, &box) != 0) {
        return -2;
    }
    if (box.top > box.bottom) {
        return 0;
    }
    /* The box grown by d on every side, -inf outside the map: its sliding maxima over 2d+1
     * rows and columns are the clipped neighbourhood maxima of the box's pixels. */
    const int64_t box_rows = box.bottom - box.top + 1, box_cols = box.right - box.left + 1;
    const int64_t grown_rows = box_rows + 2 * distance, grown_cols = box_cols + 2 * distance;
    const int64_t window = 2 * distance + 1;
    int64_t capacity = 64; /* local maxima are few: grown when a plateau brings many */
    float *grown = malloc((size_t)(grown_rows * grown_cols) * sizeof *grown);
    Candidate *candidates = malloc((size_t)capacity * sizeof *candidates);
    if (grown == NULL || candidates == NULL) {
        free(grown);
        free(candidates);
        return -1;
    }
    const int64_t first_col = max64(box.left - distance, 0);
    const int64_t last_col = min64(box.right + distance, width - 1);
    for (int64_t r = 0; r < grown_rows; ++r) {
        const int64_t row = box.top - distance + r;
        float *out = grown + r * grown_cols;
        for (int64_t c = 0; c < grown_cols; ++c) {
            out[c] = -INFINITY;
        }
        if (row >= 0 && row < height) {
            memcpy(out + first_col - (box.left - distance), score + row * row_stride + first_col,
                   (size_t)(last_col - first_col + 1) * sizeof *out);
        }
    }
    for (int64_t r = 0; r < grown_rows; ++r) {
        sliding_maximum(grown + r * grown_cols, grown_cols, window, 1, 1);
    }
    sliding_maximum(grown, grown_rows, window, grown_cols, box_cols);
    int64_t count = 0;
    for (int64_t r = 0; r < box_rows; ++r) {
        const float *line = score + (box.top + r) * row_stride + box.left;
        const float *maximum = grown + r * grown_cols;
        for (int64_t c = 0; c < box_cols; ++c) {
            if (!(line[c] >= threshold && line[c] == maximum[c])) {
                continue;
            }
            if (count == capacity) {
                Candidate *more = realloc(candidates, (size_t)(2 * capacity) * sizeof *more);
                if (more == NULL) {
                    free(grown);
                    free(candidates);
                    return -1;
                }
                candidates = more;
                capacity *= 2;
            }
            candidates[count] = (Candidate){line[c], box.top + r, box.left + c};
            ++count;
        }
    }
    const int64_t kept = keep_apart(candidates, count, distance, max_peaks, rows, cols);
    free(grown);
    free(candidates);
    return kept;
}

/* Where a pixel of an axis of `size` reads an axis of `source_size` upsampled to it (bilinear,
 * aligned corners): the source index before it, the one after (the same at the last) and the
 * weight of the one after, in float32 as sgdn_ros.core.channel_maps._neighbours computes them. */
static void neighbours(int64_t position, int64_t size, int64_t source_size, int64_t *before,
                       int64_t *after, float *weight) {
    const float scale = size > 1 ? (float)(source_size - 1) / (float)(size - 1) : 0.0f;
    const float source = scale * (float)position;
    *before = (int64_t)source;
    *after = *before + (*before < source_size - 1);
    *weight = source - (float)*before;
}

/* Plane `plane` of (planes, channel_height, channel_width) maps at output pixel (row, col) of
 * height x width: read as it is when the maps have the output's size, else upsampled there
 * with the arithmetic (and the order of operations) of channel_maps.PixelSampler. */
static float sample(const float *maps, int64_t plane, int64_t channel_height,
                    int64_t channel_width, int64_t height, int64_t width, int64_t row,
                    int64_t col) {
    const float *at = maps + plane * channel_height * channel_width;
    if (channel_height == height && channel_width == width) {
        return at[row * width + col];
    }
    int64_t top, bottom, left, right;
    float down, across;
    neighbours(row, height, channel_height, &top, &bottom, &down);
    neighbours(col, width, channel_width, &left, &right, &across);
    const float upper = (1 - across) * at[top * channel_width + left] +
                        across * at[top * channel_width + right];
    const float lower = (1 - across) * at[bottom * channel_width + left] +
                        across * at[bottom * channel_width + right];
    return (1 - down) * upper + down * lower;
}

/* For each of `count` pixels: the angle class (the first largest of the `classes` angle
 * planes there, the first NaN if any, as numpy.argmax) and the width logit (plane 0 of the
 * width maps, or the class's plane when there is one per class). Maps are contiguous
 * (planes, channel_height, channel_width) float32. */
void sgdn_sample_at_pixels(const float *angle, int64_t classes, const float *widths,
                           int64_t width_planes, int64_t channel_height, int64_t channel_width,
                           int64_t height, int64_t width, const int64_t *rows,
                           const int64_t *cols, int64_t count, int64_t *angle_classes,
                           float *width_logits) {
    for (int64_t i = 0; i < count; ++i) {
        int64_t best = 0;
        float best_value = sample(angle, 0, channel_height, channel_width, height, width,
                                  rows[i], cols[i]);
        for (int64_t plane = 1; plane < classes && !isnan(best_value); ++plane) {
            const float value = sample(angle, plane, channel_height, channel_width, height,
                                       width, rows[i], cols[i]);
            if (value > best_value || isnan(value)) {
                best = plane;
                best_value = value;
            }
        }
        angle_classes[i] = best;
        width_logits[i] = sample(widths, width_planes > 1 ? best : 0, channel_height,
                                 channel_width, height, width, rows[i], cols[i]);
    }
}

/* The network input of one crop: plane k (of three, plane_size floats apart, rows plane_row
 * floats apart) holds tables[k][channel k of each pixel], the channels at byte offsets blue,
 * green and red within a pixel (all three the same for a mono frame). One pass over the crop:
 * what cv2.split and three cv2.LUT calls write, without the split's copy. */
void sgdn_planes_through_tables(const uint8_t *window, int64_t rows, int64_t cols,
                                int64_t row_stride, int64_t pixel_stride, int64_t blue,
                                int64_t green, int64_t red, const float *tables, float *planes,
                                int64_t plane_size, int64_t plane_row) {
    const float *blue_table = tables, *green_table = tables + 256, *red_table = tables + 512;
    for (int64_t row = 0; row < rows; ++row) {
        const uint8_t *pixel = window + row * row_stride;
        float *blue_plane = planes + row * plane_row;
        float *green_plane = blue_plane + plane_size, *red_plane = green_plane + plane_size;
        for (int64_t col = 0; col < cols; ++col, pixel += pixel_stride) {
            blue_plane[col] = blue_table[pixel[blue]];
            green_plane[col] = green_table[pixel[green]];
            red_plane[col] = red_table[pixel[red]];
        }
    }
}
