package io.github.kpf.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Num}: its double is the correctly rounded value of the token (as {@link Double#parseDouble} and Python's
 * {@code float()} give it) on the fast path (at most 15 digits, |q| at most 22) and off it, and its float JSON.
 */
class NumTest {
    /** The number of {@code {"n": <token>}} as {@link JsonScan} reads it. */
    private static Num scan(String token) {
        Map<String, Object> row = JsonScan.object(("{\"n\":" + token + "}").getBytes(StandardCharsets.US_ASCII));
        return (Num) row.get("n");
    }

    @Test
    void theDoubleIsTheCorrectlyRoundedValueOfEveryTokenForm() {
        Random random = new Random(7);
        for (int i = 0; i < 200_000; i++) {
            int digits = 1 + random.nextInt(17);
            StringBuilder mantissa = new StringBuilder();
            for (int d = 0; d < digits; d++) {
                mantissa.append((char) ('0' + random.nextInt(10)));
            }
            int point = random.nextInt(digits + 1);
            String body = point == digits ? mantissa.toString() : mantissa.substring(0, Math.max(point, 1)) + "."
                    + mantissa.substring(Math.max(point, 1) == digits ? digits - 1 : Math.max(point, 1));
            if (body.endsWith(".")) {
                body += "0";
            }
            body = body.replaceFirst("^0+(?=\\d)", "");
            String token = (random.nextBoolean() ? "-" : "") + body;
            if (random.nextInt(3) == 0) {
                token += (random.nextBoolean() ? "e" : "E") + (random.nextInt(60) - 30);
            }
            Num number = scan(token);
            double expected = number.integer && Double.parseDouble(token) == 0.0 ? 0.0 : Double.parseDouble(token);
            assertEquals(
                    Double.doubleToRawLongBits(expected),
                    Double.doubleToRawLongBits(number.doubleValue()),
                    token);
        }
    }

    @Test
    void theFastPathsEdgesAndTheSlowPath() {
        for (String token : List.of(
                "123456789012345e22", "123456789012345e-22", "1e22", "1e23", "1e-22", "1e-23", "9007199254740993",
                "0.1", "0.30000000000000004", "5e-324", "1.7976931348623157e308", "-0.0", "-0", "0e5", "2.5e-8")) {
            double expected = token.equals("-0") ? 0.0 : Double.parseDouble(token);
            assertEquals(
                    Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(scan(token).doubleValue()), token);
        }
    }

    /**
     * Tokens of up to 30 digits, most of them zeros (leading, between and after the significant digits, on both
     * sides of the point): the single-pass count of significant digits in {@link JsonScan} gives each the correctly
     * rounded double, and a float JSON that parses back to it exactly when at most 15 significant digits remain.
     */
    @Test
    void significantDigitsAreCountedThroughRunsOfZeros() {
        Random random = new Random(13);
        for (int i = 0; i < 200_000; i++) {
            int digits = 1 + random.nextInt(30);
            StringBuilder mantissa = new StringBuilder();
            for (int d = 0; d < digits; d++) {
                mantissa.append(random.nextInt(10) < 7 ? '0' : (char) ('1' + random.nextInt(9)));
            }
            int point = 1 + random.nextInt(digits);
            String whole = mantissa.substring(0, point).replaceFirst("^0+(?=\\d)", "");
            String token = (random.nextBoolean() ? "-" : "") + whole
                    + (point < digits ? "." + mantissa.substring(point) : "")
                    + (random.nextInt(4) == 0 ? "e" + (random.nextInt(40) - 20) : "");
            Num number = scan(token);
            BigDecimal exact = new BigDecimal(token);
            double expected = number.integer && exact.signum() == 0 ? 0.0 : Double.parseDouble(token);
            assertEquals(
                    Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(number.doubleValue()), token);
            BigDecimal stripped = exact.stripTrailingZeros();
            int significant = exact.signum() == 0 ? 0 : stripped.precision();
            String json = number.floatJson();
            int exponent = significant == 0 ? 0 : significant - stripped.scale() - 1;
            boolean writable = significant <= Num.MAX_DIGITS && Math.abs(exponent) <= Num.MAX_EXPONENT;
            assertEquals(writable, json != null, token);
            if (json != null) {
                assertEquals(
                        Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(Double.parseDouble(json)), token);
            }
        }
    }

    @Test
    void aZeroIsAFractionWithNoDigitsForEveryCheckOfAVector() {
        // FastDecoder checks a vector's numbers with no branch for zero (Num.ZERO_EXPONENT).
        for (String token : List.of("0", "-0", "0.0", "-0.0", "0e5", "-0E-7", "0.000")) {
            Num zero = scan(token);
            assertTrue(zero.isZero());
            assertEquals(0, zero.digitCount());
            assertEquals(Num.ZERO_EXPONENT, zero.exp10);
            assertTrue(zero.hasFloatJson());
            double expected = token.equals("-0") ? 0.0 : Double.parseDouble(token);
            assertEquals(expected, zero.doubleValue(), token);
            assertEquals(token.startsWith("-") && !token.equals("-0"), zero.negative, token);
        }
    }

    @Test
    void floatJsonAsOrjsonWritesIt() {
        assertEquals("0.123456", scan("0.1234560").floatJson());
        assertEquals("5.0", scan("5").floatJson());
        assertEquals("1234.5", scan("12345e-1").floatJson());
        assertEquals("0.00001", scan("1e-5").floatJson());
        assertEquals("1e-6", scan("0.000001").floatJson());
        assertEquals("1.5e+16", scan("15e15").floatJson());
        assertEquals("1000000000000000.0", scan("1e15").floatJson());
        assertEquals("-0.0", scan("-0.0").floatJson());
        assertEquals("0.0", scan("-0").floatJson());
        assertEquals("-0.0", scan("-0e-3").floatJson());
        assertEquals("0.0", scan("0e5").floatJson());
        assertNull(scan("0.1234567890123456").floatJson()); // 16 digits: left to Python
        assertNull(scan("1e-320").floatJson()); // subnormal: left to Python
    }

    @Test
    void aTokenInItsFloatJsonFormIsCopiedAndAnyOtherIsRewritten() {
        assertEquals("10.0", scan("10.0").floatJson());
        assertEquals("-12.5", scan("-12.5").floatJson());
        assertEquals("0.0123", scan("0.0123").floatJson());
        assertEquals("0.5", scan("0.50").floatJson());
        assertEquals("1.5", scan("1.5e0").floatJson());
        assertEquals("1.5", scan("1.5E0").floatJson());
        assertEquals("100.0", scan("100.00").floatJson());
        assertEquals("0.00001", scan("0.00001").floatJson());
        assertEquals("1e-6", scan("0.000001").floatJson());
        assertEquals("1.23456789012345e+16", scan("12345678901234500.0").floatJson());
        assertEquals("99999999999999.9", scan("99999999999999.9").floatJson());
        assertNull(scan("999999999999999.9").floatJson()); // 16 digits: left to Python
        // Every plain token of at most 15 digits: the copy equals what the digits make of the same value.
        Random random = new Random(11);
        for (int i = 0; i < 100_000; i++) {
            int intDigits = random.nextInt(8);
            int fracDigits = 1 + random.nextInt(15 - Math.max(intDigits, 1) + 1);
            StringBuilder token = new StringBuilder(random.nextBoolean() ? "-" : "");
            if (intDigits == 0) {
                token.append('0');
            } else {
                token.append((char) ('1' + random.nextInt(9)));
                for (int d = 1; d < intDigits; d++) {
                    token.append((char) ('0' + random.nextInt(10)));
                }
            }
            token.append('.');
            for (int d = 0; d < fracDigits; d++) {
                token.append((char) ('0' + random.nextInt(10)));
            }
            String text = token.toString();
            String rewritten = scan(text + "e0").floatJson();
            assertEquals(rewritten, scan(text).floatJson(), text);
        }
    }
}
