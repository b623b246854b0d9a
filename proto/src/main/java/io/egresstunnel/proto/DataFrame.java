package io.egresstunnel.proto;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.DefaultByteBufHolder;

/**
 * Stream bytes. The payload is reference-counted: whoever receives a DataFrame releases it (or
 * passes it on). Decoded payloads are retained slices of the received message, never copies.
 */
public final class DataFrame extends DefaultByteBufHolder implements Frame {
  private final int streamId;

  /**
   * Wraps {@code payload}, taking ownership of it. If the arguments are invalid, an {@link
   * IllegalArgumentException} is thrown and the caller keeps ownership.
   */
  public DataFrame(int streamId, ByteBuf payload) {
    super(checked(streamId, payload));
    this.streamId = streamId;
  }

  private static ByteBuf checked(int streamId, ByteBuf payload) {
    Limits.checkStreamId(streamId);
    Limits.check("data length", payload.readableBytes(), 0, Limits.MAX_FRAME_PAYLOAD_CEILING);
    return payload;
  }

  @Override
  public FrameType type() {
    return FrameType.DATA;
  }

  @Override
  public int streamId() {
    return streamId;
  }

  @Override
  public DataFrame replace(ByteBuf content) {
    return new DataFrame(streamId, content);
  }

  @Override
  public DataFrame retain() {
    super.retain();
    return this;
  }

  @Override
  public DataFrame retain(int increment) {
    super.retain(increment);
    return this;
  }

  @Override
  public DataFrame touch() {
    super.touch();
    return this;
  }

  @Override
  public DataFrame touch(Object hint) {
    super.touch(hint);
    return this;
  }

  @Override
  public String toString() {
    return "DataFrame(stream=" + streamId + ", bytes=" + content().readableBytes() + ")";
  }
}
