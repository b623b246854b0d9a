package io.egresstunnel.proto.session;

import java.util.List;

/**
 * What a session is doing, taken on its event loop, for status pages and the status command.
 *
 * @param node the agent's node
 * @param remote the peer's address
 * @param serverId the server's id (as its hello said)
 * @param connectedAtMillis when the hello exchange completed (epoch milliseconds)
 * @param lastHeardMillisAgo how long ago anything (a frame or a pong) arrived
 * @param draining whether either side sent GO_AWAY
 * @param bytesToPeer payload bytes sent to the peer, on streams open and closed
 * @param bytesFromPeer payload bytes received from the peer, on streams open and closed
 * @param streamsOpened streams carried so far
 * @param streams the streams dialling or open now
 */
public record SessionStatus(
    String node,
    String remote,
    String serverId,
    long connectedAtMillis,
    long lastHeardMillisAgo,
    boolean draining,
    long bytesToPeer,
    long bytesFromPeer,
    long streamsOpened,
    List<Stream> streams) {

  /**
   * One stream.
   *
   * @param id the stream id
   * @param target host:port
   * @param state its state (docs/protocol.md)
   * @param ageMillis time since the dial was sent or received
   * @param bytesToPeer payload bytes sent to the peer
   * @param bytesFromPeer payload bytes received from the peer
   * @param protocol the client's protocol on the server ({@code connect}, {@code grpc}), else null
   */
  public record Stream(
      int id,
      String target,
      String state,
      long ageMillis,
      long bytesToPeer,
      long bytesFromPeer,
      String protocol) {}
}
