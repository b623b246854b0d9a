package io.egresstunnel.proto;

/** Grants the peer {@code increment} more bytes of DATA on the stream. */
public record WindowUpdate(int streamId, int increment) implements Frame {

  public WindowUpdate {
    Limits.checkStreamId(streamId);
    Limits.check("window increment", increment, 1, Limits.MAX_WINDOW);
  }

  @Override
  public FrameType type() {
    return FrameType.WINDOW_UPDATE;
  }
}
