"""Register blocks of ``genreg.kernels.conv``: LLVM intrinsics in the style of ``genreg.kernels.simd``.

``block16``, ``block8``, ``block4`` (``_make_conv_block``): ``NPIX`` output pixels (any ones, from an
offset table) times 16, 8 or 4 output channels of one convolution, the accumulators in vector
registers, one IEEE fused multiply-add per term in a fixed order.  ``pool16`` .. ``pool1``
(``_make_pool_block``): one pooled pixel, a vector of channels.  Nothing is bounds-checked; the
callers in ``genreg.kernels.conv`` size every buffer.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import TILE, counted_loop, splat


def _make_conv_block(lanes: int, npix: int):
    """An intrinsic ``block(wt, w_off, co, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0)``: ``npix``
    output pixels (any ones) times ``lanes`` output channels of one convolution, accumulators in registers.

    Pixel p < npix reads its window from ``x0 = x_offs[i0 + p]`` and, for lane j < lanes, stores

        acc = wt[w_off + k * run * co + j]                       (the bias)
        for s in range(k): for q in range(run):                  (tap t = s * run + q)
            acc = fma(x[x0 + s * x_kh + q], wt[w_off + t * co + j], acc)

    into ``out[o_offs[i0 + p] + o_add + j]``.  ``wt[w_off:]`` holds the transposed filters
    ``(k * run, co)`` (``co`` floats per tap, this block's first channel at ``w_off``) and the bias
    after them; lanes past the layer's channels read whatever follows (the caller discards them).
    Each tap loads one weight vector for all ``npix`` pixels and broadcasts one input per pixel.
    Nothing is bounds-checked.
    """

    @intrinsic
    def conv_block(typingctx, wt, w_off, co, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0):
        sig = types.void(wt, w_off, co, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0)

        def codegen(context, builder, signature, args):
            A = signature.args
            w_off64, co64, k64, x_kh64, run64, o_add64, i064 = (context.cast(builder, args[n], A[n], types.int64)
                                                                for n in (1, 2, 5, 6, 7, 10, 11))
            w_ptr, x_ptr, x_offs_ptr, out_ptr, o_offs_ptr = (context.make_array(A[n])(context, builder, args[n]).data
                                                             for n in (0, 3, 4, 8, 9))
            i64, f32 = ir.IntType(64), ir.FloatType()
            vec = ir.VectorType(f32, lanes)
            vec_ptr = vec.as_pointer()
            zero = ir.Constant(i64, 0)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                 f"llvm.fma.v{lanes}f32")

            bias_at = builder.add(w_off64, builder.mul(builder.mul(k64, run64), co64))
            bias = builder.load(builder.bitcast(builder.gep(w_ptr, [bias_at]), vec_ptr), align=4)
            x_pix = [builder.load(builder.gep(x_offs_ptr, [builder.add(i064, ir.Constant(i64, p))]))
                     for p in range(npix)]

            s, outer_accs, close_outer = counted_loop(builder, "conv.outer", zero, k64, [bias] * npix)
            x_seg = builder.gep(x_ptr, [builder.mul(s, x_kh64)])
            x_rows = [builder.gep(x_seg, [x_pix[p]]) for p in range(npix)]
            w_seg = builder.gep(w_ptr, [builder.add(w_off64, builder.mul(builder.mul(s, run64), co64))])
            q, inner_accs, close_inner = counted_loop(builder, "conv.inner", zero, run64, outer_accs)
            w_vec = builder.load(builder.bitcast(builder.gep(w_seg, [builder.mul(q, co64)]), vec_ptr), align=4)
            close_inner([builder.call(fma, [splat(builder, builder.load(builder.gep(x_rows[p], [q])), lanes), w_vec,
                                            inner_accs[p]]) for p in range(npix)])
            close_outer(inner_accs)
            for p in range(npix):
                at = builder.add(builder.load(builder.gep(o_offs_ptr, [builder.add(i064, ir.Constant(i64, p))])),
                                 o_add64)
                builder.store(outer_accs[p], builder.bitcast(builder.gep(out_ptr, [at]), vec_ptr), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return conv_block


def _make_pool_block(lanes: int):
    """An intrinsic ``block(x, x0, x_kh, x_kw, k, average, out, o0)``: one pooled pixel, ``lanes`` channels.

    ``acc`` = the vector at ``x[x0:]``; for every other tap (kh, kw) in order, the vector ``v`` at
    ``x[x0 + kh * x_kh + kw * x_kw:]`` gives ``acc = acc + v`` if ``average``, else ``v`` where
    ``v > acc`` (so NaN never replaces a number); ``out[o0:o0 + lanes]`` = ``acc`` or ``acc / (k * k)``.
    """

    @intrinsic
    def pool_block(typingctx, x, x0, x_kh, x_kw, k, average, out, o0):
        sig = types.void(x, x0, x_kh, x_kw, k, average, out, o0)

        def codegen(context, builder, signature, args):
            x_t, out_t = signature.args[0], signature.args[6]
            x0_, x_kh_, x_kw_, k_, o0_ = (context.cast(builder, args[n], signature.args[n], types.int64)
                                          for n in (1, 2, 3, 4, 7))
            average_ = context.cast(builder, args[5], signature.args[5], types.boolean)
            x_ptr = context.make_array(x_t)(context, builder, args[0]).data
            out_ptr = context.make_array(out_t)(context, builder, args[6]).data
            i64, f32 = ir.IntType(64), ir.FloatType()
            vec = ir.VectorType(f32, lanes)
            vec_ptr = vec.as_pointer()
            one = ir.Constant(i64, 1)

            def load(offset):
                return builder.load(builder.bitcast(builder.gep(x_ptr, [offset]), vec_ptr), align=4)

            first = load(x0_)
            n_taps = builder.mul(k_, k_)
            t, (acc,), close = counted_loop(builder, "pool", one, n_taps, [first])
            kh = builder.sdiv(t, k_)
            kw = builder.sub(t, builder.mul(kh, k_))
            v = load(builder.add(x0_, builder.add(builder.mul(kh, x_kh_), builder.mul(kw, x_kw_))))
            summed = builder.fadd(acc, v)
            biggest = builder.select(builder.fcmp_ordered(">", v, acc), v, acc)
            close([builder.select(average_, summed, biggest)])
            area = builder.sitofp(n_taps, f32)
            result = builder.select(average_, builder.fdiv(acc, splat(builder, area, lanes)), acc)
            builder.store(result, builder.bitcast(builder.gep(out_ptr, [o0_]), vec_ptr), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return pool_block


pool16, pool8, pool4, pool1 = (_make_pool_block(n) for n in (16, 8, 4, 1))


#: Output pixels per register block: 16 pixels x 16 channels take half of AVX-512's 32 vector registers
#: (AVX2 has 16 registers of 8 floats: 6 pixels x 16 channels).
NPIX = 16 if TILE == 8 else 6
block16, block8, block4 = (_make_conv_block(n, NPIX) for n in (16, 8, 4))
