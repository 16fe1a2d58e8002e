package io.github.kpf.decode;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;

/**
 * A JSON number token, with its value as Python's decoder has it: an integer token is a Python {@code int} (exact at
 * any size), any other token a {@code float}.
 *
 * <p>Its significant digits are kept: value = 0.{@link #digits} x 10^{@link #exp10}, digits without leading or
 * trailing zeros ({@code ""} for zero). With at most 15 significant digits those digits are exactly the digits of
 * the shortest repr of the double the token parses to (15-digit decimals map one-to-one to doubles), so {@link
 * #floatJson} can write the float as orjson writes it without a shortest-digits algorithm; a token with more digits
 * gets no JSON here, and the record goes to the Python decoder.
 */
final class Num {
    /** Most significant digits {@link #floatJson} writes (DBL_DIG). */
    static final int MAX_DIGITS = 15;
    /** Decimal exponents (of the first digit) of a float {@link #floatJson} writes: normal doubles only. */
    static final int MAX_EXPONENT = 300;

    private static final BigInteger MAX_EXACT_INT = BigInteger.ONE.shiftLeft(53);

    final String text;
    final boolean negative;
    final String digits;
    final int exp10;
    final boolean integer;

    private Num(String text, boolean negative, String digits, int exp10, boolean integer) {
        this.text = text;
        this.negative = negative;
        this.digits = digits;
        this.exp10 = exp10;
        this.integer = integer;
    }

    static Num of(
            byte[] in,
            int start,
            int end,
            boolean negative,
            int intStart,
            int intEnd,
            int fracStart,
            int fracEnd,
            int exponent,
            boolean integer) {
        String text = new String(in, start, end - start, StandardCharsets.ISO_8859_1);
        // All digits of the mantissa, the decimal point after the integer part's digits.
        StringBuilder all = new StringBuilder(intEnd - intStart + fracEnd - fracStart);
        for (int i = intStart; i < intEnd; i++) {
            all.append((char) in[i]);
        }
        for (int i = fracStart; i < fracEnd; i++) {
            all.append((char) in[i]);
        }
        int first = 0;
        while (first < all.length() && all.charAt(first) == '0') {
            first++;
        }
        int last = all.length();
        while (last > first && all.charAt(last - 1) == '0') {
            last--;
        }
        String digits = all.substring(first, last);
        int exp10 = digits.isEmpty() ? 0 : (intEnd - intStart) - first + exponent;
        return new Num(text, negative, digits, exp10, integer);
    }

    boolean isZero() {
        return digits.isEmpty();
    }

    /** The value as Python's {@code float()} of it: correctly rounded; an integer zero is +0.0 (Python's -0 is 0). */
    double doubleValue() {
        if (integer && isZero()) {
            return 0.0;
        }
        return Double.parseDouble(text);
    }

    /** The integer's exact value (an integer token only). */
    BigInteger bigInteger() {
        return new BigInteger(text);
    }

    /** The integer as decimal text, as Python's {@code str(int)} (an integer token only). */
    String integerText() {
        if (text.length() <= 18) {
            return Long.toString(Long.parseLong(text));
        }
        return bigInteger().toString();
    }

    /** Whether the integer's magnitude is at most 2^53 (exact in a float64; an integer token only). */
    boolean isExactInFloat() {
        if (text.length() <= 15) {
            return true; // below 10**15 < 2**53
        }
        return bigInteger().abs().compareTo(MAX_EXACT_INT) <= 0;
    }

    /**
     * The float's JSON as orjson writes the double this token parses to (Python {@code float(token)}), or null when
     * it has more than {@link #MAX_DIGITS} significant digits or is outside the normal range: shortest digits,
     * plain notation from 1e-5 up to below 1e16 ({@code 0.00001}, {@code 5.0}, {@code 1234.5}), else {@code d.ddde-7}
     * / {@code d.ddde+16}.
     */
    String floatJson() {
        if (isZero()) {
            return negative && !integer ? "-0.0" : "0.0";
        }
        if (digits.length() > MAX_DIGITS) {
            return null;
        }
        int exponent = exp10 - 1; // of the first digit
        if (exponent > MAX_EXPONENT || exponent < -MAX_EXPONENT) {
            return null;
        }
        StringBuilder out = new StringBuilder(digits.length() + 8);
        if (negative) {
            out.append('-');
        }
        if (exponent >= -5 && exponent < 16) {
            if (exponent >= 0) {
                int intDigits = exponent + 1;
                if (digits.length() <= intDigits) {
                    out.append(digits);
                    for (int i = digits.length(); i < intDigits; i++) {
                        out.append('0');
                    }
                    out.append(".0");
                } else {
                    out.append(digits, 0, intDigits).append('.').append(digits, intDigits, digits.length());
                }
            } else {
                out.append("0.");
                for (int i = -1; i > exponent; i--) {
                    out.append('0');
                }
                out.append(digits);
            }
            return out.toString();
        }
        out.append(digits.charAt(0));
        if (digits.length() > 1) {
            out.append('.').append(digits, 1, digits.length());
        }
        out.append('e').append(exponent > 0 ? "+" : "").append(exponent);
        return out.toString();
    }
}
