"""The CUDA C of grasp decoding, shared by the step-by-step decoder (``decode_kernels``) and
the frame graph's kernels (``frame_graph``): the candidate tests (local maxima, the global
maximum) and the reading of a chosen pixel's angle class and width logit (sampled from
maps smaller than the output where the backend hands them over before their last upsampling).

Candidates are (pixel index, logit bits) int pairs appended with an atomic counter, so their
order is not the map's; the host (or ``select_top``) ranks them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sgdn_ros.core.channel_maps import channel_maps_fit
from sgdn_ros.gpu.buffers import FLOAT32_BYTES, device_pointer
from sgdn_ros.gpu.errors import GpuProcessingError


def channel_planes_size(channel_size: tuple[int, int] | None, height: int, width: int
                        ) -> tuple[int, int]:
    """The angle and width planes' (height, width): ``channel_size`` (a backend's
    ``device_channel_size``) or, for None, the output's ``height`` x ``width``."""
    if channel_size is None:
        return height, width
    channel_height, channel_width = channel_size
    if not channel_maps_fit(channel_size, (height, width)):
        raise GpuProcessingError(
            f"angle and width maps of {channel_height}x{channel_width} cannot be sampled for "
            f"{height}x{width} output maps: the decoders upsample, so they take sizes from 1 "
            "to the output's")
    return channel_height, channel_width


def frame_offset_bytes(frame: int, plane: tuple[int, int]) -> int:
    """Bytes from a batch's first float32 map channel to frame ``frame``'s, per channel, for
    planes of ``plane`` (height, width)."""
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise GpuProcessingError(f"frame must be an integer >= 0, got {frame!r}")
    return frame * plane[0] * plane[1] * FLOAT32_BYTES


def frame_map_addresses(maps: Sequence[object], frame: int, size: tuple[int, int],
                        channel_size: tuple[int, int], num_angle_classes: int,
                        width_channels: int) -> tuple[int, int, int]:
    """Device addresses of frame ``frame``'s able, angle and width maps in batched ``maps``:
    able planes of ``size``, angle and width planes of ``channel_size``."""
    able, angle, width = (device_pointer(pointer) for pointer in maps)
    channel_bytes = frame_offset_bytes(frame, channel_size)
    return (able + frame_offset_bytes(frame, size),
            angle + channel_bytes * num_angle_classes, width + channel_bytes * width_channels)


