package io.egresstunnel.proto;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import java.nio.charset.StandardCharsets;

/** Test helpers that build raw frames byte by byte and push messages through the handlers. */
final class Wire {
  private final ByteBuf body = Unpooled.buffer();

  static Wire body() {
    return new Wire();
  }

  Wire u8(int v) {
    body.writeByte(v);
    return this;
  }

  Wire u16(int v) {
    body.writeShort(v);
    return this;
  }

  Wire u32(long v) {
    body.writeInt((int) v);
    return this;
  }

  Wire bytes(int... v) {
    for (int b : v) {
      body.writeByte(b);
    }
    return this;
  }

  Wire zeros(int n) {
    body.writeZero(n);
    return this;
  }

  Wire string(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    body.writeShort(b.length);
    body.writeBytes(b);
    return this;
  }

  /** A whole message: header with the body's true length, then the body. */
  byte[] frame(int type, int streamId) {
    return frame(type, 0, streamId, body.readableBytes());
  }

  /** A whole message with header fields as given (length may lie). */
  byte[] frame(int type, int flags, int streamId, int declaredLength) {
    ByteBuf out = Unpooled.buffer();
    out.writeMedium(declaredLength);
    out.writeByte(type);
    out.writeByte(flags);
    out.writeInt(streamId);
    out.writeBytes(body, body.readerIndex(), body.readableBytes());
    byte[] bytes = new byte[out.readableBytes()];
    out.readBytes(bytes);
    return bytes;
  }

  /** A decoder channel that accepts bodies up to the protocol's ceiling. */
  static EmbeddedChannel decoderChannel() {
    return new EmbeddedChannel(new FrameDecoder(Limits.MAX_FRAME_PAYLOAD_CEILING));
  }

  static BinaryWebSocketFrame message(byte[] bytes) {
    return new BinaryWebSocketFrame(Unpooled.buffer(bytes.length).writeBytes(bytes));
  }
}
