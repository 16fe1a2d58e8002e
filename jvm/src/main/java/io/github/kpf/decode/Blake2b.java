package io.github.kpf.decode;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * BLAKE2b (RFC 7693), unkeyed, with a digest of 1 to 64 bytes and no salt or personalization.
 *
 * <p>It is here for the content hashes of records in the JVM decode path: they must equal Python's
 * {@code hashlib.blake2b(digest_size=16)} byte for byte (udfs/decode.py {@code _content_hash}), so that a record
 * hashed on either side gets the same hash. Doubles are fed as IEEE-754 little-endian with {@link #updateLong} and
 * {@link Double#doubleToRawLongBits}, as Python's {@code struct.pack("<d")} writes them.
 *
 * <p>Updates allocate nothing: whole 128-byte blocks are compressed straight from the caller's array. As RFC 7693
 * requires, a full block is kept in the buffer until more data arrives, since the last block is compressed with the
 * final flag. An instance is single-use and not thread-safe: after {@link #digest()} it refuses further calls.
 */
public final class Blake2b {

    private static final int BLOCK_BYTES = 128;

    /** The initialization vector: the first 64 bits of the fractional parts of the square roots of the first 8 primes. */
    private static final long[] IV = {
        0x6a09e667f3bcc908L, 0xbb67ae8584caa73bL, 0x3c6ef372fe94f82bL, 0xa54ff53a5f1d36f1L,
        0x510e527fade682d1L, 0x9b05688c2b3e6c1fL, 0x1f83d9abfb41bd6bL, 0x5be0cd19137e2179L,
    };

    /** The message word permutations of the 12 rounds, flattened (rounds 10 and 11 repeat rounds 0 and 1). */
    private static final byte[] SIGMA = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
        11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
        7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
        9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
        2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
        12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
        13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
        6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
        10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
    };

    private static final VarHandle LONG_LE =
        MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final int digestSize;
    private final long[] h = new long[8];
    /** The message block being compressed, as 16 little-endian words. */
    private final long[] m = new long[16];
    private final byte[] buffer = new byte[BLOCK_BYTES];
    /** Bytes in {@link #buffer}: 0 to 128; a full buffer waits for more data or for {@link #digest()}. */
    private int buffered;
    /** The 128-bit count of bytes compressed so far, low and high words. */
    private long countLow;
    private long countHigh;
    private boolean finished;

    /** Starts a hash whose digest is {@code digestSize} bytes, 1 to 64. */
    public Blake2b(int digestSize) {
        if (digestSize < 1 || digestSize > 64) {
            throw new IllegalArgumentException("BLAKE2b digest size must be 1 to 64 bytes, not " + digestSize);
        }
        this.digestSize = digestSize;
        System.arraycopy(IV, 0, h, 0, 8);
        // Parameter block: digest length, key length 0, fanout 1, depth 1; the rest (salt, personalization) is zero.
        h[0] ^= 0x01010000L ^ digestSize;
    }

    /** The BLAKE2b digest of {@code data}, {@code digestSize} bytes long. */
    public static byte[] digest(int digestSize, byte[] data) {
        return new Blake2b(digestSize).update(data).digest();
    }

    public Blake2b update(byte b) {
        checkOpen();
        if (buffered == BLOCK_BYTES) {
            compressBuffer();
        }
        buffer[buffered++] = b;
        return this;
    }

    public Blake2b update(byte[] data) {
        return update(data, 0, data.length);
    }

    public Blake2b update(byte[] data, int offset, int length) {
        checkOpen();
        if (offset < 0 || length < 0 || offset > data.length - length) {
            throw new IndexOutOfBoundsException(
                "offset " + offset + ", length " + length + " out of an array of " + data.length);
        }
        if (length > BLOCK_BYTES - buffered) {
            // More data follows the block the buffer holds or completes, so that block is not the last one.
            if (buffered > 0) {
                int fill = BLOCK_BYTES - buffered;
                System.arraycopy(data, offset, buffer, buffered, fill);
                offset += fill;
                length -= fill;
                compressBuffer();
            }
            // Whole blocks straight from the input, keeping the last (possibly full) one back for the buffer.
            while (length > BLOCK_BYTES) {
                count(BLOCK_BYTES);
                compress(data, offset, false);
                offset += BLOCK_BYTES;
                length -= BLOCK_BYTES;
            }
        }
        System.arraycopy(data, offset, buffer, buffered, length);
        buffered += length;
        return this;
    }

    /** Feeds the 8 bytes of {@code value}, little-endian: a double as {@code struct.pack("<d")} writes it. */
    public Blake2b updateLong(long value) {
        checkOpen();
        if (buffered == BLOCK_BYTES) {
            compressBuffer();
        }
        if (buffered <= BLOCK_BYTES - 8) {
            LONG_LE.set(buffer, buffered, value);
            buffered += 8;
        } else {
            // The 8 bytes straddle a block boundary.
            for (int i = 0; i < 8; i++) {
                update((byte) (value >>> (8 * i)));
            }
        }
        return this;
    }

    /** Finishes the hash and returns its digest; the object refuses any further call. */
    public byte[] digest() {
        checkOpen();
        finished = true;
        count(buffered);
        for (int i = buffered; i < BLOCK_BYTES; i++) {
            buffer[i] = 0;
        }
        compress(buffer, 0, true);
        byte[] out = new byte[digestSize];
        for (int i = 0; i < digestSize; i++) {
            out[i] = (byte) (h[i >>> 3] >>> (8 * (i & 7)));
        }
        return out;
    }

    private void checkOpen() {
        if (finished) {
            throw new IllegalStateException("this BLAKE2b hash is finished: digest() was called");
        }
    }

    /** Compresses the full buffer, known not to be the last block. */
    private void compressBuffer() {
        count(BLOCK_BYTES);
        compress(buffer, 0, false);
        buffered = 0;
    }

    private void count(int bytes) {
        countLow += bytes;
        if (Long.compareUnsigned(countLow, bytes) < 0) {
            countHigh++;
        }
    }

    /** The compression function F of RFC 7693 section 3.2 on the block at {@code block[offset..offset+128)}. */
    private void compress(byte[] block, int offset, boolean last) {
        long[] m = this.m;
        for (int i = 0; i < 16; i++) {
            m[i] = (long) LONG_LE.get(block, offset + 8 * i);
        }
        long[] h = this.h;
        long v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        long v8 = IV[0], v9 = IV[1], v10 = IV[2], v11 = IV[3];
        long v12 = IV[4] ^ countLow, v13 = IV[5] ^ countHigh;
        long v14 = last ? ~IV[6] : IV[6], v15 = IV[7];
        byte[] sigma = SIGMA;
        for (int s = 0; s < 12 * 16; s += 16) {
            // G(v0, v4, v8, v12), G(v1, v5, v9, v13), G(v2, v6, v10, v14), G(v3, v7, v11, v15): the columns.
            v0 += v4 + m[sigma[s]];
            v12 = Long.rotateRight(v12 ^ v0, 32);
            v8 += v12;
            v4 = Long.rotateRight(v4 ^ v8, 24);
            v0 += v4 + m[sigma[s + 1]];
            v12 = Long.rotateRight(v12 ^ v0, 16);
            v8 += v12;
            v4 = Long.rotateRight(v4 ^ v8, 63);

            v1 += v5 + m[sigma[s + 2]];
            v13 = Long.rotateRight(v13 ^ v1, 32);
            v9 += v13;
            v5 = Long.rotateRight(v5 ^ v9, 24);
            v1 += v5 + m[sigma[s + 3]];
            v13 = Long.rotateRight(v13 ^ v1, 16);
            v9 += v13;
            v5 = Long.rotateRight(v5 ^ v9, 63);

            v2 += v6 + m[sigma[s + 4]];
            v14 = Long.rotateRight(v14 ^ v2, 32);
            v10 += v14;
            v6 = Long.rotateRight(v6 ^ v10, 24);
            v2 += v6 + m[sigma[s + 5]];
            v14 = Long.rotateRight(v14 ^ v2, 16);
            v10 += v14;
            v6 = Long.rotateRight(v6 ^ v10, 63);

            v3 += v7 + m[sigma[s + 6]];
            v15 = Long.rotateRight(v15 ^ v3, 32);
            v11 += v15;
            v7 = Long.rotateRight(v7 ^ v11, 24);
            v3 += v7 + m[sigma[s + 7]];
            v15 = Long.rotateRight(v15 ^ v3, 16);
            v11 += v15;
            v7 = Long.rotateRight(v7 ^ v11, 63);

            // G(v0, v5, v10, v15), G(v1, v6, v11, v12), G(v2, v7, v8, v13), G(v3, v4, v9, v14): the diagonals.
            v0 += v5 + m[sigma[s + 8]];
            v15 = Long.rotateRight(v15 ^ v0, 32);
            v10 += v15;
            v5 = Long.rotateRight(v5 ^ v10, 24);
            v0 += v5 + m[sigma[s + 9]];
            v15 = Long.rotateRight(v15 ^ v0, 16);
            v10 += v15;
            v5 = Long.rotateRight(v5 ^ v10, 63);

            v1 += v6 + m[sigma[s + 10]];
            v12 = Long.rotateRight(v12 ^ v1, 32);
            v11 += v12;
            v6 = Long.rotateRight(v6 ^ v11, 24);
            v1 += v6 + m[sigma[s + 11]];
            v12 = Long.rotateRight(v12 ^ v1, 16);
            v11 += v12;
            v6 = Long.rotateRight(v6 ^ v11, 63);

            v2 += v7 + m[sigma[s + 12]];
            v13 = Long.rotateRight(v13 ^ v2, 32);
            v8 += v13;
            v7 = Long.rotateRight(v7 ^ v8, 24);
            v2 += v7 + m[sigma[s + 13]];
            v13 = Long.rotateRight(v13 ^ v2, 16);
            v8 += v13;
            v7 = Long.rotateRight(v7 ^ v8, 63);

            v3 += v4 + m[sigma[s + 14]];
            v14 = Long.rotateRight(v14 ^ v3, 32);
            v9 += v14;
            v4 = Long.rotateRight(v4 ^ v9, 24);
            v3 += v4 + m[sigma[s + 15]];
            v14 = Long.rotateRight(v14 ^ v3, 16);
            v9 += v14;
            v4 = Long.rotateRight(v4 ^ v9, 63);
        }
        h[0] ^= v0 ^ v8;
        h[1] ^= v1 ^ v9;
        h[2] ^= v2 ^ v10;
        h[3] ^= v3 ^ v11;
        h[4] ^= v4 ^ v12;
        h[5] ^= v5 ^ v13;
        h[6] ^= v6 ^ v14;
        h[7] ^= v7 ^ v15;
    }
}
