package io.egresstunnel.proto;

/**
 * The agent's answer to a {@link Dial}: {@link DialStatus#OK} opens the stream, any other closes
 * it.
 */
public record DialResult(int streamId, DialStatus status, String message) implements Frame {

  public DialResult {
    Limits.checkStreamId(streamId);
    if (status == null) {
      throw new IllegalArgumentException("dial status is missing");
    }
    message = Limits.checkMessage(message);
  }

  @Override
  public FrameType type() {
    return FrameType.DIAL_RESULT;
  }
}
