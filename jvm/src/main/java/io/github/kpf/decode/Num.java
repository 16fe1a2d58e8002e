package io.github.kpf.decode;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;

/**
 * A JSON number token, with its value as Python's decoder has it: an integer token is a Python {@code int} (exact at
 * any size), any other token a {@code float}.
 *
 * <p>Its significant digits are kept: value = 0.d1d2...dn x 10^{@link #exp10}, the n digits without leading or
 * trailing zeros (n = 0 for zero, whose exponent is {@link #ZERO_EXPONENT}), as the integer {@code mantissa} when n
 * is at most 18. With at most 15 significant digits those digits are exactly the digits of the shortest repr of the
 * double the token parses to (15-digit decimals map one-to-one to doubles), so {@link #writeFloatJson} can write the
 * float as orjson writes it without a shortest-digits algorithm; a token with more digits gets no JSON here, and the
 * record goes to the Python decoder.
 *
 * <p>A vector has hundreds of numbers per record, so a token allocates nothing but itself: its text is read from the
 * record's bytes only where an integer's exact value or a slow-path float needs it.
 */
final class Num {
    /**
     * {@link #exp10} of a zero. A vector's numbers are almost all fractions, and HotSpot's C2 compiles a branch that
     * its profile never saw taken as a trap: the first zero in a vector then threw away the compiled decoder
     * (FastDecoder.decode, with all it inlines) and C2 compiled it again, about 0.2-0.5 s of compiling early in a
     * run (a -XX:+LogCompilation log of (a)). With this exponent a zero needs no branch of its own where the
     * decoder checks and converts a vector's numbers: -1 is below every limit, and it puts the zero on the
     * fractions' path of {@link #doubleValue}.
     */
    static final int ZERO_EXPONENT = -1;

    /** Most significant digits {@link #writeFloatJson} writes (DBL_DIG). */
    static final int MAX_DIGITS = 15;
    /** Decimal exponents (of the first digit) of a float {@link #writeFloatJson} writes: normal doubles only. */
    static final int MAX_EXPONENT = 300;

    private static final BigInteger MAX_EXACT_INT = BigInteger.ONE.shiftLeft(53);
    /** Most digits kept in {@link #mantissa} (a long holds any 18-digit number). */
    static final int MAX_MANTISSA_DIGITS = 18;
    /** Powers of ten that are exact doubles: 10^0 to 10^22. */
    private static final double[] EXACT_POWERS = new double[23];

    static {
        double power = 1.0;
        for (int i = 0; i < EXACT_POWERS.length; i++) {
            EXACT_POWERS[i] = power;
            power *= 10.0;
        }
    }

    private final byte[] in;
    private final int start;
    private final int end;
    /** A minus sign, except on an integer zero (Python's {@code -0} is {@code 0}). */
    final boolean negative;
    /** Significant digits (no leading or trailing zeros); 0 for zero. */
    private final int digitCount;
    /** The significant digits as an integer, when there are at most {@link #MAX_MANTISSA_DIGITS} of them. */
    private final long mantissa;
    final int exp10;
    final boolean integer;
    /**
     * Whether the token is already written the way {@link #writeFloatJson} writes its value in plain notation: a
     * fraction and no exponent, the fraction ending in a non-zero digit or being a single zero ({@code 0.0123},
     * {@code -12.5}, {@code 10.0}). With at most {@link #MAX_DIGITS} digits such a token is the shortest text that
     * parses back to its double, so it is copied as it is. JSON forbids leading zeros, so none need checking.
     */
    private final boolean plainToken;

    private Num(
            byte[] in,
            int start,
            int end,
            boolean negative,
            int digitCount,
            long mantissa,
            int exp10,
            boolean integer,
            boolean plainToken) {
        this.in = in;
        this.start = start;
        this.end = end;
        this.negative = negative;
        this.digitCount = digitCount;
        this.mantissa = mantissa;
        this.exp10 = exp10;
        this.integer = integer;
        this.plainToken = plainToken;
    }

    /**
     * The token {@code in[start..end)} with its significant digits already counted ({@link JsonScan} does it while
     * it reads the token, in one pass): {@code digitCount} of them (0 for zero), {@code mantissa} their value when
     * there are at most {@link #MAX_MANTISSA_DIGITS}, {@code exp10} the decimal exponent of the first one plus one.
     * {@code fracStart..fracEnd} is the fraction's digits (empty without one).
     */
    static Num of(
            byte[] in,
            int start,
            int end,
            boolean negative,
            int digitCount,
            long mantissa,
            int exp10,
            int fracStart,
            int fracEnd,
            boolean integer) {
        if (digitCount == 0) {
            // Zero: exponent -1 and no sign for an integer, so that doubleValue, hasFloatJson and the vector checks
            // of FastDecoder take it through their common path, as a fraction like 0.05 (see ZERO_EXPONENT).
            return new Num(in, start, end, negative && !integer, 0, 0L, ZERO_EXPONENT, integer, false);
        }
        boolean plainToken =
                fracEnd == end && fracEnd > fracStart && (in[fracEnd - 1] != '0' || fracEnd - fracStart == 1);
        return new Num(in, start, end, negative, digitCount, mantissa, exp10, integer, plainToken);
    }

