"""The launch shapes of minigan's CUDA kernels: which tile, how many depth splits, how many blocks.

Pure integer arithmetic, no CuPy: cuda_kernels.py launches with these choices, and the NumPy
emulation of the kernels (tests/cuda_emulation.py) runs the very same ones on the CPU.

    conv_tile(cols)                          the TileShape index of kernels/conv2d.cu for a product
                                             with `cols` columns (narrow layers get narrow tiles)
    conv_splits(rows, cols, depth, tile)     how many slices the depth is cut into (split-K)
    conv_grid(rows, cols, tile, splits)      the grid of blocks
    batch_norm_blocks(channels, count)       blocks per channel of kernels/batch_norm.cu
    elementwise_blocks(size)                 the grid of the grid-stride kernels

sm_count is the number of multiprocessors to fill (cuda_kernels.py reads it off the device);
SM_COUNT, an H100's or H200's, is the default.
"""

THREADS = 256                    # threads per block, for every kernel
TILE_K = 16                      # conv2d.cu: depth per step
TILES = ((64, 64), (64, 32), (128, 8))   # conv2d.cu's TileShapes (BM, BN), by index
SM_COUNT = 132                   # multiprocessors of an H100 / H200
WAVES = 2                        # a grid is full at WAVES blocks per multiprocessor
SPLIT_MIN_STEPS = 8              # a depth slice is at least this many TILE_K steps
BN_MIN_PER_BLOCK = 4 * THREADS   # a batch-norm block reduces at least this many values
ELEMENTWISE_MAX_BLOCKS = 4096    # grid-stride loops cover the rest
MAX_GRID_Z = 65535               # CUDA's limit on gridDim.y and gridDim.z


def ceil_div(a, b):
    return -(-a // b)


def conv_tile(cols):
    """conv2d.cu's tile for a product with `cols` columns: 2 (128 x 8) up to 8 columns, 1 (64 x 32)
    up to 32, else 0 (64 x 64); a column of a tile past `cols` is computed and thrown away."""
    return 2 if cols <= 8 else 1 if cols <= 32 else 0


def conv_splits(rows, cols, depth, tile, sm_count=SM_COUNT):
    """Depth slices of the product (rows x depth) (depth x cols): 1 when the tiles alone fill WAVES
    blocks per multiprocessor, else as many as bring the grid there, each slice at least
    SPLIT_MIN_STEPS steps deep. Never an empty slice: conv2d.cu gives slice z the steps
    [z s, (z + 1) s) with s = ceil(steps / splits), and splits is ceil(steps / s) here."""
    bm, bn = TILES[tile]
    blocks = ceil_div(rows, bm) * ceil_div(cols, bn)
    steps = ceil_div(depth, TILE_K)
    if blocks == 0 or steps == 0 or blocks >= WAVES * sm_count:
        return 1
    splits = max(1, min(ceil_div(WAVES * sm_count, blocks), steps // SPLIT_MIN_STEPS, MAX_GRID_Z))
    return ceil_div(steps, ceil_div(steps, splits))


def conv_grid(rows, cols, tile, splits):
    bm, bn = TILES[tile]
    return ceil_div(rows, bm), ceil_div(cols, bn), splits


def split_slice(depth, splits):
    """conv2d.cu's depth slice of each split: [z slice, min(depth, (z + 1) slice))."""
    return ceil_div(depth, splits * TILE_K) * TILE_K


def batch_norm_blocks(channels, count, sm_count=SM_COUNT):
    """Blocks per channel of batch_norm.cu for `count` values per channel: enough for WAVES blocks
    per multiprocessor, each with at least BN_MIN_PER_BLOCK values; never an empty block
    (block p reduces [p s, (p + 1) s) with s = ceil(count / blocks))."""
    blocks = max(1, min(ceil_div(WAVES * sm_count, channels), ceil_div(count, BN_MIN_PER_BLOCK), MAX_GRID_Z))
    return ceil_div(count, ceil_div(count, blocks))


def elementwise_blocks(size):
    return max(1, min(ceil_div(size, THREADS), ELEMENTWISE_MAX_BLOCKS))
