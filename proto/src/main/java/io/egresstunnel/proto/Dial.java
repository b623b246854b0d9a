package io.egresstunnel.proto;

/**
 * Opens stream {@code streamId}: the server asks the agent to connect to {@code host:port}.
 *
 * @param streamId the new stream's id, greater than every id the server used before
 * @param timeoutMillis how long the agent may try; 0 means the agent's default
 * @param host an IP literal or a host name
 * @param port the target port, 1..65535
 */
public record Dial(int streamId, int timeoutMillis, String host, int port) implements Frame {

  public Dial {
    Limits.checkStreamId(streamId);
    Limits.check("dial timeout", timeoutMillis, 0, Limits.MAX_DIAL_TIMEOUT_MILLIS);
    Limits.checkName("host", host);
    Limits.check("port", port, 1, 0xFFFF);
  }

  @Override
  public FrameType type() {
    return FrameType.DIAL;
  }
}
