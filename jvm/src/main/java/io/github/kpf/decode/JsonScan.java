package io.github.kpf.decode;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict reader of the one JSON shape the JVM decode path takes: a top-level object whose values are strings,
 * numbers, booleans, nulls or arrays of those. It answers {@code null} ("not for this path") for anything else, and
 * for anything Python's decoder might read differently or reject: invalid UTF-8 or JSON, a lone surrogate escape, a
 * top-level key given twice, a nested object, an array inside an array, bytes after the object. The record then goes
 * to the Python decoder, which decides what it is (a change, or a dead letter with its reason). So this reader may
 * refuse too much, never too little.
 *
 * <p>Numbers are kept as their token ({@link Num}): the decoder needs their exact digits (integers of any size,
 * floats as Python's shortest repr would write them), not only a double.
 */
final class JsonScan {
    /** JSON null (a map cannot hold Java null as a value distinctly from absence). */
    static final Object NULL = new Object();

    /** 10^0 to 10^18, the powers a mantissa of at most {@link Num#MAX_MANTISSA_DIGITS} digits is built with. */
    private static final long[] POWERS_OF_TEN = new long[Num.MAX_MANTISSA_DIGITS + 1];

    static {
        POWERS_OF_TEN[0] = 1;
        for (int i = 1; i < POWERS_OF_TEN.length; i++) {
            POWERS_OF_TEN[i] = POWERS_OF_TEN[i - 1] * 10;
        }
    }

    private final byte[] in;
    private final int end;
    private int pos;
    private final StringBuilder chars = new StringBuilder();

    private JsonScan(byte[] in) {
        this.in = in;
        this.end = in.length;
    }

    /** The top-level object of {@code value}, or null when the value is not for the JVM path (see the class doc). */
    static Map<String, Object> object(byte[] value) {
        try {
            JsonScan scan = new JsonScan(value);
            scan.skipSpace();
            Map<String, Object> object = scan.readObject();
            if (object == null) {
                return null;
            }
            scan.skipSpace();
            return scan.pos == scan.end ? object : null;
        } catch (Refused | ArrayIndexOutOfBoundsException e) {
            return null;
        }
    }

    /** Thrown inside the reader to give up on a value; never escapes {@link #object}. */
    private static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        static final Refused INSTANCE = new Refused();

        private Refused() {
            super(null, null, false, false);
        }
    }

    private static Refused refused() {
        return Refused.INSTANCE;
    }

    private void skipSpace() {
        while (pos < end) {
            byte b = in[pos];
            if (b == ' ' || b == '\n' || b == '\r' || b == '\t') {
                pos++;
            } else {
                return;
            }
        }
    }

    private Map<String, Object> readObject() throws Refused {
        if (pos >= end || in[pos] != '{') {
            return null;
        }
        pos++;
        Map<String, Object> object = new LinkedHashMap<>();
        skipSpace();
        if (in[pos] == '}') {
            pos++;
            return object;
        }
        while (true) {
            skipSpace();
            if (in[pos] != '"') {
                throw refused();
            }
            String key = readString();
            skipSpace();
            if (in[pos] != ':') {
                throw refused();
            }
            pos++;
            skipSpace();
            Object value = readValue(true);
            if (object.put(key, value) != null) {
                throw refused(); // a key given twice: Python's decoder says which (DuplicateKeyError)
            }
            skipSpace();
            byte b = in[pos++];
            if (b == '}') {
                return object;
            }
            if (b != ',') {
                throw refused();
            }
        }
    }

    private Object readValue(boolean arrayAllowed) throws Refused {
        byte b = in[pos];
        switch (b) {
            case '"':
                return readString();
            case '[':
                if (!arrayAllowed) {
                    throw refused();
                }
                return readArray();
            case 't':
                literal("true");
                return Boolean.TRUE;
            case 'f':
                literal("false");
                return Boolean.FALSE;
            case 'n':
                literal("null");
                return NULL;
            default:
                if (b == '-' || (b >= '0' && b <= '9')) {
                    return readNumber();
                }
                throw refused(); // a nested object, or not JSON
        }
    }

    private List<Object> readArray() throws Refused {
        pos++;
        List<Object> items = new ArrayList<>();
        skipSpace();
        if (in[pos] == ']') {
            pos++;
            return items;
        }
        while (true) {
            skipSpace();
            items.add(readValue(false));
            skipSpace();
            byte b = in[pos++];
            if (b == ']') {
                return items;
            }
            if (b != ',') {
                throw refused();
            }
        }
    }

    private void literal(String word) throws Refused {
        for (int i = 0; i < word.length(); i++) {
            if (in[pos + i] != word.charAt(i)) {
                throw refused();
            }
        }
        pos += word.length();
    }

    /**
     * One number token, read in a single pass that also counts its significant digits for {@link Num}: digits are
     * numbered across the integer part and the fraction ({@code k}); {@code first} and {@code last} are the first and
     * last non-zero ones, and the mantissa takes the zeros between two non-zero digits only when the second comes, so
     * trailing zeros never enter it. A vector holds hundreds of numbers per record, so this is the hottest loop of
     * the JVM decode path.
     */
    private Num readNumber() throws Refused {
        int start = pos;
        boolean negative = false;
        if (in[pos] == '-') {
            negative = true;
            pos++;
        }
        long mantissa = 0;
        int first = -1;
        int last = -1;
        int k = 0;
        byte b = in[pos];
        if (b == '0') {
            pos++;
            k = 1;
        } else if (b >= '1' && b <= '9') {
            while (pos < end && (b = in[pos]) >= '0' && b <= '9') {
                if (b != '0') {
                    if (first < 0) {
                        first = k;
                        mantissa = b - '0';
                    } else if (k - first < Num.MAX_MANTISSA_DIGITS) {
                        mantissa = mantissa * POWERS_OF_TEN[k - last] + (b - '0');
                    }
                    last = k;
                }
                pos++;
                k++;
            }
        } else {
            throw refused();
        }
        int intLength = k;
        int fracStart = pos;
        int fracEnd = pos;
        boolean integer = true;
        if (pos < end && in[pos] == '.') {
            integer = false;
            pos++;
            fracStart = pos;
            while (pos < end && (b = in[pos]) >= '0' && b <= '9') {
                if (b != '0') {
                    if (first < 0) {
                        first = k;
                        mantissa = b - '0';
                    } else if (k - first < Num.MAX_MANTISSA_DIGITS) {
                        mantissa = mantissa * POWERS_OF_TEN[k - last] + (b - '0');
                    }
                    last = k;
                }
                pos++;
                k++;
            }
            fracEnd = pos;
            if (fracEnd == fracStart) {
                throw refused();
            }
        }
        long exponent = 0;
        if (pos < end && (in[pos] == 'e' || in[pos] == 'E')) {
            integer = false;
            pos++;
            boolean negativeExponent = false;
            if (in[pos] == '+' || in[pos] == '-') {
                negativeExponent = in[pos] == '-';
                pos++;
            }
            int expStart = pos;
            while (pos < end && in[pos] >= '0' && in[pos] <= '9') {
                if (exponent < 100_000) {
                    exponent = exponent * 10 + (in[pos] - '0');
                }
                pos++;
            }
            if (pos == expStart) {
                throw refused();
            }
            if (negativeExponent) {
                exponent = -exponent;
            }
        }
        int digitCount = first < 0 ? 0 : last - first + 1;
        int exp10 = first < 0 ? 0 : intLength - first + (int) exponent;
        return Num.of(in, start, pos, negative, digitCount, mantissa, exp10, fracStart, fracEnd, integer);
    }

    private String readString() throws Refused {
        pos++; // the opening quote
        int start = pos;
        // Fast path: ASCII without escapes.
        while (true) {
            byte b = in[pos];
            if (b == '"') {
                String text = new String(in, start, pos - start, StandardCharsets.ISO_8859_1);
                pos++;
                return text;
            }
            if (b == '\\' || b < 0x20) {
                break; // b < 0x20 includes every byte >= 0x80 (negative): not plain ASCII
            }
            pos++;
        }
        chars.setLength(0);
        for (int i = start; i < pos; i++) {
            chars.append((char) in[i]);
        }
        while (true) {
            int b = in[pos] & 0xFF;
            if (b == '"') {
                pos++;
                return chars.toString();
            }
            if (b == '\\') {
                pos++;
                readEscape();
            } else if (b < 0x20) {
                throw refused(); // a raw control character is not valid JSON
            } else if (b < 0x80) {
                chars.append((char) b);
                pos++;
            } else {
                readUtf8(b);
            }
        }
    }

    private void readEscape() throws Refused {
        byte b = in[pos++];
        switch (b) {
            case '"':
                chars.append('"');
                break;
            case '\\':
                chars.append('\\');
                break;
            case '/':
                chars.append('/');
                break;
            case 'b':
                chars.append('\b');
                break;
            case 'f':
                chars.append('\f');
                break;
            case 'n':
                chars.append('\n');
                break;
            case 'r':
                chars.append('\r');
                break;
            case 't':
                chars.append('\t');
                break;
            case 'u':
                char unit = hex4();
                if (Character.isHighSurrogate(unit)) {
                    if (in[pos] != '\\' || in[pos + 1] != 'u') {
                        throw refused(); // a lone surrogate: not valid Unicode
                    }
                    pos += 2;
                    char low = hex4();
                    if (!Character.isLowSurrogate(low)) {
                        throw refused();
                    }
                    chars.append(unit).append(low);
                } else if (Character.isLowSurrogate(unit)) {
                    throw refused();
                } else {
                    chars.append(unit);
                }
                break;
            default:
                throw refused();
        }
    }

    private char hex4() throws Refused {
        int value = 0;
        for (int i = 0; i < 4; i++) {
            int digit = Character.digit(in[pos++], 16);
            if (digit < 0) {
                throw refused();
            }
            value = value * 16 + digit;
        }
        return (char) value;
    }

    /** One UTF-8 sequence starting with {@code lead} (>= 0x80), strictly: no overlong forms, no surrogates. */
    private void readUtf8(int lead) throws Refused {
        int codePoint;
        int extra;
        int minimum;
        if (lead >= 0xC2 && lead <= 0xDF) {
            codePoint = lead & 0x1F;
            extra = 1;
            minimum = 0x80;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            codePoint = lead & 0x0F;
            extra = 2;
            minimum = 0x800;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            codePoint = lead & 0x07;
            extra = 3;
            minimum = 0x10000;
        } else {
            throw refused();
        }
        pos++;
        for (int i = 0; i < extra; i++) {
            int next = in[pos++] & 0xFF;
            if ((next & 0xC0) != 0x80) {
                throw refused();
            }
            codePoint = (codePoint << 6) | (next & 0x3F);
        }
        if (codePoint < minimum || codePoint > 0x10FFFF || (codePoint >= 0xD800 && codePoint <= 0xDFFF)) {
            throw refused();
        }
        chars.appendCodePoint(codePoint);
    }
}
