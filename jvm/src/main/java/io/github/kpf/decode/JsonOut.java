package io.github.kpf.decode;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** A growable byte buffer that writes JSON as orjson does: compact, strings escaped only where JSON requires. */
final class JsonOut {
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);

    private byte[] bytes;
    private int size;

    JsonOut(int capacity) {
        bytes = new byte[Math.max(16, capacity)];
    }

    void reset() {
        size = 0;
    }

    int size() {
        return size;
    }

    byte[] toBytes() {
        return Arrays.copyOf(bytes, size);
    }

    private void room(int more) {
        if (size + more > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, size + more));
        }
    }

    JsonOut raw(byte b) {
        room(1);
        bytes[size++] = b;
        return this;
    }

    JsonOut raw(byte[] data) {
        room(data.length);
        System.arraycopy(data, 0, bytes, size, data.length);
        size += data.length;
        return this;
    }

    JsonOut raw(byte[] data, int offset, int length) {
        room(length);
        System.arraycopy(data, offset, bytes, size, length);
        size += length;
        return this;
    }

    /** ASCII text as it is (numbers, literals, punctuation). */
    JsonOut ascii(String text) {
        int length = text.length();
        room(length);
        for (int i = 0; i < length; i++) {
            bytes[size++] = (byte) text.charAt(i);
        }
        return this;
    }

    /**
     * A JSON string as orjson writes it: {@code "} and {@code \} escaped, \b \f \n \r \t by name, other control
     * characters as {@code \\u00XX} escapes (lowercase hex), everything else (DEL, U+2028, non-ASCII) as UTF-8. {@code text}
     * must be valid UTF-16 (no lone surrogates).
     */
    JsonOut string(String text) {
        int length = text.length();
        room(length * 3 + 2);
        bytes[size++] = '"';
        for (int i = 0; i < length; i++) {
            char c = text.charAt(i);
            if (c >= 0x20 && c < 0x80) {
                if (c == '"' || c == '\\') {
                    room(2);
                    bytes[size++] = '\\';
                }
                bytes[size++] = (byte) c;
            } else if (c < 0x20) {
                room(6);
                bytes[size++] = '\\';
                switch (c) {
                    case '\b':
                        bytes[size++] = 'b';
                        break;
                    case '\f':
                        bytes[size++] = 'f';
                        break;
                    case '\n':
                        bytes[size++] = 'n';
                        break;
                    case '\r':
                        bytes[size++] = 'r';
                        break;
                    case '\t':
                        bytes[size++] = 't';
                        break;
                    default:
                        bytes[size++] = 'u';
                        bytes[size++] = '0';
                        bytes[size++] = '0';
                        bytes[size++] = HEX[c >> 4];
                        bytes[size++] = HEX[c & 0xF];
                }
            } else if (c < 0x800) {
                bytes[size++] = (byte) (0xC0 | (c >> 6));
                bytes[size++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isHighSurrogate(c) && i + 1 < length) {
                int codePoint = Character.toCodePoint(c, text.charAt(++i));
                room(4);
                bytes[size++] = (byte) (0xF0 | (codePoint >> 18));
                bytes[size++] = (byte) (0x80 | ((codePoint >> 12) & 0x3F));
                bytes[size++] = (byte) (0x80 | ((codePoint >> 6) & 0x3F));
                bytes[size++] = (byte) (0x80 | (codePoint & 0x3F));
            } else {
                bytes[size++] = (byte) (0xE0 | (c >> 12));
                bytes[size++] = (byte) (0x80 | ((c >> 6) & 0x3F));
                bytes[size++] = (byte) (0x80 | (c & 0x3F));
            }
        }
        room(1);
        bytes[size++] = '"';
        return this;
    }
}
