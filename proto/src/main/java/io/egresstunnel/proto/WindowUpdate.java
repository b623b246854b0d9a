package io.egresstunnel.proto;

/** Grants the peer {@code increment} more bytes of DATA on the stream. */
public record WindowUpdate(int streamId, int increment) implements Frame {

  public WindowUpdate {
    Limits.checkStreamId(streamId);
    Limits.checkWindow("window increment", increment);
  }

  @Override
  public FrameType type() {
    return FrameType.WINDOW_UPDATE;
  }
}