    boolean isZero() {
        return digitCount == 0;
    }

    /** Significant digits (no leading or trailing zeros): 0 for zero. */
    int digitCount() {
        return digitCount;
    }

    /** The token as written. */
    private String text() {
        return new String(in, start, end - start, StandardCharsets.ISO_8859_1);
    }

    /**
     * The value as Python's {@code float()} of it: correctly rounded; an integer zero is +0.0 (Python's -0 is 0). A
     * zero takes the path of every short fraction: 0 / 10^1, signed.
     */
    double doubleValue() {
        if (digitCount <= MAX_DIGITS) {
            // Both the mantissa (below 10^15 < 2^53) and 10^|q| (q at most 22) are exact doubles, so one IEEE
            // multiplication or division rounds the exact value once, correctly, as parsing the text would.
            int q = exp10 - digitCount;
            double value;
            if (q >= 0 && q < EXACT_POWERS.length) {
                value = mantissa * EXACT_POWERS[q];
            } else if (q < 0 && -q < EXACT_POWERS.length) {
                value = mantissa / EXACT_POWERS[-q];
            } else {
                return Double.parseDouble(text());
            }
            return negative ? -value : value;
        }
        return Double.parseDouble(text());
    }

    /** The integer's exact value (an integer token only). */
    BigInteger bigInteger() {
        return new BigInteger(text());
    }

    /** The integer as decimal text, as Python's {@code str(int)} (an integer token only). */
    String integerText() {
        if (end - start <= 18) {
            return Long.toString(Long.parseLong(text()));
        }
        return bigInteger().toString();
    }

    /** Whether the integer's magnitude is at most 2^53 (exact in a float64; an integer token only). */
    boolean isExactInFloat() {
        if (end - start <= 15) {
            return true; // below 10**15 < 2**53
        }
        return bigInteger().abs().compareTo(MAX_EXACT_INT) <= 0;
    }

    /** Whether {@link #writeFloatJson} can write this token: at most {@link #MAX_DIGITS} digits, a normal exponent. */
    boolean hasFloatJson() {
        int exponent = exp10 - 1;
        return digitCount <= MAX_DIGITS && exponent <= MAX_EXPONENT && exponent >= -MAX_EXPONENT;
    }

    /** {@link #writeFloatJson} as a string, or null when the token has none. */
    String floatJson() {
        if (!hasFloatJson()) {
            return null;
        }
        JsonOut out = new JsonOut(32);
        writeFloatJson(out);
        return new String(out.toBytes(), StandardCharsets.ISO_8859_1);
    }

    /**
     * Writes the float's JSON as orjson writes the double this token parses to (Python {@code float(token)}); only
     * when {@link #hasFloatJson}: shortest digits, plain notation from 1e-5 up to below 1e16 ({@code 0.00001},
     * {@code 5.0}, {@code 1234.5}), else {@code d.ddde-7} / {@code d.ddde+16}.
     */
    void writeFloatJson(JsonOut out) {
        if (isZero()) {
            if (negative && !integer) {
                out.raw((byte) '-');
            }
            out.raw((byte) '0').raw((byte) '.').raw((byte) '0');
            return;
        }
        int exponent = exp10 - 1; // of the first digit
        boolean plainNotation = exponent >= -5 && exponent < 16;
        if (plainToken && plainNotation) {
            out.raw(in, start, end - start);
            return;
        }
        byte[] digits = new byte[MAX_DIGITS];
        long rest = mantissa;
        for (int i = digitCount - 1; i >= 0; i--) {
            digits[i] = (byte) ('0' + rest % 10);
            rest /= 10;
        }
        int n = digitCount;
        if (negative) {
            out.raw((byte) '-');
        }
        if (plainNotation) {
            if (exponent >= 0) {
                int intDigits = exponent + 1;
                if (n <= intDigits) {
                    out.raw(digits, 0, n);
                    for (int i = n; i < intDigits; i++) {
                        out.raw((byte) '0');
                    }
                    out.raw((byte) '.').raw((byte) '0');
                } else {
                    out.raw(digits, 0, intDigits).raw((byte) '.').raw(digits, intDigits, n - intDigits);
                }
            } else {
                out.raw((byte) '0').raw((byte) '.');
                for (int i = -1; i > exponent; i--) {
                    out.raw((byte) '0');
                }
                out.raw(digits, 0, n);
            }
            return;
        }
        out.raw(digits, 0, 1);
        if (n > 1) {
            out.raw((byte) '.').raw(digits, 1, n - 1);
        }
        out.raw((byte) 'e');
        if (exponent > 0) {
            out.raw((byte) '+');
        }
        out.ascii(Integer.toString(exponent));
    }
}