DECODE_SOURCE = r"""
/* Candidates are (pixel index, logit bits) int pairs; count may exceed capacity (overflow). */
__device__ void store_candidate(int* count, int* candidates, int capacity, int index,
                                float logit)
{
    int slot = atomicAdd(count, 1);
    if (slot < capacity) {
        candidates[2 * slot] = index;
        candidates[2 * slot + 1] = __float_as_int(logit);
    }
}

/* The candidate test of one pixel (this thread's) against its window read from global memory,
   for radii above TILE_RADIUS. */
__device__ void local_maximum_by_rows(
    const float* able, int height, int width, int radius, float threshold, int capacity,
    int* count, int* candidates)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= height || col >= width) return;
    float value = able[row * width + col];
    if (!(value >= threshold)) return;
    int row_end = min(row + radius, height - 1);
    int col_begin = max(col - radius, 0), col_end = min(col + radius, width - 1);
    /* A row's loads carry no branch between them, so they are all in flight at once (with a
       test per pixel, one thread walked its window one load at a time: 30 us a frame on the
       H200 for radius 10). fmaxf ignores NaN, as the CPU's comparison does. */
    for (int r = max(row - radius, 0); r <= row_end; ++r) {
        const float* line = able + r * width;
        float highest = value;
        #pragma unroll 8
        for (int c = col_begin; c <= col_end; ++c) highest = fmaxf(highest, line[c]);
        if (highest > value) return;
    }
    store_candidate(count, candidates, capacity, row * width + col, value);
}

#define TILE 16  /* BLOCK_2D's side */
#define TILE_RADIUS 16
#define SPAN (TILE + 2 * TILE_RADIUS)

/* The same test for the block's TILE x TILE pixels at once, from shared memory: the block
   loads the map around it once (cells off the map -inf), takes each column's maximum over the
   window's rows, then each pixel's maximum over its window's columns: 2 (2r + 1) shared reads
   a pixel instead of (2r + 1)^2 loads, and a block with no pixel above the threshold stops
   after one load. Every thread of the block must call it; radius <= TILE_RADIUS. */
__device__ void local_maximum_in_tile(
    const float* able, int height, int width, int radius, float threshold, int capacity,
    int* count, int* candidates)
{
    __shared__ float tile[SPAN][SPAN + 1];
    __shared__ float column_max[TILE][SPAN + 1];
    int col = blockIdx.x * TILE + threadIdx.x, row = blockIdx.y * TILE + threadIdx.y;
    bool inside = row < height && col < width;
    float value = inside ? able[row * width + col] : 0.0f;
    bool passes = inside && value >= threshold;
    if (!__syncthreads_or(passes)) return;
    int thread = threadIdx.y * TILE + threadIdx.x;
    int top = blockIdx.y * TILE - TILE_RADIUS, left = blockIdx.x * TILE - TILE_RADIUS;
    for (int cell = thread; cell < SPAN * SPAN; cell += TILE * TILE) {
        int r = top + cell / SPAN, c = left + cell % SPAN;
        tile[cell / SPAN][cell % SPAN] = (r >= 0 && r < height && c >= 0 && c < width)
            ? able[r * width + c] : __int_as_float(0xff800000);
    }
    __syncthreads();
    int first = TILE_RADIUS - radius;
    for (int cell = thread; cell < TILE * SPAN; cell += TILE * TILE) {
        int y = cell / SPAN, c = cell % SPAN;
        float highest = __int_as_float(0xff800000);
        for (int r = y + first; r <= y + first + 2 * radius; ++r) {
            highest = fmaxf(highest, tile[r][c]);
        }
        column_max[y][c] = highest;
    }
    __syncthreads();
    if (!passes) return;
    float highest = value;
    for (int c = threadIdx.x + first; c <= threadIdx.x + first + 2 * radius; ++c) {
        highest = fmaxf(highest, column_max[threadIdx.y][c]);
    }
    if (highest > value) return;
    store_candidate(count, candidates, capacity, row * width + col, value);
}

/* Local maxima at least radius apart and >= threshold; called by every thread of a
   BLOCK_2D block. Shared with the frame graph's kernels. */
__device__ void local_maximum_at(
    const float* able, int height, int width, int radius, float threshold, int capacity,
    int* count, int* candidates)
{
    if (radius <= TILE_RADIUS) {
        local_maximum_in_tile(able, height, width, radius, threshold, capacity, count,
                              candidates);
    } else {
        local_maximum_by_rows(able, height, width, radius, threshold, capacity, count,
                              candidates);
    }
}

__global__ void find_local_maxima(
    const float* able, int height, int width, int radius, float threshold, int capacity,
    int* count, int* candidates)
{
    local_maximum_at(able, height, width, radius, threshold, capacity, count, candidates);
}

/* numpy.argmax order: NaN beats everything, then the larger value, then the lower index. */
__device__ bool comes_first(float value, int index, float best, int best_index)
{
    bool value_nan = isnan(value), best_nan = isnan(best);
    if (value_nan != best_nan) return value_nan;
    if (!value_nan && value != best) return value > best;
    return index < best_index;
}

/* One block of 1024 threads finds the map's argmax; shared with the frame graph. */
__device__ void block_global_max(
    const float* able, int size, float threshold, int* count, int* candidates)
{
    __shared__ float values[1024];
    __shared__ int indices[1024];
    float best = __int_as_float(0xff800000);
    int best_index = 0x7fffffff;
    for (int i = threadIdx.x; i < size; i += blockDim.x) {
        if (comes_first(able[i], i, best, best_index)) {
            best = able[i];
            best_index = i;
        }
    }
    values[threadIdx.x] = best;
    indices[threadIdx.x] = best_index;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        int other = threadIdx.x + stride;
        if (threadIdx.x < stride
                && comes_first(values[other], indices[other], values[threadIdx.x],
                               indices[threadIdx.x])) {
            values[threadIdx.x] = values[other];
            indices[threadIdx.x] = indices[other];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0 && values[0] >= threshold) {
        store_candidate(count, candidates, 1, indices[0], values[0]);
    }
}

__global__ void find_global_max(
    const float* able, int size, float threshold, int* count, int* candidates)
{
    block_global_max(able, size, threshold, count, candidates);
}

/* Where output pixel ``pixel`` of a height x width map lies in a channel plane of
   channel_height x channel_width: the same pixel when the sizes agree, else the four
   neighbours and weights of PyTorch's bilinear upsampling with aligned corners, computed as
   its CUDA kernel does (upsample_bilinear2d), so a decoder samples the angle and width
   logits at the chosen pixels instead of the network upsampling all K planes. */
struct ChannelSample {
    int top_left;  /* in the plane */
    int right, down;  /* offsets from top_left to the neighbours (0 at the last column, row) */
    float top, bottom, left_weight, right_weight;
    bool exact;
};

__device__ ChannelSample channel_sample(int pixel, int height, int width, int channel_height,
                                        int channel_width)
{
    ChannelSample sample;
    sample.exact = channel_height == height && channel_width == width;
    if (sample.exact) {
        sample.top_left = pixel;
        return sample;
    }
    int row = pixel / width, col = pixel % width;
    float row_scale = height > 1 ? (float)(channel_height - 1) / (height - 1) : 0.0f;
    float col_scale = width > 1 ? (float)(channel_width - 1) / (width - 1) : 0.0f;
    float source_row = row_scale * row, source_col = col_scale * col;
    int top_row = (int)source_row, left_col = (int)source_col;
    sample.top_left = top_row * channel_width + left_col;
    sample.down = top_row < channel_height - 1 ? channel_width : 0;
    sample.right = left_col < channel_width - 1 ? 1 : 0;
    sample.bottom = source_row - top_row;
    sample.top = 1.0f - sample.bottom;
    sample.right_weight = source_col - left_col;
    sample.left_weight = 1.0f - sample.right_weight;
    return sample;
}

__device__ float sample_logit(const float* plane, ChannelSample sample)
{
    const float* at = plane + sample.top_left;
    if (sample.exact) return at[0];
    return sample.top * (sample.left_weight * at[0] + sample.right_weight * at[sample.right])
        + sample.bottom * (sample.left_weight * at[sample.down]
                           + sample.right_weight * at[sample.down + sample.right]);
}

/* The first argmax over the K angle logits of one pixel (numpy order), and the width logit of
   that class (or of the single width channel), as bits, in lane 0; the channel planes are
   channel_height x channel_width (``channel_sample``). The 32 lanes of a warp read
   classes lane, lane + 32, ... together and merge their bests by shuffles: one thread walking
   the K logits waited for each load in turn (K = 120: about 50 us a frame on the H200).
   The whole warp must call it. */
__device__ void warp_grasp_channels(
    const float* angle, const float* width_maps, int pixel, int height, int width,
    int channel_height, int channel_width, int num_classes, int width_per_class,
    int* angle_class, int* width_bits)
{
    int lane = threadIdx.x % 32;
    size_t plane = (size_t)channel_height * channel_width;
    ChannelSample sample = channel_sample(pixel, height, width, channel_height, channel_width);
    float best = __int_as_float(0xff800000);
    int best_class = 0x7fffffff;
    for (int k = lane; k < num_classes; k += 32) {
        float value = sample_logit(angle + k * plane, sample);
        if (comes_first(value, k, best, best_class)) {
            best = value;
            best_class = k;
        }
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        float other = __shfl_down_sync(0xffffffff, best, offset);
        int other_class = __shfl_down_sync(0xffffffff, best_class, offset);
        if (comes_first(other, other_class, best, best_class)) {
            best = other;
            best_class = other_class;
        }
    }
    if (lane == 0) {
        int channel = width_per_class ? best_class : 0;
        *angle_class = best_class;
        *width_bits = __float_as_int(sample_logit(width_maps + channel * plane, sample));
    }
}

/* For each chosen pixel (one warp each) its angle class and width logit: results = classes,
   then width bits. */
__global__ void read_grasp_channels(
    const float* angle, const float* width_maps, const int* pixels, int count, int height,
    int width, int channel_height, int channel_width, int num_classes, int width_per_class,
    int* results)
{
    int grasp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (grasp >= count) return;
    warp_grasp_channels(angle, width_maps, pixels[grasp], height, width, channel_height,
                        channel_width, num_classes, width_per_class, &results[grasp],
                        &results[count + grasp]);
}

__global__ void sigmoid_map(const float* logits, float* confidences, int size)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < size) confidences[i] = 1.0f / (1.0f + expf(-logits[i]));
}
"""
