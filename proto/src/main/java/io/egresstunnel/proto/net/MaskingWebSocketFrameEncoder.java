package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToMessageEncoder;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PingWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PongWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrameEncoder;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.util.List;

/**
 * A client's websocket frame encoder (RFC 6455 section 5.2) that masks at memory speed. The masked
 * payload has to be a copy anyway, so the copy and the mask are one pass: eight bytes at a time,
 * read and written through {@link ByteBuffer} views of the payload's components and of one direct
 * output buffer, which the JIT turns into plain loads and stores. Netty's encoder instead XORs
 * through {@code ByteBuf} accessors, four bytes at a time, which on a composite payload costs more
 * than the rest of the agent's relay.
 *
 * <p>Each frame gets a fresh key from a {@link SecureRandom}, as the RFC asks ("derived from a
 * strong source of entropy"); one key per frame of up to 256 KiB costs nothing measurable.
 */
public final class MaskingWebSocketFrameEncoder extends MessageToMessageEncoder<WebSocketFrame>
    implements WebSocketFrameEncoder {
  private final SecureRandom random = new SecureRandom();

  public MaskingWebSocketFrameEncoder() {
    super(WebSocketFrame.class);
  }

  @Override
  protected void encode(ChannelHandlerContext ctx, WebSocketFrame frame, List<Object> out) {
    ByteBuf payload = frame.content();
    int length = payload.readableBytes();
    int header = WebSocketHeader.size(length, true);
    ByteBuf buf = ctx.alloc().directBuffer(header + length);
    try {
      int b0 = (frame.isFinalFragment() ? 0x80 : 0) | (frame.rsv() & 7) << 4 | opcode(frame);
      WebSocketHeader.write(buf, b0, true, length);
      int key = random.nextInt();
      buf.writeInt(key);
      if (length > 0) {
        mask(payload, key, buf.nioBuffer(header, length));
      }
      buf.writerIndex(header + length);
      out.add(buf);
      buf = null;
    } finally {
      if (buf != null) {
        buf.release();
      }
    }
  }

  /**
   * Writes {@code payload} XOR the repeated 4-byte {@code key} into {@code dst}, component by
   * component: a component may start at any offset of the key, so its 8-byte mask is the key's pair
   * rotated to that offset.
   */
  static void mask(ByteBuf payload, int key, ByteBuffer dst) {
    long pair = (key & 0xFFFFFFFFL) << 32 | (key & 0xFFFFFFFFL);
    int offset = 0; // bytes masked so far: the key's phase is offset & 3
    for (ByteBuffer src : payload.nioBuffers()) {
      long m = Long.rotateLeft(pair, 8 * (offset & 3));
      int i = src.position();
      int end = src.limit();
      int o = dst.position();
      for (; i + 8 <= end; i += 8, o += 8) {
        dst.putLong(o, src.getLong(i) ^ m);
      }
      for (int phase = 0; i < end; i++, o++, phase++) {
        dst.put(o, (byte) (src.get(i) ^ (m >>> (56 - 8 * phase))));
      }
      offset += end - src.position();
      dst.position(o);
    }
  }

  private static int opcode(WebSocketFrame frame) {
    if (frame instanceof BinaryWebSocketFrame) {
      return 2;
    }
    if (frame instanceof TextWebSocketFrame) {
      return 1;
    }
    if (frame instanceof ContinuationWebSocketFrame) {
      return 0;
    }
    if (frame instanceof PingWebSocketFrame) {
      return 9;
    }
    if (frame instanceof PongWebSocketFrame) {
      return 10;
    }
    if (frame instanceof CloseWebSocketFrame) {
      return 8;
    }
    throw new UnsupportedOperationException("cannot encode " + frame.getClass().getSimpleName());
  }
}
