package io.egresstunnel.proto;

/**
 * The sender opens (server) or accepts (agent) no stream above {@code lastStreamId}; streams at or
 * below it may finish. {@link ErrorCode#NO_ERROR} is a graceful drain; any other code precedes
 * closing the session.
 */
public record GoAway(ErrorCode code, int lastStreamId, String message) implements Frame {

  public GoAway {
    if (code == null) {
      throw new IllegalArgumentException("go-away code is missing");
    }
    Limits.check("last stream id", lastStreamId, 0, Limits.MAX_STREAM_ID);
    message = Limits.checkMessage(message);
  }

  @Override
  public FrameType type() {
    return FrameType.GO_AWAY;
  }

  @Override
  public int streamId() {
    return 0;
  }
}
