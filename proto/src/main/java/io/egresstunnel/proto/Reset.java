package io.egresstunnel.proto;

/** Ends the stream at once in both directions; data in flight is discarded. */
public record Reset(int streamId, ErrorCode code, String message) implements Frame {

  public Reset {
    Limits.checkStreamId(streamId);
    if (code == null) {
      throw new IllegalArgumentException("reset code is missing");
    }
    message = Limits.checkMessage(message);
  }

  @Override
  public FrameType type() {
    return FrameType.RESET;
  }
}
