package io.egresstunnel.proto;

/**
 * The server's answer to {@link AgentHello}: the version chosen and the limits the server enforces
 * on this session.
 *
 * @param version the protocol version both sides now speak
 * @param capabilities the offered capabilities the server accepts (a subset of the agent's)
 * @param initialWindow per-stream credit the server grants the agent, in bytes
 * @param maxFramePayload largest frame body the server accepts
 * @param maxStreams most concurrent streams (open or dialling) the server will open on this agent
 * @param serverCount how many servers serve the cluster (the agent keeps a tunnel to each)
 * @param serverId this server's stable identity, distinct among the servers of a cluster
 */
public record ServerHello(
    int version,
    int capabilities,
    int initialWindow,
    int maxFramePayload,
    int maxStreams,
    int serverCount,
    String serverId)
    implements Frame {

  public ServerHello {
    Limits.check("version", version, 1, 0xFFFF);
    Limits.checkWindow("initial window", initialWindow);
    Limits.checkMaxFramePayload("max frame payload", maxFramePayload);
    Limits.check("max streams", maxStreams, 1, Integer.MAX_VALUE);
    Limits.check("server count", serverCount, 1, 0xFFFF);
    Limits.checkName("server id", serverId);
  }

  @Override
  public FrameType type() {
    return FrameType.SERVER_HELLO;
  }

  @Override
  public int streamId() {
    return 0;
  }
}
