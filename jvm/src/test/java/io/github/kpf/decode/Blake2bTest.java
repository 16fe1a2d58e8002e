package io.github.kpf.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** {@link Blake2b} against digests computed with Python's {@code hashlib.blake2b}, which it must equal. */
class Blake2bTest {

    /** Input length to {@code blake2b(bytes(i % 251 for i in range(length)), digest_size=16).hexdigest()}. */
    private static final Map<Integer, String> PATTERN_DIGESTS = Map.of(
        1, "7025e075d5e2f6cde3cc051a31f07660",
        127, "28b1296c7d4807883de6ee4ec04dcc0a",
        128, "a74787004ef589e31149183900d0294a",
        129, "aaf1b0371f6d4ee49ee4fb5ddd9c49ef",
        255, "e2f3b2a57bcf64d626b37fc9c12674a1",
        256, "1142c504dcd26338b7cbcf41424540d0",
        257, "b77b55d3dddcc45c6a52774565cd0dd6",
        1000, "bca120dfd89cd95d82898473a5b01c90",
        4096, "61c1938ecece323c73f0efc3bf588f07");

    private static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    private static byte[] pattern(int length) {
        byte[] data = new byte[length];
        for (int i = 0; i < length; i++) {
            data[i] = (byte) (i % 251);
        }
        return data;
    }

    private static double[] doubles() {
        double[] xs = new double[384];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = (i - 192) / 97.0;
        }
        return xs;
    }

    @Test
    void emptyInput() {
        assertEquals("cae66941d9efbd404e4d88758ea67670", hex(Blake2b.digest(16, new byte[0])));
        assertEquals(
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8",
            hex(Blake2b.digest(32, new byte[0])));
        assertEquals(
            "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
                + "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce",
            hex(new Blake2b(64).digest()));
    }

    @Test
    void rfc7693Abc() {
        assertEquals(
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
                + "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
            hex(Blake2b.digest(64, "abc".getBytes(StandardCharsets.US_ASCII))));
    }

    @Test
    void otherDigestSizes() {
        assertEquals("6b", hex(Blake2b.digest(1, "abc".getBytes(StandardCharsets.US_ASCII))));
        byte[] data = new byte[513];
        for (int i = 0; i < 512; i++) {
            data[i] = (byte) i;
        }
        data[512] = 5;
        // blake2b(bytes(range(256)) * 2 + b"\x05", digest_size=7)
        assertEquals("54790b573e4fd1", hex(Blake2b.digest(7, data)));
    }

    @Test
    void oneUpdate() {
        PATTERN_DIGESTS.forEach((length, expected) ->
            assertEquals(expected, hex(new Blake2b(16).update(pattern(length)).digest()), "length " + length));
    }

    @Test
    void oddPieces() {
        int[] pieces = {1, 7, 100};
        PATTERN_DIGESTS.forEach((length, expected) -> {
            byte[] data = pattern(length);
            Blake2b hash = new Blake2b(16);
            int offset = 0;
            for (int piece : pieces) {
                int n = Math.min(piece, length - offset);
                hash.update(data, offset, n);
                offset += n;
            }
            hash.update(data, offset, length - offset);
            assertEquals(expected, hex(hash.digest()), "length " + length);
        });
    }

    @Test
    void blockSizedPieces() {
        PATTERN_DIGESTS.forEach((length, expected) -> {
            byte[] data = pattern(length);
            Blake2b hash = new Blake2b(16);
            for (int offset = 0; offset < length; offset += 128) {
                hash.update(data, offset, Math.min(128, length - offset));
                hash.update(data, offset, 0);
            }
            assertEquals(expected, hex(hash.digest()), "length " + length);
        });
    }

    @Test
    void byteByByte() {
        PATTERN_DIGESTS.forEach((length, expected) -> {
            Blake2b hash = new Blake2b(16);
            for (byte b : pattern(length)) {
                hash.update(b);
            }
            assertEquals(expected, hex(hash.digest()), "length " + length);
        });
    }

    @Test
    void doublesLittleEndian() {
        // blake2b(b"prefix" + struct.pack("<384d", *xs), digest_size=16), xs = [(i - 192) / 97.0 for i in range(384)]
        Blake2b hash = new Blake2b(16).update("prefix".getBytes(StandardCharsets.US_ASCII));
        for (double x : doubles()) {
            hash.updateLong(Double.doubleToRawLongBits(x));
        }
        assertEquals("fa7b4cbba97876ab9f9c5f45f47c3348", hex(hash.digest()));

        // blake2b(struct.pack("<384d", *xs), digest_size=16): the doubles fill whole blocks.
        Blake2b aligned = new Blake2b(16);
        for (double x : doubles()) {
            aligned.updateLong(Double.doubleToRawLongBits(x));
        }
        assertEquals("3ee4861d93c881a20265c41749f039ef", hex(aligned.digest()));

        // blake2b(b"prefix!" + struct.pack("<384d", *xs) + b"tail", digest_size=16)
        Blake2b mixed = new Blake2b(16).update((byte) 'p').update("refix!".getBytes(StandardCharsets.US_ASCII));
        for (double x : doubles()) {
            mixed.updateLong(Double.doubleToRawLongBits(x));
        }
        mixed.update("tail".getBytes(StandardCharsets.US_ASCII));
        assertEquals("b91d068a4e2e1387a384470bd9947a88", hex(mixed.digest()));
    }

    @Test
    void refusesDigestSizesOutside1To64() {
        assertThrows(IllegalArgumentException.class, () -> new Blake2b(0));
        assertThrows(IllegalArgumentException.class, () -> new Blake2b(65));
        assertThrows(IllegalArgumentException.class, () -> Blake2b.digest(-1, new byte[0]));
    }

    @Test
    void refusesUseAfterDigest() {
        Blake2b hash = new Blake2b(16);
        hash.digest();
        assertThrows(IllegalStateException.class, hash::digest);
        assertThrows(IllegalStateException.class, () -> hash.update((byte) 1));
        assertThrows(IllegalStateException.class, () -> hash.update(new byte[3]));
        assertThrows(IllegalStateException.class, () -> hash.updateLong(1L));
    }

    @Test
    void refusesRangesOutsideTheArray() {
        Blake2b hash = new Blake2b(16);
        assertThrows(IndexOutOfBoundsException.class, () -> hash.update(new byte[4], 2, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> hash.update(new byte[4], -1, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> hash.update(new byte[4], 0, -1));
    }
}
