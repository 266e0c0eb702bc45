"""exp(x) for float64 ``x <= 0`` without a library call (genreg.kernels.exp): the softmax of the
evolution-strategy kernels (``genreg.kernels.es``).

x = k ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts); exp(r) by its Taylor series to degree 12
in Horner's form (truncation below 2e-16 relative); 2**k from the exponent bits.  x below -708
gives exp(-708) (about 3e-308).  Every step is a separate IEEE multiply or add (no fused
multiply-add), so ``exp_nonpositive`` (one value) and ``exp_nonpositive_inplace`` (an array,
explicit vectors) give the same bits.

Horner's form is one long chain of dependent operations per value; a loop of it is bound by that
latency, not by the machine's throughput.  ``exp_nonpositive_inplace`` therefore runs
``CHAINS`` independent vectors of ``WIDTH`` values side by side in each step.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import inline_jit, jit
from .simd import counted_loop

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LOWEST = -708.0

#: The Taylor coefficients of exp(r), highest degree first: 1/12!, 1/11!, ..., 1/2, 1, 1.
COEFFICIENTS = (1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
                1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0)

#: float64 values per vector, and independent vectors per step, of ``exp_nonpositive_inplace``.
WIDTH, CHAINS = 8, 4


@intrinsic
def float64_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@inline_jit
def exp_nonpositive(x):
    """exp(x) for one float64 ``x <= 0`` (see the module)."""
    x = LOWEST if x < LOWEST else x
    k = np.floor(x * LOG2E + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = COEFFICIENTS[0]
    for i in range(1, len(COEFFICIENTS)):
        p = p * r + COEFFICIENTS[i]
    return p * float64_from_bits((np.int64(k) + 1023) << 52)


def _exp_vector(builder, x):
    """IR for ``exp_nonpositive`` of each lane of the ``<WIDTH x double>`` value ``x``: the same
    operations in the same order."""
    vec = x.type
    lanes = vec.count
    f64v = lambda value: ir.Constant(vec, [value] * lanes)  # noqa: E731
    i64v = ir.VectorType(ir.IntType(64), lanes)
    floor = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), f"llvm.floor.v{lanes}f64")
    x = builder.select(builder.fcmp_ordered("<", x, f64v(LOWEST)), f64v(LOWEST), x)
    k = builder.call(floor, [builder.fadd(builder.fmul(x, f64v(LOG2E)), f64v(0.5))])
    r = builder.fsub(builder.fsub(x, builder.fmul(k, f64v(LN2_HI))), builder.fmul(k, f64v(LN2_LO)))
    p = f64v(COEFFICIENTS[0])
    for c in COEFFICIENTS[1:]:
        p = builder.fadd(builder.fmul(p, r), f64v(c))
    bits = builder.shl(builder.add(builder.fptosi(k, i64v), ir.Constant(i64v, [1023] * lanes)),
                       ir.Constant(i64v, [52] * lanes))
    return builder.fmul(p, builder.bitcast(bits, vec))


@intrinsic
def _exp_vectors(typingctx, x, n):
    """``x[i] = exp_nonpositive(x[i])`` for i < n - n % WIDTH (x: float64 array, C-contiguous):
    ``CHAINS`` vectors per step while they last, then one at a time."""
    sig = types.void(x, n)

    def codegen(context, builder, signature, args):
        x_ptr = context.make_array(signature.args[0])(context, builder, args[0]).data
        n64 = context.cast(builder, args[1], signature.args[1], types.int64)
        i64 = ir.IntType(64)
        vec_ptr = ir.VectorType(ir.DoubleType(), WIDTH).as_pointer()

        def loop(start, count):
            """Steps of ``count`` vectors from ``start`` while a whole step fits; returns where they stopped."""
            last = builder.sub(n64, ir.Constant(i64, count * WIDTH - 1))  # i < last: i + count WIDTH <= n
            i, _, close = counted_loop(builder, f"exp{count}", start, last, step=count * WIDTH)
            pointers = [builder.bitcast(builder.gep(x_ptr, [builder.add(i, ir.Constant(i64, c * WIDTH))]), vec_ptr)
                        for c in range(count)]
            values = [builder.load(ptr, align=8) for ptr in pointers]
            for ptr, value in zip(pointers, [_exp_vector(builder, v) for v in values]):
                builder.store(value, ptr, align=8)
            close()
            return i

        loop(loop(ir.Constant(i64, 0), CHAINS), 1)
        return context.get_dummy_value()

    return sig, codegen


@jit
def exp_nonpositive_inplace(x, n):
    """``x[i] = exp_nonpositive(x[i])`` for i < n (``x: (>= n,) float64``, C-contiguous)."""
    _exp_vectors(x, n)
    for i in range(n - n % WIDTH, n):
        x[i] = exp_nonpositive(x[i])
