package io.egresstunnel.proto;

/** Half-close: the sender will send no more DATA on the stream. The other direction stays open. */
public record Fin(int streamId) implements Frame {

  public Fin {
    Limits.checkStreamId(streamId);
  }

  @Override
  public FrameType type() {
    return FrameType.FIN;
  }
}
