package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBuf;

/**
 * RFC 6455's frame header, for the places that write or read one by hand rather than through
 * Netty's codec: the masking encoder, spliced sends and the splice tap.
 */
public final class WebSocketHeader {
  private WebSocketHeader() {}

  /** The first byte of a final binary frame. */
  public static final int FINAL_BINARY = 0x82;

  /** The size of a header for a payload of {@code length} bytes. */
  public static int size(long length, boolean masked) {
    return 2 + (length <= 125 ? 0 : length <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
  }

  /**
   * Writes the first byte {@code b0} and the payload length, with the mask bit if {@code masked}
   * (the caller writes the key after it).
   */
  public static void write(ByteBuf out, int b0, boolean masked, long length) {
    int mask = masked ? 0x80 : 0;
    out.writeByte(b0);
    if (length <= 125) {
      out.writeByte(mask | (int) length);
    } else if (length <= 0xFFFF) {
      out.writeByte(mask | 126).writeShort((int) length);
    } else {
      out.writeByte(mask | 127).writeLong(length);
    }
  }

  /** The size of a header from its second byte {@code b1}: its extended length and mask key. */
  public static int sizeFrom(int b1) {
    int len7 = b1 & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) != 0 ? 4 : 0);
  }

  /**
   * The payload length in the header at {@code pos} of {@code in}. A 64-bit length with its top bit
   * set is invalid (a decoder rejects it); it answers {@link Long#MAX_VALUE}.
   */
  public static long payloadLength(ByteBuf in, int pos) {
    int len7 = in.getUnsignedByte(pos + 1) & 0x7F;
    return switch (len7) {
      case 126 -> in.getUnsignedShort(pos + 2);
      case 127 -> {
        long len = in.getLong(pos + 2);
        yield len < 0 ? Long.MAX_VALUE : len;
      }
      default -> len7;
    };
  }
}
