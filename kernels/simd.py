"""One explicit-SIMD building block: a tile of samples times a block of weight rows.

For a tile of ``T = TILE`` samples and a block of ``width`` output units starting at
column ``col``, ``tile_rows_block`` computes

    for s in range(T):
        for j in range(width):
            acc = b[col + j] if col + j < len(b) else 0
            for p in range(start, stop):
                acc = fma(x[p, s], w[rows[p] * stride + col + j], acc)
            out[s, col + j] = acc

keeping the ``T`` accumulators in vector registers (LLVM phi nodes) and
loading each weight row segment once for all ``T`` samples.  ``rows`` lists the
inputs that are non-zero in at least one sample of the tile (for a dense layer:
all of them); ``x`` holds the tile's values there, zero where a sample is
inactive.  Adding ``0 * w`` leaves a finite accumulator unchanged, so the result
equals the per-sample sparse sum.  Weights must be finite for that: ``0 * inf``
is NaN, so a non-finite weight on input i poisons every sample of each tile in
which input i is active (populations refuse NaN weights before evaluation).  ``fma`` is IEEE fused multiply-add: exactly
rounded, hence the same on every machine.

Arrays: ``w: (n,) float32``; ``rows: (>= stop,)`` integers; ``x: (>= stop, >= T)
float32`` with any strides: the C-contiguous tile values of a first layer, or
the transposed view ``h.T`` of the previous layer's output ``h: (T, width)``,
read in place; ``b: (n_b,) float32``, the layer's bias, ``col < n_b`` (lanes
``col + j >= n_b`` start at zero, and ``b`` is never read past its end);
``out: (>= T, >= col + width) float32``, C-contiguous.  Nothing is
bounds-checked: every ``w[rows[p] * stride + col + j]``, j < width, must lie
inside ``w`` (see ``genreg.kernels.forward.tile_layer`` for the padded last block).

Numba's own vectoriser cannot do this: it keeps accumulators in memory and
guards every short loop with alias checks, ~4x slower on MNIST.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from llvmlite import binding as _llvm


def counted_loop(builder, name: str, start, stop, carried=(), step: int = 1):
    """Open the loop ``for p in range(start, stop, step)`` (int64 values, step > 0) that carries the
    values ``carried`` from one step to the next (as phis).

    Returns ``(p, phis, close)`` with the builder in the loop's body.  The caller builds the body,
    then calls ``close(next_values)`` with each carried value's next value: that ends the body and
    leaves the builder after the loop, where ``phis`` hold the final values (and ``p`` the first
    index the loop did not run).
    """
    i64 = ir.IntType(64)
    entry = builder.block
    header, body, done = (builder.append_basic_block(f"{name}.{part}") for part in ("header", "body", "done"))
    builder.branch(header)
    builder.position_at_end(header)
    p = builder.phi(i64)
    p.add_incoming(start, entry)
    phis = []
    for value in carried:
        phi = builder.phi(value.type)
        phi.add_incoming(value, entry)
        phis.append(phi)
    builder.cbranch(builder.icmp_signed("<", p, stop), body, done)
    builder.position_at_end(body)

    def close(next_values=()):
        latch = builder.block
        if len(next_values) != len(phis):
            raise ValueError(f"{name}: {len(next_values)} next values for {len(phis)} carried ones")
        for phi, value in zip(phis, next_values):
            phi.add_incoming(value, latch)
        p.add_incoming(builder.add(p, ir.Constant(i64, step)), latch)
        builder.branch(header)
        builder.position_at_end(done)

    return p, phis, close


def splat(builder, value, lanes: int):
    """IR: the vector of ``lanes`` copies of the scalar ``value``."""
    undef = ir.Constant(ir.VectorType(value.type, lanes), ir.Undefined)
    zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    return builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)), undef,
                                  zero_mask)

def _register_budget() -> tuple[int, int]:
    """(TILE, BLOCK) so that the TILE x BLOCK accumulators fill half the vector registers.

    AVX-512: 32 registers of 16 floats -> 8 samples x 32 units (16 registers);
    otherwise (AVX2: 16 registers of 8 floats) -> 4 samples x 16 units (8 registers).
    Per output element the terms are added in the same order whatever the
    choice, so results do not depend on it.
    """
    features = _llvm.get_host_cpu_features()
    if features.get("avx512f", False):
        return 8, 32
    return 4, 16


#: Samples per tile, and output units per register block.
TILE, BLOCK = _register_budget()


def _make_tile_rows_block(width: int, tile: int = TILE):
    @intrinsic
    def tile_rows_block(typingctx, w, stride, col, rows, x, start, stop, b, out):
        sig = types.void(w, stride, col, rows, x, start, stop, b, out)

        def codegen(context, builder, signature, args):
            w_, stride_, col_, rows_, x_, start_, stop_, b_, out_ = args
            w_t, stride_t, col_t, rows_t, x_t, start_t, stop_t, b_t, out_t = signature.args
            w_ptr = context.make_array(w_t)(context, builder, w_).data
            rows_ptr = context.make_array(rows_t)(context, builder, rows_).data
            x_arr = context.make_array(x_t)(context, builder, x_)
            x_ptr = x_arr.data
            out_arr = context.make_array(out_t)(context, builder, out_)
            out_ptr = out_arr.data

            i64, i32, f32 = ir.IntType(64), ir.IntType(32), ir.FloatType()
            vec = ir.VectorType(f32, width)
            vec_ptr = vec.as_pointer()
            as64 = lambda value, ty: context.cast(builder, value, ty, types.int64)  # noqa: E731
            stride64, col64 = as64(stride_, stride_t), as64(col_, col_t)
            start64, stop64 = as64(start_, start_t), as64(stop_, stop_t)
            out_row = cgutils.unpack_tuple(builder, out_arr.shape, 2)[1]
            # x[p, s] is x_ptr[p * x_p + s * x_s] (strides in float32 elements); the
            # unit stride of a contiguous layout is a constant that LLVM folds.
            one = ir.Constant(i64, 1)
            x_p, x_s = (builder.sdiv(n, ir.Constant(i64, 4)) for n in cgutils.unpack_tuple(builder, x_arr.strides, 2))
            if x_t.layout == "C":
                x_s = one
            elif x_t.layout == "F":
                x_p = one
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{width}f32"
            )
            # Every accumulator starts at b[col:col + width], zero past the end of b:
            # one vector load for a full block; for the last, padded block of a
            # layer, lane j reads b[min(col + j, n_b - 1)] and keeps it only if col + j < n_b.
            b_arr = context.make_array(b_t)(context, builder, b_)
            n_b = cgutils.unpack_tuple(builder, b_arr.shape, 1)[0]
            full = builder.icmp_signed("<=", builder.add(col64, ir.Constant(i64, width)), n_b)
            with builder.if_else(full) as (then, otherwise):
                with then:
                    bias_full = builder.load(builder.bitcast(builder.gep(b_arr.data, [col64]), vec_ptr), align=4)
                    full_block = builder.block
                with otherwise:
                    bias_part = ir.Constant(vec, [0.0] * width)
                    for j in range(width):
                        index = builder.add(col64, ir.Constant(i64, j))
                        inside = builder.icmp_signed("<", index, n_b)
                        index = builder.select(inside, index, builder.sub(n_b, one))
                        value = builder.load(builder.gep(b_arr.data, [index]))
                        value = builder.select(inside, value, ir.Constant(f32, 0.0))
                        bias_part = builder.insert_element(bias_part, value, ir.Constant(i32, j))
                    part_block = builder.block
            bias = builder.phi(vec)
            bias.add_incoming(bias_full, full_block)
            bias.add_incoming(bias_part, part_block)
            acc0 = [bias] * tile
            acc_ptrs = []
            for s in range(tile):
                offset = builder.add(builder.mul(ir.Constant(i64, s), out_row), col64)
                acc_ptrs.append(builder.bitcast(builder.gep(out_ptr, [offset]), vec_ptr))
            x_cols = [builder.mul(ir.Constant(i64, s), x_s) for s in range(tile)]

            p, accs, close = counted_loop(builder, "tile_block", start64, stop64, acc0)
            row = builder.load(builder.gep(rows_ptr, [p]))
            if row.type.width < 64:
                row = builder.sext(row, i64)
            w_offset = builder.add(builder.mul(row, stride64), col64)
            w_vec = builder.load(builder.bitcast(builder.gep(w_ptr, [w_offset]), vec_ptr), align=4)
            x_row = builder.gep(x_ptr, [builder.mul(p, x_p)])
            close([builder.call(fma, [splat(builder, builder.load(builder.gep(x_row, [x_cols[s]])), width), w_vec,
                                      accs[s]]) for s in range(tile)])
            for s in range(tile):
                builder.store(accs[s], acc_ptrs[s], align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile_rows_block


# A layer of n units runs BLOCK-wide blocks, then covers the remainder r = n % BLOCK
# with one block of the next power of two q >= r (see ``genreg.kernels.forward.tile_layer``).
tile_rows_block_wide = _make_tile_rows_block(BLOCK)
tile_rows_block16 = _make_tile_rows_block(16)
tile_rows_block8 = _make_tile_rows_block(8)
tile_rows_block4 = _make_tile_rows_block(4)
tile_rows_block2 = _make_tile_rows_block(2)
tile_rows_block1 = _make_tile_rows_block(1)


#: Samples per vector when the samples, not the units, run along the vector lanes (``lanes_block``):
#: one register of float32 (16 with AVX-512, 8 otherwise), two tiles.
LANES = 2 * TILE

#: The most units a ``lanes_block`` computes at once: their accumulators fill half the vector registers.
LANES_UNITS = BLOCK // 2


def _make_lanes_block(k_max: int = LANES_UNITS, lanes: int = LANES):
    """An intrinsic ``lanes_block(w, w_off, stride, col, b_off, x, x_off, x_stride, n_in, out, out_off,
    out_stride, k)``: ``k`` output units (1 <= k <= k_max) of one dense layer for ``lanes`` samples at
    once, the samples along the vector lanes (the transpose of ``tile_rows_block``'s layout).  For
    unit j < k, with c = col + j:

        acc = w[b_off + c]                                         (the bias)
        for p in range(n_in):
            acc = fma(x[x_off + p * x_stride : + lanes], w[w_off + p * stride + c], acc)
        out[out_off + j * out_stride : + lanes] = acc

    Each input row of ``x`` (``lanes`` samples) is loaded once for all k units and each weight is
    broadcast; the k accumulators stay in vector registers (one loop per k, chosen by a switch).
    Per output element the terms are those of ``tile_rows_block``, added in the same order, so
    both layouts give the same bits.  ``w``, ``x``, ``out``: float32 arrays, C-contiguous, any
    number of dimensions (offsets count elements).  Nothing is bounds-checked.
    """

    @intrinsic
    def lanes_block(typingctx, w, w_off, stride, col, b_off, x, x_off, x_stride, n_in, out, out_off, out_stride, k):
        sig = types.void(w, w_off, stride, col, b_off, x, x_off, x_stride, n_in, out, out_off, out_stride, k)

        def codegen(context, builder, signature, args):
            A = signature.args
            w_off64, stride64, col64, b_off64, x_off64, x_stride64, n_in64, out_off64, out_stride64, k64 = (
                context.cast(builder, args[n], A[n], types.int64) for n in (1, 2, 3, 4, 6, 7, 8, 10, 11, 12))
            w_ptr, x_ptr, out_ptr = (context.make_array(A[n])(context, builder, args[n]).data for n in (0, 5, 9))
            i64, f32 = ir.IntType(64), ir.FloatType()
            vec = ir.VectorType(f32, lanes)
            vec_ptr = vec.as_pointer()
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                 f"llvm.fma.v{lanes}f32")
            first_bias, w_first = builder.add(b_off64, col64), builder.add(w_off64, col64)

            def weight(offset):
                return splat(builder, builder.load(builder.gep(w_ptr, [offset])), lanes)

            def units(k, exit_block):
                """The loop for k units, from the current block to ``exit_block``."""
                acc0 = [weight(builder.add(first_bias, ir.Constant(i64, j))) for j in range(k)]
                p, accs, close = counted_loop(builder, f"lanes{k}", ir.Constant(i64, 0), n_in64, acc0)
                x_vec = builder.load(builder.bitcast(builder.gep(x_ptr, [builder.add(x_off64, builder.mul(p, x_stride64))]),
                                                     vec_ptr), align=4)
                w_row = builder.add(w_first, builder.mul(p, stride64))
                close([builder.call(fma, [x_vec, weight(builder.add(w_row, ir.Constant(i64, j))), accs[j]])
                       for j in range(k)])
                for j in range(k):
                    at = builder.add(out_off64, builder.mul(ir.Constant(i64, j), out_stride64))
                    builder.store(accs[j], builder.bitcast(builder.gep(out_ptr, [at]), vec_ptr), align=4)
                builder.branch(exit_block)

            end = builder.append_basic_block("lanes.end")
            switch = builder.switch(k64, end)
            for k in range(1, k_max + 1):
                case = builder.append_basic_block(f"lanes{k}")
                switch.add_case(ir.Constant(i64, k), case)
                builder.position_at_end(case)
                units(k, end)
            builder.position_at_end(end)
            return context.get_dummy_value()

        return sig, codegen

    return lanes_block


lanes_block = _make_lanes_block()
